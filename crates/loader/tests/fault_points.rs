//! Exactly-once loading at every point a loader process can die. Each test runs the loader
//! against an endpoint in another process (`neptune-local serve`, reading the stage from a local
//! S3-compatible server, as a cluster would), makes the loader exit at one named point
//! (`IDGRAPH_TEST_EXIT_AT`), starts it again, and then checks, from the endpoint's own load
//! history, that every source was loaded as often as by a run that was never interrupted, and
//! that the whole graph (every vertex and edge with its labels, ends and property values)
//! equals that run's. Each command is killed once at every part that passes the point (vertex
//! and edge loads of the initial batch, an incremental batch, and the initial batch transformed
//! again with a changed value), so an earlier generation's load is never taken for a new one.

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
            "--allow-bucket",
            "stage",
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

fn graph(data_dir: &Path) -> neptune_local::GraphDump {
    neptune_local::GraphStore::open(&data_dir.join(neptune_local::GRAPH_FILE))
        .and_then(|g| g.dump())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The new street address the re-transformed initial batch gives its first profile.
const NEW_ADDRESS: &str = "1 Regenerated Road";

/// Gives the first profile of the initial sources a new street address, then transforms the
/// initial batch again (`transform --force`): same file names, one value changed. Returns the
/// profile's user name.
fn retransform_with_new_address(root: &Path) -> String {
    let file = root.join("datasets/sources/initial/first_party/first_party_data_full.csv");
    let mut reader = csv::Reader::from_path(&file).unwrap_or_else(|e| panic!("{e}"));
    let headers = reader.headers().unwrap_or_else(|e| panic!("{e}")).clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no {name} column"))
    };
    let (address, user) = (column("street_address"), column("user_name"));
    let mut rows: Vec<csv::StringRecord> = reader
        .records()
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let user_name = rows[0][user].to_owned();
    rows[0] = rows[0]
        .iter()
        .enumerate()
        .map(|(i, v)| if i == address { NEW_ADDRESS } else { v })
        .collect();
    let mut writer = csv::Writer::from_path(&file).unwrap_or_else(|e| panic!("{e}"));
    writer
        .write_record(&headers)
        .unwrap_or_else(|e| panic!("{e}"));
    for row in &rows {
        writer.write_record(row).unwrap_or_else(|e| panic!("{e}"));
    }
    writer.flush().unwrap_or_else(|e| panic!("{e}"));
    let local = idgraph_storage::Location::Local(root.to_path_buf());
    let mut options =
        transform::Options::new(local.clone(), local).unwrap_or_else(|e| panic!("{e}"));
    options.force = true;
    transform::run(&options).unwrap_or_else(|e| panic!("{e}"));
    user_name
}

/// What a scenario ends with: the whole graph, the endpoint's load history, and the
/// (point, part) pairs the loader was killed at.
struct Outcome {
    graph: neptune_local::GraphDump,
    loads: BTreeMap<String, Vec<(String, u64)>>,
    kills: Vec<String>,
    user_name: String,
}

/// Runs `full`, `incremental`, then (after the initial batch is transformed again with a
/// changed value) `full` again. With a point, each command is killed there once at every part
/// (vertex and edge load of each batch and generation, identity batches included) that passes
/// it, and run again until it exits 0.
fn interrupted_at(point: Option<&str>, s3: &LocalS3) -> Outcome {
    let dir = tempdir();
    let root = dir.path().join("root");
    generate(&root);
    let prefix = point.unwrap_or("whole");
    let endpoint = serve(&dir.path().join("neptune"), s3);
    let mut user_name = String::new();
    let mut kills = Vec::new();
    for (step, command) in ["full", "incremental", "full"].into_iter().enumerate() {
        // A log per command: the second `full` is killed again at the parts the first passed.
        let kill_log = dir.path().join(format!("kills-{step}"));
        if step == 2 {
            user_name = retransform_with_new_address(&root);
        }
        for attempt in 0.. {
            assert!(attempt < 40, "{command} at {point:?} never finished");
            let mut run = loader(&root, &endpoint, s3, prefix, &[command]);
            if let Some(point) = point {
                run.env("IDGRAPH_TEST_EXIT_AT", point)
                    .env("IDGRAPH_TEST_EXIT_LOG", &kill_log);
            }
            let out = output(run);
            match out.status.code() {
                Some(0) => break,
                Some(86) => continue,
                _ => panic!("{command} at {point:?}: {}", describe(&out)),
            }
        }
        kills.extend(
            std::fs::read_to_string(&kill_log)
                .unwrap_or_default()
                .lines()
                .map(|l| format!("{command} #{step}: {l}")),
        );
    }
    let loads = history(&root, &endpoint, s3, prefix);
    let data_dir = endpoint.data_dir.clone();
    // The endpoint's loads have all ended (every run waited for them): stop it, read its graph.
    drop(endpoint);
    Outcome {
        graph: graph(&data_dir),
        loads,
        kills,
        user_name,
    }
}

/// The run that was never interrupted: made once, for every test of this file.
fn uninterrupted() -> &'static Outcome {
    static WHOLE: std::sync::OnceLock<Outcome> = std::sync::OnceLock::new();
    WHOLE.get_or_init(|| {
        let (_dir, s3, _store) = LocalS3::with_buckets(&["stage"]);
        let whole = interrupted_at(None, &s3);
        // The re-transformed value reached the graph (else the comparison proves little).
        let user = whole
            .graph
            .vertices
            .values()
            .find(|(_, props)| {
                props
                    .iter()
                    .any(|p| p.name == "userName" && p.value == whole.user_name)
            })
            .unwrap_or_else(|| panic!("no User {}", whole.user_name));
        let addresses: Vec<&str> = user
            .1
            .iter()
            .filter(|p| p.name == "streetAddress")
            .map(|p| p.value.as_str())
            .collect();
        assert_eq!(addresses, [NEW_ADDRESS], "{user:?}");
        whole
    })
}

/// Kills the loader at `point` at every part that passes it; `parts` is how many such parts
/// there are (a part no longer passing the point fails the test too).
fn check(point: &str, parts: usize) {
    let (_dir, s3, _store) = LocalS3::with_buckets(&["stage"]);
    let outcome = interrupted_at(Some(point), &s3);
    assert_eq!(
        outcome.kills.len(),
        parts,
        "at {point}: killed at {:?}",
        outcome.kills
    );
    let whole = uninterrupted();
    // Each source was loaded exactly as often as by the uninterrupted run (the initial batch's
    // twice: two generations), every load complete and writing records.
    let rename = |loads: &BTreeMap<String, Vec<(String, u64)>>, prefix: &str| {
        loads
            .iter()
            .map(|(source, loads)| (source.replace(prefix, "PREFIX"), loads.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    let expected = rename(&whole.loads, "s3://stage/whole/");
    assert_eq!(
        rename(&outcome.loads, &format!("s3://stage/{point}/")),
        expected,
        "at {point}: the endpoint's loads (killed at {:?})",
        outcome.kills
    );
    for (source, loads) in &expected {
        assert!(
            loads.iter().all(|(s, n)| s == "LOAD_COMPLETED" && *n > 0),
            "{source}: {loads:?}"
        );
    }
    assert!(
        outcome.graph == whole.graph,
        "at {point} (killed at {:?}): the graph differs from the uninterrupted run's: {}",
        outcome.kills,
        graph_difference(&outcome.graph, &whole.graph)
    );
}

/// The first few elements that differ between two graphs, for the failure message.
fn graph_difference(got: &neptune_local::GraphDump, want: &neptune_local::GraphDump) -> String {
    let mut out = differences("vertex", &got.vertices, &want.vertices);
    out.extend(differences("edge", &got.edges, &want.edges));
    out.truncate(5);
    out.join("\n")
}

/// The elements of one kind that differ, are missing or are extra in `got`.
fn differences<V: PartialEq + std::fmt::Debug>(
    kind: &str,
    got: &BTreeMap<String, V>,
    want: &BTreeMap<String, V>,
) -> Vec<String> {
    want.iter()
        .filter(|(id, v)| got.get(*id) != Some(*v))
        .map(|(id, v)| format!("{kind} {id}: {:?} instead of {v:?}", got.get(id)))
        .chain(
            got.keys()
                .filter(|id| !want.contains_key(*id))
                .map(|id| format!("extra {kind} {id}")),
        )
        .collect()
}

#[test]
fn killed_after_resolving_before_the_identity_load() {
    // Resolving the initial batch, the incremental batch and the re-transformed initial batch.
    check("after-resolve", 3);
}

#[test]
fn killed_before_the_start_call() {
    // Vertices and edges of the initial batch, the incremental batch and the re-transformed
    // initial batch, and the vertices of the first two's identity batches (the third resolves
    // to the same identities: its identity batch is loaded already).
    check("before-start", 8);
}

#[test]
fn killed_after_the_start_call_before_its_id_is_recorded() {
    check("after-start", 8);
}

#[test]
fn killed_after_the_load_id_is_recorded() {
    check("after-state", 8);
}

#[test]
fn killed_while_polling() {
    check("polling", 8);
}

#[test]
fn killed_between_the_vertex_and_edge_loads() {
    // The initial, incremental and re-transformed batches, and the first two identity batches.
    check("between-parts", 5);
}

#[test]
fn killed_before_the_watermark_moves() {
    check("before-watermark", 1);
}
