//! The transform on Spark, for data that outgrows one machine: the PySpark job
//! (`python/idgraph_transform.py`, compiled in), run by `spark-submit` (a laptop, EMR, any
//! cluster) or as an AWS Glue job, and the Glue Data Catalog written from `schemas/`.
//!
//! The job reads `schemas/sources.toml` and the graph mapping at run time and writes the same
//! graph batch as the Rust transform (`vertices/`, `edges/`, `manifest.json`, `rejects.csv`).
//! Settings are resolved once into an [`EnginePlan`]; [`run_batch`] runs one batch on it and
//! returns a [`JobReport`].

mod args;
pub mod catalog;
mod glue;
mod submit;

use std::sync::atomic::AtomicBool;

use idgraph_core::{Layout, SourceKind};
use idgraph_storage::Location;
use serde::{Deserialize, Serialize};

pub use args::{EngineName, EngineSettings};
pub use glue::{GlueClient, GluePlan, JobAction, PYTHON_MODULES, RunOutcome, WorkerType};
pub use submit::SparkPlan;

/// The Spark job, as `spark-submit` and Glue run it.
pub const JOB_SCRIPT: &str = include_str!("../../../python/idgraph_transform.py");
/// The job's file name (Glue shows it; spark-submit needs a `.py`).
pub const JOB_SCRIPT_NAME: &str = "idgraph_transform.py";

/// Why a Spark or Glue run failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A setting cannot be used as given.
    #[error("{0}")]
    Settings(String),
    /// spark-submit could not be started or exited with an error.
    #[error("{0}")]
    Submit(String),
    /// A Glue or S3 call failed.
    #[error("{0}")]
    Aws(String),
    /// The Glue run ended in a state other than SUCCEEDED.
    #[error("Glue job {job} run {run_id} ended {state} after {seconds} s: {message}")]
    RunFailed {
        job: String,
        run_id: String,
        state: String,
        seconds: i64,
        message: String,
    },
    /// The run did not end before the deadline; it was asked to stop.
    #[error(
        "Glue job {job} run {run_id} was still {state} at the deadline ({deadline_secs} s); it was asked to stop"
    )]
    Deadline {
        job: String,
        run_id: String,
        state: String,
        deadline_secs: u64,
    },
    /// The run was interrupted (SIGINT or SIGTERM); it was asked to stop.
    #[error("interrupted: Glue job {job} run {run_id} was asked to stop")]
    Interrupted { job: String, run_id: String },
    /// The catalog disagrees with the schemas.
    #[error("{0}")]
    Catalog(String),
    #[error(transparent)]
    Storage(#[from] idgraph_storage::StorageError),
}

/// Where the transform runs.
#[derive(Debug, Clone, Default)]
pub enum EnginePlan {
    /// In this process (the Rust transform).
    #[default]
    Local,
    /// The Spark job under `spark-submit`.
    Spark(SparkPlan),
    /// The Spark job as an AWS Glue job.
    Glue(GluePlan),
}

impl EnginePlan {
    /// `local`, `spark` or `glue`.
    pub fn name(&self) -> &'static str {
        match self {
            EnginePlan::Local => "local",
            EnginePlan::Spark(_) => "spark",
            EnginePlan::Glue(_) => "glue",
        }
    }
}

/// One batch for the job: what the transform's options say, as the job's arguments.
#[derive(Debug, Clone)]
pub struct BatchJob {
    /// The data root holding `datasets/sources/` (a folder or `s3://`).
    pub input: Location,
    /// The root that receives `datasets/graph/<batch>/`.
    pub output: Location,
    /// The initial sources or one incremental batch.
    pub kind: SourceKind,
    /// The graph mapping's text (schemas/graph.toml or the user's).
    pub mapping_toml: String,
    pub max_reject_rate: f64,
    pub max_file_bytes: u64,
    pub gzip: bool,
    pub force: bool,
    /// Server-side encryption of every object the job writes to S3, confirmed by S3's answer
    /// (algorithm, and key id where one is given).
    pub encryption: idgraph_storage::Encryption,
    /// Quote a reject's value in the job's error message.
    pub show_values: bool,
}

impl BatchJob {
    /// The job's `--NAME value` arguments, the schema files given by location.
    fn arguments(&self, sources_schema: &str, mapping: &str) -> Vec<(String, String)> {
        [
            ("--input", self.input.to_string()),
            ("--output", self.output.to_string()),
            ("--batch", self.batch()),
            ("--sources-schema", sources_schema.to_owned()),
            ("--mapping", mapping.to_owned()),
            ("--max-reject-rate", self.max_reject_rate.to_string()),
            ("--max-file-bytes", self.max_file_bytes.to_string()),
            ("--gzip", self.gzip.to_string()),
            ("--force", self.force.to_string()),
            (
                "--encryption",
                self.encryption.algorithm().unwrap_or("none").to_owned(),
            ),
            ("--show-values", self.show_values.to_string()),
        ]
        .into_iter()
        .chain(
            self.encryption
                .kms_key_id()
                .map(|key| ("--kms-key-id", key.to_owned())),
        )
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// `initial` or the batch timestamp, as the job takes it.
    pub fn batch(&self) -> String {
        match &self.kind {
            SourceKind::Initial => "initial".to_owned(),
            SourceKind::Incremental(batch) => batch.to_string(),
        }
    }

    /// Where the batch's graph output is written.
    pub fn graph_dir(&self) -> Location {
        self.output.join(&Layout::graph_dir(&self.kind))
    }
}

/// What a run of the job did.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    /// `spark` or `glue`.
    pub engine: &'static str,
    pub batch: String,
    /// The batch's graph folder.
    pub output: String,
    /// The Glue job run id.
    pub run_id: Option<String>,
    /// The Glue job: created, updated or unchanged.
    pub job_action: Option<JobAction>,
    /// The final state (`SUCCEEDED` for Glue; `FINISHED` for spark-submit).
    pub state: String,
    pub seconds: f64,
    /// Glue's DPU-seconds for the run (its own figure, or execution time x DPUs).
    pub dpu_seconds: Option<f64>,
    /// The manifest's counts.
    pub manifest: ManifestSummary,
}

/// The counts of a batch's `manifest.json`, as the job wrote it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ManifestSummary {
    pub batch: String,
    pub vertices: std::collections::BTreeMap<String, u64>,
    pub edges: std::collections::BTreeMap<String, u64>,
    pub datasets: Vec<DatasetCounts>,
    #[serde(default)]
    pub notes: Vec<String>,
}

/// One dataset's reconciliation, as in the manifest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DatasetCounts {
    pub dataset: String,
    pub rows_read: u64,
    pub rows_used: u64,
    pub duplicates: u64,
    pub rejects: u64,
}

/// Reads the manifest the job wrote for `job`.
fn read_manifest(
    store: &idgraph_storage::Store,
    job: &BatchJob,
) -> Result<ManifestSummary, EngineError> {
    let location = job.graph_dir().join("manifest.json");
    let bytes = store.read(&location)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        EngineError::Submit(format!(
            "the job finished but {location} is not a manifest: {e}"
        ))
    })
}

/// Runs one batch on the plan's engine. `stop` asks a Glue run to stop (SIGINT, SIGTERM);
/// spark-submit, a child in the same process group, gets the signal itself.
pub fn run_batch(
    plan: &EnginePlan,
    job: &BatchJob,
    store: &idgraph_storage::Store,
    stop: &AtomicBool,
) -> Result<JobReport, EngineError> {
    match plan {
        EnginePlan::Local => Err(EngineError::Settings(
            "the local engine runs in the transform itself, not through spark-engine".to_owned(),
        )),
        EnginePlan::Spark(spark) => submit::run(spark, job, store),
        EnginePlan::Glue(glue) => glue::run(glue, job, store, stop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The job's arguments (what spark-submit and Glue both pass) carry the encryption, its
    /// KMS key and --show-values: settings that used to stop at the Rust side.
    #[test]
    fn encryption_and_show_values_reach_the_jobs_arguments() {
        let job = |encryption| BatchJob {
            input: Location::Local("in".into()),
            output: Location::Local("out".into()),
            kind: SourceKind::Initial,
            mapping_toml: String::new(),
            max_reject_rate: 0.01,
            max_file_bytes: 1,
            gzip: false,
            force: false,
            encryption,
            show_values: true,
        };
        let args = |encryption| -> Vec<(String, String)> {
            job(encryption)
                .arguments("schema", "mapping")
                .into_iter()
                .filter(|(k, _)| {
                    ["--encryption", "--kms-key-id", "--show-values"].contains(&k.as_str())
                })
                .collect()
        };
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            args(idgraph_storage::Encryption::Kms(Some("key-1".into()))),
            [
                pair("--encryption", "aws:kms"),
                pair("--show-values", "true"),
                pair("--kms-key-id", "key-1")
            ]
        );
        assert_eq!(
            args(idgraph_storage::Encryption::None),
            [pair("--encryption", "none"), pair("--show-values", "true")]
        );
    }
}
