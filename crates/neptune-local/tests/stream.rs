//! neptune-local's change stream (issue 12): what loads record, read back through boto3's
//! `neptunedata` client unchanged (tests/stream_boto3.py) and plain HTTP.

use std::path::Path;
use std::process::Command;

use aws_sdk_neptunedata::Client;
use aws_sdk_neptunedata::config::{BehaviorVersion, Credentials, Region};
use neptune_local::{Config, Retention, Server};
use serde_json::{Value, json};

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

fn client(server: &Server) -> Client {
    Client::from_conf(
        aws_sdk_neptunedata::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("local", "local", None, None, "test"))
            .endpoint_url(server.endpoint())
            .build(),
    )
}

/// Loads one file and waits for LOAD_COMPLETED.
fn load(server: &Server, file: &Path, update_single: bool) {
    let status = server
        .load_and_wait(&file.display().to_string(), update_single)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, "LOAD_COMPLETED", "{}", file.display());
}

/// (commitNum, opNum, op, type, id, key, value, isLastOp) of a record.
type Record = (u64, u64, String, String, String, String, Value, bool);

fn records(response: &Value) -> Vec<Record> {
    response["records"]
        .as_array()
        .unwrap_or_else(|| panic!("no records in {response}"))
        .iter()
        .map(|r| {
            (
                r["eventId"]["commitNum"].as_u64().unwrap_or(0),
                r["eventId"]["opNum"].as_u64().unwrap_or(0),
                r["op"].as_str().unwrap_or_default().to_owned(),
                r["data"]["type"].as_str().unwrap_or_default().to_owned(),
                r["data"]["id"].as_str().unwrap_or_default().to_owned(),
                r["data"]["key"].as_str().unwrap_or_default().to_owned(),
                r["data"]["value"]["value"].clone(),
                r["isLastOp"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_are_streamed_as_neptune_presents_them_and_boto3_reads_them() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let files = dir.path();
    let [vertices, edges, update] = testkit::stream_commit_files(files);
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let local = server(data.path(), Retention::default());
    load(&local, &vertices, false);
    load(&local, &edges, false);
    load(&local, &update, true);

    // A second server whose retention keeps only the newest commit.
    let trimmed_data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let trimmed = server(
        trimmed_data.path(),
        Retention {
            days: 7,
            records: Some(1),
        },
    );
    load(&trimmed, &vertices, false);
    load(&trimmed, &edges, false);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stream_boto3.py");
    let out = Command::new(testkit::pyenv_program("python"))
        .arg(&script)
        .arg(local.endpoint())
        .arg(trimmed.endpoint())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));

    // Every change, in commit order: labels and properties of the new vertices, the edge and
    // its property, then the update as a REMOVE of the old value and an ADD of the new; the
    // unchanged row of the update records nothing.
    let s = |v: &str| v.to_owned();
    let all = records(&got["all"]);
    let expected = vec![
        (
            1,
            1,
            s("ADD"),
            s("vl"),
            s("u1"),
            s("label"),
            json!("User"),
            false,
        ),
        (
            1,
            2,
            s("ADD"),
            s("vp"),
            s("u1"),
            s("email"),
            json!("a@x.com"),
            false,
        ),
        (1, 3, s("ADD"), s("vp"), s("u1"), s("age"), json!(31), false),
        (
            1,
            4,
            s("ADD"),
            s("vl"),
            s("u2"),
            s("label"),
            json!("User"),
            false,
        ),
        (
            1,
            5,
            s("ADD"),
            s("vp"),
            s("u2"),
            s("email"),
            json!("b@x.com"),
            false,
        ),
        (1, 6, s("ADD"), s("vp"), s("u2"), s("age"), json!(42), true),
        (
            2,
            1,
            s("ADD"),
            s("e"),
            s("e1"),
            s("label"),
            json!("knows"),
            false,
        ),
        (
            2,
            2,
            s("ADD"),
            s("ep"),
            s("e1"),
            s("weight"),
            json!(0.5),
            true,
        ),
        (
            3,
            1,
            s("REMOVE"),
            s("vp"),
            s("u1"),
            s("email"),
            json!("a@x.com"),
            false,
        ),
        (
            3,
            2,
            s("ADD"),
            s("vp"),
            s("u1"),
            s("email"),
            json!("a.new@x.com"),
            true,
        ),
    ];
    assert_eq!(all, expected);
    let edge = &got["all"]["records"][6]["data"];
    assert_eq!((&edge["from"], &edge["to"]), (&json!("u1"), &json!("u2")));
    assert_eq!(
        got["all"]["lastEventId"],
        json!({"commitNum": 3, "opNum": 2})
    );
    assert_eq!(got["all"]["totalRecords"], json!(10));
    assert_eq!(got["all"]["format"], json!("PG_JSON"));
    // boto3 renames the timestamps (…InMillis); plain JSON has Neptune's names.
    let plain = &got["plain"]["body"];
    let trx = plain["lastTrxTimestamp"].as_u64().unwrap_or(0);
    assert!(trx > 1_600_000_000_000, "{plain}");
    assert_eq!(got["all"]["lastTrxTimestampInMillis"], json!(trx));
    assert_eq!(
        plain["records"][9]["commitTimestamp"],
        got["all"]["records"][9]["commitTimestampInMillis"]
    );

    // Paging two at a time with AFTER_SEQUENCE_NUMBER gives the same records, and the page
    // after the last is the "from the future" 404.
    let pages = got["pages"]
        .as_array()
        .unwrap_or_else(|| panic!("no pages"));
    let (last, pages) = pages.split_last().unwrap_or_else(|| panic!("no pages"));
    let paged: Vec<_> = pages.iter().flat_map(records).collect();
    assert_eq!(paged, expected);
    assert!(pages.iter().all(|p| p["totalRecords"].as_u64() <= Some(2)));
    assert_eq!(last["error"], json!("StreamRecordsNotFoundException"));
    assert_eq!(last["status"], json!(404));

    assert_eq!(records(&got["at_third"]), expected[2..5].to_vec());
    assert_eq!(records(&got["latest"]), expected[9..].to_vec());
    assert_eq!(
        got["future"]["error"],
        json!("StreamRecordsNotFoundException")
    );
    assert_eq!(
        got["future"]["message"],
        json!("Requested startEventId is from the future.")
    );

    // gzip when asked for, the same document; the /pg/stream alias answers the same.
    assert_eq!(got["gzip"]["encoding"], json!("gzip"));
    assert_eq!(got["plain"]["encoding"], Value::Null);
    assert_eq!(got["gzip"]["body"], got["plain"]["body"]);
    assert_eq!(got["alias"]["body"], got["plain"]["body"]);
    assert_eq!(records(&got["plain"]["body"]), expected);

    for bad in ["bad_limit", "bad_iterator", "no_commit"] {
        assert_eq!(got[bad]["status"], json!(400), "{bad}: {}", got[bad]);
        assert_eq!(
            got[bad]["body"]["code"],
            json!("InvalidParameterException"),
            "{bad}"
        );
    }

    // Retention trimmed the first commit: reading at it is ExpiredStreamException; the
    // horizon starts at what is left.
    assert_eq!(got["expired"]["error"], json!("ExpiredStreamException"));
    assert_eq!(got["expired"]["status"], json!(400));
    let horizon = records(&got["expired_horizon"]);
    assert_eq!(horizon.first().map(|r| (r.0, r.1)), Some((2, 1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_streams_says_so() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let local = Server::start(Config {
        streams: None,
        ..Config::new(
            data.path().to_path_buf(),
            "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
        )
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let out = client(&local)
        .get_propertygraph_stream()
        .iterator_type(aws_sdk_neptunedata::types::IteratorType::TrimHorizon)
        .send()
        .await;
    let error = out
        .err()
        .unwrap_or_else(|| panic!("streams answered while off"));
    let code = error
        .as_service_error()
        .and_then(aws_sdk_neptunedata::error::ProvideErrorMetadata::code)
        .map(str::to_owned);
    assert_eq!(code.as_deref(), Some("UnsupportedOperationException"));
}

/// Retention by record count trims whole commits, and only those whose every change is
/// beyond the newest N: commits of 6, 2 and 2 changes keep all three for N = 5 and drop the
/// first for N = 4.
#[test]
fn retention_by_records_trims_whole_commits() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let files = dir.path();
    let [v1, e1, v2] = testkit::stream_commit_files(files);
    for (keep, first) in [(5, 1), (4, 2), (2, 3), (1, 3)] {
        let data = files.join(format!("data-{keep}"));
        let local = server(
            &data,
            Retention {
                days: 7,
                records: Some(keep),
            },
        );
        load(&local, &v1, false);
        load(&local, &e1, false);
        load(&local, &v2, true);
        drop(local);
        let db = rusqlite::Connection::open(data.join(neptune_local::GRAPH_FILE))
            .unwrap_or_else(|e| panic!("{e}"));
        let oldest: i64 = db
            .query_row("SELECT min(commit_num) FROM stream", [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(oldest, first, "keeping {keep} records");
    }
}
