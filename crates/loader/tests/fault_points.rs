//! Exactly-once loading at every point a loader process can die. Each test runs the loader
//! against an endpoint in another process (`neptune-local serve`, reading the stage from a local
//! S3-compatible server, as a cluster would), makes the loader exit at one named point
//! (`IDGRAPH_TEST_EXIT_AT`), starts it again, and then checks, from the endpoint's own load
//! history, that every source was loaded by exactly one load that wrote records, and that the
//! graph equals the graph of a run that was never interrupted.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use testkit::LocalS3;

const BATCH: &str = "20260115_060000";

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

/// The same sources in every root: an initial batch and one incremental batch.
fn generate(root: &Path) {
    datagen::generate(&datagen::Config {
        root: root.to_path_buf(),
        records: 400,
        ..datagen::Config::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    datagen::generate(&datagen::Config {
        root: root.to_path_buf(),
        records: 150,
        incremental: true,
        batch: Some(BATCH.parse().unwrap_or_else(|e| panic!("{e}"))),
        ..datagen::Config::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

/// `neptune-local serve` in its own process, killed on drop.
struct Endpoint {
    child: Child,
    url: String,
    data_dir: PathBuf,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn neptune_local_bin() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_loader")).with_file_name("neptune-local");
    assert!(
        path.exists(),
        "{} is missing: build it first (cargo build -p neptune-local); \
         `cargo test --workspace` builds it",
        path.display()
    );
    path
}

fn serve(data_dir: &Path, s3: &LocalS3) -> Endpoint {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut command = Command::new(neptune_local_bin());
    command
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    s3.aws_env(&mut command);
    let child = command.spawn().unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "neptune-local did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Endpoint {
        child,
        url: format!("http://127.0.0.1:{port}"),
        data_dir: data_dir.to_path_buf(),
    }
}

/// `loader` against the endpoint, staging under `s3://stage/<prefix>`.
fn loader(root: &Path, endpoint: &Endpoint, s3: &LocalS3, prefix: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_loader"));
    command
        .arg("--root")
        .arg(root)
        .args(["--quiet", "--neptune-endpoint", &endpoint.url])
        .args(["--stage", &format!("s3://stage/{prefix}")])
        .args(["--iam-role-arn", "arn:aws:iam::000000000000:role/test"])
        .args(["--region", "us-east-1"])
        .args(args)
        .env_remove("IDGRAPH_TEST_EXIT_AT");
    s3.aws_env(&mut command);
    command
}

fn output(mut command: Command) -> Output {
    command.output().unwrap_or_else(|e| panic!("{e}"))
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every load the endpoint knows, by source: (status, records) of each.
fn history(
    root: &Path,
    endpoint: &Endpoint,
    s3: &LocalS3,
    prefix: &str,
) -> BTreeMap<String, Vec<(String, u64)>> {
    let out = output(loader(
        root,
        endpoint,
        s3,
        prefix,
        &["list", "--limit", "100", "--json"],
    ));
    assert!(out.status.success(), "{}", describe(&out));
    let ids: Vec<String> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let mut loads: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for id in ids {
        let out = output(loader(
            root,
            endpoint,
            s3,
            prefix,
            &["status", &id, "--json"],
        ));
        assert!(out.status.success(), "{}", describe(&out));
        let status: loader::LoadStatus =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
        loads
            .entry(status.full_uri.clone())
            .or_default()
            .push((status.status, status.total_records));
    }
    loads
}

fn graph(data_dir: &Path) -> neptune_local::Stats {
    neptune_local::GraphStore::open(&data_dir.join(neptune_local::GRAPH_FILE))
        .and_then(|g| g.stats())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `full` then `incremental`, each made to exit at `point` (when it passes there) and run
/// again; returns the graph and the endpoint's history.
fn interrupted_at(
    point: Option<&str>,
    s3: &LocalS3,
) -> (neptune_local::Stats, BTreeMap<String, Vec<(String, u64)>>) {
    let dir = tempdir();
    let root = dir.path().join("root");
    generate(&root);
    let prefix = point.unwrap_or("whole");
    let endpoint = serve(&dir.path().join("neptune"), s3);
    let mut exited = 0;
    for command in ["full", "incremental"] {
        let mut first = loader(&root, &endpoint, s3, prefix, &[command]);
        // Once: a run that died is restarted without the switch.
        if let Some(point) = point.filter(|_| exited == 0) {
            first.env("IDGRAPH_TEST_EXIT_AT", point);
        }
        let out = output(first);
        match out.status.code() {
            Some(0) => {}
            Some(86) => {
                exited += 1;
                let again = output(loader(&root, &endpoint, s3, prefix, &[command]));
                assert!(
                    again.status.success(),
                    "after {point:?}: {}",
                    describe(&again)
                );
            }
            _ => panic!("{command} at {point:?}: {}", describe(&out)),
        }
    }
    if point.is_some() {
        assert_eq!(exited, 1, "the run never passed {point:?}");
    }
    let loads = history(&root, &endpoint, s3, prefix);
    let data_dir = endpoint.data_dir.clone();
    // The endpoint's loads have all ended (every run waited for them): stop it, read its graph.
    drop(endpoint);
    (graph(&data_dir), loads)
}

/// The graph of a run that was never interrupted: made once, for every test of this file.
fn uninterrupted() -> &'static neptune_local::Stats {
    static WHOLE: std::sync::OnceLock<neptune_local::Stats> = std::sync::OnceLock::new();
    WHOLE.get_or_init(|| {
        let (_dir, s3, _store) = LocalS3::with_buckets(&["stage"]);
        interrupted_at(None, &s3).0
    })
}

fn check(point: &str) {
    let (_dir, s3, _store) = LocalS3::with_buckets(&["stage"]);
    let (graph, loads) = interrupted_at(Some(point), &s3);
    let mut sources: Vec<String> = ["initial", &format!("incremental/{BATCH}")]
        .iter()
        .flat_map(|b| {
            ["vertices", "edges"]
                .map(|part| format!("s3://stage/{point}/datasets/graph/{b}/{part}/"))
        })
        .collect();
    // Identity resolution's batches: personId vertices only.
    for b in ["initial", BATCH] {
        sources.push(format!(
            "s3://stage/{point}/datasets/identity/graph/{b}/vertices/"
        ));
    }
    assert_eq!(loads.len(), sources.len(), "at {point}: {loads:?}");
    for source in &sources {
        let of_source = loads.get(source).cloned().unwrap_or_default();
        assert_eq!(
            of_source.len(),
            1,
            "at {point}: {source} was loaded by {of_source:?}"
        );
        assert!(
            of_source[0].0 == "LOAD_COMPLETED" && of_source[0].1 > 0,
            "at {point}: {source}: {of_source:?}"
        );
    }
    assert_eq!(&graph, uninterrupted(), "at {point}");
}

#[test]
fn killed_after_resolving_before_the_identity_load() {
    check("after-resolve");
}

#[test]
fn killed_before_the_start_call() {
    check("before-start");
}

#[test]
fn killed_after_the_start_call_before_its_id_is_recorded() {
    check("after-start");
}

#[test]
fn killed_after_the_load_id_is_recorded() {
    check("after-state");
}

#[test]
fn killed_while_polling() {
    check("polling");
}

#[test]
fn killed_between_the_vertex_and_edge_loads() {
    check("between-parts");
}

#[test]
fn killed_before_the_watermark_moves() {
    check("before-watermark");
}
