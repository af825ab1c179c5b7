//! Test helpers shared by the toolkit's crates.

pub mod moto;
pub mod redis;
pub mod rows;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

/// A program of the Python environment the tests use (target/pyenv, made by
/// `scripts/python-env.sh`, which `scripts/test.sh` runs first).
pub fn pyenv_program(name: &str) -> std::path::PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/pyenv/bin")
        .join(name);
    assert!(
        p.exists(),
        "no {name} at {}: run scripts/test.sh (or scripts/python-env.sh), which makes target/pyenv",
        p.display()
    );
    p
}

/// Writes `content` to `dir/name` (making its folders) and returns the path.
pub fn write_file(dir: &Path, name: &str, content: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::write(&path, content).unwrap_or_else(|e| panic!("{e}"));
    path
}

/// Three load files that make three stream commits of 6, 2 and 2 changes on neptune-local:
/// two users with an email and an age; an edge between them with a weight; then (loaded with
/// `updateSingleCardinalityProperties`) one email replaced and one given again unchanged.
/// Written under `dir`; returns the three in load order.
pub fn stream_commit_files(dir: &Path) -> [std::path::PathBuf; 3] {
    [
        write_file(
            dir,
            "v1.csv",
            "~id,~label,email:String(single),age:Int(single)\n\
             u1,User,a@x.com,31\n\
             u2,User,b@x.com,42\n",
        ),
        write_file(
            dir,
            "e1.csv",
            "~id,~from,~to,~label,weight:Double\ne1,u1,u2,knows,0.5\n",
        ),
        write_file(
            dir,
            "v2.csv",
            "~id,~label,email:String(single)\nu1,User,a.new@x.com\nu2,User,b@x.com\n",
        ),
    ]
}

/// The records of a CSV file after its header, as strings (records may differ in length).
pub fn csv_records(path: &Path) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .records()
        .map(|r| {
            r.unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .iter()
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

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

/// One request the server received, as far as encryption tests care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    /// Path and query, e.g. `/bucket/key?uploads`.
    pub target: String,
    /// The `x-amz-server-side-encryption` header, if the request had one.
    pub encryption: Option<String>,
    /// The `x-amz-server-side-encryption-aws-kms-key-id` header, if the request had one.
    pub kms_key_id: Option<String>,
}

impl Recorded {
    /// A request that creates an object's content: a PUT of a whole object (not a part, not a
    /// copy) or the start of a multipart upload.
    pub fn writes_an_object(&self) -> bool {
        let part = self.target.contains("partNumber=");
        (self.method == "PUT" && !part)
            || (self.method == "POST" && self.target.ends_with("?uploads"))
    }
}

/// An S3-compatible server (s3s-fs over a local folder) on 127.0.0.1, stopped on drop. It
/// records every request's server-side encryption headers and echoes them in the answer, as S3
/// does (s3s-fs itself ignores them): the algorithm, and a KMS key as its ARN.
#[derive(Debug)]
pub struct LocalS3 {
    pub address: SocketAddr,
    requests: std::sync::Arc<std::sync::Mutex<Vec<Recorded>>>,
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

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    pub fn start(root: &Path) -> LocalS3 {
        LocalS3::serve(root, Echo::Asked)
    }

    /// A server over a new temporary folder holding the `buckets`, with a store of it.
    pub fn with_buckets(buckets: &[&str]) -> (tempfile::TempDir, LocalS3, idgraph_storage::Store) {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for bucket in buckets {
            std::fs::create_dir_all(root.path().join(bucket)).unwrap_or_else(|e| panic!("{e}"));
        }
        let server = LocalS3::start(root.path());
        let store = idgraph_storage::Store::for_endpoint(&server.endpoint(), KEY, SECRET);
        (root, server, store)
    }

    /// A server that, like some S3-compatible ones, ignores the encryption header and says
    /// nothing of it in its answers.
    pub fn start_ignoring_encryption(root: &Path) -> LocalS3 {
        LocalS3::serve(root, Echo::Nothing)
    }

    /// A server whose answers name the KMS key `key` whatever key was asked for (as a bucket
    /// whose policy enforces its own key would).
    pub fn start_answering_kms_key(root: &Path, key: &'static str) -> LocalS3 {
        LocalS3::serve(root, Echo::KmsKey(key))
    }

    fn serve(root: &Path, echo: Echo) -> LocalS3 {
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorder = requests.clone();
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
                let s3 = builder.build();
                let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let header = |name: &str| {
                        request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
                    };
                    let encryption = header("x-amz-server-side-encryption");
                    let kms_key_id = header("x-amz-server-side-encryption-aws-kms-key-id");
                    if let Ok(mut seen) = recorder.lock() {
                        seen.push(Recorded {
                            method: request.method().to_string(),
                            target: request.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default(),
                            encryption: encryption.clone(),
                            kms_key_id: kms_key_id.clone(),
                        });
                    }
                    let answered_key = match echo {
                        Echo::Nothing => None,
                        Echo::Asked => kms_key_id,
                        Echo::KmsKey(key) => encryption.as_ref().filter(|e| *e == "aws:kms").map(|_| key.to_owned()),
                    }
                    .map(|key| {
                        if key.starts_with("arn:") {
                            key
                        } else {
                            format!("arn:aws:kms:us-east-1:000000000000:key/{key}")
                        }
                    });
                    let encryption = encryption.filter(|_| echo != Echo::Nothing);
                    let call = hyper::service::Service::call(&s3, request);
                    async move {
                        let mut response = call.await?;
                        if response.status().is_success() {
                            for (name, value) in [
                                ("x-amz-server-side-encryption", encryption),
                                ("x-amz-server-side-encryption-aws-kms-key-id", answered_key),
                            ] {
                                if let Some(value) = value.and_then(|v| http::HeaderValue::from_str(&v).ok()) {
                                    response.headers_mut().insert(name, value);
                                }
                            }
                        }
                        Ok::<_, s3s::HttpError>(response)
                    }
                });
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
            requests,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

/// What a [`LocalS3`] says of encryption in its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Echo {
    Nothing,
    Asked,
    KmsKey(&'static str),
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
