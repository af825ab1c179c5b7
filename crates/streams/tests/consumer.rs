//! The consumer against neptune-local's stream: every iterator type, paging, gzip, caught up
//! (the future-position 404), expiry and a gap; checkpoint, lease and SigV4.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use idgraph_storage::{Location, Store};
use neptune_local::{Config, Retention, Server, SigV4Credentials};
use streams::{CacheRules, Mode, Progress, Record, Start, StreamError, StreamPlan, StreamReport};
use testkit::write_file as write;

struct Quiet;
impl Progress for Quiet {
    fn batch(&self, _: &StreamReport) {}
}

fn server(data: &Path, retention: Retention) -> Server {
    Server::start(Config {
        streams: Some(retention),
        // The tests' load files are in temporary folders.
        local_source_dirs: vec![std::env::temp_dir()],
        ..Config::new(
            data.to_path_buf(),
            "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
        )
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn load(server: &Server, file: &Path, update: bool) {
    let status = server
        .load_and_wait(&file.display().to_string(), update)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, "LOAD_COMPLETED", "{}", file.display());
}

/// Three commits, ten changes (as in neptune-local's stream test).
fn three_commits(server: &Server, files: &Path) {
    let [v1, e1, v2] = testkit::stream_commit_files(files);
    load(server, &v1, false);
    load(server, &e1, false);
    load(server, &v2, true);
}

fn plan(endpoint: &str, dir: &Path, name: &str) -> StreamPlan {
    StreamPlan {
        endpoint: endpoint.to_owned(),
        iam_region: None,
        name: name.to_owned(),
        checkpoint_dir: Location::Local(dir.join("checkpoints")),
        start: Start::TrimHorizon,
        mode: Mode::Once,
        limit: 10_000,
        idle_min: Duration::from_millis(10),
        idle_max: Duration::from_millis(50),
        lease_ttl: Duration::from_secs(60),
        files: Some(Location::Local(dir.join(name))),
        gzip: false,
        redis: None,
        redis_prefix: "idgraph".into(),
        cache_rules: CacheRules::from_mapping(
            &transform::Mapping::default_mapping().unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}")),
        stdout: false,
        max_batches: None,
    }
}

/// The consumer binary reading `endpoint` as consumer `name`, its checkpoint and change files
/// under `work`.
fn consumer(endpoint: &str, work: &Path, name: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_streams"));
    command
        .args(["run", "--endpoint", endpoint, "--name", name, "--quiet"])
        .arg("--checkpoint-dir")
        .arg(work.join("checkpoints"))
        .arg("--files")
        .arg(work.join(name));
    command
}

fn run(plan: &StreamPlan) -> Result<StreamReport, StreamError> {
    streams::run(plan, &Store::default(), &AtomicBool::new(false), &Quiet)
}

/// Every change file under `dir`, by relative path, with its records.
fn change_files(dir: &Path) -> Vec<(String, Vec<Record>)> {
    let mut out = Vec::new();
    for (path, bytes) in testkit::snapshot(dir) {
        let text = if path.ends_with(".gz") {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            text
        } else {
            String::from_utf8(bytes).unwrap_or_else(|e| panic!("{path}: {e}"))
        };
        let records = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{path}: {e}")))
            .collect();
        out.push((path, records));
    }
    out
}

fn events(records: &[Record]) -> Vec<(u64, u64)> {
    records
        .iter()
        .map(|r| (r.event_id.commit_num, r.event_id.op_num))
        .collect()
}

#[test]
fn every_iterator_paging_gzip_caught_up_expiry_and_a_gap() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let work = dir.path();
    let local = server(&work.join("neptune"), Retention::default());
    three_commits(&local, work);
    let endpoint = local.endpoint();

    // TRIM_HORIZON, one request: every change, in one file per batch and hour.
    let whole = plan(&endpoint, work, "whole");
    let report = run(&whole).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.records, report.batches), (10, 1));
    assert!(report.caught_up);
    let all: Vec<Record> = change_files(&work.join("whole"))
        .into_iter()
        .flat_map(|(_, r)| r)
        .collect();
    assert_eq!(all.len(), 10);
    assert_eq!(events(&all)[0], (1, 1));
    assert_eq!(events(&all)[9], (3, 2));
    assert_eq!(
        (
            all[8].op.as_str(),
            all[9].op.as_str(),
            all[9].data.value.text()
        ),
        ("REMOVE", "ADD", "a.new@x.com".to_owned())
    );
    // Run again: caught up at once, nothing more.
    let again = run(&whole).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((again.records, again.caught_up), (0, true));

    // Paging with AFTER_SEQUENCE_NUMBER, three records a request: batches end at transaction
    // ends (a transaction of six records spans two requests), the same changes, gzip.
    let mut paged = plan(&endpoint, work, "paged");
    paged.limit = 3;
    paged.gzip = true;
    let report = run(&paged).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.records, report.batches), (10, 3));
    let files = change_files(&work.join("paged"));
    assert!(
        files
            .iter()
            .all(|(p, _)| p.ends_with(".ndjson.gz") && p.contains("/hour="))
    );
    let paged_records: Vec<Record> = files.into_iter().flat_map(|(_, r)| r).collect();
    assert_eq!(paged_records, all);

    // LATEST: the position of the newest change; then only what comes after it.
    let mut latest = plan(&endpoint, work, "latest");
    latest.start = Start::Latest;
    let report = run(&latest).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.records, 0);
    assert_eq!(
        report.position.map(|e| (e.commit_num, e.op_num)),
        Some((3, 2))
    );
    let v3 = write(work, "v3.csv", "~id,~label\nu3,User\n");
    load(&local, &v3, false);
    let report = run(&latest).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.records, 1);
    let after: Vec<Record> = change_files(&work.join("latest"))
        .into_iter()
        .flat_map(|(_, r)| r)
        .collect();
    assert_eq!(events(&after), [(4, 1)]);
    drop(local);

    // Expiry: a consumer stopped at commit 1 of a server that then trims commits 1 to 3.
    let trimmed_dir = work.join("trimmed-neptune");
    let trimmed = server(
        &trimmed_dir,
        Retention {
            days: 7,
            records: Some(1),
        },
    );
    let v1 = work.join("v1.csv");
    load(&trimmed, &v1, false);
    let mut behind = plan(&trimmed.endpoint(), work, "behind");
    behind.max_batches = Some(1);
    assert_eq!(run(&behind).map(|r| r.records).ok(), Some(6));
    load(&trimmed, &work.join("e1.csv"), false);
    load(&trimmed, &work.join("v2.csv"), true);
    match run(&behind) {
        Err(StreamError::Expired(message)) => assert!(message.contains("expired"), "{message}"),
        other => panic!("expected the expired error, got {other:?}"),
    }
    drop(trimmed);

    // A gap: commit 2 disappears from the stream (as a broken log would lose it).
    let gap_dir = work.join("gap-neptune");
    let gappy = server(&gap_dir, Retention::default());
    three_commits(&gappy, work);
    let mut first = plan(&gappy.endpoint(), work, "gap");
    first.max_batches = Some(1);
    first.limit = 6;
    assert_eq!(run(&first).map(|r| r.records).ok(), Some(6));
    let db = rusqlite::Connection::open(gap_dir.join(neptune_local::GRAPH_FILE))
        .unwrap_or_else(|e| panic!("{e}"));
    db.execute("DELETE FROM stream WHERE commit_num = 2", [])
        .unwrap_or_else(|e| panic!("{e}"));
    match run(&plan(&gappy.endpoint(), work, "gap")) {
        Err(StreamError::Gap { expected, got }) => {
            assert!(expected.contains("commit_num: 2"), "{expected}");
            assert!(got.contains("commit_num: 3"), "{got}");
        }
        other => panic!("expected a gap, got {other:?}"),
    }
}

#[test]
fn one_consumer_per_name_and_iam_signed_requests() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let work = dir.path();
    // A server that refuses requests not signed with this key, as IAM auth does.
    let local = Server::start(Config {
        sigv4: Some(SigV4Credentials {
            access_key_id: "AKIDSTREAMTEST".into(),
            secret_access_key: "stream-test-secret".into(),
        }),
        local_source_dirs: vec![std::env::temp_dir()],
        ..Config::new(
            work.join("neptune"),
            "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
        )
    })
    .unwrap_or_else(|e| panic!("{e}"));
    three_commits(&local, work);
    let unsigned = plan(&local.endpoint(), work, "signed");
    match run(&unsigned) {
        Err(StreamError::Refused { status: 403, .. }) => {}
        other => panic!("an unsigned request was not refused: {other:?}"),
    }
    // Signed with the credential chain (here the environment), in a child process so the
    // variables stay out of this one.
    let out = consumer(&local.endpoint(), work, "signed")
        .args(["--iam-region", "us-east-1", "--json"])
        .env("AWS_ACCESS_KEY_ID", "AKIDSTREAMTEST")
        .env("AWS_SECRET_ACCESS_KEY", "stream-test-secret")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report["records"], 10);

    // The lease: while one consumer of a name holds it, another of the same name is refused.
    let store = Store::default();
    let lease = idgraph_storage::Lock::acquire(
        &store,
        &Location::Local(work.join("checkpoints/held.lease")),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    match run(&plan(&local.endpoint(), work, "held")) {
        Err(StreamError::Leased { name, .. }) => assert_eq!(name, "held"),
        other => panic!("a second consumer of the name ran: {other:?}"),
    }
    lease.release().unwrap_or_else(|e| panic!("{e}"));
}

/// A batch killed after its files were written, then the stream grows before the restart: the
/// batch read again is longer, so its files have other names. The intent in the checkpoint
/// removes the first ones; the output is an uninterrupted run's.
#[test]
fn a_batch_interrupted_while_the_stream_grows_is_written_once() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let work = dir.path();
    let local = server(&work.join("neptune"), Retention::default());
    let v1 = write(
        work,
        "v1.csv",
        "~id,~label,email:String(single)\nu1,User,a@x.com\n",
    );
    let e1 = write(work, "e1.csv", "~id,~from,~to,~label\ne1,u1,u1,self\n");
    load(&local, &v1, false);
    let consume = |name: &str, exit: Option<&str>| {
        let mut command = consumer(&local.endpoint(), work, name);
        if let Some(point) = exit {
            command.env("IDGRAPH_TEST_EXIT_AT", point);
        }
        command
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
            .status
            .code()
    };
    assert_eq!(consume("grown", Some("after-files")), Some(86));
    let written = change_files(&work.join("grown"));
    assert_eq!(written.len(), 1);
    // What a kill in the middle of writing that file leaves: its temporary file beside it.
    let file = work.join("grown").join(&written[0].0);
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
    let leftover = file.with_file_name(format!(".{}.x1y2z3.tmp", name.unwrap_or_default()));
    std::fs::write(&leftover, "half a line").unwrap_or_else(|e| panic!("{e}"));
    load(&local, &e1, false);
    assert_eq!(consume("grown", None), Some(0));
    assert_eq!(consume("straight", None), Some(0));
    let grown = testkit::snapshot(&work.join("grown"));
    let straight = testkit::snapshot(&work.join("straight"));
    assert_eq!(
        grown.keys().collect::<Vec<_>>(),
        straight.keys().collect::<Vec<_>>()
    );
    assert_eq!(grown, straight);
}

/// A response stops after the record that crosses 10 MB, whatever the limit; the consumer
/// pages past it and cuts its batches at transaction ends.
#[test]
fn responses_stop_at_ten_megabytes_and_the_consumer_pages_past() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let work = dir.path();
    let local = server(&work.join("neptune"), Retention::default());
    let mut text = String::from("~id,~label,note:String(single),rank:Int(single)\n");
    for i in 0..30_000 {
        text.push_str(&format!("vertex-{i:06},Thing,{},{}\n", "n".repeat(150), i));
    }
    let file = write(work, "big.csv", &text);
    load(&local, &file, false);
    let url = format!(
        "{}/propertygraph/stream?iteratorType=TRIM_HORIZON&limit=100000",
        local.endpoint()
    );
    let bytes = reqwest::blocking::get(&url)
        .and_then(|r| r.bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let records = body["records"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    let sizes: Vec<usize> = records.iter().map(|r| r.to_string().len()).collect();
    // The records as the response writes them, with the commas between them.
    let total: usize = sizes.iter().sum::<usize>() + sizes.len() - 1;
    let cap = 10 * 1024 * 1024;
    assert!(records.len() < 90_000, "{} records: no cap", records.len());
    assert!(
        total >= cap && total - sizes[sizes.len() - 1] < cap,
        "{total} bytes"
    );
    assert_eq!(body["totalRecords"], records.len());

    let mut whole = plan(&local.endpoint(), work, "big");
    whole.limit = 100_000;
    let report = run(&whole).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.records, 90_000);
    assert!(report.batches >= 1);
}

/// `--daemon` follows until SIGTERM, then stops after a whole batch with its checkpoint saved;
/// `--json` reports records and lag.
#[test]
fn a_daemon_follows_new_changes_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let work = dir.path();
    let local = server(&work.join("neptune"), Retention::default());
    three_commits(&local, work);
    let child = consumer(&local.endpoint(), work, "changes")
        .args([
            "--daemon",
            "--json",
            "--idle-min-ms",
            "20",
            "--idle-max-ms",
            "100",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let checkpoint = work.join("checkpoints/changes.json");
    let position = || -> Option<u64> {
        let text = std::fs::read_to_string(&checkpoint).ok()?;
        let value: serde_json::Value = serde_json::from_str(&text).ok()?;
        value["position"]["commitNum"].as_u64()
    };
    let wait_for = |commit: u64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while position() != Some(commit) {
            assert!(
                std::time::Instant::now() < deadline,
                "the daemon never reached commit {commit}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for(3);
    // A change made while it waits is picked up.
    let v3 = write(work, "v3.csv", "~id,~label\nu3,User\n");
    load(&local, &v3, false);
    wait_for(4);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success());
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "the daemon did not stop cleanly: {:?}",
        out.status
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report["records"], 11);
    assert_eq!(report["mode"], "daemon");
    assert!(
        report["lag_ms"].as_i64().is_some_and(|l| l >= 0),
        "{report}"
    );
}

/// The checkpoint, the lease and the change files on S3 (an S3-compatible server on
/// 127.0.0.1): the same changes as on a local folder, every write encrypted, and a second run
/// resumes from the S3 checkpoint.
#[test]
fn checkpoint_lease_and_files_on_s3() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let work = dir.path();
    let local = server(&work.join("neptune"), Retention::default());
    three_commits(&local, work);
    let (s3_root, s3, store) = testkit::LocalS3::with_buckets(&["streams"]);
    let mut on_s3 = plan(&local.endpoint(), work, "s3");
    on_s3.checkpoint_dir = "s3://streams/checkpoints"
        .parse()
        .unwrap_or_else(|e| panic!("{e:?}"));
    on_s3.files = Some(
        "s3://streams/changes"
            .parse()
            .unwrap_or_else(|e| panic!("{e:?}")),
    );
    on_s3.limit = 4;
    on_s3.max_batches = Some(1);
    let stop = AtomicBool::new(false);
    let first = streams::run(&on_s3, &store, &stop, &Quiet).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.records, 8); // two whole transactions: the second ends in the second page
    on_s3.max_batches = None;
    let rest = streams::run(&on_s3, &store, &stop, &Quiet).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        rest.records, 2,
        "the second run did not resume from the S3 checkpoint"
    );
    let on_s3_records: Vec<Record> = change_files(&s3_root.path().join("streams/changes"))
        .into_iter()
        .flat_map(|(_, r)| r)
        .collect();
    run(&plan(&local.endpoint(), work, "folder")).unwrap_or_else(|e| panic!("{e}"));
    let local_records: Vec<Record> = change_files(&work.join("folder"))
        .into_iter()
        .flat_map(|(_, r)| r)
        .collect();
    assert_eq!(on_s3_records, local_records);
    assert!(s3_root.path().join("streams/checkpoints/s3.json").exists());
    let writes: Vec<_> = s3
        .requests()
        .into_iter()
        .filter(|r| r.writes_an_object())
        .collect();
    assert!(writes.len() >= 4, "{writes:?}");
    assert!(
        writes.iter().all(|r| r.encryption.is_some()),
        "an S3 write was not encrypted: {writes:?}"
    );
}

/// `run`'s settings from a TOML file (`--config`), a flag winning over the file, and a key the
/// file should not have refused by name.
#[test]
fn settings_come_from_a_toml_file_and_flags_win() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let work = dir.path();
    let local = server(&work.join("neptune"), Retention::default());
    three_commits(&local, work);
    let config = write(
        work,
        "streams.toml",
        &format!(
            "endpoint = \"{}\"\nname = \"from-file\"\nfiles = \"{}\"\ncheckpoint-dir = \"{}\"\nlimit = 3\ngzip = true\n",
            local.endpoint(),
            work.join("toml-changes").display(),
            work.join("checkpoints").display()
        ),
    );
    let run_with = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_streams"))
            .args(["run", "--json", "--config"])
            .arg(&config)
            .args(extra)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let out = run_with(&["--name", "from-flag"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (report["name"].as_str(), report["batches"].as_u64()),
        (Some("from-flag"), Some(3))
    );
    assert!(work.join("checkpoints/from-flag.json").exists());
    // The progress line: one per batch, with the position and the lag.
    let progress = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = progress
        .lines()
        .filter(|l| l.starts_with("streams from-flag:"))
        .collect();
    assert_eq!(lines.len(), 3, "{progress}");
    assert!(lines[2].contains("10 records, at 3/2, lag "), "{progress}");
    let files = change_files(&work.join("toml-changes"));
    assert!(!files.is_empty() && files.iter().all(|(p, _)| p.ends_with(".ndjson.gz")));

    std::fs::write(
        &config,
        "endpoint = \"http://127.0.0.1:1\"\nfile = \"typo\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = run_with(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("file"), "{stderr}");
}

/// The identity cache over TLS (`rediss://`, checked against the trusted roots), connection
/// errors that never print the password, intervals of 0 refused, and the cache's labels taken
/// from the mapping's `[cache]` table (a renamed label is refused until the table names it).
#[test]
fn the_cache_speaks_tls_hides_passwords_and_takes_its_labels_from_the_mapping() {
    let streams = |args: &[&str], ca: Option<&Path>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_streams"));
        command.args(args).env_remove("IDGRAPH_STREAM_REDIS");
        match ca {
            Some(ca) => command.env("SSL_CERT_FILE", ca),
            None => command.env("SSL_CERT_FILE", "/nonexistent/ca.pem"),
        };
        command.output().unwrap_or_else(|e| panic!("{e}"))
    };
    let redis = testkit::redis::Redis::start_tls();
    let url = redis.url();
    assert!(url.starts_with("rediss://"), "{url}");
    let trusted = streams(
        &["lookup", "jane@example.com", "--redis", &url],
        Some(&redis.ca_file()),
    );
    assert!(
        trusted.status.success()
            && String::from_utf8_lossy(&trusted.stdout).contains("not in the identity cache"),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    // The server's certificate is checked: without its CA the connection is refused.
    let untrusted = streams(&["lookup", "jane@example.com", "--redis", &url], None);
    assert!(!untrusted.status.success());

    let secret = "PW-SECRET-4711";
    let refused = streams(
        &[
            "lookup",
            "x",
            "--redis",
            &format!("redis://:{secret}@127.0.0.1:1"),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("redis://127.0.0.1:1"),
        "{stderr}"
    );
    assert!(!stderr.contains(secret), "{stderr}");

    for flag in ["--idle-min-ms", "--idle-max-ms"] {
        let zero = streams(
            &[
                "run",
                "--endpoint",
                "http://127.0.0.1:1",
                "--stdout",
                flag,
                "0",
            ],
            None,
        );
        let stderr = String::from_utf8_lossy(&zero.stderr);
        assert!(
            !zero.status.success() && stderr.contains(&format!("{flag} must be at least 1")),
            "{stderr}"
        );
    }

    let renamed = transform::DEFAULT_MAPPING_TOML
        .replace("label = \"hasEmail\"", "label = \"emailOf\"")
        .replace("strong = [\"hasEmail\",", "strong = [\"emailOf\",");
    let refused = transform::Mapping::from_toml(&renamed, "renamed.toml")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        refused.contains("[cache]") && refused.contains("hasEmail"),
        "{refused}"
    );
    let named = renamed.replace("direct = [\"hasEmail\",", "direct = [\"emailOf\",");
    let mapping =
        transform::Mapping::from_toml(&named, "named.toml").unwrap_or_else(|e| panic!("{e}"));
    let rules = CacheRules::from_mapping(&mapping).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rules.direct[0], "emailOf");
    let bare = named.split("[cache]").next().unwrap_or_default();
    let without =
        transform::Mapping::from_toml(bare, "bare.toml").unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        CacheRules::from_mapping(&without),
        Err(StreamError::Redis(_))
    ));
}
