//! A local stand-in for Amazon Neptune's bulk loader: the loader's HTTP API
//! (neptune-reference.md §2) over an embedded SQLite graph store, with Gremlin CSV checked as
//! strictly as Neptune checks it (§1).
//!
//! ```text
//! HTTP (axum)  ->  jobs: admission, queue of 64, dependencies, modes, durable history
//!              ->  worker thread: list source (local or S3) -> read (.gz) -> check -> apply
//!                  vertex files, then edge files, to the graph store (SQLite)
//! ```
//!
//! It is the test double of the `loader` crate and the default target when no Neptune endpoint
//! is configured. Tests start it in-process on `127.0.0.1:0` with [`Server::start`], and can
//! inject faults through [`Server::faults`].

mod api;
mod execute;
mod faults;
mod jobs;
mod model;
mod sandbox;
mod sigv4;
mod store;
mod stream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

pub use faults::{Faults, NotTerminal};
pub use sigv4::SigV4Credentials;
pub use store::{
    EdgeDump, GraphDump, GraphStore, Neighbour, Property, Retention, Stats, StoreError, VertexView,
};

/// The status payload as JSON, for clients of this endpoint (and of Neptune) that use
/// `aws-sdk-neptunedata`: it hands the payload over as an untyped `Document`, which has no serde
/// support.
pub fn payload_json(document: &aws_smithy_types::Document) -> serde_json::Value {
    use aws_smithy_types::{Document, Number};
    use serde_json::Value;
    match document {
        Document::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), payload_json(v)))
                .collect(),
        ),
        Document::Array(items) => Value::Array(items.iter().map(payload_json).collect()),
        Document::Number(Number::PosInt(n)) => Value::from(*n),
        Document::Number(Number::NegInt(n)) => Value::from(*n),
        Document::Number(Number::Float(f)) => Value::from(*f),
        Document::String(s) => Value::String(s.clone()),
        Document::Bool(b) => Value::Bool(*b),
        Document::Null => Value::Null,
    }
}

/// Entry points for the fuzz targets under `fuzz/`; not an API to build on.
#[doc(hidden)]
pub mod fuzzing {
    /// Parses a start request's body as the `POST /loader` handler does (a JSON object, then
    /// every parameter's rules) and its source's form.
    pub fn start_request(body: &[u8]) -> Result<(), String> {
        let params: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let request = crate::model::LoadRequest::parse(&params)?;
        crate::execute::Source::parse(&request.source).map(|_| ())
    }
}

/// The graph store's file name inside the data folder.
pub const GRAPH_FILE: &str = "graph.db";

/// How to run a server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Holds `graph.db` (the graph) and `loads.db` (the load history); created if missing.
    pub data_dir: PathBuf,
    /// Where to listen; port 0 picks a free one.
    pub addr: SocketAddr,
    /// When set, every request must carry a valid SigV4 signature made with these credentials.
    pub sigv4: Option<SigV4Credentials>,
    /// The folders local sources may be read from besides the data folder (regular files
    /// only, checked on the open handle after resolving `..` and links). The working directory
    /// is not among them unless given.
    pub local_source_dirs: Vec<PathBuf>,
    /// The S3 buckets sources may be read from (with the server's own credentials, so only
    /// those it is told); none by default.
    pub allowed_buckets: Vec<String>,
    /// Host names a request's `Host` may name besides loopback ones and the listening address.
    pub allowed_hosts: Vec<String>,
    /// Serve a non-loopback address without SigV4: refused unless this is set.
    pub allow_unauthenticated: bool,
    /// Record every committed change as Neptune Streams does, kept this long; `None`: off.
    pub streams: Option<Retention>,
    /// Keep the loader's messages in the error log as Neptune words them, quoting the data;
    /// off, an entry keeps its code, file and record number, so the log carries no values.
    pub show_values: bool,
}

impl Config {
    /// Listens on `addr` over `data_dir`, with no SigV4 and the default source folders.
    pub fn new(data_dir: PathBuf, addr: SocketAddr) -> Config {
        Config {
            data_dir,
            addr,
            sigv4: None,
            local_source_dirs: Vec::new(),
            allowed_buckets: Vec::new(),
            allowed_hosts: Vec::new(),
            allow_unauthenticated: false,
            show_values: false,
            streams: Some(Retention::default()),
        }
    }
}

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data folder {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    History(String),
    #[error(
        "another neptune-local already serves {path} (one server per data folder; stop it or \
         use another --data-dir)"
    )]
    Busy { path: String },
    #[error(
        "{addr} is not a loopback address: anyone who reaches it could load data and read the \
         graph. Require signed requests (--require-sigv4), or say --allow-unauthenticated"
    )]
    Unauthenticated { addr: SocketAddr },
    #[error("cannot use {path} as a source folder: {source}")]
    SourceDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running server. Dropping it stops it: a load in progress is interrupted as a crash would
/// interrupt it, and is reported as `LOAD_UNEXPECTED_ERROR` after a restart.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    jobs: Arc<jobs::Jobs>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    http: Option<JoinHandle<()>>,
    worker: Option<JoinHandle<()>>,
    /// Held while the server runs.
    _data_dir_lock: std::fs::File,
}

impl Server {
    /// Opens the data folder, binds the address and serves on threads of its own, so it can be
    /// started from synchronous and asynchronous code alike.
    pub fn start(config: Config) -> Result<Server, StartError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        // One server per data folder: the OS releases this lock when the process ends, however
        // it ends.
        let lock_path = config.data_dir.join("neptune-local.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| StartError::DataDir {
                path: lock_path.display().to_string(),
                source,
            })?;
        if lock.try_lock().is_err() {
            return Err(StartError::Busy {
                path: config.data_dir.display().to_string(),
            });
        }
        if !config.addr.ip().is_loopback()
            && config.sigv4.is_none()
            && !config.allow_unauthenticated
        {
            return Err(StartError::Unauthenticated { addr: config.addr });
        }
        let wanted = std::iter::once(&config.data_dir).chain(&config.local_source_dirs);
        let local_roots = wanted
            .map(|dir| {
                dir.canonicalize().map_err(|source| StartError::SourceDir {
                    path: dir.display().to_string(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sandbox = Arc::new(sandbox::Sandbox {
            local_roots,
            buckets: config.allowed_buckets.clone(),
            hosts: config.allowed_hosts.clone(),
        });
        let mut graph = GraphStore::open(&config.data_dir.join(GRAPH_FILE))?;
        if let Some(retention) = config.streams {
            graph = graph.with_stream(retention);
        }
        let faults = Arc::new(Faults::default());
        let jobs =
            Arc::new(jobs::Jobs::open(&config.data_dir, faults).map_err(StartError::History)?);
        let storage = Arc::new(idgraph_storage::Store::default());
        let bind = |source| StartError::Bind {
            addr: config.addr,
            source,
        };
        let listener = std::net::TcpListener::bind(config.addr).map_err(bind)?;
        listener.set_nonblocking(true).map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(bind)?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(bind)?
        };
        let router = api::router(api::Api {
            jobs: jobs.clone(),
            storage: storage.clone(),
            sigv4: config.sigv4.map(Arc::new),
            started: jobs::now_seconds(),
            graph_path: config.data_dir.join(GRAPH_FILE),
            sandbox: sandbox.clone(),
            listening: addr,
            streams: config.streams.is_some(),
        });
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let http = std::thread::Builder::new()
            .name("neptune-local-http".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let served = axum::serve(listener, router)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await;
                    if let Err(e) = served {
                        eprintln!("neptune-local: the HTTP server stopped: {e}");
                    }
                });
                runtime.shutdown_timeout(std::time::Duration::from_secs(2));
            })
            .map_err(bind)?;
        let worker = execute::Worker {
            graph,
            sandbox,
            storage,
            show_values: config.show_values,
            jobs: jobs.clone(),
        };
        let worker = std::thread::Builder::new()
            .name("neptune-local-loader".into())
            .spawn(move || worker.run())
            .map_err(bind)?;
        Ok(Server {
            addr,
            jobs,
            shutdown: Some(shutdown),
            http: Some(http),
            worker: Some(worker),
            _data_dir_lock: lock,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Loads `source` (a file or folder this server may read) as a `POST /loader` with these
    /// settings would, waits for the load to end and returns its final status
    /// (`LOAD_COMPLETED`, `LOAD_FAILED`, ...). For programs and tests that run a server in
    /// process and want a graph in it without an HTTP client.
    pub fn load_and_wait(
        &self,
        source: &str,
        update_single_cardinality: bool,
    ) -> Result<String, String> {
        let params = serde_json::json!({
            "source": source,
            "format": "csv",
            "iamRoleArn": "arn:aws:iam::000000000000:role/neptune-local",
            "region": "us-east-1",
            "updateSingleCardinalityProperties": if update_single_cardinality { "TRUE" } else { "FALSE" },
        });
        let request = model::LoadRequest::parse(params.as_object().ok_or("not an object")?)?;
        let id = self.jobs.submit(request).map_err(|r| format!("{r:?}"))?;
        loop {
            let status = self
                .jobs
                .with_load(&id, |load| load.status.clone())
                .ok_or_else(|| format!("load {id} vanished"))?;
            if !model::status::is_waiting(&status) && status != model::status::IN_PROGRESS {
                return Ok(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// `http://ADDR`, for a client's `endpoint_url`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The faults to inject into the next requests and loads.
    pub fn faults(&self) -> &Faults {
        &self.jobs.faults
    }

    /// Serves until the process is stopped.
    pub fn wait(mut self) {
        if let Some(http) = self.http.take() {
            let _ = http.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.jobs.shutdown();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        for handle in [self.worker.take(), self.http.take()].into_iter().flatten() {
            let _ = handle.join();
        }
    }
}
