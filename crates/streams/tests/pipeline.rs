//! The consumer over a real pipeline's stream (a full load plus two incremental batches made by
//! datagen, the transform and the loader into neptune-local), into change files and a Redis
//! identity cache (a real redis-server):
//!
//! - a consumer killed at every step between reading, writing output and checkpointing, and at
//!   random moments with SIGKILL, then restarted, leaves change files and a cache identical to an
//!   uninterrupted run's;
//! - the cache answers an email, phone, cookie and device of one person with that person's user;
//! - an address update is in the change files as a REMOVE and an ADD.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use idgraph_core::{Dataset, Layout, SourceKind};
use idgraph_storage::Store;

const FIRST: &str = "20260110_000000";
const SECOND: &str = "20260111_000000";

/// The root with every batch loaded into neptune-local (data in `<root>/neptune`).
fn loaded_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = dir.path();
    let generate = |batch: Option<&str>| {
        datagen::generate(&datagen::Config {
            root: root.to_path_buf(),
            records: 150,
            incremental: batch.is_some(),
            batch: batch.map(|b| b.parse().unwrap_or_else(|e| panic!("{e}"))),
            ..datagen::Config::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
    };
    let settings = loader::Settings {
        root: Some(root.display().to_string()),
        neptune_data_dir: Some(root.join("neptune")),
        ..loader::Settings::default()
    };
    let plan = loader::Plan::resolve(settings).unwrap_or_else(|e| panic!("{e}"));
    let store = Store::default();
    let neptune = loader::Neptune::connect(&plan).unwrap_or_else(|e| panic!("{e}"));
    let stop = AtomicBool::new(false);
    let lock = loader::lock_run(&plan, &store).unwrap_or_else(|e| panic!("{e}"));
    let runner = loader::Runner {
        plan: &plan,
        store: &store,
        neptune: &neptune,
        progress: false,
        stop: &stop,
        lock: &lock,
    };
    generate(None);
    runner.full().unwrap_or_else(|e| panic!("{e}"));
    for batch in [FIRST, SECOND] {
        generate(Some(batch));
        runner.incremental().unwrap_or_else(|e| panic!("{e}"));
    }
    drop(neptune);
    dir
}

fn neptune(root: &Path) -> neptune_local::Server {
    neptune_local::Server::start(neptune_local::Config {
        // It loads the root's graph batches.
        local_source_dirs: vec![root.to_path_buf()],
        ..neptune_local::Config::new(
            root.join("neptune"),
            "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
        )
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs the consumer binary: `Ok` when it finished, `Err(code)` when it exited otherwise.
fn consume(
    endpoint: &str,
    work: &Path,
    redis: &str,
    env: &[(&str, String)],
) -> Result<(), Option<i32>> {
    let out = Command::new(env!("CARGO_BIN_EXE_streams"))
        .args(["run", "--endpoint", endpoint, "--redis", redis, "--quiet"])
        .args(["--limit", "400", "--gzip"])
        .arg("--checkpoint-dir")
        .arg(work.join("checkpoints"))
        .arg("--files")
        .arg(work.join("changes"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    if out.status.success() {
        Ok(())
    } else {
        let code = out.status.code();
        if code != Some(86) {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        }
        Err(code)
    }
}

/// Every key of a Redis database with its set's members, sorted.
fn dump(url: &str) -> BTreeMap<String, Vec<String>> {
    let mut connection = redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .unwrap_or_else(|e| panic!("{e}"));
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut connection)
        .unwrap_or_else(|e| panic!("{e}"));
    keys.into_iter()
        .map(|k| {
            let mut members: Vec<String> = redis::cmd("SMEMBERS")
                .arg(&k)
                .query(&mut connection)
                .unwrap_or_else(|e| panic!("{e}"));
            members.sort();
            (k, members)
        })
        .collect()
}

/// (change files, cache) after a consumer run in `work` against Redis database `db`.
type Output = (BTreeMap<String, Vec<u8>>, BTreeMap<String, Vec<String>>);

fn output(work: &Path, url: &str) -> Output {
    (testkit::snapshot(&work.join("changes")), dump(url))
}

/// What differs between two outputs, for a failure message.
fn difference(got: &Output, want: &Output) -> String {
    let files: Vec<&String> = got
        .0
        .keys()
        .chain(want.0.keys())
        .filter(|k| got.0.get(*k) != want.0.get(*k))
        .collect();
    let keys: Vec<&String> = got
        .1
        .keys()
        .chain(want.1.keys())
        .filter(|k| got.1.get(*k) != want.1.get(*k))
        .take(5)
        .collect();
    format!("files differing: {files:?}; cache keys differing: {keys:?}")
}

fn user_id(user_name: &str) -> String {
    let mut id = String::new();
    transform::push_id(
        &mut id,
        transform::vertex_id("User", &user_name.to_lowercase()),
    );
    id
}

fn rows(root: &Path, dataset: Dataset) -> Vec<Vec<String>> {
    let kind = SourceKind::Initial;
    let path: PathBuf = root
        .join(Layout::source_dir(&kind, dataset))
        .join(Layout::source_file_name(&kind, dataset, false));
    testkit::csv_records(&path)
}

#[test]
fn killed_consumers_leave_what_an_uninterrupted_one_does_and_the_cache_answers() {
    let root = loaded_root();
    let server = neptune(root.path());
    let endpoint = server.endpoint();
    let redis = testkit::redis::Redis::start();
    let db = |n: u32| format!("{}/{n}", redis.url());

    // The uninterrupted run.
    let reference_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    consume(&endpoint, reference_dir.path(), &db(0), &[]).unwrap_or_else(|c| panic!("exit {c:?}"));
    let reference = output(reference_dir.path(), &db(0));
    assert!(
        reference.0.len() > 3,
        "too few change files to test batches"
    );
    assert!(!reference.1.is_empty());

    // Killed at every step, at the first and a later batch, then run again to the end.
    let mut scenario = 1;
    for point in [
        "after-read",
        "after-intent",
        "after-files",
        "after-redis",
        "after-checkpoint",
    ] {
        for batch in ["1", "3"] {
            let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let url = db(scenario);
            let env = [
                ("IDGRAPH_TEST_EXIT_AT", point.to_owned()),
                ("IDGRAPH_TEST_EXIT_BATCH", batch.to_owned()),
            ];
            assert_eq!(
                consume(&endpoint, work.path(), &url, &env),
                Err(Some(86)),
                "{point} at batch {batch} did not stop the consumer"
            );
            consume(&endpoint, work.path(), &url, &[])
                .unwrap_or_else(|c| panic!("restart after {point}: exit {c:?}"));
            let got = output(work.path(), &url);
            assert!(
                got == reference,
                "killed {point} at batch {batch}: the output differs from an uninterrupted run's: {}",
                difference(&got, &reference)
            );
            scenario += 1;
        }
    }

    // SIGKILL at moments spread over the run, restarting until a run completes.
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let url = db(scenario);
    let mut kills = 0;
    for delay_ms in [3u64, 11, 29, 47, 83, 131, 197, 263] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_streams"))
            .args(["run", "--endpoint", &endpoint, "--redis", &url, "--quiet"])
            .args(["--limit", "400", "--gzip"])
            .arg("--checkpoint-dir")
            .arg(work.path().join("checkpoints"))
            .arg("--files")
            .arg(work.path().join("changes"))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().ok().flatten().is_none() {
            let _ = child.kill();
            kills += 1;
        }
        let _ = child.wait();
    }
    consume(&endpoint, work.path(), &url, &[]).unwrap_or_else(|c| panic!("exit {c:?}"));
    assert!(
        kills > 0,
        "no run was killed: the delays are too long for this stream"
    );
    let got = output(work.path(), &url);
    assert!(
        got == reference,
        "after {kills} SIGKILLs the output differs from an uninterrupted run's: {}",
        difference(&got, &reference)
    );

    // The cache answers a person's email, phone, cookie and device with the person's user.
    let first_party = rows(root.path(), Dataset::FirstParty);
    let cookies = rows(root.path(), Dataset::Cookie);
    let clicks = rows(root.path(), Dataset::Clickstream);
    let person = first_party
        .iter()
        .find(|p| {
            cookies.iter().any(|c| c[3] == p[0])
                && clicks.iter().any(|c| c[7] == p[0] && !c[6].is_empty())
        })
        .unwrap_or_else(|| panic!("no person with a cookie and a device"));
    let cookie = &cookies
        .iter()
        .find(|c| c[3] == person[0])
        .unwrap_or_else(|| panic!("cookie"))[0];
    let device = &clicks
        .iter()
        .find(|c| c[7] == person[0] && !c[6].is_empty())
        .unwrap_or_else(|| panic!("device"))[6];
    let mapping = transform::Mapping::default_mapping().unwrap_or_else(|e| panic!("{e}"));
    let user = user_id(&person[0]);
    // As a person would type them: another case, spaces.
    let keys = [
        format!(" {} ", person[1].to_uppercase()),
        person[2].clone(),
        cookie.to_uppercase(),
        device.to_lowercase(),
    ];
    for key in &keys {
        let found = streams::lookup(
            &db(0),
            "idgraph",
            &streams::CacheRules::from_mapping(
                &transform::Mapping::default_mapping().unwrap_or_else(|e| panic!("{e}")),
            )
            .unwrap_or_else(|e| panic!("{e}")),
            &mapping,
            key,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            found.matches.iter().any(|m| m.users.contains(&user)),
            "{key}: {found:?} does not name user {user}"
        );
    }

    // An address update: the old street address removed, the new one added, in one commit.
    let changes: Vec<streams::Record> = reference
        .0
        .values()
        .flat_map(|bytes| {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
                .unwrap_or_else(|e| panic!("{e}"));
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}")))
                .collect::<Vec<_>>()
        })
        .collect();
    let update = changes.windows(2).find(|w| {
        w[0].op == "REMOVE"
            && w[1].op == "ADD"
            && w[0].data.key == "streetAddress"
            && w[1].data.key == "streetAddress"
            && w[0].data.id == w[1].data.id
            && w[0].event_id.commit_num == w[1].event_id.commit_num
    });
    let update = update.unwrap_or_else(|| panic!("no address update in the change files"));
    assert_ne!(update[0].data.value, update[1].data.value);
}
