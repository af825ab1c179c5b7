//! The Glue side through the real `aws-sdk-glue` client: against moto's server (jobs, runs,
//! the Data Catalog), and, for what moto does not do (UpdateJob, BatchStopJobRun, runs that
//! fail, time out or sit in an unknown state), against canned answers (`aws-smithy-mocks`)
//! that still go through the SDK's request building and response parsing.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use aws_sdk_glue::operation::batch_stop_job_run::BatchStopJobRunOutput;
use aws_sdk_glue::operation::get_job::GetJobOutput;
use aws_sdk_glue::operation::get_job_run::GetJobRunOutput;
use aws_sdk_glue::operation::get_job_runs::GetJobRunsOutput;
use aws_sdk_glue::operation::start_job_run::StartJobRunOutput;
use aws_sdk_glue::operation::update_job::UpdateJobOutput;
use aws_sdk_glue::types::{Job, JobCommand, JobRun, JobRunState, WorkerType as SdkWorker};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use idgraph_core::SourceSchemas;
use idgraph_storage::Store;
use spark_engine::catalog::CatalogPlan;
use spark_engine::{EngineError, GlueClient, GluePlan, JobAction};
use testkit::moto::Moto;

const ROLE: &str = "arn:aws:iam::123456789012:role/idgraph-glue";
/// The plan's Spark settings as the job's `--conf` parameter.
const SPARK_CONF: &str = "spark.idgraph.chunkBytes=1048576 --conf spark.idgraph.driverReadBytes=0";

fn moto_client(moto: &Moto) -> aws_sdk_glue::Client {
    let config = aws_sdk_glue::Config::builder()
        .behavior_version(aws_sdk_glue::config::BehaviorVersion::latest())
        .region(aws_sdk_glue::config::Region::new("us-east-1"))
        .endpoint_url(moto.endpoint())
        .credentials_provider(aws_sdk_glue::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .build();
    aws_sdk_glue::Client::from_conf(config)
}

fn plan() -> GluePlan {
    let mut plan = GluePlan::new("idgraph-test", ROLE, "s3://scripts/idgraph");
    plan.workers = 3;
    plan.timeout_minutes = 30;
    plan.poll_initial = Duration::from_millis(20);
    plan.poll_max = Duration::from_millis(50);
    plan.deadline = Duration::from_secs(20);
    plan.spark_conf = vec![
        "spark.idgraph.chunkBytes=1048576".to_owned(),
        "spark.idgraph.driverReadBytes=0".to_owned(),
    ];
    plan
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
        .block_on(f)
}

mod moto_jobs {
    use super::*;

    #[test]
    fn the_job_is_created_as_planned_left_alone_when_unchanged_and_a_run_followed_to_success() {
        let moto = Moto::start();
        let glue = GlueClient::from_client(moto_client(&moto)).unwrap_or_else(|e| panic!("{e}"));
        let plan = plan();
        assert_eq!(
            glue.ensure_job(&plan).unwrap_or_else(|e| panic!("{e}")),
            JobAction::Created
        );
        let job = block(moto_client(&moto).get_job().job_name("idgraph-test").send())
            .unwrap_or_else(|e| panic!("{e}"))
            .job
            .unwrap_or_else(|| panic!("no job"));
        let command = job.command().unwrap_or_else(|| panic!("no command"));
        assert_eq!(command.name(), Some("glueetl"));
        assert_eq!(
            command.script_location(),
            Some("s3://scripts/idgraph/idgraph_transform.py")
        );
        assert_eq!(command.python_version(), Some("3"));
        assert_eq!(job.glue_version(), Some("5.0"));
        assert_eq!(job.worker_type(), Some(&SdkWorker::G1X));
        assert_eq!(job.number_of_workers(), Some(3));
        assert_eq!(job.timeout(), Some(30));
        assert_eq!(job.role(), Some(ROLE));
        let defaults = job.default_arguments().cloned().unwrap_or_default();
        assert_eq!(
            defaults
                .get("--additional-python-modules")
                .map(String::as_str),
            Some("xxhash==3.5.0")
        );
        assert_eq!(
            defaults.get("--sources-schema").map(String::as_str),
            Some("s3://scripts/idgraph/sources.toml")
        );
        // The Spark settings, as Glue's one `--conf` parameter.
        assert_eq!(defaults.get("--conf").map(String::as_str), Some(SPARK_CONF));
        // Nothing differs: nothing is sent (moto has no UpdateJob; a call would fail).
        assert_eq!(
            glue.ensure_job(&plan).unwrap_or_else(|e| panic!("{e}")),
            JobAction::Unchanged
        );

        let arguments = [
            ("--input", "s3://data/root"),
            ("--output", "s3://data/root"),
            ("--batch", "20260115_060000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let outcome = glue
            .run_and_follow(&plan, arguments, &AtomicBool::new(false))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(outcome.state, "SUCCEEDED");
        assert!(!outcome.run_id.is_empty());
        let run = block(
            moto_client(&moto)
                .get_job_run()
                .job_name("idgraph-test")
                .run_id(&outcome.run_id)
                .send(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .job_run
        .unwrap_or_else(|| panic!("no run"));
        let sent = run.arguments().cloned().unwrap_or_default();
        assert_eq!(
            sent.get("--batch").map(String::as_str),
            Some("20260115_060000")
        );
        assert!(outcome.dpu_seconds.is_some_and(|d| d >= 0.0));
    }
}

mod canned_answers {
    use super::*;

    fn existing_job(workers: i32) -> Job {
        let plan = plan();
        Job::builder()
            .name("idgraph-test")
            .role(ROLE)
            .command(
                JobCommand::builder()
                    .name("glueetl")
                    .script_location("s3://scripts/idgraph/idgraph_transform.py")
                    .python_version("3")
                    .build(),
            )
            .glue_version("5.0")
            .worker_type(SdkWorker::G1X)
            .number_of_workers(workers)
            .timeout(i32::try_from(plan.timeout_minutes).unwrap_or(0))
            .set_default_arguments(Some(
                [
                    ("--job-language", "python"),
                    ("--additional-python-modules", "xxhash==3.5.0"),
                    ("--sources-schema", "s3://scripts/idgraph/sources.toml"),
                    ("--conf", SPARK_CONF),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ))
            .build()
    }

    #[test]
    fn a_job_that_differs_from_the_plan_is_updated_to_it() {
        let get = mock!(aws_sdk_glue::Client::get_job)
            .then_output(|| GetJobOutput::builder().job(existing_job(10)).build());
        let update = mock!(aws_sdk_glue::Client::update_job)
            .match_requests(|r| {
                r.job_name() == Some("idgraph-test")
                    && r.job_update().is_some_and(|u| {
                        u.number_of_workers() == Some(3)
                            && u.glue_version() == Some("5.0")
                            && u.default_arguments().and_then(|a| a.get("--conf"))
                                == Some(&SPARK_CONF.to_owned())
                            && u.command().and_then(|c| c.script_location())
                                == Some("s3://scripts/idgraph/idgraph_transform.py")
                    })
            })
            .then_output(|| UpdateJobOutput::builder().job_name("idgraph-test").build());
        let client = mock_client!(aws_sdk_glue, RuleMode::MatchAny, &[&get, &update]);
        let glue = GlueClient::from_client(client).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            glue.ensure_job(&plan()).unwrap_or_else(|e| panic!("{e}")),
            JobAction::Updated
        );
        assert_eq!(update.num_calls(), 1);

        // The same job with the plan's workers: no update.
        let get = mock!(aws_sdk_glue::Client::get_job)
            .then_output(|| GetJobOutput::builder().job(existing_job(3)).build());
        let update = mock!(aws_sdk_glue::Client::update_job)
            .then_output(|| UpdateJobOutput::builder().build());
        let client = mock_client!(aws_sdk_glue, RuleMode::MatchAny, &[&get, &update]);
        let glue = GlueClient::from_client(client).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            glue.ensure_job(&plan()).unwrap_or_else(|e| panic!("{e}")),
            JobAction::Unchanged
        );
        assert_eq!(update.num_calls(), 0);
    }

    fn run_in(state: JobRunState, message: Option<&str>) -> GetJobRunOutput {
        GetJobRunOutput::builder()
            .job_run(
                JobRun::builder()
                    .id("jr_1")
                    .job_run_state(state)
                    .execution_time(42)
                    .number_of_workers(3)
                    .set_error_message(message.map(str::to_owned))
                    .build(),
            )
            .build()
    }

    fn start() -> aws_smithy_mocks::Rule {
        mock!(aws_sdk_glue::Client::start_job_run)
            .then_output(|| StartJobRunOutput::builder().job_run_id("jr_1").build())
    }

    /// GetJobRuns with these runs of the job (none in flight unless a test says so).
    fn earlier_runs(runs: Vec<JobRun>) -> aws_smithy_mocks::Rule {
        mock!(aws_sdk_glue::Client::get_job_runs).then_output(move || {
            GetJobRunsOutput::builder()
                .set_job_runs(Some(runs.clone()))
                .build()
        })
    }

    fn stop_rule() -> aws_smithy_mocks::Rule {
        mock!(aws_sdk_glue::Client::batch_stop_job_run)
            .match_requests(|r| r.job_run_ids() == ["jr_1".to_owned()])
            .then_output(|| BatchStopJobRunOutput::builder().build())
    }

    #[test]
    fn every_failed_terminal_state_ends_the_run_with_its_message() {
        for state in [
            JobRunState::Failed,
            JobRunState::Stopped,
            JobRunState::Timeout,
            JobRunState::Error,
        ] {
            let name = state.as_str().to_owned();
            let polls = mock!(aws_sdk_glue::Client::get_job_run)
                .sequence()
                .output(|| run_in(JobRunState::Starting, None))
                .output(|| run_in(JobRunState::Running, None))
                .output(move || run_in(state.clone(), Some("No module named 'xxhash'")))
                .build();
            let (start, stop, earlier) = (start(), stop_rule(), earlier_runs(Vec::new()));
            let client = mock_client!(
                aws_sdk_glue,
                RuleMode::MatchAny,
                &[&earlier, &start, &polls, &stop]
            );
            let glue = GlueClient::from_client(client).unwrap_or_else(|e| panic!("{e}"));
            let result = glue.run_and_follow(&plan(), Default::default(), &AtomicBool::new(false));
            match result {
                Err(EngineError::RunFailed {
                    state,
                    message,
                    run_id,
                    seconds,
                    ..
                }) => {
                    assert_eq!(state, name);
                    assert_eq!(message, "No module named 'xxhash'");
                    assert_eq!((run_id.as_str(), seconds), ("jr_1", 42));
                }
                other => panic!("{name}: expected RunFailed, got {other:?}"),
            }
            assert_eq!(polls.num_calls(), 3, "{name}");
            assert_eq!(stop.num_calls(), 0, "{name}: a finished run is not stopped");
        }
    }

    /// Partitions go at most 100 per BatchCreatePartition call (a request with more matches no
    /// rule and fails the test), and a partition the catalog refuses is reported by name while
    /// the others are created.
    #[test]
    fn partitions_are_created_100_at_a_time_and_refused_ones_reported() {
        use aws_sdk_glue::operation::batch_create_partition::BatchCreatePartitionOutput;
        use aws_sdk_glue::operation::create_table::CreateTableOutput;
        use aws_sdk_glue::operation::get_database::GetDatabaseOutput;
        use aws_sdk_glue::operation::get_partitions::GetPartitionsOutput;
        use aws_sdk_glue::operation::get_tables::GetTablesOutput;
        use aws_sdk_glue::types::{Database, ErrorDetail, PartitionError};

        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let write = |relative: String| {
            let path = root.path().join(relative);
            std::fs::create_dir_all(path.parent().unwrap_or(root.path()))
                .and_then(|()| std::fs::write(&path, "h\n"))
                .unwrap_or_else(|e| panic!("{e}"));
        };
        for dataset in idgraph_core::Dataset::ALL {
            write(format!(
                "datasets/sources/initial/{0}/{0}.csv",
                dataset.name()
            ));
        }
        for i in 0..105 {
            write(format!(
                "datasets/sources/incremental/first_party/20260115_{:02}{:02}00/f.csv",
                i / 60,
                i % 60
            ));
        }
        const REFUSED: &str = "20260115_000100";
        let rules = [
            mock!(aws_sdk_glue::Client::get_database).then_output(|| {
                GetDatabaseOutput::builder()
                    .database(
                        Database::builder()
                            .name("idgraph")
                            .build()
                            .unwrap_or_else(|e| panic!("{e}")),
                    )
                    .build()
            }),
            mock!(aws_sdk_glue::Client::get_tables)
                .then_output(|| GetTablesOutput::builder().build()),
            mock!(aws_sdk_glue::Client::create_table)
                .then_output(|| CreateTableOutput::builder().build()),
            mock!(aws_sdk_glue::Client::get_partitions)
                .then_output(|| GetPartitionsOutput::builder().build()),
            mock!(aws_sdk_glue::Client::batch_create_partition)
                .match_requests(|r| r.partition_input_list().len() <= 100)
                .then_compute_output(|r| {
                    let refused = r
                        .partition_input_list()
                        .iter()
                        .any(|p| p.values() == [REFUSED.to_owned()]);
                    let mut out = BatchCreatePartitionOutput::builder();
                    if refused {
                        out = out.errors(
                            PartitionError::builder()
                                .partition_values(REFUSED)
                                .error_detail(
                                    ErrorDetail::builder()
                                        .error_code("ResourceNumberLimitExceededException")
                                        .error_message("too many partitions")
                                        .build(),
                                )
                                .build(),
                        );
                    }
                    out.build()
                }),
        ];
        let client = mock_client!(aws_sdk_glue, RuleMode::MatchAny, rules.iter());
        let glue = GlueClient::from_client(client).unwrap_or_else(|e| panic!("{e}"));
        let plan = CatalogPlan {
            database: "idgraph".to_owned(),
            root: root.path().display().to_string(),
            drop_extra_columns: false,
        };
        let report = glue
            .sync_catalog(&plan, SourceSchemas::embedded(), &Store::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let first_party = &report.tables[0];
        assert_eq!(first_party.table, "first_party");
        assert_eq!(first_party.partitions_created.len(), 105);
        assert!(!first_party.partitions_created.contains(&REFUSED.to_owned()));
        assert_eq!(
            first_party.partition_errors,
            vec![(
                REFUSED.to_owned(),
                "ResourceNumberLimitExceededException: too many partitions".to_owned()
            )]
        );
        assert!(!report.complete());
        // first_party: 100 + 6; the three other tables: one call each.
        assert_eq!(rules[4].num_calls(), 5);
    }

    /// GetTables and GetPartitions answer in pages (moto never does): every page is read.
    #[test]
    fn the_catalog_is_read_page_by_page() {
        use aws_sdk_glue::operation::get_partitions::GetPartitionsOutput;
        use aws_sdk_glue::operation::get_tables::GetTablesOutput;
        use aws_sdk_glue::types::{Column, Partition, StorageDescriptor, Table};

        fn table(schema: &idgraph_core::DatasetSchema) -> Table {
            let name = schema.dataset.name();
            let columns = schema
                .column_names()
                .map(|c| {
                    Column::builder()
                        .name(c)
                        .r#type("string")
                        .build()
                        .unwrap_or_else(|e| panic!("{e}"))
                })
                .collect();
            Table::builder()
                .name(name)
                .storage_descriptor(
                    StorageDescriptor::builder()
                        .set_columns(Some(columns))
                        .location(format!(
                            "s3://data/root/datasets/sources/incremental/{name}/"
                        ))
                        .build(),
                )
                .build()
                .unwrap_or_else(|e| panic!("{e}"))
        }
        let tables: Vec<Table> = SourceSchemas::embedded().iter().map(table).collect();
        let (first, second) = (tables[..2].to_vec(), tables[2..].to_vec());
        // Each page is given only to the request that asks for it (by its token).
        let tables_page_1 = mock!(aws_sdk_glue::Client::get_tables)
            .match_requests(|r| r.next_token().is_none())
            .sequence()
            .output(move || {
                GetTablesOutput::builder()
                    .set_table_list(Some(first.clone()))
                    .next_token("page-2")
                    .build()
            })
            .repeatedly()
            .build();
        let tables_page_2 = mock!(aws_sdk_glue::Client::get_tables)
            .match_requests(|r| r.next_token() == Some("page-2"))
            .sequence()
            .output(move || {
                GetTablesOutput::builder()
                    .set_table_list(Some(second.clone()))
                    .build()
            })
            .repeatedly()
            .build();
        let partition = |value: &str| Partition::builder().values(value).build();
        let partitions_page_1 = mock!(aws_sdk_glue::Client::get_partitions)
            .match_requests(|r| r.next_token().is_none())
            .sequence()
            .output(move || {
                GetPartitionsOutput::builder()
                    .partitions(partition("initial"))
                    .partitions(partition("20260115_060000"))
                    .next_token("page-2")
                    .build()
            })
            .repeatedly()
            .build();
        let partitions_page_2 = mock!(aws_sdk_glue::Client::get_partitions)
            .match_requests(|r| r.next_token() == Some("page-2"))
            .sequence()
            .output(move || {
                GetPartitionsOutput::builder()
                    .partitions(partition("20260116_060000"))
                    .build()
            })
            .repeatedly()
            .build();
        let client = mock_client!(
            aws_sdk_glue,
            RuleMode::MatchAny,
            &[
                &tables_page_1,
                &tables_page_2,
                &partitions_page_1,
                &partitions_page_2
            ]
        );
        let glue = GlueClient::from_client(client).unwrap_or_else(|e| panic!("{e}"));
        let found = glue
            .sources_from_catalog("idgraph", SourceSchemas::embedded())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(found.root, "s3://data/root");
        assert_eq!(found.batches, ["20260115_060000", "20260116_060000"]);
        assert_eq!(tables_page_2.num_calls(), 1);
    }

    /// A command killed while following a run leaves it going; the next one follows that run
    /// (same batch and output) instead of starting a second writer of the same batch. A run of
    /// another batch, or one that has ended, is not taken.
    #[test]
    fn a_run_left_in_flight_for_the_same_batch_is_followed_not_started_again() {
        let arguments: std::collections::HashMap<String, String> = [
            ("--batch", "20260115_060000"),
            ("--output", "s3://data/root"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let run = |id: &str, state: JobRunState, batch: &str| {
            let mut args = arguments.clone();
            args.insert("--batch".to_owned(), batch.to_owned());
            JobRun::builder()
                .id(id)
                .job_run_state(state)
                .set_arguments(Some(args))
                .build()
        };
        let earlier = earlier_runs(vec![
            run("jr_other", JobRunState::Running, "20260116_060000"),
            run("jr_done", JobRunState::Failed, "20260115_060000"),
            run("jr_left", JobRunState::Running, "20260115_060000"),
        ]);
        let polls = mock!(aws_sdk_glue::Client::get_job_run)
            .match_requests(|r| r.run_id() == Some("jr_left"))
            .then_output(|| run_in(JobRunState::Succeeded, None));
        let start = start();
        let client = mock_client!(
            aws_sdk_glue,
            RuleMode::MatchAny,
            &[&earlier, &start, &polls]
        );
        let glue = GlueClient::from_client(client).unwrap_or_else(|e| panic!("{e}"));
        let outcome = glue
            .run_and_follow(&plan(), arguments, &AtomicBool::new(false))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (outcome.run_id.as_str(), outcome.state.as_str()),
            ("jr_left", "SUCCEEDED")
        );
        assert_eq!(start.num_calls(), 0, "no second run");
    }

    #[test]
    fn an_unknown_state_keeps_the_run_followed_until_it_succeeds() {
        let polls = mock!(aws_sdk_glue::Client::get_job_run)
            .sequence()
            .output(|| run_in(JobRunState::from("PAUSED_FOR_MAINTENANCE"), None))
            .output(|| run_in(JobRunState::Waiting, None))
            .output(|| run_in(JobRunState::Succeeded, None))
            .build();
        let (start, earlier) = (start(), earlier_runs(Vec::new()));
        let client = mock_client!(
            aws_sdk_glue,
            RuleMode::MatchAny,
            &[&earlier, &start, &polls]
        );
        let glue = GlueClient::from_client(client).unwrap_or_else(|e| panic!("{e}"));
        let outcome = glue
            .run_and_follow(&plan(), Default::default(), &AtomicBool::new(false))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(outcome.state, "SUCCEEDED");
        assert_eq!(polls.num_calls(), 3);
        // No DPU-seconds from Glue: execution time x workers x DPUs per G.1X worker.
        assert_eq!(outcome.dpu_seconds, Some(42.0 * 3.0));
    }

    #[test]
    fn a_run_still_going_at_the_deadline_or_on_a_signal_is_stopped() {
        for interrupt in [false, true] {
            let polls = mock!(aws_sdk_glue::Client::get_job_run)
                .sequence()
                .output(|| run_in(JobRunState::Running, None))
                .repeatedly()
                .build();
            let (start, stop, earlier) = (start(), stop_rule(), earlier_runs(Vec::new()));
            let client = mock_client!(
                aws_sdk_glue,
                RuleMode::MatchAny,
                &[&earlier, &start, &polls, &stop]
            );
            let glue = GlueClient::from_client(client).unwrap_or_else(|e| panic!("{e}"));
            let mut plan = plan();
            plan.deadline = Duration::from_millis(if interrupt { 60_000 } else { 300 });
            let flag = AtomicBool::new(interrupt);
            let result = glue.run_and_follow(&plan, Default::default(), &flag);
            match (interrupt, result) {
                (false, Err(EngineError::Deadline { state, run_id, .. })) => {
                    assert_eq!((state.as_str(), run_id.as_str()), ("RUNNING", "jr_1"));
                    assert!(polls.num_calls() >= 2, "polled until the deadline");
                }
                (true, Err(EngineError::Interrupted { run_id, .. })) => {
                    assert_eq!(run_id, "jr_1");
                }
                (_, other) => panic!("interrupt {interrupt}: got {other:?}"),
            }
            assert_eq!(stop.num_calls(), 1, "the run is asked to stop");
        }
    }
}

mod moto_catalog {
    use super::*;
    use aws_sdk_glue::types::{Column, TableInput};

    const BATCHES: usize = 105;

    fn store(moto: &Moto) -> Store {
        Store::for_endpoint(&moto.endpoint(), "testing", "testing")
    }

    /// Sources under s3://data/root: the initial batch of every dataset, and 105 incremental
    /// batches of first_party (two BatchCreatePartition calls of at most 100).
    fn sources(moto: &Moto) -> Vec<String> {
        moto.create_bucket("data");
        let store = store(moto);
        let put = |key: String| {
            store
                .write(
                    &format!("s3://data/root/{key}")
                        .parse()
                        .unwrap_or_else(|e| panic!("{e}")),
                    b"h\n".to_vec(),
                )
                .unwrap_or_else(|e| panic!("{e}"));
        };
        for dataset in idgraph_core::Dataset::ALL {
            put(format!(
                "datasets/sources/initial/{0}/{0}_data_full.csv",
                dataset.name()
            ));
        }
        let batches: Vec<String> = (0..BATCHES)
            .map(|i| format!("20260115_{:02}{:02}00", i / 60, i % 60))
            .collect();
        for batch in &batches {
            put(format!(
                "datasets/sources/incremental/first_party/{batch}/first_party_data_inc.csv"
            ));
        }
        batches
    }

    fn table(moto: &Moto, name: &str) -> aws_sdk_glue::types::Table {
        block(
            moto_client(moto)
                .get_table()
                .database_name("idgraph")
                .name(name)
                .send(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .table
        .unwrap_or_else(|| panic!("no table {name}"))
    }

    fn partitions(moto: &Moto, name: &str) -> Vec<(String, String)> {
        let out = block(
            moto_client(moto)
                .get_partitions()
                .database_name("idgraph")
                .table_name(name)
                .send(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut found: Vec<(String, String)> = out
            .partitions()
            .iter()
            .map(|p| {
                (
                    p.values().join("/"),
                    p.storage_descriptor()
                        .and_then(|s| s.location())
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect();
        found.sort();
        found
    }

    fn put_table(moto: &Moto, input: TableInput) {
        block(
            moto_client(moto)
                .update_table()
                .database_name("idgraph")
                .table_input(input)
                .send(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// The table's definition as a TableInput with its columns changed by `edit`.
    fn edited(moto: &Moto, name: &str, edit: impl FnOnce(&mut Vec<Column>)) -> TableInput {
        let table = table(moto, name);
        let storage = table
            .storage_descriptor()
            .cloned()
            .unwrap_or_else(|| panic!("no storage"));
        let mut columns = storage.columns().to_vec();
        edit(&mut columns);
        TableInput::builder()
            .name(name)
            .set_parameters(table.parameters().cloned())
            .set_partition_keys(Some(table.partition_keys().to_vec()))
            .storage_descriptor(
                aws_sdk_glue::types::StorageDescriptor::builder()
                    .set_columns(Some(columns))
                    .set_location(storage.location().map(str::to_owned))
                    .set_input_format(storage.input_format().map(str::to_owned))
                    .set_output_format(storage.output_format().map(str::to_owned))
                    .set_serde_info(storage.serde_info().cloned())
                    .build(),
            )
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn column(name: &str) -> Column {
        Column::builder()
            .name(name)
            .r#type("string")
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn sync_writes_the_schemas_and_batches_exactly_and_a_second_sync_changes_nothing() {
        let moto = Moto::start();
        let batches = sources(&moto);
        let glue = GlueClient::from_client(moto_client(&moto)).unwrap_or_else(|e| panic!("{e}"));
        let schemas = SourceSchemas::embedded();
        let plan = CatalogPlan {
            database: "idgraph".to_owned(),
            root: "s3://data/root".to_owned(),
            drop_extra_columns: false,
        };
        let first = glue
            .sync_catalog(&plan, schemas, &store(&moto))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(first.database_created && first.changed() && first.complete());
        for schema in schemas.iter() {
            let name = schema.dataset.name();
            let table = table(&moto, name);
            let storage = table
                .storage_descriptor()
                .unwrap_or_else(|| panic!("storage"));
            let columns: Vec<(&str, Option<&str>)> = storage
                .columns()
                .iter()
                .map(|c| (c.name(), c.r#type()))
                .collect();
            let wanted: Vec<(&str, Option<&str>)> =
                schema.column_names().map(|c| (c, Some("string"))).collect();
            assert_eq!(columns, wanted, "{name}: columns in file order");
            let serde = storage.serde_info().unwrap_or_else(|| panic!("serde"));
            assert_eq!(
                serde.serialization_library(),
                Some("org.apache.hadoop.hive.serde2.OpenCSVSerde")
            );
            let params = serde.parameters().cloned().unwrap_or_default();
            assert_eq!(params.get("quoteChar").map(String::as_str), Some("\""));
            assert_eq!(params.get("separatorChar").map(String::as_str), Some(","));
            assert_eq!(
                table
                    .parameters()
                    .and_then(|p| p.get("skip.header.line.count"))
                    .map(String::as_str),
                Some("1")
            );
            assert_eq!(
                storage.location(),
                Some(format!("s3://data/root/datasets/sources/incremental/{name}/").as_str())
            );
            let mut want = vec![(
                "initial".to_owned(),
                format!("s3://data/root/datasets/sources/initial/{name}/"),
            )];
            if name == "first_party" {
                want.extend(batches.iter().map(|b| {
                    (
                        b.clone(),
                        format!("s3://data/root/datasets/sources/incremental/first_party/{b}/"),
                    )
                }));
            }
            want.sort();
            assert_eq!(partitions(&moto, name), want, "{name}: partitions");
        }
        let created: usize = first
            .tables
            .iter()
            .map(|t| t.partitions_created.len())
            .sum();
        assert_eq!(created, 4 + BATCHES);

        let second = glue
            .sync_catalog(&plan, schemas, &store(&moto))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!second.changed(), "{second:?}");
        assert!(second.tables.iter().all(|t| t.action == "unchanged"));

        // transform --glue-database reads the root and the batches back.
        let found = glue
            .sources_from_catalog("idgraph", schemas)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(found.root, "s3://data/root");
        assert_eq!(found.batches, batches);
    }

    #[test]
    fn a_changed_table_is_updated_an_extra_column_is_reported_not_dropped_and_a_wrong_one_refused()
    {
        let moto = Moto::start();
        sources(&moto);
        let glue = GlueClient::from_client(moto_client(&moto)).unwrap_or_else(|e| panic!("{e}"));
        let schemas = SourceSchemas::embedded();
        let mut plan = CatalogPlan {
            database: "idgraph".to_owned(),
            root: "s3://data/root".to_owned(),
            drop_extra_columns: false,
        };
        glue.sync_catalog(&plan, schemas, &store(&moto))
            .unwrap_or_else(|e| panic!("{e}"));

        // A column whose type was changed in the catalog: the schema's definition is restored.
        put_table(
            &moto,
            edited(&moto, "cookie", |c| {
                c[5] = Column::builder()
                    .name("session_duration_sec")
                    .r#type("int")
                    .build()
                    .unwrap_or_else(|e| panic!("{e}"));
            }),
        );
        let report = glue
            .sync_catalog(&plan, schemas, &store(&moto))
            .unwrap_or_else(|e| panic!("{e}"));
        let cookie = report.tables.iter().find(|t| t.table == "cookie");
        assert_eq!(cookie.map(|t| t.action), Some("updated"));
        let types: BTreeSet<String> = table(&moto, "cookie")
            .storage_descriptor()
            .map(|s| {
                s.columns()
                    .iter()
                    .filter_map(|c| c.r#type().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(types, BTreeSet::from(["string".to_owned()]));

        // A column renamed in the catalog: --glue-database refuses the table, naming it and
        // the column; a sync reports the unknown name instead of dropping it.
        put_table(
            &moto,
            edited(&moto, "clickstream", |c| c[1] = column("clientip")),
        );
        let refused = glue
            .sources_from_catalog("idgraph", schemas)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            refused.contains("idgraph.clickstream")
                && refused.contains("`clientip`")
                && refused.contains("`client_ip`"),
            "{refused}"
        );
        let report = glue
            .sync_catalog(&plan, schemas, &store(&moto))
            .unwrap_or_else(|e| panic!("{e}"));
        let t = report.tables.iter().find(|t| t.table == "clickstream");
        assert_eq!(
            t.map(|t| (t.action, t.extra_columns.clone())),
            Some(("refused", vec!["clientip".to_owned()]))
        );

        // A column the schema lacks: reported, kept; dropped only when asked.
        put_table(
            &moto,
            edited(&moto, "transactional", |c| c.push(column("store_id"))),
        );
        let report = glue
            .sync_catalog(&plan, schemas, &store(&moto))
            .unwrap_or_else(|e| panic!("{e}"));
        let t = report
            .tables
            .iter()
            .find(|t| t.table == "transactional")
            .unwrap_or_else(|| panic!("no table"));
        assert_eq!(
            (t.action, t.extra_columns.clone()),
            ("refused", vec!["store_id".to_owned()])
        );
        assert!(!report.complete());
        let kept: BTreeSet<String> = table(&moto, "transactional")
            .storage_descriptor()
            .map(|s| s.columns().iter().map(|c| c.name().to_owned()).collect())
            .unwrap_or_default();
        assert!(kept.contains("store_id"), "not dropped silently");
        plan.drop_extra_columns = true;
        let report = glue
            .sync_catalog(&plan, schemas, &store(&moto))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(report.complete());
        glue.sources_from_catalog("idgraph", schemas)
            .unwrap_or_else(|e| panic!("{e}"));
        let columns = table(&moto, "transactional")
            .storage_descriptor()
            .map(|s| s.columns().len())
            .unwrap_or_default();
        assert_eq!(columns, 6);
    }
}

/// `--spark-conf` reaches the Glue job as it reaches spark-submit, and a setting that is not
/// `key=value` is refused for either engine before anything runs.
#[test]
fn spark_settings_reach_both_engines_and_a_malformed_one_is_refused() {
    use spark_engine::{EngineName, EnginePlan, EngineSettings};
    let settings = |engine, conf: &[&str]| EngineSettings {
        engine: Some(engine),
        glue_role: Some(ROLE.to_owned()),
        spark_conf: conf.iter().map(|c| (*c).to_owned()).collect(),
        ..EngineSettings::default()
    };
    let conf = ["spark.idgraph.chunkBytes=4096", "spark.executor.memory=8g"];
    match settings(EngineName::Glue, &conf).resolve("s3://lake/root") {
        Ok(EnginePlan::Glue(plan)) => assert_eq!(plan.spark_conf, conf),
        other => panic!("{other:?}"),
    }
    match settings(EngineName::Spark, &conf).resolve("s3://lake/root") {
        Ok(EnginePlan::Spark(plan)) => assert_eq!(plan.conf, conf),
        other => panic!("{other:?}"),
    }
    for engine in [EngineName::Glue, EngineName::Spark] {
        match settings(engine, &["spark.executor.memory"]).resolve("s3://lake/root") {
            Err(EngineError::Settings(message)) => {
                assert!(message.contains("`spark.executor.memory`"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }
}
