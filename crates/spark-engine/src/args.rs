//! The engine settings as command-line flags, shared by `transform` and `loader`, resolved once
//! into an [`EnginePlan`].

use std::time::Duration;

use crate::{EngineError, EnginePlan, GluePlan, SparkPlan, WorkerType};

/// Which engine: `local` (this process), `spark` (spark-submit) or `glue` (an AWS Glue job).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineName {
    #[default]
    Local,
    Spark,
    Glue,
}

/// Engine settings, from flags (as a flattened clap group), the environment
/// ([`EngineSettings::from_env`]) or a TOML file's `[engine]` table (where the engine is
/// `kind`), before resolution. Every setting is optional, so sources can be layered.
#[derive(Debug, Clone, Default, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSettings {
    /// Where the transform runs: here (local), under spark-submit (spark), or as an AWS Glue
    /// job (glue). [env: IDGRAPH_ENGINE] [default: local]
    #[arg(long, global = true, value_enum, value_name = "ENGINE")]
    #[serde(rename = "kind")]
    pub engine: Option<EngineName>,
    /// spark: the spark-submit program. [default: spark-submit on PATH]
    #[arg(long, global = true, value_name = "PROGRAM")]
    pub spark_submit: Option<String>,
    /// spark: the master URL. [default: local[*]]
    #[arg(long, global = true, value_name = "URL")]
    pub spark_master: Option<String>,
    /// spark, glue: a Spark setting passed through (repeat for more); on Glue, as the job's
    /// `--conf` parameter.
    #[arg(long, global = true, value_name = "KEY=VALUE")]
    #[serde(default)]
    pub spark_conf: Vec<String>,
    /// spark: the Python that runs the job, driver and workers (with `xxhash` installed).
    /// [default: python3 on PATH]
    #[arg(long, global = true, value_name = "PROGRAM")]
    pub spark_python: Option<String>,
    /// glue: the job's name (created or updated to match these settings). [default: idgraph-transform]
    #[arg(long, global = true, value_name = "NAME")]
    pub glue_job: Option<String>,
    /// glue: the IAM role the job runs as.
    #[arg(long, global = true, value_name = "ARN")]
    pub glue_role: Option<String>,
    /// glue: an s3:// prefix for the job script and schema files. [default: <output>/glue-job]
    #[arg(long, global = true, value_name = "S3_URI")]
    pub glue_scripts: Option<String>,
    /// glue: the worker type. [default: G.1X]
    #[arg(long, global = true, value_enum, value_name = "TYPE")]
    pub glue_worker_type: Option<WorkerType>,
    /// glue: the number of workers (2 or more). [default: 2]
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(2..=100_000))]
    pub glue_workers: Option<u32>,
    /// glue: Glue stops a run after this many minutes; this command stops following (and
    /// stops the run) 5 minutes later. [default: 120]
    #[arg(long, global = true, value_name = "MINUTES", value_parser = clap::value_parser!(u32).range(1..=10_080))]
    pub glue_timeout_minutes: Option<u32>,
}

impl EngineSettings {
    /// Reads `IDGRAPH_ENGINE`, `IDGRAPH_SPARK_SUBMIT`, `IDGRAPH_SPARK_MASTER`,
    /// `IDGRAPH_SPARK_CONF` (space-separated KEY=VALUE), `IDGRAPH_SPARK_PYTHON`, `IDGRAPH_GLUE_JOB`, `IDGRAPH_GLUE_ROLE`,
    /// `IDGRAPH_GLUE_SCRIPTS`, `IDGRAPH_GLUE_WORKER_TYPE`, `IDGRAPH_GLUE_WORKERS`,
    /// `IDGRAPH_GLUE_TIMEOUT_MINUTES`.
    /// `var` reads one variable (`|k| std::env::var(k).ok()`).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<EngineSettings, EngineError> {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let number = |name: &str| -> Result<Option<u32>, EngineError> {
            var(name)
                .map(|v| {
                    v.parse().map_err(|_| {
                        EngineError::Settings(format!("{name}: `{v}` is not a whole number"))
                    })
                })
                .transpose()
        };
        let engine = match var("IDGRAPH_ENGINE").as_deref() {
            None => None,
            Some("local") => Some(EngineName::Local),
            Some("spark") => Some(EngineName::Spark),
            Some("glue") => Some(EngineName::Glue),
            Some(other) => {
                return Err(EngineError::Settings(format!(
                    "IDGRAPH_ENGINE: `{other}` is not local, spark or glue"
                )));
            }
        };
        Ok(EngineSettings {
            engine,
            spark_submit: var("IDGRAPH_SPARK_SUBMIT"),
            spark_master: var("IDGRAPH_SPARK_MASTER"),
            spark_conf: var("IDGRAPH_SPARK_CONF")
                .map(|v| v.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
            spark_python: var("IDGRAPH_SPARK_PYTHON"),
            glue_job: var("IDGRAPH_GLUE_JOB"),
            glue_role: var("IDGRAPH_GLUE_ROLE"),
            glue_scripts: var("IDGRAPH_GLUE_SCRIPTS"),
            glue_worker_type: var("IDGRAPH_GLUE_WORKER_TYPE")
                .map(|w| {
                    <WorkerType as clap::ValueEnum>::from_str(&w, false).map_err(|_| {
                        EngineError::Settings(format!(
                            "IDGRAPH_GLUE_WORKER_TYPE: `{w}` is not G.025X, G.1X, G.2X, G.4X or G.8X"
                        ))
                    })
                })
                .transpose()?,
            glue_workers: number("IDGRAPH_GLUE_WORKERS")?,
            glue_timeout_minutes: number("IDGRAPH_GLUE_TIMEOUT_MINUTES")?,
        })
    }

    /// Each setting from `self` when given there, else from `fallback` (flags over the
    /// environment over a file).
    pub fn or(self, fallback: EngineSettings) -> EngineSettings {
        EngineSettings {
            engine: self.engine.or(fallback.engine),
            spark_submit: self.spark_submit.or(fallback.spark_submit),
            spark_master: self.spark_master.or(fallback.spark_master),
            spark_conf: if self.spark_conf.is_empty() {
                fallback.spark_conf
            } else {
                self.spark_conf
            },
            spark_python: self.spark_python.or(fallback.spark_python),
            glue_job: self.glue_job.or(fallback.glue_job),
            glue_role: self.glue_role.or(fallback.glue_role),
            glue_scripts: self.glue_scripts.or(fallback.glue_scripts),
            glue_worker_type: self.glue_worker_type.or(fallback.glue_worker_type),
            glue_workers: self.glue_workers.or(fallback.glue_workers),
            glue_timeout_minutes: self.glue_timeout_minutes.or(fallback.glue_timeout_minutes),
        }
    }

    /// The plan; `output` is the transform's output root (the default home of the Glue job's
    /// files).
    pub fn resolve(self, output: &str) -> Result<EnginePlan, EngineError> {
        if let Some(conf) = self.spark_conf.iter().find(|c| !c.contains('=')) {
            return Err(EngineError::Settings(format!(
                "--spark-conf `{conf}`: expected key=value"
            )));
        }
        match self.engine.unwrap_or_default() {
            EngineName::Local => Ok(EnginePlan::Local),
            EngineName::Spark => {
                let defaults = SparkPlan::default();
                Ok(EnginePlan::Spark(SparkPlan {
                    submit: self.spark_submit.unwrap_or(defaults.submit),
                    master: self.spark_master.unwrap_or(defaults.master),
                    conf: self.spark_conf,
                    python: self.spark_python,
                }))
            }
            EngineName::Glue => {
                let role = self.glue_role.ok_or_else(|| {
                    EngineError::Settings(
                        "--engine glue needs --glue-role ARN (the IAM role the job runs as)"
                            .to_owned(),
                    )
                })?;
                let scripts = self
                    .glue_scripts
                    .unwrap_or_else(|| format!("{}/glue-job", output.trim_end_matches('/')));
                let mut plan = GluePlan::new(
                    self.glue_job.as_deref().unwrap_or("idgraph-transform"),
                    &role,
                    &scripts,
                );
                if let Some(w) = self.glue_worker_type {
                    plan.worker_type = w;
                }
                if let Some(n) = self.glue_workers {
                    if n < 2 {
                        return Err(EngineError::Settings("glue workers: at least 2".to_owned()));
                    }
                    plan.workers = n;
                }
                plan.spark_conf = self.spark_conf;
                if let Some(m) = self.glue_timeout_minutes {
                    plan.timeout_minutes = m;
                    plan.deadline = Duration::from_secs((u64::from(m) + 5) * 60);
                }
                Ok(EnginePlan::Glue(plan))
            }
        }
    }
}
