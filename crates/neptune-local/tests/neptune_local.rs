//! neptune-local through the official client, `aws-sdk-neptunedata`, as the loader will use it.
//!
//! Themes: conformance (one small fixture per rule of neptune-reference.md §1.15 and per error
//! code), the job lifecycle (status progression, queue, dependencies, cancel, modes,
//! failOnError, updateSingleCardinalityProperties, error paging, restart), access (SigV4,
//! injected faults), sources (S3, gzip), and the toolkit's own output end to end.

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_neptunedata::Client;
use aws_sdk_neptunedata::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_neptunedata::types::{Format, Mode, S3BucketRegion};
use neptune_local::{Config, GraphStore, Server, SigV4Credentials, payload_json as json};
use serde_json::Value;
use testkit::write_file as write;

const ROLE: &str = "arn:aws:iam::000000000000:role/local";
const KEY_ID: &str = "AKIDLOCALTEST";
const SECRET: &str = "local-test-secret";

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

/// A server over `data` that may read the tests' source folders (temporary folders), keeping
/// the loader's messages (the conformance tests check them).
fn server(data: &Path) -> Server {
    Server::start(Config {
        local_source_dirs: vec![std::env::temp_dir()],
        show_values: true,
        ..Config::new(
            data.to_path_buf(),
            "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
        )
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn client_with_secret(endpoint: &str, secret: &str) -> Client {
    let config = aws_sdk_neptunedata::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(KEY_ID, secret, None, None, "test"))
        .endpoint_url(endpoint)
        .retry_config(aws_sdk_neptunedata::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

fn client(server: &Server) -> Client {
    client_with_secret(&server.endpoint(), SECRET)
}

/// A server over a new data folder, and a client of it.
fn local() -> (tempfile::TempDir, Server, Client) {
    let data = tempdir();
    let server = server(data.path());
    let client = client(&server);
    (data, server, client)
}

/// A load request with the required parameters; `tune` sets the rest.
fn load(
    client: &Client,
    source: &str,
) -> aws_sdk_neptunedata::operation::start_loader_job::builders::StartLoaderJobFluentBuilder {
    client
        .start_loader_job()
        .source(source)
        .format(Format::Csv)
        .s3_bucket_region(S3BucketRegion::UsEast1)
        .iam_role_arn(ROLE)
}

async fn start(
    builder: aws_sdk_neptunedata::operation::start_loader_job::builders::StartLoaderJobFluentBuilder,
) -> String {
    let out = builder.send().await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(out.status(), "200 OK");
    out.payload()
        .get("loadId")
        .cloned()
        .unwrap_or_else(|| panic!("no loadId in {:?}", out.payload()))
}

async fn status(client: &Client, id: &str) -> Value {
    let out = client
        .get_loader_job_status()
        .load_id(id)
        .details(true)
        .errors(true)
        .errors_per_page(100)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    json(out.payload())
}

fn overall(payload: &Value) -> &Value {
    &payload["overallStatus"]
}

fn status_of(payload: &Value) -> String {
    overall(payload)["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

const WAITING: [&str; 3] = ["LOAD_NOT_STARTED", "LOAD_IN_QUEUE", "LOAD_IN_PROGRESS"];

async fn wait(client: &Client, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let payload = status(client, id).await;
        if !WAITING.contains(&status_of(&payload).as_str()) {
            return payload;
        }
        assert!(
            Instant::now() < deadline,
            "load {id} never ended: {payload}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// (errorCode, file name ending, recordNum) of every logged error.
fn errors(payload: &Value) -> Vec<(String, String, u64)> {
    payload["errors"]["errorLogs"]
        .as_array()
        .map(|logs| {
            logs.iter()
                .map(|e| {
                    let file = e["fileName"].as_str().unwrap_or_default();
                    (
                        e["errorCode"].as_str().unwrap_or_default().to_owned(),
                        Path::new(file)
                            .file_name()
                            .map(|f| f.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        e["recordNum"].as_u64().unwrap_or(u64::MAX),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn counter(payload: &Value, name: &str) -> u64 {
    overall(payload)[name].as_u64().unwrap_or(u64::MAX)
}

fn graph(data: &Path) -> GraphStore {
    GraphStore::open(&data.join(neptune_local::GRAPH_FILE)).unwrap_or_else(|e| panic!("{e}"))
}

/// The stored values of one vertex property.
fn values(data: &Path, id: &str, name: &str) -> Vec<String> {
    let views = graph(data).show(id, 0).unwrap_or_else(|e| panic!("{e}"));
    let Some(view) = views.into_iter().find(|v| v.id == id) else {
        return Vec::new();
    };
    view.properties
        .into_iter()
        .filter(|p| p.name == name)
        .map(|p| p.value)
        .collect()
}

mod conformance {
    use super::*;

    struct Case {
        name: &'static str,
        files: &'static [(&'static str, &'static str)],
        status: &'static str,
        /// (errorCode, file, recordNum)
        errors: &'static [(&'static str, &'static str, u64)],
    }

    const V: &str = "~id,~label\na,person\nb,person\n";

    /// One fixture per rule. `status` and `errors` are those of a load with failOnError FALSE,
    /// so that every error shows: a file whose header is refused fails, a bad record does not
    /// fail the load (its errors are counted). With failOnError TRUE every case with an error
    /// must end LOAD_FAILED at its first error.
    const CASES: &[Case] = &[
        Case {
            name: "canonical example (§1.14)",
            files: &[
                (
                    "v.csv",
                    "~id,name:String,age:Int,lang:String,interests:String[],~label\n\
                     v1,\"marko\",29,,\"sailing;graphs\",person\nv2,\"lop\",,\"java\",,software\n",
                ),
                (
                    "e.csv",
                    "~id,~from,~to,~label,weight:Double\ne1,v1,v2,created,0.4\n",
                ),
            ],
            status: "LOAD_COMPLETED",
            errors: &[],
        },
        Case {
            name: "header name with a space (checklist 3)",
            files: &[("v.csv", "~id,first name:String\na,x\n")],
            status: "LOAD_FAILED",
            errors: &[("PARSING_ERROR", "v.csv", 1)],
        },
        Case {
            name: "system column twice (checklist 3)",
            files: &[("v.csv", "~id,~id\na,b\n")],
            status: "LOAD_FAILED",
            errors: &[("PARSING_ERROR", "v.csv", 1)],
        },
        Case {
            name: "no ~id column (§1.2)",
            files: &[("v.csv", "name:String,~label\nx,person\n")],
            status: "LOAD_FAILED",
            errors: &[("PARSING_ERROR", "v.csv", 1)],
        },
        Case {
            name: "unknown type (§1.4)",
            files: &[("v.csv", "~id,age:Integer\na,1\n")],
            status: "LOAD_FAILED",
            errors: &[("PARSING_ERROR", "v.csv", 1)],
        },
        Case {
            name: "(single)[] is contradictory (§1.8)",
            files: &[("v.csv", "~id,tags:String(single)[]\na,x\n")],
            status: "LOAD_FAILED",
            errors: &[("PARSING_ERROR", "v.csv", 1)],
        },
        Case {
            name: "array on an edge property (checklist 4)",
            files: &[
                ("v.csv", V),
                ("e.csv", "~id,~from,~to,~label,w:Int[]\ne,a,b,knows,1\n"),
            ],
            status: "LOAD_FAILED",
            errors: &[("PARSING_ERROR", "e.csv", 1)],
        },
        Case {
            name: "set cardinality on an edge property (checklist 4)",
            files: &[
                ("v.csv", V),
                ("e.csv", "~id,~from,~to,~label,w:Int(set)\ne,a,b,knows,1\n"),
            ],
            status: "LOAD_FAILED",
            errors: &[("PARSING_ERROR", "e.csv", 1)],
        },
        Case {
            name: "more columns than the header (§5.4)",
            files: &[("v.csv", "~id,name:String\na,x\nb,y,z\nc,w\n")],
            status: "LOAD_COMPLETED",
            errors: &[("PARSING_ERROR", "v.csv", 3)],
        },
        Case {
            name: "unquoted double quote (checklist 5)",
            files: &[("v.csv", "~id,name:String\na,x\nb,say \"hi\"\n")],
            status: "LOAD_COMPLETED",
            errors: &[("PARSING_ERROR", "v.csv", 3)],
        },
        Case {
            name: "quoted comma, quote and line break load (checklist 5)",
            files: &[("v.csv", "~id,name:String\na,\"x, \"\"y\"\"\nz\"\nb,plain\n")],
            status: "LOAD_COMPLETED",
            errors: &[],
        },
        Case {
            name: "integers out of range per width (checklist 8)",
            files: &[(
                "v.csv",
                "~id,b:Byte,s:Short,i:Int,l:Long\nok,127,-32768,2147483647,9223372036854775807\n\
                 b,128,,,\ns,,32768,,\ni,,,2147483648,\nl,,,,9223372036854775808\nx,,,1.5,\n",
            )],
            status: "LOAD_COMPLETED",
            errors: &[
                ("PARSING_ERROR", "v.csv", 3),
                ("PARSING_ERROR", "v.csv", 4),
                ("PARSING_ERROR", "v.csv", 5),
                ("PARSING_ERROR", "v.csv", 6),
                ("PARSING_ERROR", "v.csv", 7),
            ],
        },
        Case {
            name: "floats: INF refused, named specials taken (checklist 9)",
            files: &[(
                "v.csv",
                "~id,f:Float,d:Double\na,NaN,-Infinity\nb,1e10,+Infinity\nc,INF,\n",
            )],
            status: "LOAD_COMPLETED",
            errors: &[("PARSING_ERROR", "v.csv", 4)],
        },
        Case {
            name: "dates: documented forms only (checklist 10)",
            files: &[(
                "v.csv",
                "~id,d:Date\na,2021-08-12\nb,2021-08-12T10:40\nc,2021-08-12T10:40:17\n\
                 d,2021-08-12T10:40:17Z\ne,2021-08-12 10:40:17\nf,2023-02-29\n",
            )],
            status: "LOAD_COMPLETED",
            errors: &[("PARSING_ERROR", "v.csv", 6), ("PARSING_ERROR", "v.csv", 7)],
        },
        Case {
            name: "NUL in a string (checklist 11)",
            files: &[("v.csv", "~id,name:String\na,x\u{0}y\n")],
            status: "LOAD_COMPLETED",
            errors: &[("PARSING_ERROR", "v.csv", 2)],
        },
        Case {
            name: "empty label (§1.10)",
            files: &[("v.csv", "~id,~label\na,\"\"\nb,person\n")],
            status: "LOAD_COMPLETED",
            errors: &[("PARSING_ERROR", "v.csv", 2)],
        },
        Case {
            name: "blank ~id, ~from, ~to (§1.2)",
            files: &[
                ("v.csv", "~id,~label\n,person\na,person\nb,person\n"),
                (
                    "e.csv",
                    "~id,~from,~to,~label\ne1,,b,knows\ne2,a,,knows\n,a,b,knows\n",
                ),
            ],
            status: "LOAD_COMPLETED",
            errors: &[
                ("PARSING_ERROR", "v.csv", 2),
                ("PARSING_ERROR", "e.csv", 2),
                ("PARSING_ERROR", "e.csv", 3),
                ("PARSING_ERROR", "e.csv", 4),
            ],
        },
        Case {
            name: "an edge has exactly one label (§1.2)",
            files: &[("v.csv", V), ("e.csv", "~id,~from,~to,~label\ne,a,b,x;y\n")],
            status: "LOAD_COMPLETED",
            errors: &[("PARSING_ERROR", "e.csv", 2)],
        },
        Case {
            name: "edge to a missing vertex (§1.12)",
            files: &[
                ("v.csv", V),
                (
                    "e.csv",
                    "~id,~from,~to,~label\ne1,a,b,knows\ne2,a,nobody,knows\n",
                ),
            ],
            status: "LOAD_COMPLETED",
            errors: &[("FROM_OR_TO_VERTEX_ARE_MISSING", "e.csv", 3)],
        },
        Case {
            name: "an edge id reused for other endpoints (§1.11)",
            files: &[
                ("v.csv", V),
                (
                    "e.csv",
                    "~id,~from,~to,~label\ne1,a,b,knows\ne1,b,a,knows\ne1,a,b,knows\n",
                ),
            ],
            status: "LOAD_COMPLETED",
            errors: &[("ID_ASSIGNED_TO_MULTIPLE_EDGES", "e.csv", 3)],
        },
        Case {
            name: "two values for a single property (§1.8)",
            files: &[("v.csv", "~id,age:Int(single)\na,1\na,1\na,2\n")],
            status: "LOAD_COMPLETED",
            errors: &[("SINGLE_CARDINALITY_VIOLATION", "v.csv", 4)],
        },
        Case {
            name: "a second value for an edge property (§1.8)",
            files: &[
                ("v.csv", V),
                (
                    "e.csv",
                    "~id,~from,~to,~label,w:Int\ne,a,b,knows,1\ne,a,b,knows,2\n",
                ),
            ],
            status: "LOAD_COMPLETED",
            errors: &[("SINGLE_CARDINALITY_VIOLATION", "e.csv", 3)],
        },
        Case {
            name: "edges are loaded after vertices whatever the file names (§1.1)",
            files: &[
                ("a-edges.csv", "~id,~from,~to,~label\ne1,a,b,knows\n"),
                ("z-vertices.csv", V),
            ],
            status: "LOAD_COMPLETED",
            errors: &[],
        },
        Case {
            name: "an empty file has no header",
            files: &[("v.csv", "")],
            status: "LOAD_FAILED",
            errors: &[("PARSING_ERROR", "v.csv", 1)],
        },
    ];

    #[tokio::test]
    async fn every_rule_is_accepted_or_fails_with_its_code_file_and_record() {
        let mut failures = Vec::new();
        for (n, case) in CASES.iter().enumerate() {
            let source = tempdir();
            for (name, content) in case.files {
                write(source.path(), name, content);
            }
            let want: Vec<(String, String, u64)> = case
                .errors
                .iter()
                .map(|(c, f, r)| (c.to_string(), f.to_string(), *r))
                .collect();
            for fail_on_error in [false, true] {
                // A fresh graph per run: ids repeat across cases.
                let (_data, _server, client) = local();
                let id = start(
                    load(&client, &source.path().display().to_string())
                        .fail_on_error(fail_on_error)
                        .mode(Mode::New),
                )
                .await;
                let payload = wait(&client, &id).await;
                let got = errors(&payload);
                let (status, want) = match (fail_on_error, want.first()) {
                    (false, _) => (case.status, want.clone()),
                    (true, Some(first)) => ("LOAD_FAILED", vec![first.clone()]),
                    (true, None) => ("LOAD_COMPLETED", Vec::new()),
                };
                if status_of(&payload) != status || got != want {
                    failures.push(format!(
                        "case {n} `{}` (failOnError {fail_on_error}): status {} errors {got:?}; \
                         expected {status} {want:?}",
                        case.name,
                        status_of(&payload),
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[tokio::test]
    async fn values_are_stored_as_neptune_reads_them() {
        let (data, _server, client) = local();
        let source = tempdir();
        write(
            source.path(),
            "v.csv",
            "~id,flag:Bool,tags:String[],note:String,n:Int,d:Date,empty:String,~label\n\
             a,TRUE,\"x;y\\;z\",semi\\;colon,+7,2021-08-12,\"\",p;q\n\
             b ,true, spaced ,\" kept \",,,,person\n",
        );
        let id = start(load(&client, &source.path().display().to_string())).await;
        let payload = wait(&client, &id).await;
        assert_eq!(status_of(&payload), "LOAD_COMPLETED", "{payload}");
        // A Bool other than `true` loads as false (§1.4).
        assert_eq!(values(data.path(), "a", "flag"), ["false"]);
        assert_eq!(values(data.path(), "b", "flag"), ["true"]);
        // Arrays split on `;`, `\;` is a literal `;`, in arrays and plain strings (§1.7).
        assert_eq!(values(data.path(), "a", "tags"), ["x", "y;z"]);
        assert_eq!(values(data.path(), "a", "note"), ["semi;colon"]);
        assert_eq!(values(data.path(), "a", "n"), ["7"]);
        assert_eq!(values(data.path(), "a", "d"), ["2021-08-12T00:00:00Z"]);
        // `""` is null without allowEmptyStrings (§1.10).
        assert!(values(data.path(), "a", "empty").is_empty());
        // Unquoted spaces next to delimiters are dropped, quoted ones kept (§1.6).
        assert_eq!(values(data.path(), "b", "tags"), ["spaced"]);
        assert_eq!(values(data.path(), "b", "note"), [" kept "]);
        let view = graph(data.path())
            .show("a", 0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(view[0].labels, ["p", "q"]);

        // With allowEmptyStrings, `""` is an empty string.
        let source = tempdir();
        write(source.path(), "v.csv", "~id,empty:String\nc,\"\"\n");
        let id = start(
            load(&client, &source.path().display().to_string())
                .parser_configuration("allowEmptyStrings", "true"),
        )
        .await;
        assert_eq!(status_of(&wait(&client, &id).await), "LOAD_COMPLETED");
        assert_eq!(values(data.path(), "c", "empty"), [""]);
    }

    #[tokio::test]
    async fn records_and_duplicates_are_counted_as_neptune_counts_them() {
        let (data, _server, client) = local();
        let source = tempdir();
        // §1.11: `~id,~label,name,team` with one row is 3 records; twice, 6 and 3 duplicates.
        write(
            source.path(),
            "v.csv",
            "~id,~label,name:String,team:String\na,person,x,y\n",
        );
        let path = source.path().display().to_string();
        let first = wait(&client, &start(load(&client, &path)).await).await;
        assert_eq!(counter(&first, "totalRecords"), 3);
        assert_eq!(counter(&first, "totalDuplicates"), 0);
        let second = wait(&client, &start(load(&client, &path).mode(Mode::New)).await).await;
        assert_eq!(counter(&second, "totalRecords"), 3);
        assert_eq!(counter(&second, "totalDuplicates"), 3);
        assert_eq!(status_of(&second), "LOAD_COMPLETED");
        // Repeated vertex rows merge, set properties collect values (§1.11).
        let source = tempdir();
        write(
            source.path(),
            "v.csv",
            "~id,tag:String\nm,one\nm,two\nm,one\n",
        );
        let merged = wait(
            &client,
            &start(load(&client, &source.path().display().to_string())).await,
        )
        .await;
        assert_eq!(counter(&merged, "totalDuplicates"), 3, "{merged}");
        assert_eq!(values(data.path(), "m", "tag"), ["one", "two"]);
        let stats = graph(data.path()).stats().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stats.vertices, 2);
        // Every payload field the SDK users read is present and typed (§3.5).
        for key in [
            "fullUri",
            "runNumber",
            "retryNumber",
            "status",
            "totalTimeSpent",
            "startTime",
            "parsingErrors",
            "datatypeMismatchErrors",
            "insertErrors",
        ] {
            assert!(
                !overall(&merged)[key].is_null(),
                "{key} missing in {merged}"
            );
        }
        assert_eq!(merged["feedCount"][0]["LOAD_COMPLETED"], 1);
    }
}

mod lifecycle {
    use super::*;

    fn vertices(dir: &Path, name: &str, ids: &[&str]) {
        let mut text = String::from("~id,~label\n");
        for id in ids {
            text.push_str(&format!("{id},thing\n"));
        }
        write(dir, name, &text);
    }

    #[tokio::test]
    async fn status_progresses_and_the_queue_runs_in_order_up_to_its_limit() {
        let (_data, server, client) = local();
        let source = tempdir();
        vertices(source.path(), "v.csv", &["a"]);
        let path = source.path().display().to_string();
        server.faults().set_load_delay(Duration::from_millis(1_000));
        let first = start(load(&client, &path).mode(Mode::New)).await;
        let early = status_of(&status(&client, &first).await);
        assert!(
            early == "LOAD_NOT_STARTED" || early == "LOAD_IN_PROGRESS",
            "{early}"
        );
        // Without queueRequest a second load is refused while one runs (§2.4).
        let refused = load(&client, &path).mode(Mode::New).send().await;
        let message = format!("{:?}", refused.err());
        assert!(
            message.contains("Max concurrent load limit breached"),
            "{message}"
        );
        let mut queued = Vec::new();
        for _ in 0..64 {
            queued.push(start(load(&client, &path).mode(Mode::New).queue_request(true)).await);
        }
        assert_eq!(
            status_of(&status(&client, &queued[0]).await),
            "LOAD_IN_QUEUE"
        );
        let full = load(&client, &path)
            .mode(Mode::New)
            .queue_request(true)
            .send()
            .await;
        let message = format!("{:?}", full.err());
        assert!(
            message.contains("Max load task queue size limit breached. Limit is 64"),
            "{message}"
        );
        // Listing puts queued loads first, newest first (§2.8).
        let listed = client
            .list_loader_jobs()
            .limit(100)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        let ids = listed
            .payload()
            .map(|p| p.load_ids().to_vec())
            .unwrap_or_default();
        assert_eq!(ids.first(), queued.last());
        assert_eq!(ids.len(), 65);
        // Cancel the queue's tail so the test stays short (while the slow first load still holds
        // the queue, so none of them can have run); the rest runs in order.
        for id in &queued[3..] {
            client
                .cancel_loader_job()
                .load_id(id)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e:?}"));
        }
        // Each load still takes a while, so the order can be watched: a load leaves the queue
        // only after every load before it has completed.
        server.faults().set_load_delay(Duration::from_millis(300));
        let order: Vec<&String> = std::iter::once(&first).chain(&queued[..3]).collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            // Read from the last to the first: once a later load is seen started, an earlier
            // one read after that must have completed before it started.
            let mut statuses = Vec::new();
            for id in order.iter().rev() {
                statuses.push(status_of(&status(&client, id).await));
            }
            statuses.reverse();
            for (i, later) in statuses.iter().enumerate() {
                if later != "LOAD_IN_QUEUE" && later != "LOAD_NOT_STARTED" {
                    for earlier in &statuses[..i] {
                        assert!(
                            earlier == "LOAD_COMPLETED" || i == 0,
                            "load {i} is {later} while an earlier one is {earlier}: {statuses:?}"
                        );
                    }
                }
            }
            if statuses.iter().all(|s| s == "LOAD_COMPLETED") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{statuses:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            status_of(&status(&client, &queued[10]).await),
            "LOAD_CANCELLED_BY_USER"
        );
    }

    #[tokio::test]
    async fn dependencies_wait_and_a_failed_one_cancels_its_dependents() {
        let (_data, server, client) = local();
        let good = tempdir();
        vertices(good.path(), "v.csv", &["a", "b"]);
        let edges = tempdir();
        write(edges.path(), "e.csv", "~id,~from,~to,~label\ne,a,b,knows\n");
        let bad = tempdir();
        write(bad.path(), "v.csv", "~id,n:Int\nx,notanumber\n");

        server.faults().set_load_delay(Duration::from_millis(200));
        let vertices_id =
            start(load(&client, &good.path().display().to_string()).queue_request(true)).await;
        let edges_id = start(
            load(&client, &edges.path().display().to_string())
                .queue_request(true)
                .dependencies(&vertices_id),
        )
        .await;
        assert_eq!(status_of(&wait(&client, &edges_id).await), "LOAD_COMPLETED");

        let failing =
            start(load(&client, &bad.path().display().to_string()).queue_request(true)).await;
        let child = start(
            load(&client, &edges.path().display().to_string())
                .mode(Mode::New)
                .queue_request(true)
                .dependencies(&failing),
        )
        .await;
        let grandchild = start(
            load(&client, &good.path().display().to_string())
                .mode(Mode::New)
                .queue_request(true)
                .dependencies(&child),
        )
        .await;
        assert_eq!(status_of(&wait(&client, &failing).await), "LOAD_FAILED");
        for id in [&child, &grandchild] {
            assert_eq!(
                status_of(&wait(&client, id).await),
                "LOAD_FAILED_BECAUSE_DEPENDENCY_NOT_SATISFIED"
            );
        }
        // An unknown dependency is refused.
        let unknown = load(&client, &good.path().display().to_string())
            .queue_request(true)
            .dependencies("no-such-load")
            .send()
            .await;
        assert!(format!("{:?}", unknown.err()).contains("does not exist"));
    }

    #[tokio::test]
    async fn a_cancelled_load_stops_and_cancelling_twice_is_refused() {
        let (data, server, client) = local();
        let source = tempdir();
        vertices(source.path(), "v.csv", &["a"]);
        server.faults().set_load_delay(Duration::from_secs(30));
        let id = start(load(&client, &source.path().display().to_string())).await;
        while status_of(&status(&client, &id).await) != "LOAD_IN_PROGRESS" {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let cancelled = client.cancel_loader_job().load_id(&id).send().await;
        assert!(cancelled.is_ok(), "{cancelled:?}");
        let payload = wait(&client, &id).await;
        assert_eq!(status_of(&payload), "LOAD_CANCELLED_BY_USER");
        assert_eq!(
            graph(data.path())
                .stats()
                .unwrap_or_else(|e| panic!("{e}"))
                .vertices,
            0
        );
        let again = client.cancel_loader_job().load_id(&id).send().await;
        let message = format!("{:?}", again.err());
        assert!(
            message.contains("does not exist or not active"),
            "{message}"
        );
        let unknown = client.get_loader_job_status().load_id("nope").send().await;
        assert!(format!("{:?}", unknown.err()).contains("BulkLoadIdNotFound"));
    }

    #[tokio::test]
    async fn modes_auto_resume_and_new_behave_as_documented() {
        let (_data, _server, client) = local();
        let source = tempdir();
        vertices(source.path(), "1.csv", &["a"]);
        write(source.path(), "2.csv", "~id,n:Int\nb,oops\n");
        let path = source.path().display().to_string();

        // RESUME with no earlier load of the source is refused.
        let resume = load(&client, &path).mode(Mode::Resume).send().await;
        assert!(format!("{:?}", resume.err()).contains("No previous load"));

        let first = wait(&client, &start(load(&client, &path)).await).await;
        assert_eq!(status_of(&first), "LOAD_FAILED");
        assert_eq!(
            first["feedCount"],
            serde_json::json!([{"LOAD_COMPLETED": 1}, {"LOAD_FAILED": 1}])
        );
        // Fix the failed file; RESUME reloads only it.
        write(source.path(), "2.csv", "~id,n:Int\nb,2\n");
        let resumed = wait(
            &client,
            &start(load(&client, &path).mode(Mode::Resume)).await,
        )
        .await;
        assert_eq!(status_of(&resumed), "LOAD_COMPLETED");
        assert_eq!(overall(&resumed)["runNumber"], 2);
        assert_eq!(
            counter(&resumed, "totalRecords"),
            2,
            "only 2.csv: {resumed}"
        );
        // AUTO (the default) after a complete load reloads nothing (§5.8).
        let auto = wait(&client, &start(load(&client, &path)).await).await;
        assert_eq!(status_of(&auto), "LOAD_COMPLETED");
        assert_eq!(counter(&auto, "totalRecords"), 0);
        // NEW loads everything again: all duplicates.
        let new = wait(&client, &start(load(&client, &path).mode(Mode::New)).await).await;
        assert_eq!(counter(&new, "totalRecords"), 3);
        assert_eq!(counter(&new, "totalDuplicates"), 3);
        assert_eq!(overall(&new)["runNumber"], 1);
    }

    #[tokio::test]
    async fn fail_on_error_stops_at_the_first_error_and_keeps_what_loaded() {
        let (data, _server, client) = local();
        let source = tempdir();
        write(source.path(), "v.csv", "~id,n:Int\na,1\nb,x\nc,3\nd,y\n");
        let path = source.path().display().to_string();
        let strict = wait(&client, &start(load(&client, &path)).await).await;
        assert_eq!(status_of(&strict), "LOAD_FAILED");
        assert_eq!(errors(&strict).len(), 1);
        assert_eq!(counter(&strict, "datatypeMismatchErrors"), 1);
        let stats = graph(data.path()).stats().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stats.vertices, 1, "only `a` loaded before the error");

        let lenient = wait(
            &client,
            &start(load(&client, &path).mode(Mode::New).fail_on_error(false)).await,
        )
        .await;
        assert_eq!(errors(&lenient).len(), 2);
        assert_eq!(counter(&lenient, "datatypeMismatchErrors"), 2);
        let stats = graph(data.path()).stats().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            stats.vertices, 4,
            "a bad value loses the property, not the vertex"
        );
        assert!(values(data.path(), "b", "n").is_empty());
        assert_eq!(values(data.path(), "c", "n"), ["3"]);
    }

    #[tokio::test]
    async fn single_cardinality_values_change_only_with_update_single_cardinality_properties() {
        let (data, _server, client) = local();
        let first = tempdir();
        write(
            first.path(),
            "v.csv",
            "~id,level:String(single),tag:String\nu,gold,x\n",
        );
        let second = tempdir();
        write(
            second.path(),
            "v.csv",
            "~id,level:String(single),tag:String\nu,silver,y\n",
        );
        let one = wait(
            &client,
            &start(load(&client, &first.path().display().to_string())).await,
        )
        .await;
        assert_eq!(status_of(&one), "LOAD_COMPLETED");
        let refused = wait(
            &client,
            &start(load(&client, &second.path().display().to_string()).fail_on_error(false)).await,
        )
        .await;
        assert_eq!(errors(&refused)[0].0, "SINGLE_CARDINALITY_VIOLATION");
        assert_eq!(counter(&refused, "insertErrors"), 1);
        assert_eq!(values(data.path(), "u", "level"), ["gold"]);
        let updated = wait(
            &client,
            &start(
                load(&client, &second.path().display().to_string())
                    .mode(Mode::New)
                    .update_single_cardinality_properties(true),
            )
            .await,
        )
        .await;
        assert_eq!(status_of(&updated), "LOAD_COMPLETED", "{updated}");
        assert_eq!(values(data.path(), "u", "level"), ["silver"]);
        // Set properties collect values instead.
        assert_eq!(values(data.path(), "u", "tag"), ["x", "y"]);
    }

    #[tokio::test]
    async fn edge_only_load_takes_files_in_the_order_found() {
        let (data, _server, client) = local();
        let source = tempdir();
        write(
            source.path(),
            "a-edges.csv",
            "~id,~from,~to,~label\ne1,a,b,knows\n",
        );
        vertices(source.path(), "z-vertices.csv", &["a", "b"]);
        let path = source.path().display().to_string();
        // Without the scan, the edge file (first by name) loads before its vertices (§2.2).
        let edge_only = wait(
            &client,
            &start(
                load(&client, &path)
                    .edge_only_load(true)
                    .fail_on_error(false),
            )
            .await,
        )
        .await;
        assert_eq!(
            errors(&edge_only),
            [(
                "FROM_OR_TO_VERTEX_ARE_MISSING".to_owned(),
                "a-edges.csv".to_owned(),
                2
            )]
        );
        // With the scan (the default), vertices come first and the edge loads.
        let scanned = wait(&client, &start(load(&client, &path).mode(Mode::New)).await).await;
        assert!(errors(&scanned).is_empty(), "{scanned}");
        assert_eq!(
            graph(data.path())
                .stats()
                .unwrap_or_else(|e| panic!("{e}"))
                .edges,
            1
        );
    }

    #[tokio::test]
    async fn error_logs_are_paged() {
        let (_data, _server, client) = local();
        let source = tempdir();
        let mut text = String::from("~id,n:Int\n");
        for i in 0..25 {
            text.push_str(&format!("v{i},bad{i}\n"));
        }
        write(source.path(), "v.csv", &text);
        let id =
            start(load(&client, &source.path().display().to_string()).fail_on_error(false)).await;
        wait(&client, &id).await;
        let page = |page: i32| {
            let client = client.clone();
            let id = id.clone();
            async move {
                let out = client
                    .get_loader_job_status()
                    .load_id(&id)
                    .errors(true)
                    .page(page)
                    .errors_per_page(10)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{e:?}"));
                json(out.payload())
            }
        };
        let third = page(3).await;
        assert_eq!(third["errors"]["startIndex"], 21);
        assert_eq!(third["errors"]["endIndex"], 25);
        let records: Vec<u64> = errors(&third).iter().map(|e| e.2).collect();
        assert_eq!(records, [22, 23, 24, 25, 26]);
        assert_eq!(errors(&page(1).await).len(), 10);
        assert!(errors(&page(4).await).is_empty());
        // Without errors=TRUE no error object is sent; without details no failedFeeds.
        let plain = client
            .get_loader_job_status()
            .load_id(&id)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        let plain = json(plain.payload());
        assert!(plain.get("errors").is_none() && plain.get("failedFeeds").is_none());
    }

    #[tokio::test]
    async fn the_graph_and_the_load_history_survive_a_restart() {
        let data = tempdir();
        let source = tempdir();
        vertices(source.path(), "v.csv", &["a", "b", "c"]);
        let path = source.path().display().to_string();
        let id = {
            let server = server(data.path());
            let client = client(&server);
            let id = start(load(&client, &path)).await;
            assert_eq!(status_of(&wait(&client, &id).await), "LOAD_COMPLETED");
            id
        };
        let server = server(data.path());
        let client = client(&server);
        let payload = status(&client, &id).await;
        assert_eq!(status_of(&payload), "LOAD_COMPLETED");
        assert_eq!(counter(&payload, "totalRecords"), 3);
        assert_eq!(
            graph(data.path())
                .stats()
                .unwrap_or_else(|e| panic!("{e}"))
                .vertices,
            3
        );
        // The history drives AUTO: the same source is not loaded again.
        let again = wait(&client, &start(load(&client, &path)).await).await;
        assert_eq!(counter(&again, "totalRecords"), 0);
        assert_eq!(overall(&again)["runNumber"], 2);
    }

    #[tokio::test]
    async fn a_load_interrupted_by_a_stop_reads_unexpected_error_after_the_restart() {
        let data = tempdir();
        let source = tempdir();
        vertices(source.path(), "v.csv", &["a"]);
        let path = source.path().display().to_string();
        let id = {
            let server = server(data.path());
            let client = client(&server);
            server.faults().set_load_delay(Duration::from_secs(60));
            let id = start(load(&client, &path)).await;
            while status_of(&status(&client, &id).await) != "LOAD_IN_PROGRESS" {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            id
        };
        let server = server(data.path());
        let client = client(&server);
        let payload = status(&client, &id).await;
        assert_eq!(status_of(&payload), "LOAD_UNEXPECTED_ERROR", "{payload}");
        assert_eq!(errors(&payload)[0].0, "INTERNAL_ERROR");
        // Resubmitting the source with AUTO loads it.
        let resumed = wait(&client, &start(load(&client, &path)).await).await;
        assert_eq!(status_of(&resumed), "LOAD_COMPLETED");
        assert_eq!(counter(&resumed, "totalRecords"), 1);
    }

    #[tokio::test]
    async fn a_file_deleted_during_the_load_fails_its_feed() {
        let (_data, server, client) = local();
        let source = tempdir();
        vertices(source.path(), "1.csv", &["a"]);
        let doomed = write(source.path(), "2.csv", "~id\nb\n");
        server.faults().set_load_delay(Duration::from_secs(2));
        let id = start(load(&client, &source.path().display().to_string())).await;
        while status_of(&status(&client, &id).await) != "LOAD_IN_PROGRESS" {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        std::fs::remove_file(doomed).unwrap_or_else(|e| panic!("{e}"));
        let payload = wait(&client, &id).await;
        assert_eq!(status_of(&payload), "LOAD_FAILED", "{payload}");
        assert_eq!(
            payload["failedFeeds"][0]["status"],
            "LOAD_DATA_FAILED_DUE_TO_FEED_MODIFIED_OR_DELETED"
        );
        assert_eq!(
            errors(&payload),
            [(
                "FILE_MODIFICATION_OR_DELETION_ERROR".to_owned(),
                "2.csv".to_owned(),
                0
            )]
        );
    }
}

mod access {
    use super::*;

    /// A server that requires requests signed with `KEY_ID`/`SECRET`.
    fn signed_server() -> (tempfile::TempDir, Server) {
        let data = tempdir();
        let server = Server::start(Config {
            sigv4: Some(SigV4Credentials {
                access_key_id: KEY_ID.into(),
                secret_access_key: SECRET.into(),
            }),
            local_source_dirs: vec![std::env::temp_dir()],
            show_values: true,
            ..Config::new(
                data.path().to_path_buf(),
                "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
            )
        })
        .unwrap_or_else(|e| panic!("{e}"));
        (data, server)
    }

    /// A client that signs with `key`/`secret` at a clock `behind` the real one.
    fn signing_client(endpoint: &str, key: &str, behind: Duration) -> Client {
        #[derive(Debug)]
        struct Behind(Duration);
        impl aws_smithy_async::time::TimeSource for Behind {
            fn now(&self) -> std::time::SystemTime {
                std::time::SystemTime::now() - self.0
            }
        }
        let config = aws_sdk_neptunedata::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(key, SECRET, None, None, "test"))
            .time_source(Behind(behind))
            .endpoint_url(endpoint)
            .retry_config(aws_sdk_neptunedata::config::retry::RetryConfig::disabled())
            .build();
        Client::from_conf(config)
    }

    /// The HTTP status and body of a refused status call.
    async fn refused_status(client: &Client, id: &str) -> (u16, String) {
        let denied = client.get_loader_job_status().load_id(id).send().await;
        denied
            .err()
            .and_then(|e| {
                e.raw_response().map(|r| {
                    (
                        r.status().as_u16(),
                        String::from_utf8_lossy(r.body().bytes().unwrap_or_default()).into_owned(),
                    )
                })
            })
            .unwrap_or_else(|| panic!("the call was not refused"))
    }

    #[tokio::test]
    async fn sigv4_refuses_a_missing_signature_another_key_and_a_skewed_clock() {
        let (_data, server) = signed_server();
        // Signed correctly, a few minutes off: accepted (the window is 15 minutes).
        let near = signing_client(&server.endpoint(), KEY_ID, Duration::from_secs(240));
        assert!(near.list_loader_jobs().send().await.is_ok());
        let unsigned = raw(&server, "GET", "/loader", "");
        assert!(
            unsigned.starts_with("HTTP/1.1 403") && unsigned.contains("AccessDeniedException"),
            "{unsigned}"
        );
        let (code, body) = refused_status(
            &signing_client(&server.endpoint(), "AKIDOTHERKEY", Duration::ZERO),
            "x",
        )
        .await;
        assert_eq!(code, 403, "{body}");
        let (code, body) = refused_status(
            &signing_client(&server.endpoint(), KEY_ID, Duration::from_secs(20 * 60)),
            "x",
        )
        .await;
        assert_eq!(code, 403, "{body}");
        assert!(body.contains("15 minutes"), "{body}");
    }

    #[tokio::test]
    async fn sigv4_is_checked_when_required() {
        let (_data, server) = signed_server();
        let source = tempdir();
        write(source.path(), "v.csv", "~id\na\n");
        let good = client(&server);
        let id = start(load(&good, &source.path().display().to_string())).await;
        assert_eq!(status_of(&wait(&good, &id).await), "LOAD_COMPLETED");
        let listed = good.list_loader_jobs().send().await;
        assert!(listed.is_ok(), "{listed:?}");

        let wrong = client_with_secret(&server.endpoint(), "not-the-secret");
        let (code, body) = refused_status(&wrong, &id).await;
        assert_eq!(code, 403);
        assert!(
            body.contains("AccessDeniedException") && body.contains("signature"),
            "{body}"
        );
    }

    /// The start call's error for `source`, or `None` when the load was accepted.
    async fn refusal(client: &Client, source: &str) -> Option<String> {
        load(client, source)
            .send()
            .await
            .err()
            .map(|e| format!("{}", aws_sdk_neptunedata::error::DisplayErrorContext(e)))
    }

    #[tokio::test]
    async fn local_sources_are_read_only_inside_the_allowed_folders_and_only_regular_files() {
        let parent = tempdir();
        let data = parent.path().join("data");
        let allowed = tempdir();
        let server = Server::start(Config {
            local_source_dirs: vec![allowed.path().to_path_buf()],
            ..Config::new(
                data.clone(),
                "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
            )
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let client = client(&server);
        let inside = write(allowed.path(), "v/v.csv", "~id,~label\na,A\n");
        let outside = tempdir();
        write(outside.path(), "v.csv", "~id,~label\nsecret-id,A\n");
        // A link inside the allowed folder that leads out of it.
        std::os::unix::fs::symlink(
            outside.path().join("v.csv"),
            allowed.path().join("v/escape.csv"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let dotdot = format!(
            "{}/../{}/v.csv",
            allowed.path().display(),
            outside
                .path()
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
        );
        for source in [
            "/etc/passwd".to_owned(),
            "/dev/zero".to_owned(),
            "file:///etc/passwd".to_owned(),
            outside.path().display().to_string(),
            dotdot,
            allowed.path().join("v").display().to_string(),
        ] {
            let e = refusal(&client, &source)
                .await
                .unwrap_or_else(|| panic!("{source} was accepted"));
            assert!(
                e.contains("outside the folders") || e.contains("not a regular file"),
                "{source}: {e}"
            );
            assert!(!e.contains("root:") && !e.contains("secret-id"), "{e}");
        }
        std::fs::remove_file(allowed.path().join("v/escape.csv")).unwrap_or_else(|e| panic!("{e}"));
        let id = start(load(&client, &inside.display().to_string())).await;
        assert_eq!(status_of(&wait(&client, &id).await), "LOAD_COMPLETED");
        // An address others can reach needs signatures, or the user's explicit word.
        for addr in ["0.0.0.0:0", "[::]:0"] {
            let refused = Server::start(Config::new(
                parent.path().join("other"),
                addr.parse().unwrap_or_else(|e| panic!("{e}")),
            ));
            assert!(
                matches!(
                    refused,
                    Err(neptune_local::StartError::Unauthenticated { .. })
                ),
                "{addr}: {refused:?}"
            );
        }
    }

    /// `neptune-local serve` started from `/`, as a service is: the working directory is not
    /// a folder it may read, so `/etc/passwd` is refused and nothing of it reaches the error
    /// log; its own data folder is allowed.
    /// `neptune-local serve ARGS --addr 127.0.0.1:PORT` in its own process, killed on drop,
    /// once it accepts connections; and its address.
    fn serve_process(mut command: std::process::Command) -> (ServeProcess, std::net::SocketAddr) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let child = command
            .args(["--addr", &addr.to_string()])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let child = ServeProcess(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(std::time::Instant::now() < deadline, "it did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        (child, addr)
    }

    struct ServeProcess(std::process::Child);

    impl Drop for ServeProcess {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A start request's JSON body for `source`.
    fn start_body(source: &str) -> String {
        format!(
            r#"{{"source":"{source}","format":"csv","iamRoleArn":"{ROLE}","region":"us-east-1"}}"#
        )
    }

    /// `neptune-local serve` started from `/`, as a service is: the working directory is not
    /// a folder it may read, so `/etc/passwd` is refused and nothing of it reaches the error
    /// log; its own data folder is allowed.
    #[test]
    fn a_server_started_from_the_root_folder_reads_only_its_data_folder() {
        let data = tempdir();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_neptune-local"));
        command
            .current_dir("/")
            .arg("serve")
            .arg("--data-dir")
            .arg(data.path());
        let (_child, addr) = serve_process(command);
        let json = format!("Host: {addr}\r\nContent-Type: application/json\r\n");
        for source in ["/etc/passwd", "etc/passwd", "file:///etc/passwd"] {
            let answer = raw_with(addr, "POST", "/loader", &json, &start_body(source));
            assert!(
                answer.starts_with("HTTP/1.1 400") && answer.contains("outside the folders"),
                "{source}: {answer}"
            );
            assert!(!answer.contains("root:"), "{answer}");
        }
        let list = raw_with(addr, "GET", "/loader?details=true", &json, "");
        assert!(!list.contains("root:"), "{list}");
        let inside = write(data.path(), "in/v.csv", "~id,~label\na,A\n");
        let answer = raw_with(
            addr,
            "POST",
            "/loader",
            &json,
            &start_body(&inside.display().to_string()),
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    #[test]
    fn s3_sources_are_read_only_from_allowed_buckets() {
        let data = tempdir();
        let s3_root = tempdir();
        let bucket = s3_root.path().join("allowed");
        write(&bucket, "v/v.csv", "~id,~label\na,A\n");
        write(
            &s3_root.path().join("private"),
            "v/v.csv",
            "~id,~label\nsecret-id,A\n",
        );
        let s3 = testkit::LocalS3::start(s3_root.path());
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_neptune-local"));
        s3.aws_env(&mut command)
            .args(["serve", "--allow-bucket", "allowed", "--data-dir"])
            .arg(data.path());
        let (_child, addr) = serve_process(command);
        let json = format!("Host: {addr}\r\nContent-Type: application/json\r\n");
        let refused = raw_with(
            addr,
            "POST",
            "/loader",
            &json,
            &start_body("s3://private/v/"),
        );
        assert!(
            refused.starts_with("HTTP/1.1 400") && refused.contains("--allow-bucket private"),
            "{refused}"
        );
        assert!(!refused.contains("secret-id"), "{refused}");
        let accepted = raw_with(
            addr,
            "POST",
            "/loader",
            &json,
            &start_body("s3://allowed/v/"),
        );
        assert!(accepted.starts_with("HTTP/1.1 200"), "{accepted}");
    }

    /// A web page cannot drive the endpoint: not through a foreign `Host` (DNS rebinding), not
    /// with its `Origin`, not with a `text/plain` body (which needs no preflight). Form bodies,
    /// which Neptune takes, are taken.
    #[test]
    fn browsers_and_foreign_hosts_are_refused_and_form_bodies_taken() {
        let (data, server, _client) = local();
        let source = write(data.path(), "v/v.csv", "~id,~label\na,A\n");
        let addr = server.addr();
        let json = format!(
            r#"{{"source":"{}","format":"csv","iamRoleArn":"{ROLE}","region":"us-east-1"}}"#,
            source.display()
        );
        for (headers, want) in [
            (
                "Host: attacker.example:8182\r\nContent-Type: application/json\r\n".to_owned(),
                "HTTP/1.1 403",
            ),
            (
                format!(
                    "Host: {addr}\r\nOrigin: http://attacker.example\r\n\
                     Content-Type: application/json\r\n"
                ),
                "HTTP/1.1 403",
            ),
            (
                format!("Host: {addr}\r\nContent-Type: text/plain\r\n"),
                "HTTP/1.1 415",
            ),
            (
                format!(
                    "Host: localhost:{}\r\nContent-Type: application/json\r\n",
                    addr.port()
                ),
                "HTTP/1.1 200",
            ),
        ] {
            let answer = raw_with(addr, "POST", "/loader", &headers, &json);
            assert!(answer.starts_with(want), "{headers}: {answer}");
        }
        let form = format!(
            "source={}&format=csv&iamRoleArn={}&region=us-east-1&queueRequest=TRUE",
            source.display().to_string().replace('/', "%2F"),
            ROLE.replace(':', "%3A").replace('/', "%2F")
        );
        let answer = raw_with(
            addr,
            "POST",
            "/loader",
            &format!("Host: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n"),
            &form,
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    #[tokio::test]
    async fn malformed_oversized_and_incomplete_requests_get_neptune_errors() {
        let (_data, server, _client) = local();
        let required =
            r#""format":"csv","iamRoleArn":"arn:aws:iam::1:role/r","region":"us-east-1""#;
        let cases: Vec<(String, &str, &str)> = vec![
            ("{\"source\": ".to_owned(), "400", "BadRequestException"),
            ("[1,2,3]".to_owned(), "400", "BadRequestException"),
            ("\u{0}\u{1}garbage".to_owned(), "400", "BadRequestException"),
            (
                format!("{{{required}}}"),
                "400",
                "MissingParameterException",
            ),
            (
                format!(r#"{{"source":"/tmp",{required},"noSuchParameter":"x"}}"#),
                "400",
                "noSuchParameter",
            ),
            (
                format!(r#"{{"source":"/tmp",{required},"parallelism":7}}"#),
                "400",
                "parallelism",
            ),
            (
                format!(r#"{{"source":"{}",{required}}}"#, "x".repeat(3 << 20)),
                "413",
                "",
            ),
        ];
        for (body, code, says) in cases {
            let answer = raw(&server, "POST", "/loader", &body);
            let head: String = answer.chars().take(400).collect();
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {code}")) && answer.contains(says),
                "{}: {head}",
                body.chars().take(60).collect::<String>()
            );
        }
        // Unknown and malformed query parameters of the status call.
        let answer = raw(&server, "GET", "/loader?limit=0", "");
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        let answer = raw(&server, "GET", "/loader/some-id?details=maybe", "");
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        // The server still answers after all of them.
        assert!(raw(&server, "GET", "/status", "").starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn faults_can_be_injected() {
        let (_data, server, client) = local();
        let source = tempdir();
        write(source.path(), "v.csv", "~id\na\n");
        let path = source.path().display().to_string();

        server.faults().fail_next_requests(2);
        for _ in 0..2 {
            let failed = client.list_loader_jobs().send().await;
            let status = failed
                .err()
                .and_then(|e| e.raw_response().map(|r| r.status().as_u16()));
            assert_eq!(status, Some(500));
        }
        assert!(client.list_loader_jobs().send().await.is_ok());

        server
            .faults()
            .fail_next_load("LOAD_DATA_DEADLOCK")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(server.faults().fail_next_load("LOAD_IN_QUEUE").is_err());
        let deadlocked = wait(&client, &start(load(&client, &path)).await).await;
        assert_eq!(status_of(&deadlocked), "LOAD_DATA_DEADLOCK");

        server.faults().fail_next_reads(1);
        let unread = wait(&client, &start(load(&client, &path).mode(Mode::New)).await).await;
        assert_eq!(status_of(&unread), "LOAD_FAILED");
        assert_eq!(unread["failedFeeds"][0]["status"], "LOAD_S3_READ_ERROR");
        // The transient error clears on resubmission with AUTO.
        let retried = wait(&client, &start(load(&client, &path)).await).await;
        assert_eq!(status_of(&retried), "LOAD_COMPLETED");
        assert_eq!(counter(&retried, "totalRecords"), 1);
    }

    #[tokio::test]
    async fn bad_requests_get_neptune_errors() {
        let (_data, server, client) = local();
        let missing = load(&client, "/definitely/not/here").send().await;
        assert!(format!("{:?}", missing.err()).contains("does not exist/not reachable"));
        let opencypher = load(&client, "/tmp")
            .format(Format::Opencypher)
            .send()
            .await;
        assert!(format!("{:?}", opencypher.err()).contains("not supported"));
        // The raw HTTP form with string booleans and a bad mode.
        let body = serde_json::json!({
            "source": "/tmp", "format": "csv", "iamRoleArn": ROLE, "region": "us-east-1",
            "mode": "SOMETIMES", "failOnError": "FALSE"
        });
        let answer = raw(&server, "POST", "/loader", &body.to_string());
        assert!(
            answer.starts_with("HTTP/1.1 400") && answer.contains("mode"),
            "{answer}"
        );
        // A good request as query parameters, and the query forms of status and cancel
        // (§2.1, §2.6, §2.9).
        let source = tempdir();
        write(source.path(), "v.csv", "~id\na\n");
        let query = format!(
            "/loader?source={}&format=csv&iamRoleArn={ROLE}&region=us-east-1&failOnError=FALSE",
            source.path().display()
        );
        let answer = raw(&server, "POST", &query, "");
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.contains("loadId"),
            "{answer}"
        );
        let id = answer
            .split("\"loadId\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no loadId in {answer}"))
            .to_owned();
        assert_eq!(status_of(&wait(&client, &id).await), "LOAD_COMPLETED");
        let answer = raw(&server, "GET", &format!("/loader?loadId={id}"), "");
        assert!(answer.contains("LOAD_COMPLETED"), "{answer}");
        let answer = raw(&server, "DELETE", &format!("/loader?loadId={id}"), "");
        assert!(
            answer.starts_with("HTTP/1.1 404") && answer.contains("not active"),
            "{answer}"
        );
        let answer = raw(&server, "GET", "/status", "");
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.contains("healthy"),
            "{answer}"
        );
        let answer = raw(&server, "GET", "/gremlin", "");
        assert!(
            answer.starts_with("HTTP/1.1 404") && answer.contains("loader API only"),
            "{answer}"
        );
    }

    /// A bare HTTP/1.1 request, returning the whole answer.
    fn raw(server: &Server, method: &str, target: &str, body: &str) -> String {
        raw_with(
            server.addr(),
            method,
            target,
            &format!(
                "Host: {}\r\nContent-Type: application/json\r\n",
                server.addr()
            ),
            body,
        )
    }

    /// A bare HTTP/1.1 request with these header lines (each ending in CRLF).
    pub(super) fn raw_with(
        addr: std::net::SocketAddr,
        method: &str,
        target: &str,
        headers: &str,
        body: &str,
    ) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("{e}"));
        let request = format!(
            "{method} {target} HTTP/1.1\r\n{headers}Content-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .unwrap_or_else(|e| panic!("{e}"));
        answer
    }
}

mod sources {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    #[tokio::test]
    async fn gzip_files_load() {
        let (data, _server, client) = local();
        let source = tempdir();
        let file =
            std::fs::File::create(source.path().join("v.csv.gz")).unwrap_or_else(|e| panic!("{e}"));
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        gz.write_all(b"~id,name:String\nz,zipped\n")
            .unwrap_or_else(|e| panic!("{e}"));
        gz.finish().unwrap_or_else(|e| panic!("{e}"));
        let payload = wait(
            &client,
            &start(load(&client, &source.path().display().to_string())).await,
        )
        .await;
        assert_eq!(status_of(&payload), "LOAD_COMPLETED", "{payload}");
        assert_eq!(values(data.path(), "z", "name"), ["zipped"]);
    }

    /// The binary, serving on a free port with the environment given; returns its endpoint.
    struct Child(std::process::Child);

    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[tokio::test]
    async fn s3_prefixes_are_read_with_the_standard_aws_configuration() {
        let s3_root = tempdir();
        let bucket = s3_root.path().join("graph-bucket");
        write(
            &bucket,
            "run-1/vertices/v.csv",
            "~id,~label\na,person\nb,person\n",
        );
        write(
            &bucket,
            "run-1/edges/e.csv",
            "~id,~from,~to,~label\ne,a,b,knows\n",
        );
        write(&bucket, "run-10/vertices/v.csv", "~id,~label\nz,other\n");
        let s3 = testkit::LocalS3::start(s3_root.path());
        let data = tempdir();
        let mut child = s3
            .aws_env(&mut Command::new(env!("CARGO_BIN_EXE_neptune-local")))
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--allow-bucket",
                "graph-bucket",
            ])
            .arg("--data-dir")
            .arg(data.path())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
        let child = Child(child);
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stderr), &mut line)
            .unwrap_or_else(|e| panic!("{e}"));
        let endpoint = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no endpoint in `{line}`"))
            .to_owned();
        let client = client_with_secret(&endpoint, SECRET);
        // `s3://bucket/run-1/` must not match run-10 (§2.2: end prefixes with `/`).
        let id = start(load(&client, "s3://graph-bucket/run-1/")).await;
        let payload = wait(&client, &id).await;
        assert_eq!(status_of(&payload), "LOAD_COMPLETED", "{payload}");
        assert_eq!(counter(&payload, "totalRecords"), 3);
        // Without the slash, the prefix matches run-10 too, as S3 lists it.
        let wide = wait(
            &client,
            &start(load(&client, "s3://graph-bucket/run-1").mode(Mode::New)).await,
        )
        .await;
        assert_eq!(counter(&wide, "totalRecords"), 4);
        let missing = load(&client, "s3://graph-bucket/nothing-here/")
            .send()
            .await;
        assert!(format!("{:?}", missing.err()).contains("does not exist"));
        drop(child);
        let stats = graph(data.path()).stats().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((stats.vertices, stats.edges), (3, 1));
    }
}

mod end_to_end {
    use super::*;

    /// The toolkit's own output: datagen, then transform, then a load; `stats` must match the
    /// transform manifest's counts per label, and `show` must find a person by email.
    #[tokio::test]
    async fn transform_output_of_10000_records_loads_without_errors() {
        let root = tempdir();
        datagen::generate(&datagen::Config {
            root: root.path().to_path_buf(),
            records: 10_000,
            ..datagen::Config::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_neptune-local"))
            .arg("--help")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(String::from_utf8_lossy(&out.stdout).contains("Examples"));
        transform::run(
            &transform::Options::new(
                transform::Location::Local(root.path().to_path_buf()),
                transform::Location::Local(root.path().to_path_buf()),
            )
            .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let batch = root.path().join("datasets/graph/initial");
        let manifest: Value = serde_json::from_slice(
            &std::fs::read(batch.join("manifest.json")).unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));

        let (data, _server, client) = local();
        let vertices =
            start(load(&client, &batch.join("vertices").display().to_string()).queue_request(true))
                .await;
        let edges = start(
            load(&client, &batch.join("edges").display().to_string())
                .queue_request(true)
                .dependencies(&vertices),
        )
        .await;
        for id in [&vertices, &edges] {
            let payload = wait(&client, id).await;
            assert_eq!(status_of(&payload), "LOAD_COMPLETED", "{payload}");
            for name in [
                "parsingErrors",
                "datatypeMismatchErrors",
                "insertErrors",
                "totalDuplicates",
            ] {
                assert_eq!(counter(&payload, name), 0, "{name}: {payload}");
            }
        }
        let stats = graph(data.path()).stats().unwrap_or_else(|e| panic!("{e}"));
        let expected = |kind: &str| -> std::collections::BTreeMap<String, u64> {
            manifest[kind]
                .as_object()
                .unwrap_or_else(|| panic!("manifest has no {kind}: {manifest}"))
                .iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        };
        assert_eq!(stats.vertex_labels, expected("vertices"));
        assert_eq!(stats.edge_labels, expected("edges"));

        // `show` finds a vertex by a property value and lists its neighbours.
        let email = std::fs::read_to_string(
            root.path()
                .join("datasets/sources/initial/first_party/first_party_data_full.csv"),
        )
        .ok()
        .and_then(|t| {
            t.lines().nth(1).map(|l| {
                l.split(',')
                    .nth(1)
                    .unwrap_or_default()
                    .trim()
                    .to_lowercase()
            })
        })
        .unwrap_or_default();
        let shown = std::process::Command::new(env!("CARGO_BIN_EXE_neptune-local"))
            .args(["show", &email, "--data-dir"])
            .arg(data.path())
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(
            shown.status.success(),
            "{}",
            String::from_utf8_lossy(&shown.stderr)
        );
        assert!(
            text.contains("[Email]") && text.contains("hasEmail"),
            "{text}"
        );
        let stats_cli = std::process::Command::new(env!("CARGO_BIN_EXE_neptune-local"))
            .args(["stats", "--json", "--data-dir"])
            .arg(data.path())
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let cli: Value =
            serde_json::from_slice(&stats_cli.stdout).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cli["vertices"].as_u64(), Some(stats.vertices));
    }
}
