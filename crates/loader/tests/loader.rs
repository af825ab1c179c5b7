//! The loader end to end, offline: datagen's data, transformed and loaded into neptune-local
//! (started by the loader itself, the local default), through the real `aws-sdk-neptunedata`
//! client, and through a local S3-compatible server for the staged runs.
//!
//! Themes: full then incremental runs and what the graph holds afterwards; failures (a failed
//! load, 5xx answers, a killed process, two runs at once); S3 staging.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::AtomicBool;

use idgraph_storage::{Location, Store};
use loader::{Neptune, Plan, RunError, Runner, Settings, State};
use sha2::Digest;

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

fn generate(root: &Path, records: u64) {
    datagen::generate(&datagen::Config {
        root: root.to_path_buf(),
        records,
        ..datagen::Config::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

fn increment(root: &Path, records: u64, timestamp: &str) {
    datagen::generate(&datagen::Config {
        root: root.to_path_buf(),
        records,
        incremental: true,
        batch: Some(timestamp.parse().unwrap_or_else(|e| panic!("{e}"))),
        ..datagen::Config::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

fn plan(root: &Path) -> Plan {
    Plan::resolve(Settings {
        root: Some(root.display().to_string()),
        ..Settings::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// `loader --root ROOT --quiet ARGS...`.
fn loader_cmd(root: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_loader"));
    command.arg("--root").arg(root).arg("--quiet").args(args);
    command
}

fn run_ok(mut command: Command) -> Output {
    let out = command.output().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command that must succeed and prints JSON; that JSON.
fn run_json(command: Command) -> serde_json::Value {
    serde_json::from_slice(&run_ok(command).stdout).unwrap_or_else(|e| panic!("{e}"))
}

fn graph_stats(root: &Path) -> neptune_local::Stats {
    neptune_local::GraphStore::open(&root.join("neptune-local").join(neptune_local::GRAPH_FILE))
        .and_then(|g| g.stats())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The default mapping without the inCountry edge (nor its identity rule).
fn mapping_without_country_edges() -> String {
    transform::DEFAULT_MAPPING_TOML
        .replace(
            "[[edge]]\nlabel = \"inCountry\"\ndataset = \"first_party\"\nfrom = { vertex = \"City\", column = \"city\" }\nto = { vertex = \"Country\", column = \"country\" }\n",
            "",
        )
        .replace(", \"inCountry\",", ",")
}

/// Distinct ids per label over every graph batch's files of one kind (`vertices` or `edges`),
/// identity resolution's `Person` vertices included: what the graph must hold after loading
/// them all. (Its `personId` files set a property on vertices counted already.)
fn distinct_ids(root: &Path, kind: &str) -> BTreeMap<String, u64> {
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![
        root.join("datasets/graph"),
        root.join("datasets/identity/graph"),
    ];
    stack.retain(|d| d.is_dir());
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{e}")) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            if path.is_dir() {
                stack.push(path);
            } else if path.parent().and_then(|p| p.file_name()) == Some(kind.as_ref())
                && path.extension() == Some("csv".as_ref())
            {
                let label = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.rsplit_once('-'))
                    .map(|(l, _)| l.to_owned())
                    .unwrap_or_default();
                if label == "personId" {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
                let set = ids.entry(label).or_default();
                for line in text.lines().skip(1) {
                    set.insert(line.split(',').next().unwrap_or_default().to_owned());
                }
            }
        }
    }
    ids.into_iter().map(|(k, v)| (k, v.len() as u64)).collect()
}

/// Generates `records`, transforms them, and appends `line` to the initial User vertex file, as
/// a hand edit would.
fn transformed_with_user_line(root: &Path, records: u64, line: &str) {
    generate(root, records);
    transform::run(
        &transform::Options::new(
            Location::Local(root.to_path_buf()),
            Location::Local(root.to_path_buf()),
        )
        .unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let file = root.join("datasets/graph/initial/vertices/User-00000.csv");
    let mut text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    text.push_str(line);
    std::fs::write(&file, &text).unwrap_or_else(|e| panic!("{e}"));
    // The manifest describes the edited file, as a transform that wrote the line would have
    // (the loader refuses a file whose checksum is not the manifest's).
    let manifest_path = root.join("datasets/graph/initial/manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
    for entry in manifest["files"]
        .as_array_mut()
        .unwrap_or_else(|| panic!("no files"))
    {
        if entry["path"] == "vertices/User-00000.csv" {
            entry["bytes"] = text.len().into();
            entry["sha256"] = format!("{:x}", sha2::Sha256::digest(text.as_bytes())).into();
        }
    }
    std::fs::write(
        &manifest_path,
        serde_json::to_vec_pretty(&manifest).unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

fn csv_rows(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{e}"));
    let headers = reader.headers().unwrap_or_else(|e| panic!("{e}")).clone();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap_or_else(|e| panic!("{e}"));
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

mod runs {
    use super::*;

    #[test]
    fn full_then_two_incremental_batches_give_the_graph_of_every_batch() {
        let dir = tempdir();
        let root = dir.path();
        generate(root, 2_000);
        let out = run_ok(loader_cmd(root, &["--json", "full"]));
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            report["batches"][0]["loads"][0]["status"]["status"],
            "LOAD_COMPLETED"
        );
        // After the full run the graph holds exactly the manifest's counts per label.
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(root.join("datasets/graph/initial/manifest.json"))
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let stats = graph_stats(root);
        let counts = |kind: &str| -> BTreeMap<String, u64> {
            manifest[kind]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut vertices = counts("vertices");
        // And resolution's people.
        vertices.insert(
            "Person".into(),
            report["batches"][0]["identity"]["load"]["vertices"]["Person"]
                .as_u64()
                .unwrap_or_else(|| panic!("no identity load: {report}")),
        );
        assert_eq!(stats.vertex_labels, vertices);
        assert_eq!(stats.edge_labels, counts("edges"));

        increment(root, 300, "20260102_000000");
        increment(root, 300, "20260103_000000");
        let out = run_ok(loader_cmd(root, &["--json", "incremental"]));
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
        let batches: Vec<&str> = report["batches"]
            .as_array()
            .map(|b| b.iter().filter_map(|b| b["batch"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(batches, ["20260102_000000", "20260103_000000"]);
        assert_eq!(report["watermark"], "20260103_000000");
        let stats = graph_stats(root);
        assert_eq!(stats.vertex_labels, distinct_ids(root, "vertices"));
        assert_eq!(stats.edge_labels, distinct_ids(root, "edges"));

        // A re-run does nothing: nothing newer than the watermark, and full is already loaded.
        let again = run_json(loader_cmd(root, &["--json", "incremental"]));
        assert_eq!(again["batches"].as_array().map(Vec::len), Some(0));
        let full = run_json(loader_cmd(root, &["--json", "full"]));
        assert_eq!(full["batches"][0]["already_loaded"], true);
        assert_eq!(graph_stats(root), stats);
    }

    #[test]
    fn a_persons_identifiers_sessions_and_cookies_reach_the_same_user() {
        let dir = tempdir();
        let root = dir.path();
        generate(root, 1_000);
        run_ok(loader_cmd(root, &["full"]));
        let cookies = csv_rows(&root.join("datasets/sources/initial/cookie/cookie_data_full.csv"));
        let people =
            csv_rows(&root.join("datasets/sources/initial/first_party/first_party_data_full.csv"));
        let cookie = cookies
            .iter()
            .find(|c| !c["user_name"].is_empty())
            .unwrap_or_else(|| panic!("no logged-in cookie"));
        let person = people
            .iter()
            .find(|p| p["user_name"] == cookie["user_name"])
            .unwrap_or_else(|| panic!("the cookie's user is not in first_party"));
        let graph = neptune_local::GraphStore::open(
            &root.join("neptune-local").join(neptune_local::GRAPH_FILE),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let user = graph
            .show(&cookie["user_name"].trim().to_lowercase(), 1_000)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .find(|v| v.labels == ["User"])
            .unwrap_or_else(|| panic!("no User vertex for {}", cookie["user_name"]));
        let neighbour = |label: &str| -> Vec<&neptune_local::Neighbour> {
            user.neighbours
                .iter()
                .filter(|n| n.vertex_labels == [label])
                .collect()
        };
        let value = |n: &neptune_local::Neighbour, name: &str| -> String {
            n.vertex_properties
                .iter()
                .find(|p| p.name == name)
                .map(|p| p.value.clone())
                .unwrap_or_default()
        };
        assert_eq!(
            value(neighbour("Email")[0], "email"),
            person["email"].trim().to_lowercase()
        );
        let digits: String = person["phone_number"]
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        // The phone vertex holds the national number: the raw digits less prefix and extension.
        let phone = value(neighbour("PhoneNumber")[0], "phoneNumber");
        assert!(
            phone.len() >= 10 && digits.contains(&phone),
            "{phone} in {digits}"
        );
        assert_eq!(
            value(neighbour("CustomerID")[0], "customerId"),
            person["external_id"].trim()
        );
        let session = neighbour("SessionID")
            .into_iter()
            .find(|n| value(n, "sessionId") == cookie["session_id"].trim())
            .unwrap_or_else(|| panic!("the cookie's session is not linked to the user"));
        assert_eq!(session.edge_label, "loggedAs");
        let session_view = graph
            .show(&session.vertex_id, 100)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(session_view[0].neighbours.iter().any(|n| {
            n.vertex_labels == ["Cookie"]
                && n.vertex_properties
                    .iter()
                    .any(|p| p.value == cookie["cookie_id"].trim())
        }));
    }
}

mod failures {
    use super::*;

    #[test]
    fn a_failed_load_shows_its_errors_fails_the_run_and_a_rerun_completes_it() {
        let dir = tempdir();
        let root = dir.path();
        generate(root, 300);
        let plan = plan(root);
        let store = Store::default();
        let stop = AtomicBool::new(false);
        let neptune = Neptune::connect(&plan).unwrap_or_else(|e| panic!("{e}"));
        let local = neptune
            .local()
            .unwrap_or_else(|| panic!("the local default"));
        local
            .faults()
            .fail_next_load("LOAD_FAILED")
            .unwrap_or_else(|e| panic!("{e}"));
        let lock = loader::lock_run(&plan, &store).unwrap_or_else(|e| panic!("{e}"));
        let runner = Runner {
            plan: &plan,
            store: &store,
            neptune: &neptune,
            progress: false,
            stop: &stop,
            lock: &lock,
        };
        let failed = runner.full();
        let Err(RunError::LoadFailed(failure)) = failed else {
            panic!("expected a failed load, got {failed:?}");
        };
        let (status, errors, part) = (failure.status, failure.errors, failure.part);
        assert_eq!(
            (part.as_str(), status.as_str()),
            ("vertices", "LOAD_FAILED")
        );
        assert!(errors[0].message.contains("Injected fault"), "{errors:?}");
        let state =
            State::load(&store, &plan.root, &plan.target_key()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(state.batches["initial"].stage, "failed");

        // 5xx answers beyond the client's retries are reported, not mistaken for a result.
        local.faults().fail_next_requests(20);
        let exhausted = runner.full();
        let message = format!("{:?}", exhausted.err());
        assert!(
            message.contains("InternalFailure") || message.contains("500"),
            "{message}"
        );
        local.faults().clear();

        // Neptune 5xx answers to status reads are retried, then the run completes.
        local.faults().fail_next_requests(3);
        let report = runner.full().unwrap_or_else(|e| panic!("{e}"));
        let loads = &report.batches[0].loads;
        // The failed attempt stays on record; the last load of each part completed.
        for part in ["vertices", "edges"] {
            let last = loads.iter().rev().find(|l| l.part == part);
            assert_eq!(
                last.and_then(|l| l.status.as_ref())
                    .map(|s| s.status.as_str()),
                Some("LOAD_COMPLETED"),
                "{loads:?}"
            );
        }
        assert_eq!(loads.len(), 4, "{loads:?}");
        let manifest_vertices: u64 = report.batches[0].vertices.values().sum();
        // And resolution's people.
        let people = report.batches[0]
            .identity
            .as_ref()
            .and_then(|i| i.load.vertices.get("Person").copied())
            .unwrap_or_else(|| panic!("no identity load"));
        assert_eq!(
            report.graph.map(|g| g.vertices),
            Some(manifest_vertices + people)
        );
    }

    #[test]
    fn max_error_rate_decides_whether_errors_fail_the_run_and_the_commands_show_them() {
        let dir = tempdir();
        let root = dir.path();
        transformed_with_user_line(root, 200, "broken,1,2,3,4,5,6,7,8,9,10,11,12\n");
        // Settings from a file: the root, and loads that go on past errors.
        let config = root.join("loader.toml");
        std::fs::write(
            &config,
            format!(
                "root = {:?}\nfail_on_error = false\n",
                root.display().to_string()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let loader = |args: &[&str]| -> Output {
            Command::new(env!("CARGO_BIN_EXE_loader"))
                .arg("--config")
                .arg(&config)
                .args(["--quiet"])
                .args(args)
                .output()
                .unwrap_or_else(|e| panic!("{e}"))
        };
        // One error in over a thousand records: above the default rate of 0, on every run.
        for _ in 0..2 {
            let strict = loader(&["full"]);
            let stderr = String::from_utf8_lossy(&strict.stderr);
            assert!(!strict.status.success());
            assert!(
                stderr.contains("more errors than --max-error-rate 0 allows"),
                "{stderr}"
            );
            assert!(
                stderr.contains("User-00000.csv:") && stderr.contains("PARSING_ERROR"),
                "{stderr}"
            );
        }
        // The loader's own commands find the load and its error.
        let listed = loader(&["--json", "list", "--limit", "10"]);
        let ids: Vec<String> =
            serde_json::from_slice(&listed.stdout).unwrap_or_else(|e| panic!("{e}"));
        let state = State::load(
            &Store::default(),
            &Location::Local(root.to_path_buf()),
            &plan(root).target_key(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let vertices = state.batches["initial"].loads[0]
            .load_id
            .clone()
            .unwrap_or_default();
        assert!(ids.contains(&vertices), "{ids:?}");
        let status = loader(&["--json", "status", &vertices]);
        let status: serde_json::Value =
            serde_json::from_slice(&status.stdout).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status["status"], "LOAD_COMPLETED");
        assert_eq!(status["parsing_errors"], 1);
        let errors = loader(&["--json", "errors", &vertices]);
        let errors: serde_json::Value =
            serde_json::from_slice(&errors.stdout).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(errors[0]["code"], "PARSING_ERROR");
        assert!(
            errors[0]["file"]
                .as_str()
                .is_some_and(|f| f.ends_with("User-00000.csv"))
        );
        let cancel = loader(&["cancel", &vertices]);
        assert!(
            !cancel.status.success(),
            "a finished load cannot be cancelled"
        );
        assert!(String::from_utf8_lossy(&cancel.stderr).contains(&vertices));
        // A tolerated rate lets the same loads pass.
        let tolerant = loader(&["--max-error-rate", "0.01", "full"]);
        assert!(
            tolerant.status.success(),
            "{}",
            String::from_utf8_lossy(&tolerant.stderr)
        );
        // Resolution skips the row the loader rejected, and says so.
        let stdout = String::from_utf8_lossy(&tolerant.stdout);
        assert!(
            stdout.contains("skipped 1 rows that are not graph rows, such as")
                && stdout.contains("User-00000.csv:"),
            "{stdout}"
        );
    }

    #[test]
    fn a_load_past_its_deadline_is_cancelled_and_reported() {
        let dir = tempdir();
        let root = dir.path();
        generate(root, 100);
        let mut plan = plan(root);
        plan.load_timeout = std::time::Duration::from_secs(1);
        let store = Store::default();
        let stop = AtomicBool::new(false);
        let neptune = Neptune::connect(&plan).unwrap_or_else(|e| panic!("{e}"));
        let local = neptune
            .local()
            .unwrap_or_else(|| panic!("the local default"));
        local
            .faults()
            .set_load_delay(std::time::Duration::from_secs(60));
        let lock = loader::lock_run(&plan, &store).unwrap_or_else(|e| panic!("{e}"));
        let runner = Runner {
            plan: &plan,
            store: &store,
            neptune: &neptune,
            progress: false,
            stop: &stop,
            lock: &lock,
        };
        let late = runner.full();
        let message = format!("{:?}", late.err());
        assert!(
            message.contains("after 1 s") && message.contains("it was cancelled"),
            "{message}"
        );
        let state =
            State::load(&store, &plan.root, &plan.target_key()).unwrap_or_else(|e| panic!("{e}"));
        let id = state.batches["initial"].loads[0]
            .load_id
            .clone()
            .unwrap_or_default();
        let status = neptune.wait(&id, std::time::Duration::from_secs(30), |_| {});
        assert_eq!(
            status.map(|s| s.status).unwrap_or_default(),
            "LOAD_CANCELLED_BY_USER"
        );
    }

    #[test]
    fn a_bad_batch_exits_non_zero_with_file_line_and_code() {
        let dir = tempdir();
        let root = dir.path();
        transformed_with_user_line(root, 200, "broken,\"unclosed\n");
        let out = loader_cmd(root, &["full"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            stderr.contains("LOAD_FAILED")
                && stderr.contains("User-00000.csv:")
                && stderr.contains("PARSING_ERROR"),
            "{stderr}"
        );
    }

    #[test]
    fn error_logs_carry_no_values_unless_asked() {
        let dir = tempdir();
        let root = dir.path();
        transformed_with_user_line(
            root,
            100,
            "u-secret,User,secret.user,1 Secret Street,2001-01-01,notanumber42\n",
        );
        let out = loader_cmd(root, &["full"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("User-00000.csv:"), "{stderr}");
        for value in ["notanumber42", "Secret Street", "secret.user"] {
            assert!(!stderr.contains(value), "{value} in {stderr}");
        }
        let asked = loader_cmd(root, &["--show-values", "full"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&asked.stderr);
        assert!(stderr.contains("notanumber42"), "{stderr}");
    }

    /// A marked value through every path that could quote it: the transform's reject message
    /// (transform and loader), a failed load's error log (the loader's output, and what the
    /// endpoint keeps in its load history). Nothing prints or keeps it without --show-values;
    /// with it, the messages quote it.
    #[test]
    fn a_marked_value_reaches_no_message_or_log_unless_asked() {
        const MARK: &str = "MARKED-VALUE-7f3a";
        let dir = tempdir();
        let root = dir.path();
        generate(root, 200);
        // Ten profiles whose loyalty points are the mark: more rejects than 1% of the rows.
        let first_party =
            root.join("datasets/sources/initial/first_party/first_party_data_full.csv");
        let text = std::fs::read_to_string(&first_party).unwrap_or_else(|e| panic!("{e}"));
        let row = text.lines().nth(1).unwrap_or_default().to_owned();
        let header = text.lines().next().unwrap_or_default().to_owned();
        let points = header
            .split(',')
            .position(|c| c == "loyalty_points")
            .unwrap_or_else(|| panic!("no loyalty_points in {header}"));
        let mut marked: Vec<String> = row.split(',').map(str::to_owned).collect();
        marked[points] = MARK.to_owned();
        let mut edited = text.clone();
        for _ in 0..10 {
            edited.push_str(&marked.join(","));
            edited.push('\n');
        }
        std::fs::write(&first_party, &edited).unwrap_or_else(|e| panic!("{e}"));
        let transform_bin = Path::new(env!("CARGO_BIN_EXE_loader")).with_file_name("transform");
        let transform = |extra: &[&str]| {
            Command::new(&transform_bin)
                .arg("--input")
                .arg(root)
                .arg("--quiet")
                .args(extra)
                .output()
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let everything = |out: &Output| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        };
        for out in [
            transform(&[]),
            loader_cmd(root, &["full"])
                .output()
                .unwrap_or_else(|e| panic!("{e}")),
        ] {
            let text = everything(&out);
            assert!(!out.status.success(), "{text}");
            assert!(
                text.contains("first_party_data_full.csv:")
                    && text.contains("column loyalty_points"),
                "{text}"
            );
            assert!(!text.contains(MARK), "{text}");
        }
        for out in [
            transform(&["--show-values"]),
            loader_cmd(root, &["--show-values", "full"])
                .output()
                .unwrap_or_else(|e| panic!("{e}")),
        ] {
            assert!(everything(&out).contains(MARK), "{}", everything(&out));
        }
        // A load that fails on a marked value: neither the loader's output, its `errors`
        // command, nor the endpoint's load history (its error log) holds the value.
        let other = tempdir();
        let root = other.path();
        transformed_with_user_line(
            root,
            200,
            &format!("u-mark,User,mark.user,1 Street,2001-01-01,{MARK}\n"),
        );
        let failed = loader_cmd(root, &["--json", "full"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!failed.status.success());
        assert!(
            !everything(&failed).contains(MARK),
            "{}",
            everything(&failed)
        );
        let history =
            std::fs::read(root.join("neptune-local/loads.db")).unwrap_or_else(|e| panic!("{e}"));
        let history = String::from_utf8_lossy(&history);
        assert!(history.contains("DATATYPE_MISMATCH") || history.contains("PARSING_ERROR"));
        assert!(
            !history.contains(MARK),
            "the endpoint's error log keeps the value"
        );
        let asked = loader_cmd(root, &["--show-values", "full"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(everything(&asked).contains(MARK), "{}", everything(&asked));
    }

    #[test]
    fn a_run_killed_during_a_load_resumes_to_the_same_graph() {
        let killed = tempdir();
        let whole = tempdir();
        for root in [killed.path(), whole.path()] {
            generate(root, 4_000);
        }
        run_ok(loader_cmd(whole.path(), &["full"]));
        // Kill the first run as soon as its vertex load has started.
        let mut child = Command::new(env!("CARGO_BIN_EXE_loader"))
            .arg("--root")
            .arg(killed.path())
            .arg("full")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = child.stderr.take().unwrap_or_else(|| panic!("stderr"));
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
        let started =
            lines.any(|l| l.is_ok_and(|l| l.contains("vertices load") && l.contains("started")));
        assert!(started);
        let _ = child.kill();
        let _ = child.wait();
        let store = Store::default();
        let root = Location::Local(killed.path().to_path_buf());
        let key = plan(killed.path()).target_key();
        let before = State::load(&store, &root, &key).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(before.batches["initial"].stage, "loading");

        let out = run_ok(loader_cmd(killed.path(), &["--json", "full"]));
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(graph_stats(killed.path()), graph_stats(whole.path()));
        // The endpoint died with the run, so its load ended LOAD_UNEXPECTED_ERROR: the restart
        // resumed it (AUTO) with one more load per part at most, and recorded the batch loaded.
        // (Exactly-once against an endpoint that outlives the run: tests/fault_points.rs.)
        let after = State::load(&store, &root, &key).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(after.batches["initial"].stage, "loaded");
        for part in ["vertices", "edges"] {
            let loads = after.batches["initial"]
                .loads
                .iter()
                .filter(|l| l.part == part)
                .count();
            assert!((1..=2).contains(&loads), "{part}: {loads} loads");
        }
        assert!(
            report["batches"][0]["loads"]
                .as_array()
                .is_some_and(|l| l.len() >= 2)
        );
    }

    #[test]
    fn a_root_loaded_into_one_graph_is_loaded_again_into_another() {
        let dir = tempdir();
        let root = dir.path();
        generate(root, 200);
        run_ok(loader_cmd(root, &["full"]));
        let other = root.join("other-graph");
        let other_arg = other.display().to_string();
        let out = run_ok(loader_cmd(
            root,
            &["--json", "--neptune-data-dir", &other_arg, "full"],
        ));
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report["batches"][0]["already_loaded"], false);
        // The summary comes from the target the run loaded into.
        let stats = neptune_local::GraphStore::open(&other.join(neptune_local::GRAPH_FILE))
            .and_then(|g| g.stats())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stats, graph_stats(root));
        assert_eq!(report["graph"]["vertices"], stats.vertices);
        assert_eq!(report["graph"]["edges"], stats.edges);
        assert_eq!(
            report["graph"]["vertex_labels"],
            serde_json::json!(stats.vertex_labels.keys().collect::<Vec<_>>())
        );
        // Each target holds the batch; a second run into either loads nothing.
        let state = run_json(loader_cmd(root, &["state"]));
        let targets = state["targets"].as_object().cloned().unwrap_or_default();
        assert_eq!(targets.len(), 2, "{state}");
        for (_, target) in targets {
            assert_eq!(target["batches"]["initial"]["stage"], "loaded");
        }
        let again = run_json(loader_cmd(
            root,
            &["--json", "--neptune-data-dir", &other_arg, "full"],
        ));
        assert_eq!(again["batches"][0]["already_loaded"], true);
    }

    #[test]
    fn the_transform_settings_reach_every_command_and_another_mapping_is_refused() {
        let dir = tempdir();
        let root = dir.path();
        generate(root, 200);
        // A mapping without the inCountry edge, given through the environment.
        let text = transform::DEFAULT_MAPPING_TOML.replace(
            "[[edge]]\nlabel = \"inCountry\"",
            "[[edge_unused]]\nlabel = \"inCountry\"",
        );
        let edited: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        let text = mapping_without_country_edges();
        assert!(edited.contains_key("edge_unused") && !text.contains("inCountry"));
        let mapping = root.join("no-country-edges.toml");
        std::fs::write(&mapping, &text).unwrap_or_else(|e| panic!("{e}"));
        let sha = transform::Mapping::from_file(&mapping)
            .unwrap_or_else(|e| panic!("{e}"))
            .text_sha256;
        let mut full = loader_cmd(root, &["--max-file-mb", "1", "full"]);
        full.env("IDGRAPH_MAPPING", &mapping);
        run_ok(full);
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(root.join("datasets/graph/initial/manifest.json"))
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(manifest["mapping_sha256"], sha.as_str());
        assert!(manifest["edges"].get("inCountry").is_none(), "{manifest}");
        assert!(!graph_stats(root).edge_labels.contains_key("inCountry"));

        // The scheduler transforms with the same flags.
        increment(root, 50, "20260110_000000");
        let mapping_arg = mapping.display().to_string();
        run_ok(loader_cmd(
            root,
            &["--mapping", &mapping_arg, "schedule", "--once"],
        ));
        let batch: serde_json::Value = serde_json::from_slice(
            &std::fs::read(root.join("datasets/graph/incremental/20260110_000000/manifest.json"))
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(batch["mapping_sha256"], sha.as_str());

        // Without the mapping, the batch made with it is refused, naming both checksums.
        let refused = loader_cmd(root, &["full"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&refused.stderr);
        let default_sha = transform::Mapping::default_mapping()
            .unwrap_or_else(|e| panic!("{e}"))
            .text_sha256;
        assert!(!refused.status.success());
        assert!(
            stderr.contains(&sha) && stderr.contains(&default_sha) && stderr.contains("--force"),
            "{stderr}"
        );
        // With --force it is transformed again with the configured mapping, and loaded.
        let forced = run_json(loader_cmd(root, &["--json", "--force", "full"]));
        assert_eq!(forced["batches"][0]["transformed"], true);
        assert_eq!(forced["batches"][0]["already_loaded"], false);
        assert!(graph_stats(root).edge_labels.contains_key("inCountry"));
    }

    /// A batch made with other transform settings is not taken for this run's: refused, naming
    /// the setting and both values, or transformed again with --force.
    #[test]
    fn a_changed_transform_setting_is_refused_or_applied_with_force() {
        let dir = tempdir();
        let root = dir.path();
        generate(root, 100);
        run_ok(loader_cmd(root, &["full"]));
        for (args, named) in [
            (
                &["--gzip", "true", "full"][..],
                "--gzip false, not the configured true",
            ),
            (
                &["--max-file-mb", "5", "full"][..],
                "--max-file-mb 256, not the configured 5",
            ),
            (
                &["--max-reject-rate", "0.5", "full"][..],
                "--max-reject-rate 0.01, not the configured 0.5",
            ),
        ] {
            let out = loader_cmd(root, args)
                .output()
                .unwrap_or_else(|e| panic!("{e}"));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && stderr.contains(named) && stderr.contains("--force"),
                "{args:?}: {stderr}"
            );
        }
        let forced = run_json(loader_cmd(
            root,
            &["--json", "--gzip", "true", "--force", "full"],
        ));
        assert_eq!(forced["batches"][0]["transformed"], true);
        assert!(
            root.join("datasets/graph/initial/vertices/User-00000.csv.gz")
                .exists()
        );
        // Made with the settings given now: taken as it is.
        let again = run_json(loader_cmd(root, &["--json", "--gzip", "true", "full"]));
        assert_eq!(again["batches"][0]["transformed"], false);
    }

    /// A source batch marked in progress (its datagen run died mid-commit) is not loaded, and
    /// the watermark stops before it even when later batches are complete.
    #[test]
    fn an_incomplete_source_batch_waits_and_the_watermark_does_not_pass_it() {
        let dir = tempdir();
        let root = dir.path();
        generate(root, 100);
        run_ok(loader_cmd(root, &["full"]));
        increment(root, 30, "20260110_000000");
        increment(root, 30, "20260111_000000");
        // What a datagen run killed while committing the first of the two leaves.
        let kind = idgraph_core::SourceKind::Incremental(
            "20260110_000000".parse().unwrap_or_else(|e| panic!("{e}")),
        );
        let marker = root.join(idgraph_core::Layout::source_batch_in_progress(&kind));
        std::fs::write(&marker, "datagen is writing this batch\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let out = run_ok(loader_cmd(root, &["--json", "incremental"]));
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            report["batches"].as_array().map(Vec::len),
            Some(0),
            "{report}"
        );
        assert!(report["watermark"].is_null(), "{report}");
        assert!(
            !root
                .join("datasets/graph/incremental/20260110_000000")
                .exists()
        );
        // The batch completed: both are loaded, in order.
        std::fs::remove_file(&marker).unwrap_or_else(|e| panic!("{e}"));
        let out = run_ok(loader_cmd(root, &["--json", "incremental"]));
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report["watermark"], "20260111_000000", "{report}");
        assert_eq!(
            report["batches"].as_array().map(Vec::len),
            Some(2),
            "{report}"
        );
    }

    #[test]
    fn a_batch_whose_files_changed_after_its_load_is_loaded_again() {
        let dir = tempdir();
        let root = dir.path();
        generate(root, 200);
        // Loaded with a mapping that makes no inCountry edges...
        let mapping = root.join("no-country-edges.toml");
        std::fs::write(&mapping, mapping_without_country_edges()).unwrap_or_else(|e| panic!("{e}"));
        let mapping_arg = mapping.display().to_string();
        run_ok(loader_cmd(root, &["--mapping", &mapping_arg, "full"]));
        assert!(!graph_stats(root).edge_labels.contains_key("inCountry"));
        // ...then transformed again outside the loader, as a run killed right after its own
        // re-transform would leave it: same file names, other rows.
        transform::run(&transform::Options {
            force: true,
            ..transform::Options::new(
                Location::Local(root.to_path_buf()),
                Location::Local(root.to_path_buf()),
            )
            .unwrap_or_else(|e| panic!("{e}"))
        })
        .unwrap_or_else(|e| panic!("{e}"));
        // The dry run says what the run then does.
        let dry = run_json(loader_cmd(root, &["--json", "full", "--dry-run"]));
        assert_eq!(dry[0]["already_loaded"], false);
        let out = run_ok(loader_cmd(root, &["--json", "full"]));
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report["batches"][0]["already_loaded"], false);
        assert!(graph_stats(root).edge_labels.contains_key("inCountry"));
        assert_eq!(graph_stats(root).edge_labels, distinct_ids(root, "edges"));
    }

    #[test]
    fn two_runs_never_overlap() {
        let dir = tempdir();
        let root = dir.path();
        generate(root, 200);
        let store = Store::default();
        let location = Location::Local(root.to_path_buf());
        // A run holding the lock (an OS lock on the file): the second is refused, naming the
        // holder.
        let lock_path = root.join("datasets/loader/lock");
        std::fs::create_dir_all(root.join("datasets/loader")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&lock_path, r#"{"owner":"test","expires_at":1}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        let holder = std::fs::File::open(&lock_path).unwrap_or_else(|e| panic!("{e}"));
        holder.try_lock().unwrap_or_else(|e| panic!("{e}"));
        let out = loader_cmd(root, &["incremental"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("another run holds the lock") && stderr.contains("test"),
            "{stderr}"
        );
        // Its holder gone (the file stays, as a killed run leaves it): taken over.
        drop(holder);
        run_ok(loader_cmd(root, &["full"]));
        // Released at the end of the run.
        let after = std::fs::File::open(&lock_path).unwrap_or_else(|e| panic!("{e}"));
        assert!(after.try_lock().is_ok());
        drop(after);
        // Two incremental runs started together: one loads the batch, the other is refused or
        // finds nothing left to do; the batch is loaded once.
        increment(root, 100, "20260105_000000");
        let children: Vec<_> = (0..2)
            .map(|_| {
                loader_cmd(root, &["--json", "incremental"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        let outputs: Vec<Output> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let loaded: usize = outputs
            .iter()
            .filter(|o| o.status.success())
            .filter_map(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
            .map(|r| r["batches"].as_array().map(Vec::len).unwrap_or(0))
            .sum();
        assert_eq!(loaded, 1, "{outputs:?}");
        let state = State::load(&store, &location, &plan(root).target_key())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(state.batches["20260105_000000"].loads.len(), 2);
    }
}

mod schedule {
    use super::*;

    #[test]
    fn huge_intervals_and_sizes_are_errors_not_overflows() {
        let dir = tempdir();
        for args in [
            &["schedule", "--every", "18446744073709551615h"][..],
            &["--max-file-mb", "18446744073709551615", "full", "--dry-run"][..],
        ] {
            let out = loader_cmd(dir.path(), args)
                .output()
                .unwrap_or_else(|e| panic!("{e}"));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                matches!(out.status.code(), Some(1 | 2)) && !stderr.contains("panicked"),
                "{args:?}: {out:?}"
            );
            assert!(
                stderr.contains("interval") || stderr.contains("max_file_mb"),
                "{stderr}"
            );
        }
    }

    #[test]
    fn once_runs_incremental_and_every_stops_cleanly_on_sigterm() {
        let dir = tempdir();
        let root = dir.path();
        generate(root, 200);
        increment(root, 50, "20260102_000000");
        let out = run_ok(loader_cmd(root, &["--json", "schedule", "--once"]));
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report["watermark"], "20260102_000000");

        let child = Command::new(env!("CARGO_BIN_EXE_loader"))
            .arg("--root")
            .arg(root)
            .args(["--json", "schedule", "--every", "1s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        // Let it run at least once, then ask it to stop.
        std::thread::sleep(std::time::Duration::from_millis(2_500));
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(killed.success());
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("stopping after the batch in flight")
        );
        let lock = std::fs::File::open(root.join("datasets/loader/lock"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(lock.try_lock().is_ok(), "the lock is released");
    }
}

mod s3 {
    use super::*;

    #[test]
    fn a_staged_run_uploads_encrypted_checksummed_files_once_and_loads_from_s3() {
        let dir = tempdir();
        let root = dir.path();
        generate(root, 500);
        let s3_root = tempdir();
        std::fs::create_dir_all(s3_root.path().join("stage-bucket"))
            .unwrap_or_else(|e| panic!("{e}"));
        let server = testkit::LocalS3::start(s3_root.path());
        let run = |args: &[&str]| -> Output {
            let mut c = loader_cmd(root, &[]);
            server
                .aws_env(&mut c)
                .args(["--stage", "s3://stage-bucket/idgraph", "--json"])
                .args(args);
            run_ok(c)
        };
        let dry = run(&["full", "--dry-run"]);
        let dry: serde_json::Value =
            serde_json::from_slice(&dry.stdout).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dry[0]["transform"], true);
        assert!(
            !root.join("datasets/graph").exists(),
            "a dry run changes nothing"
        );

        let out = run(&["full"]);
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
        let batch = &report["batches"][0];
        assert_eq!(batch["uploaded_files"], batch["files"]);
        let source = batch["loads"][0]["source"].as_str().unwrap_or_default();
        assert_eq!(
            source,
            "s3://stage-bucket/idgraph/datasets/graph/initial/vertices/"
        );
        let staged = s3_root
            .path()
            .join("stage-bucket/idgraph/datasets/graph/initial/vertices/User-00000.csv");
        assert_eq!(
            std::fs::read(&staged).unwrap_or_else(|e| panic!("{e}")),
            std::fs::read(root.join("datasets/graph/initial/vertices/User-00000.csv"))
                .unwrap_or_else(|e| panic!("{e}"))
        );
        let stats = graph_stats(root);
        assert_eq!(stats.vertex_labels, distinct_ids(root, "vertices"));

        // An upload cut short (here: two objects missing, as if the process died before them)
        // is completed by the next run, which uploads only what is missing.
        for name in ["vertices/User-00000.csv", "edges/hasEmail-00000.csv"] {
            std::fs::remove_file(
                s3_root
                    .path()
                    .join("stage-bucket/idgraph/datasets/graph/initial")
                    .join(name),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
        let upload = run(&["upload"]);
        let upload: serde_json::Value =
            serde_json::from_slice(&upload.stdout).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(upload["uploaded_files"], 2);
        // `upload` alone finds every object in place.
        let upload = run(&["upload"]);
        let upload: serde_json::Value =
            serde_json::from_slice(&upload.stdout).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(upload["uploaded_files"], 0);
        assert_eq!(upload["files"], batch["files"]);

        // Forget the run state: a new run finds every object already uploaded with the same
        // SHA-256 and uploads nothing; the load (AUTO on the same prefix) loads nothing again.
        std::fs::remove_file(root.join("datasets/loader/state.json"))
            .unwrap_or_else(|e| panic!("{e}"));
        let again = run(&["full"]);
        let again: serde_json::Value =
            serde_json::from_slice(&again.stdout).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again["batches"][0]["uploaded_files"], 0);
        assert_eq!(
            again["batches"][0]["loads"][0]["status"]["total_records"],
            0
        );
        assert_eq!(graph_stats(root), stats);

        // Two incremental batches through the stage: the graph holds every batch's ids.
        increment(root, 100, "20260102_000000");
        increment(root, 100, "20260103_000000");
        let inc = run(&["incremental"]);
        let inc: serde_json::Value =
            serde_json::from_slice(&inc.stdout).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(inc["watermark"], "20260103_000000");
        assert_eq!(
            inc["batches"][1]["loads"][1]["source"],
            "s3://stage-bucket/idgraph/datasets/graph/incremental/20260103_000000/edges/"
        );
        let stats = graph_stats(root);
        assert_eq!(stats.vertex_labels, distinct_ids(root, "vertices"));
        assert_eq!(stats.edge_labels, distinct_ids(root, "edges"));

        // An S3 access error (a wrong secret) is reported, with a non-zero exit.
        increment(root, 50, "20260104_000000");
        let denied = server
            .aws_env(&mut loader_cmd(root, &[]))
            .args(["--stage", "s3://stage-bucket/idgraph", "incremental"])
            .env("AWS_SECRET_ACCESS_KEY", "wrong-secret")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&denied.stderr);
        assert!(!denied.status.success());
        assert!(
            stderr.contains("s3://stage-bucket/idgraph/datasets/graph/incremental/20260104_000000"),
            "{stderr}"
        );
        assert!(
            stderr.contains("SignatureDoesNotMatch")
                || stderr.contains("AccessDenied")
                || stderr.contains("403"),
            "{stderr}"
        );
    }

    #[test]
    fn a_file_changed_after_the_transform_is_not_uploaded() {
        let dir = tempdir();
        let root = dir.path();
        transformed_with_user_line(root, 100, "");
        let file = root.join("datasets/graph/initial/edges/hasEmail-00000.csv");
        let mut text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
        text = text.replacen('a', "b", 1);
        std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
        let s3_root = tempdir();
        std::fs::create_dir_all(s3_root.path().join("stage")).unwrap_or_else(|e| panic!("{e}"));
        let server = testkit::LocalS3::start(s3_root.path());
        let mut command = loader_cmd(root, &["--stage", "s3://stage/p", "full"]);
        server.aws_env(&mut command);
        let out = command.output().unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            stderr.contains("hasEmail-00000.csv") && stderr.contains("changed after the transform"),
            "{stderr}"
        );
        assert!(
            !s3_root
                .path()
                .join("stage/p/datasets/graph/initial/edges/hasEmail-00000.csv")
                .exists()
        );
    }

    /// The loader reads every file under a batch's prefixes: one the manifest does not list
    /// (an earlier generation's) or one changed since the transform is refused when the batch
    /// is loaded in place; in a stage of the loader's own a stale object is removed first.
    #[test]
    fn unlisted_or_changed_files_are_never_loaded() {
        let dir = tempdir();
        let root = dir.path();
        transformed_with_user_line(root, 100, "");
        let vertices = root.join("datasets/graph/initial/vertices");
        let stale = vertices.join("User-00009.csv");
        std::fs::write(&stale, "~id,~label\nstale-user,User\n").unwrap_or_else(|e| panic!("{e}"));
        let out = loader_cmd(root, &["full"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            stderr.contains("does not list") && stderr.contains("vertices/User-00009.csv"),
            "{stderr}"
        );
        assert_eq!(graph_stats(root).vertices, 0, "something was loaded");
        std::fs::remove_file(&stale).unwrap_or_else(|e| panic!("{e}"));
        // Changed in place, loaded in place: refused too.
        let email = root.join("datasets/graph/initial/edges/hasEmail-00000.csv");
        let original = std::fs::read(&email).unwrap_or_else(|e| panic!("{e}"));
        let mut changed = original.clone();
        changed.extend_from_slice(b"x");
        std::fs::write(&email, &changed).unwrap_or_else(|e| panic!("{e}"));
        let out = loader_cmd(root, &["full"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("changed after the transform"),
            "{stderr}"
        );
        assert_eq!(graph_stats(root).vertices, 0, "something was loaded");
        std::fs::write(&email, &original).unwrap_or_else(|e| panic!("{e}"));
        // A stage holding an object of another generation: removed, then the batch loads.
        let s3_root = tempdir();
        let stage_stale = s3_root
            .path()
            .join("stage/p/datasets/graph/initial/vertices/User-00009.csv");
        std::fs::create_dir_all(stage_stale.parent().unwrap_or(Path::new("/")))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&stage_stale, "~id,~label\nstale-user,User\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let server = testkit::LocalS3::start(s3_root.path());
        let mut command = loader_cmd(root, &["--stage", "s3://stage/p", "full"]);
        server.aws_env(&mut command);
        run_ok(command);
        assert!(!stage_stale.exists(), "the stale object is still staged");
        let graph = neptune_local::GraphStore::open(
            &root.join("neptune-local").join(neptune_local::GRAPH_FILE),
        )
        .and_then(|g| g.dump())
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!graph.vertices.contains_key("stale-user"));
        assert_eq!(
            graph_stats(root).vertex_labels,
            distinct_ids(root, "vertices")
        );
    }

    #[test]
    fn a_run_killed_as_its_upload_starts_resumes_to_the_same_graph() {
        let killed = tempdir();
        let whole = tempdir();
        for root in [killed.path(), whole.path()] {
            generate(root, 3_000);
        }
        run_ok(loader_cmd(whole.path(), &["full"]));
        let s3_root = tempdir();
        std::fs::create_dir_all(s3_root.path().join("stage")).unwrap_or_else(|e| panic!("{e}"));
        let server = testkit::LocalS3::start(s3_root.path());
        let mut command = Command::new(env!("CARGO_BIN_EXE_loader"));
        command
            .arg("--root")
            .arg(killed.path())
            .args(["--stage", "s3://stage/p", "full"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        server.aws_env(&mut command);
        let mut child = command.spawn().unwrap_or_else(|e| panic!("{e}"));
        let stderr = child.stderr.take().unwrap_or_else(|| panic!("stderr"));
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
        assert!(lines.any(|l| l.is_ok_and(|l| l.contains("uploading"))));
        let _ = child.kill();
        let _ = child.wait();
        // Usually no load has started yet; on a slow machine the vertex load may have.
        let staged = Plan::resolve(Settings {
            root: Some(killed.path().display().to_string()),
            stage: Some("s3://stage/p".into()),
            ..Settings::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let before = State::load(
            &Store::default(),
            &Location::Local(killed.path().to_path_buf()),
            &staged.target_key(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .batches
        .get("initial")
        .map(|b| b.loads.len())
        .unwrap_or(0);

        let mut again = loader_cmd(
            killed.path(),
            &["--stage", "s3://stage/p", "--json", "full"],
        );
        server.aws_env(&mut again);
        let out = run_ok(again);
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
        // No second load of the batch: the restart starts at most one vertex load and one edge
        // load besides any the killed run recorded (which it follows or resumes).
        let loads = report["batches"][0]["loads"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0);
        assert!(
            (2..=before + 2).contains(&loads),
            "{loads} loads, {before} before the kill"
        );
        assert_eq!(graph_stats(killed.path()), graph_stats(whole.path()));
    }

    #[test]
    fn two_runs_on_an_s3_root_never_both_load() {
        let s3_root = tempdir();
        std::fs::create_dir_all(s3_root.path().join("lake")).unwrap_or_else(|e| panic!("{e}"));
        let server = testkit::LocalS3::start(s3_root.path());
        // Seed the lake: generate locally, upload the sources tree.
        let seedling = tempdir();
        generate(seedling.path(), 200);
        increment(seedling.path(), 50, "20260102_000000");
        let s3 = Store::for_endpoint(&server.endpoint(), testkit::KEY, testkit::SECRET);
        let lake: Location = "s3://lake/env".parse().unwrap_or_else(|e| panic!("{e}"));
        for object in Store::default()
            .list(&Location::Local(seedling.path().to_path_buf()))
            .unwrap_or_else(|e| panic!("{e}"))
        {
            let bytes = std::fs::read(seedling.path().join(&object.relative))
                .unwrap_or_else(|e| panic!("{e}"));
            s3.write(&lake.join(&object.relative), bytes)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let local = tempdir();
        let children: Vec<_> = (0..2)
            .map(|_| {
                let mut c = Command::new(env!("CARGO_BIN_EXE_loader"));
                c.args([
                    "--root",
                    "s3://lake/env",
                    "--quiet",
                    "--json",
                    "--neptune-data-dir",
                ])
                .arg(local.path().join("neptune"))
                .arg("incremental")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
                server.aws_env(&mut c);
                c.spawn().unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        let outputs: Vec<Output> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let batches = |o: &Output| -> usize {
            serde_json::from_slice::<serde_json::Value>(&o.stdout)
                .ok()
                .and_then(|r| r["batches"].as_array().map(Vec::len))
                .unwrap_or(0)
        };
        let loaded: usize = outputs
            .iter()
            .filter(|o| o.status.success())
            .map(batches)
            .sum();
        // Never both. (The local S3 server checks and writes a conditional PUT apart, unlike
        // S3, so both runs may also step back; then the next run loads the batch.)
        assert!(loaded <= 1, "{outputs:?}");
        for refused in outputs.iter().filter(|o| !o.status.success()) {
            assert!(
                String::from_utf8_lossy(&refused.stderr).contains("another run"),
                "{refused:?}"
            );
        }
        let mut next = Command::new(env!("CARGO_BIN_EXE_loader"));
        next.args([
            "--root",
            "s3://lake/env",
            "--quiet",
            "--json",
            "--neptune-data-dir",
        ])
        .arg(local.path().join("neptune"))
        .arg("incremental");
        server.aws_env(&mut next);
        let next = run_ok(next);
        assert_eq!(
            loaded + batches(&next),
            1,
            "the batch is loaded exactly once"
        );
        // Every object the runs wrote (graph files, manifest, rejects, state, lock) asked for
        // SSE-S3, the default.
        let writes: Vec<testkit::Recorded> = server
            .requests()
            .into_iter()
            .filter(|r| r.writes_an_object())
            .collect();
        assert!(
            writes.iter().any(|w| w.target.contains("state.json"))
                && writes.iter().any(|w| w.target.contains("/loader/lock"))
                && writes.iter().any(|w| w.target.contains("manifest.json")),
            "{writes:?}"
        );
        for write in &writes {
            assert_eq!(write.encryption.as_deref(), Some("AES256"), "{write:?}");
        }
        // The state and the graph files live on S3, beside the sources.
        assert!(
            s3_root
                .path()
                .join("lake/env/datasets/loader/state.json")
                .is_file()
        );
        assert!(
            s3_root
                .path()
                .join("lake/env/datasets/graph/incremental/20260102_000000/manifest.json")
                .is_file()
        );
    }
}
