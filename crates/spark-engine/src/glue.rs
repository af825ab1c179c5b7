//! Running the job on AWS Glue: the script and schema files uploaded to S3, the job created or
//! brought up to date, one run started with the batch's arguments and followed to its end.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_glue::types::{JobCommand, JobRunState, JobUpdate};
use serde::Serialize;
use sha2::{Digest, Sha256};

use idgraph_storage::Location;

use crate::{BatchJob, EngineError, JOB_SCRIPT, JOB_SCRIPT_NAME, JobReport, read_manifest};

/// Glue worker types (aws-reference.md §2); each is this many DPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, serde::Deserialize)]
pub enum WorkerType {
    #[value(name = "G.025X")]
    #[serde(rename = "G.025X")]
    G025X,
    #[value(name = "G.1X")]
    #[serde(rename = "G.1X")]
    G1X,
    #[value(name = "G.2X")]
    #[serde(rename = "G.2X")]
    G2X,
    #[value(name = "G.4X")]
    #[serde(rename = "G.4X")]
    G4X,
    #[value(name = "G.8X")]
    #[serde(rename = "G.8X")]
    G8X,
}

impl WorkerType {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerType::G025X => "G.025X",
            WorkerType::G1X => "G.1X",
            WorkerType::G2X => "G.2X",
            WorkerType::G4X => "G.4X",
            WorkerType::G8X => "G.8X",
        }
    }

    /// DPUs per worker (1 DPU = 4 vCPU, 16 GB).
    pub fn dpus(self) -> f64 {
        match self {
            WorkerType::G025X => 0.25,
            WorkerType::G1X => 1.0,
            WorkerType::G2X => 2.0,
            WorkerType::G4X => 4.0,
            WorkerType::G8X => 8.0,
        }
    }
}

/// What the Glue job should be, and how to follow its runs.
#[derive(Debug, Clone)]
pub struct GluePlan {
    pub job_name: String,
    /// The IAM role the job runs as (it must read the sources and write the output).
    pub role: String,
    /// An `s3://` prefix for the job script and the schema files.
    pub scripts: String,
    /// `5.0`: Spark 3.5, Python 3.11.
    pub glue_version: String,
    pub worker_type: WorkerType,
    pub workers: u32,
    /// Glue stops a run after this many minutes (its state is then TIMEOUT).
    pub timeout_minutes: u32,
    /// `--additional-python-modules`: what the job imports beyond Glue's own packages.
    pub python_modules: String,
    /// The first wait between polls; each wait doubles up to `poll_max`.
    pub poll_initial: Duration,
    pub poll_max: Duration,
    /// Stop following (and stop the run) after this long.
    pub deadline: Duration,
    /// Spark settings (`key=value`) the job's runs start with: Glue's `--conf` job parameter.
    pub spark_conf: Vec<String>,
}

/// The job's one extra Python package (its ids are xxh3-128 hashes).
pub const PYTHON_MODULES: &str = "xxhash==3.5.0";

impl GluePlan {
    /// A plan with the defaults for everything but what only the user can know.
    pub fn new(job_name: &str, role: &str, scripts: &str) -> GluePlan {
        GluePlan {
            job_name: job_name.to_owned(),
            role: role.to_owned(),
            scripts: scripts.trim_end_matches('/').to_owned(),
            glue_version: "5.0".to_owned(),
            worker_type: WorkerType::G1X,
            workers: 2,
            timeout_minutes: 120,
            python_modules: PYTHON_MODULES.to_owned(),
            poll_initial: Duration::from_secs(5),
            poll_max: Duration::from_secs(60),
            deadline: Duration::from_secs(125 * 60),
            spark_conf: Vec::new(),
        }
    }

    fn script_location(&self) -> String {
        format!("{}/{JOB_SCRIPT_NAME}", self.scripts)
    }

    fn sources_location(&self) -> String {
        format!("{}/sources.toml", self.scripts)
    }

    /// A mapping is stored under its content's hash, so a run never reads another's mapping.
    fn mapping_location(&self, mapping_toml: &str) -> String {
        let sha = format!("{:x}", Sha256::digest(mapping_toml.as_bytes()));
        format!("{}/graph-{}.toml", self.scripts, &sha[..16])
    }

    fn default_arguments(&self) -> HashMap<String, String> {
        let mut arguments = HashMap::from([
            ("--job-language".to_owned(), "python".to_owned()),
            (
                "--additional-python-modules".to_owned(),
                self.python_modules.clone(),
            ),
            ("--sources-schema".to_owned(), self.sources_location()),
        ]);
        // Glue reads several settings from one `--conf` value: `a=1 --conf b=2`. On the job,
        // not on a run: Glue applies a job's settings when the run's Spark starts.
        if !self.spark_conf.is_empty() {
            arguments.insert("--conf".to_owned(), self.spark_conf.join(" --conf "));
        }
        arguments
    }
}

/// What ensuring the job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobAction {
    Created,
    Updated,
    Unchanged,
}

/// How a followed run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub run_id: String,
    pub state: String,
    pub seconds: i64,
    pub dpu_seconds: Option<f64>,
}

/// A Glue client with its own runtime, for blocking callers.
#[derive(Debug)]
pub struct GlueClient {
    runtime: tokio::runtime::Runtime,
    client: aws_sdk_glue::Client,
}

/// An SDK error with its source chain (the SDK's Display alone says "service error").
pub(crate) fn aws_error(action: &str, e: impl std::error::Error) -> EngineError {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    EngineError::Aws(format!("{action}: {message}"))
}

fn runtime() -> Result<tokio::runtime::Runtime, EngineError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| EngineError::Aws(format!("cannot start the AWS runtime: {e}")))
}

impl GlueClient {
    /// A client from the standard AWS configuration (environment, profile, instance role;
    /// `AWS_ENDPOINT_URL` for a local stand-in such as moto).
    pub fn from_env() -> Result<GlueClient, EngineError> {
        let runtime = runtime()?;
        let client = runtime.block_on(async {
            let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            aws_sdk_glue::Client::new(&shared)
        });
        Ok(GlueClient { runtime, client })
    }

    /// A client made elsewhere (a test's canned-answer client).
    pub fn from_client(client: aws_sdk_glue::Client) -> Result<GlueClient, EngineError> {
        Ok(GlueClient {
            runtime: runtime()?,
            client,
        })
    }

    pub(crate) fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    pub(crate) fn sdk(&self) -> &aws_sdk_glue::Client {
        &self.client
    }

    /// Creates the job, or updates it when its definition differs from the plan's.
    pub fn ensure_job(&self, plan: &GluePlan) -> Result<JobAction, EngineError> {
        if plan.role.is_empty() {
            return Err(EngineError::Settings(
                "--glue-role: the IAM role the Glue job runs as is required".to_owned(),
            ));
        }
        let command = JobCommand::builder()
            .name("glueetl")
            .script_location(plan.script_location())
            .python_version("3")
            .build();
        let worker_type = aws_sdk_glue::types::WorkerType::from(plan.worker_type.as_str());
        let workers = i32::try_from(plan.workers)
            .map_err(|_| EngineError::Settings("--glue-workers: too many".to_owned()))?;
        let timeout = i32::try_from(plan.timeout_minutes)
            .map_err(|_| EngineError::Settings("--glue-timeout-minutes: too long".to_owned()))?;
        let existing = self.block_on(self.client.get_job().job_name(&plan.job_name).send());
        let existing = match existing {
            Ok(out) => out.job,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                None
            }
            Err(e) => return Err(aws_error(&format!("GetJob {}", plan.job_name), e)),
        };
        let Some(job) = existing else {
            self.block_on(
                self.client
                    .create_job()
                    .name(&plan.job_name)
                    .description(
                        "idgraph transform: sources to Gremlin CSV (python/idgraph_transform.py)",
                    )
                    .role(&plan.role)
                    .command(command)
                    .glue_version(&plan.glue_version)
                    .worker_type(worker_type)
                    .number_of_workers(workers)
                    .timeout(timeout)
                    .max_retries(0)
                    .set_default_arguments(Some(plan.default_arguments()))
                    .send(),
            )
            .map_err(|e| aws_error(&format!("CreateJob {}", plan.job_name), e))?;
            return Ok(JobAction::Created);
        };
        let same = job.role() == Some(plan.role.as_str())
            && job.command() == Some(&command)
            && job.glue_version() == Some(plan.glue_version.as_str())
            && job.worker_type() == Some(&worker_type)
            && job.number_of_workers() == Some(workers)
            && job.timeout() == Some(timeout)
            && job.default_arguments() == Some(&plan.default_arguments());
        if same {
            return Ok(JobAction::Unchanged);
        }
        let update = JobUpdate::builder()
            .role(&plan.role)
            .command(command)
            .glue_version(&plan.glue_version)
            .worker_type(worker_type)
            .number_of_workers(workers)
            .timeout(timeout)
            .max_retries(0)
            .set_default_arguments(Some(plan.default_arguments()))
            .build();
        self.block_on(
            self.client
                .update_job()
                .job_name(&plan.job_name)
                .job_update(update)
                .send(),
        )
        .map_err(|e| aws_error(&format!("UpdateJob {}", plan.job_name), e))?;
        Ok(JobAction::Updated)
    }

    /// Starts one run with these arguments and follows it to a terminal state, the deadline or
    /// `stop`; the run is asked to stop in the last two cases.
    pub fn run_and_follow(
        &self,
        plan: &GluePlan,
        arguments: HashMap<String, String>,
        stop: &AtomicBool,
    ) -> Result<RunOutcome, EngineError> {
        let started = Instant::now();
        let run_id = match self.run_in_flight(plan, &arguments)? {
            Some(run_id) => run_id,
            None => self
                .block_on(
                    self.client
                        .start_job_run()
                        .job_name(&plan.job_name)
                        .set_arguments(Some(arguments))
                        .send(),
                )
                .map_err(|e| aws_error(&format!("StartJobRun {}", plan.job_name), e))?
                .job_run_id
                .ok_or_else(|| EngineError::Aws("StartJobRun returned no run id".to_owned()))?,
        };
        let mut wait = plan.poll_initial;
        loop {
            let run = self
                .block_on(
                    self.client
                        .get_job_run()
                        .job_name(&plan.job_name)
                        .run_id(&run_id)
                        .send(),
                )
                .map_err(|e| aws_error(&format!("GetJobRun {run_id}"), e))?
                .job_run
                .ok_or_else(|| EngineError::Aws(format!("GetJobRun {run_id}: no run")))?;
            let state = run.job_run_state().cloned();
            let seconds = i64::from(run.execution_time());
            let state_name = state
                .as_ref()
                .map_or("UNKNOWN".to_owned(), |s| s.as_str().to_owned());
            match state {
                Some(JobRunState::Succeeded) => {
                    let dpus = run.max_capacity().unwrap_or_else(|| {
                        f64::from(run.number_of_workers().unwrap_or(0)) * plan.worker_type.dpus()
                    });
                    return Ok(RunOutcome {
                        run_id,
                        state: state_name,
                        seconds,
                        dpu_seconds: Some(run.dpu_seconds().unwrap_or(seconds as f64 * dpus)),
                    });
                }
                Some(
                    JobRunState::Failed
                    | JobRunState::Stopped
                    | JobRunState::Timeout
                    | JobRunState::Error,
                ) => {
                    return Err(EngineError::RunFailed {
                        job: plan.job_name.clone(),
                        run_id,
                        state: state_name,
                        seconds,
                        message: run
                            .error_message()
                            .unwrap_or("Glue gave no error message")
                            .to_owned(),
                    });
                }
                // STARTING, RUNNING, STOPPING, WAITING, and any state this client does not
                // know yet: keep following until the deadline.
                _ => {}
            }
            let stopped = stop.load(Ordering::SeqCst);
            if stopped || started.elapsed() >= plan.deadline {
                self.stop_run(plan, &run_id)?;
                return Err(if stopped {
                    EngineError::Interrupted {
                        job: plan.job_name.clone(),
                        run_id,
                    }
                } else {
                    EngineError::Deadline {
                        job: plan.job_name.clone(),
                        run_id,
                        state: state_name,
                        deadline_secs: plan.deadline.as_secs(),
                    }
                });
            }
            // Sleep in short steps so that a signal is acted on at once.
            let until = Instant::now() + wait.min(plan.deadline.saturating_sub(started.elapsed()));
            while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50).min(wait));
            }
            wait = (wait * 2).min(plan.poll_max);
        }
    }

    /// A run of the job with the same batch and output that has not ended: one started by a
    /// command that was killed while following it. It is followed instead of starting a second
    /// run that would write the same batch at the same time.
    fn run_in_flight(
        &self,
        plan: &GluePlan,
        arguments: &HashMap<String, String>,
    ) -> Result<Option<String>, EngineError> {
        let pages = self
            .block_on(
                self.client
                    .get_job_runs()
                    .job_name(&plan.job_name)
                    .into_paginator()
                    .send()
                    .collect::<Result<Vec<_>, _>>(),
            )
            .map_err(|e| aws_error(&format!("GetJobRuns {}", plan.job_name), e))?;
        let same = |run: &aws_sdk_glue::types::JobRun| {
            ["--batch", "--output"]
                .iter()
                .all(|key| run.arguments().and_then(|a| a.get(*key)) == arguments.get(*key))
        };
        let ended = |state: Option<&JobRunState>| {
            matches!(
                state,
                Some(
                    JobRunState::Succeeded
                        | JobRunState::Failed
                        | JobRunState::Stopped
                        | JobRunState::Timeout
                        | JobRunState::Error
                )
            )
        };
        Ok(pages
            .iter()
            .flat_map(|page| page.job_runs())
            .find(|run| !ended(run.job_run_state()) && same(run))
            .and_then(|run| run.id().map(str::to_owned)))
    }

    fn stop_run(&self, plan: &GluePlan, run_id: &str) -> Result<(), EngineError> {
        let out = self
            .block_on(
                self.client
                    .batch_stop_job_run()
                    .job_name(&plan.job_name)
                    .job_run_ids(run_id)
                    .send(),
            )
            .map_err(|e| aws_error(&format!("BatchStopJobRun {run_id}"), e))?;
        if let Some(error) = out.errors().first() {
            let detail = error.error_detail();
            return Err(EngineError::Aws(format!(
                "BatchStopJobRun {run_id}: {} {}",
                detail.and_then(|d| d.error_code()).unwrap_or("error"),
                detail.and_then(|d| d.error_message()).unwrap_or("")
            )));
        }
        Ok(())
    }
}

pub(crate) fn run(
    plan: &GluePlan,
    job: &BatchJob,
    store: &idgraph_storage::Store,
    stop: &AtomicBool,
) -> Result<JobReport, EngineError> {
    if !plan.scripts.starts_with("s3://") {
        return Err(EngineError::Settings(format!(
            "--glue-scripts `{}`: Glue reads its script from S3; give an s3:// prefix",
            plan.scripts
        )));
    }
    for (what, root) in [("--input", &job.input), ("--output", &job.output)] {
        if !matches!(root, Location::S3 { .. }) {
            return Err(EngineError::Settings(format!(
                "{what} `{root}`: a Glue job reads and writes S3; give an s3:// root"
            )));
        }
    }
    let started = Instant::now();
    let upload = |uri: String, text: &str| -> Result<String, EngineError> {
        let location = uri
            .parse()
            .map_err(|e| EngineError::Settings(format!("{uri}: {e}")))?;
        store.write(&location, text.as_bytes().to_vec())?;
        Ok(uri)
    };
    upload(plan.script_location(), JOB_SCRIPT)?;
    upload(plan.sources_location(), idgraph_core::SOURCES_TOML)?;
    let mapping = upload(plan.mapping_location(&job.mapping_toml), &job.mapping_toml)?;
    let client = GlueClient::from_env()?;
    let action = client.ensure_job(plan)?;
    let arguments = job
        .arguments(&plan.sources_location(), &mapping)
        .into_iter()
        .collect();
    let outcome = client.run_and_follow(plan, arguments, stop)?;
    let manifest = read_manifest(store, job)?;
    Ok(JobReport {
        engine: "glue",
        batch: job.batch(),
        output: job.graph_dir().to_string(),
        run_id: Some(outcome.run_id),
        job_action: Some(action),
        state: outcome.state,
        seconds: started.elapsed().as_secs_f64(),
        dpu_seconds: outcome.dpu_seconds,
        manifest,
    })
}
