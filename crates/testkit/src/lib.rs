//! Test helpers shared by the toolkit's crates.

use std::net::SocketAddr;
use std::path::Path;

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
