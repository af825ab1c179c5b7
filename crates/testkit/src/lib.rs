//! Test helpers shared by the toolkit's crates.

pub mod rows;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

/// Every file below `root`: relative path (with `/`) to bytes. Two snapshots compare whole trees.
pub fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .replace('\\', "/");
                let bytes =
                    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                out.insert(relative, bytes);
            }
        }
    }
    out
}

/// An S3-compatible server (s3s-fs over a local folder) on 127.0.0.1, stopped on drop.
#[derive(Debug)]
pub struct LocalS3 {
    pub address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub const KEY: &str = "test-access-key";
pub const SECRET: &str = "test-secret-key";

impl LocalS3 {
    /// `http://ADDRESS`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Points a child process's standard AWS configuration at this server (endpoint, test
    /// credentials, a region) and away from the user's own files and profile.
    pub fn aws_env<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command
            .env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    }

    pub fn start(root: &Path) -> LocalS3 {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let root = root.to_path_buf();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("{e}"));
            runtime.block_on(async move {
                let fs = s3s_fs::FileSystem::new(&root).unwrap_or_else(|e| panic!("{e:?}"));
                let mut builder = s3s::service::S3ServiceBuilder::new(fs);
                builder.set_auth(s3s::auth::SimpleAuth::from_single(KEY, SECRET));
                let service = builder.build();
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
                let _ = ready_tx.send(listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
                let server = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((socket, _)) = accepted else { continue };
                            let connection = server.serve_connection(hyper_util::rt::TokioIo::new(socket), service.clone()).into_owned();
                            tokio::spawn(async move { let _ = connection.await; });
                        }
                        _ = &mut stop_rx => break,
                    }
                }
            });
        });
        let address = ready_rx
            .recv()
            .unwrap_or_else(|e| panic!("the S3 server did not start: {e}"));
        LocalS3 {
            address,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for LocalS3 {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
