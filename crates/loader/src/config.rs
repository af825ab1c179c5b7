//! Settings from a TOML file, the environment and flags (in rising precedence), resolved once
//! into a [`Plan`] the rest of the loader works from.

use std::path::{Path, PathBuf};
use std::time::Duration;

use idgraph_storage::{Encryption, Location};
use serde::Deserialize;

/// Every setting, each optional: a TOML file, the environment and flags each fill some.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Local folder or `s3://bucket[/prefix]` holding `datasets/` (sources and graph).
    pub root: Option<String>,
    /// `s3://bucket[/prefix]` the graph files are uploaded to for Neptune to read. Defaults to
    /// the root when it is on S3; with a local root and the local endpoint, files load in place.
    pub stage: Option<String>,
    /// `https://cluster:8182`; none means the local endpoint (neptune-local) in this process.
    pub neptune_endpoint: Option<String>,
    /// Where the local endpoint keeps its graph (default `<root>/neptune-local`).
    pub neptune_data_dir: Option<PathBuf>,
    pub iam_role_arn: Option<String>,
    pub region: Option<String>,
    /// `AES256` (default), `aws:kms` or `none`.
    pub encryption: Option<String>,
    pub kms_key_id: Option<String>,
    /// `LOW`, `MEDIUM`, `HIGH` (default) or `OVERSUBSCRIBE`.
    pub parallelism: Option<String>,
    pub fail_on_error: Option<bool>,
    pub update_single_cardinality_properties: Option<bool>,
    /// Errors tolerated per record loaded (default 0).
    pub max_error_rate: Option<f64>,
    /// Seconds a load may take before it is cancelled (default 7200).
    pub load_timeout_secs: Option<u64>,
    /// The loader's `mode`: `AUTO` (default), `NEW` or `RESUME`.
    pub mode: Option<String>,
    /// Queue behind a running load instead of failing (default true).
    pub queue_request: Option<bool>,
    /// `parserConfiguration.allowEmptyStrings` (default false).
    pub allow_empty_strings: Option<bool>,
    /// Load ids the first load of each batch waits for (besides its own vertices-then-edges).
    pub dependencies: Option<Vec<String>>,
    /// The graph mapping the transform step uses (default: the built-in schemas/graph.toml).
    pub mapping: Option<PathBuf>,
    /// The transform step fails past this share of rejected rows (default 0.01).
    pub max_reject_rate: Option<f64>,
    /// The transform step starts a new file after this many MB (default 256).
    pub max_file_mb: Option<u64>,
    /// The transform step writes `.csv.gz` files (default false).
    pub gzip: Option<bool>,
    /// Transform a batch again when its graph was made with another mapping (default false).
    pub force: Option<bool>,
    /// Print the loader's error messages, which can quote the data's values (default false).
    pub show_values: Option<bool>,
    /// Seconds an S3 run lock lasts unless renewed (default 600; renewed every third of it).
    pub lock_ttl_secs: Option<u64>,
    /// Resolve identities after each batch's load and load the `personId` batch (default true).
    pub resolve: Option<bool>,
    /// Where the transform step runs (the `[engine]` table: local, spark or glue).
    #[serde(default)]
    pub engine: spark_engine::EngineSettings,
}

impl Settings {
    /// Reads a TOML settings file.
    pub fn from_file(path: &Path) -> Result<Settings, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The settings the environment gives (`IDGRAPH_*`, `NEPTUNE_*`, and the standard
    /// `AWS_REGION`).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let flag = |name: &str| -> Result<Option<bool>, String> {
            var(name)
                .map(|v| match v.to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" => Ok(true),
                    "false" | "0" | "no" => Ok(false),
                    _ => Err(format!("{name}={v}: expected true or false")),
                })
                .transpose()
        };
        let number = |name: &str| -> Result<Option<f64>, String> {
            var(name)
                .map(|v| {
                    v.parse()
                        .map_err(|_| format!("{name}={v}: expected a number"))
                })
                .transpose()
        };
        Ok(Settings {
            root: var("IDGRAPH_ROOT"),
            stage: var("IDGRAPH_STAGE"),
            neptune_endpoint: var("NEPTUNE_ENDPOINT"),
            neptune_data_dir: var("NEPTUNE_LOCAL_DATA_DIR").map(PathBuf::from),
            iam_role_arn: var("NEPTUNE_IAM_ROLE_ARN"),
            region: var("NEPTUNE_REGION").or_else(|| var("AWS_REGION")),
            encryption: var("IDGRAPH_ENCRYPTION"),
            kms_key_id: var("IDGRAPH_KMS_KEY_ID"),
            parallelism: var("NEPTUNE_PARALLELISM"),
            fail_on_error: flag("NEPTUNE_FAIL_ON_ERROR")?,
            update_single_cardinality_properties: flag("NEPTUNE_UPDATE_SINGLE_CARDINALITY")?,
            max_error_rate: number("IDGRAPH_MAX_ERROR_RATE")?,
            load_timeout_secs: number("IDGRAPH_LOAD_TIMEOUT_SECS")?.map(|n| n as u64),
            mode: var("NEPTUNE_LOAD_MODE"),
            queue_request: flag("NEPTUNE_QUEUE_REQUEST")?,
            allow_empty_strings: flag("NEPTUNE_ALLOW_EMPTY_STRINGS")?,
            dependencies: None,
            mapping: var("IDGRAPH_MAPPING").map(PathBuf::from),
            max_reject_rate: number("IDGRAPH_MAX_REJECT_RATE")?,
            max_file_mb: number("IDGRAPH_MAX_FILE_MB")?.map(|n| n as u64),
            gzip: flag("IDGRAPH_GZIP")?,
            force: flag("IDGRAPH_FORCE")?,
            show_values: flag("IDGRAPH_SHOW_VALUES")?,
            lock_ttl_secs: number("IDGRAPH_LOCK_TTL_SECS")?.map(|n| n as u64),
            resolve: flag("IDGRAPH_RESOLVE")?,
            engine: spark_engine::EngineSettings::from_env(&var).map_err(|e| e.to_string())?,
        })
    }

    /// `self` with every setting `over` gives replaced.
    pub fn overlay(self, over: Settings) -> Settings {
        Settings {
            root: over.root.or(self.root),
            stage: over.stage.or(self.stage),
            neptune_endpoint: over.neptune_endpoint.or(self.neptune_endpoint),
            neptune_data_dir: over.neptune_data_dir.or(self.neptune_data_dir),
            iam_role_arn: over.iam_role_arn.or(self.iam_role_arn),
            region: over.region.or(self.region),
            encryption: over.encryption.or(self.encryption),
            kms_key_id: over.kms_key_id.or(self.kms_key_id),
            parallelism: over.parallelism.or(self.parallelism),
            fail_on_error: over.fail_on_error.or(self.fail_on_error),
            update_single_cardinality_properties: over
                .update_single_cardinality_properties
                .or(self.update_single_cardinality_properties),
            max_error_rate: over.max_error_rate.or(self.max_error_rate),
            load_timeout_secs: over.load_timeout_secs.or(self.load_timeout_secs),
            mode: over.mode.or(self.mode),
            queue_request: over.queue_request.or(self.queue_request),
            allow_empty_strings: over.allow_empty_strings.or(self.allow_empty_strings),
            dependencies: over.dependencies.or(self.dependencies),
            mapping: over.mapping.or(self.mapping),
            resolve: over.resolve.or(self.resolve),
            max_reject_rate: over.max_reject_rate.or(self.max_reject_rate),
            max_file_mb: over.max_file_mb.or(self.max_file_mb),
            gzip: over.gzip.or(self.gzip),
            force: over.force.or(self.force),
            show_values: over.show_values.or(self.show_values),
            lock_ttl_secs: over.lock_ttl_secs.or(self.lock_ttl_secs),
            engine: over.engine.or(self.engine),
        }
    }
}

/// Which bulk loader to drive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A Neptune cluster (or any endpoint speaking its loader API).
    Remote { endpoint: String },
    /// neptune-local, started in this process over this data folder.
    Local { data_dir: PathBuf },
}

/// Resolved, checked settings.
#[derive(Debug, Clone)]
pub struct Plan {
    pub root: Location,
    pub stage: Option<Location>,
    pub target: Target,
    pub iam_role_arn: String,
    pub region: String,
    pub encryption: Encryption,
    pub parallelism: String,
    pub fail_on_error: bool,
    pub update_single_cardinality_properties: bool,
    pub max_error_rate: f64,
    pub load_timeout: Duration,
    pub mode: String,
    pub queue_request: bool,
    pub allow_empty_strings: bool,
    pub dependencies: Vec<String>,
    /// How batches are transformed before they are loaded.
    pub transform: TransformPlan,
    /// Error logs quote the loader's messages, and so the data's values.
    pub show_values: bool,
    /// How long an S3 run lock lasts unless renewed.
    pub lock_ttl: Duration,
    /// Resolve identities after each batch's load and load the result.
    pub resolve: bool,
}

/// The transform step's settings, as `transform` itself takes them.
#[derive(Debug, Clone)]
pub struct TransformPlan {
    pub mapping: transform::Mapping,
    pub max_reject_rate: f64,
    pub max_file_bytes: u64,
    pub gzip: bool,
    /// Transform again a batch whose graph was made with another mapping.
    pub force: bool,
    /// Where the transform runs: here, under spark-submit, or on AWS Glue.
    pub engine: spark_engine::EnginePlan,
}

impl Plan {
    /// Names the graph this plan loads into, for the run state: the endpoint (for the local
    /// default, its data folder, since its port changes every run) and the stage it reads from.
    pub fn target_key(&self) -> String {
        let endpoint = match &self.target {
            Target::Remote { endpoint } => endpoint.trim_end_matches('/').to_owned(),
            Target::Local { data_dir } => format!(
                "neptune-local:{}",
                std::path::absolute(data_dir)
                    .unwrap_or_else(|_| data_dir.clone())
                    .display()
            ),
        };
        match &self.stage {
            Some(stage) => format!("{endpoint} from {stage}"),
            None => endpoint,
        }
    }
}

const LOCAL_ROLE: &str = "arn:aws:iam::000000000000:role/neptune-local";

impl Plan {
    /// Checks the settings; every message names the setting.
    pub fn resolve(settings: Settings) -> Result<Plan, String> {
        let root: Location = settings
            .root
            .as_deref()
            .unwrap_or("data")
            .parse()
            .map_err(|e| format!("root: {e}"))?;
        let target = match settings.neptune_endpoint.filter(|e| !e.is_empty()) {
            Some(endpoint) => {
                if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
                    return Err(format!(
                        "neptune_endpoint `{endpoint}`: expected https://HOST:8182"
                    ));
                }
                Target::Remote { endpoint }
            }
            None => Target::Local {
                data_dir: settings.neptune_data_dir.unwrap_or_else(|| match &root {
                    Location::Local(path) => path.join("neptune-local"),
                    Location::S3 { .. } => PathBuf::from("data/neptune-local"),
                }),
            },
        };
        let stage = match settings.stage.filter(|s| !s.is_empty()) {
            Some(stage) => match stage.parse().map_err(|e| format!("stage: {e}"))? {
                Location::Local(_) => {
                    return Err(format!(
                        "stage `{stage}`: expected s3://BUCKET/PREFIX (Neptune reads from S3)"
                    ));
                }
                s3 => Some(s3),
            },
            None => match &root {
                Location::S3 { .. } => Some(root.clone()),
                Location::Local(_) => None,
            },
        };
        let remote = matches!(target, Target::Remote { .. });
        if remote && stage.is_none() {
            return Err(
                "a Neptune cluster loads from S3: set stage (--stage s3://BUCKET/PREFIX) or an \
                 s3:// root"
                    .into(),
            );
        }
        let iam_role_arn = match settings.iam_role_arn.filter(|s| !s.is_empty()) {
            Some(arn) => arn,
            None if !remote => LOCAL_ROLE.to_owned(),
            None => {
                return Err("iam_role_arn is required for a Neptune cluster \
                            (--iam-role-arn or NEPTUNE_IAM_ROLE_ARN)"
                    .into());
            }
        };
        let region = match settings.region.filter(|s| !s.is_empty()) {
            Some(region) => region,
            None if !remote => "us-east-1".to_owned(),
            None => {
                return Err(
                    "region is required for a Neptune cluster (--region or AWS_REGION)".into(),
                );
            }
        };
        let encryption = Encryption::from_setting(
            settings.encryption.as_deref().unwrap_or("AES256"),
            settings.kms_key_id.clone(),
        )?;
        let parallelism = settings
            .parallelism
            .unwrap_or_else(|| "HIGH".into())
            .to_ascii_uppercase();
        if !["LOW", "MEDIUM", "HIGH", "OVERSUBSCRIBE"].contains(&parallelism.as_str()) {
            return Err(format!(
                "parallelism `{parallelism}`: expected LOW, MEDIUM, HIGH or OVERSUBSCRIBE"
            ));
        }
        let max_error_rate = settings.max_error_rate.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&max_error_rate) {
            return Err(format!(
                "max_error_rate {max_error_rate}: expected a fraction from 0 to 1"
            ));
        }
        let mode = settings
            .mode
            .unwrap_or_else(|| "AUTO".into())
            .to_ascii_uppercase();
        if !["AUTO", "NEW", "RESUME"].contains(&mode.as_str()) {
            return Err(format!("mode `{mode}`: expected AUTO, NEW or RESUME"));
        }
        let mapping = match &settings.mapping {
            Some(path) => transform::Mapping::from_file(path),
            None => transform::Mapping::default_mapping(),
        }
        .map_err(|e| format!("mapping: {e}"))?;
        let max_reject_rate = settings
            .max_reject_rate
            .unwrap_or(transform::DEFAULT_MAX_REJECT_RATE);
        if !(0.0..=1.0).contains(&max_reject_rate) {
            return Err(format!(
                "max_reject_rate {max_reject_rate}: expected a fraction from 0 to 1"
            ));
        }
        let max_file_bytes = match settings.max_file_mb {
            None => transform::DEFAULT_MAX_FILE_BYTES,
            Some(mb) => mb
                .checked_mul(1_000_000)
                .filter(|_| mb > 0)
                .ok_or_else(|| {
                    format!("max_file_mb {mb}: expected 1 to {}", u64::MAX / 1_000_000)
                })?,
        };
        let transform = TransformPlan {
            mapping,
            max_reject_rate,
            max_file_bytes,
            gzip: settings.gzip.unwrap_or(false),
            force: settings.force.unwrap_or(false),
            engine: settings
                .engine
                .clone()
                .resolve(&root.to_string())
                .map_err(|e| e.to_string())?,
        };
        let lock_ttl = settings.lock_ttl_secs.unwrap_or(600);
        if lock_ttl < 3 {
            return Err(format!("lock_ttl_secs {lock_ttl}: expected 3 or more"));
        }
        Ok(Plan {
            lock_ttl: Duration::from_secs(lock_ttl),
            resolve: settings.resolve.unwrap_or(true),
            show_values: settings.show_values.unwrap_or(false),
            transform,
            mode,
            queue_request: settings.queue_request.unwrap_or(true),
            allow_empty_strings: settings.allow_empty_strings.unwrap_or(false),
            dependencies: settings.dependencies.unwrap_or_default(),
            root,
            stage,
            target,
            iam_role_arn,
            region,
            encryption,
            parallelism,
            fail_on_error: settings.fail_on_error.unwrap_or(true),
            // Vertex properties are written `(single)`: an incremental batch must be able to
            // replace a value (a new loyalty level), which Neptune refuses without this.
            update_single_cardinality_properties: settings
                .update_single_cardinality_properties
                .unwrap_or(true),
            max_error_rate,
            load_timeout: match settings.load_timeout_secs.unwrap_or(7200) {
                0 => {
                    return Err(
                        "load_timeout_secs 0: expected 1 or more (0 would cancel every load)"
                            .into(),
                    );
                }
                secs => Duration::from_secs(secs),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_comes_from_the_file_the_environment_or_flags_and_reaches_the_transform_plan() {
        let file: Settings = toml::from_str(
            "root = \"s3://lake/idgraph\"\n[engine]\nkind = \"spark\"\nspark_master = \"local[2]\"",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let plan = Plan::resolve(file.clone()).unwrap_or_else(|e| panic!("{e}"));
        let spark_engine::EnginePlan::Spark(spark) = &plan.transform.engine else {
            panic!("expected spark, got {:?}", plan.transform.engine)
        };
        assert_eq!(spark.master, "local[2]");

        let env = Settings::from_env(|k| match k {
            "IDGRAPH_ENGINE" => Some("glue".to_owned()),
            "IDGRAPH_GLUE_ROLE" => Some("arn:aws:iam::1:role/r".to_owned()),
            "IDGRAPH_GLUE_WORKERS" => Some("8".to_owned()),
            "IDGRAPH_GLUE_WORKER_TYPE" => Some("G.2X".to_owned()),
            _ => None,
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let plan =
            Plan::resolve(file.clone().overlay(env.clone())).unwrap_or_else(|e| panic!("{e}"));
        let spark_engine::EnginePlan::Glue(glue) = &plan.transform.engine else {
            panic!("expected glue, got {:?}", plan.transform.engine)
        };
        assert_eq!(
            (glue.workers, glue.role.as_str()),
            (8, "arn:aws:iam::1:role/r")
        );
        assert_eq!(glue.scripts, "s3://lake/idgraph/glue-job");
        assert_eq!(glue.worker_type, spark_engine::WorkerType::G2X);
        let toml: Settings =
            toml::from_str("[engine]\nkind = \"glue\"\nglue_worker_type = \"G.4X\"")
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            toml.engine.glue_worker_type,
            Some(spark_engine::WorkerType::G4X)
        );

        let flags = Settings {
            engine: spark_engine::EngineSettings {
                engine: Some(spark_engine::EngineName::Local),
                ..spark_engine::EngineSettings::default()
            },
            ..Settings::default()
        };
        let plan =
            Plan::resolve(file.overlay(env).overlay(flags)).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            plan.transform.engine,
            spark_engine::EnginePlan::Local
        ));

        let refused = Settings::from_env(|k| (k == "IDGRAPH_ENGINE").then(|| "flink".to_owned()));
        assert!(refused.err().unwrap_or_default().contains("flink"));
    }

    #[test]
    fn resolution_is_on_unless_the_file_the_environment_or_a_flag_turns_it_off() {
        let resolve = |settings: Settings| {
            Plan::resolve(settings)
                .map(|p| p.resolve)
                .unwrap_or_else(|e| panic!("{e}"))
        };
        assert!(resolve(Settings::default()));
        let file: Settings = toml::from_str("resolve = false").unwrap_or_else(|e| panic!("{e}"));
        assert!(!resolve(file.clone()));
        let env = |value: &'static str| {
            Settings::from_env(move |k| (k == "IDGRAPH_RESOLVE").then(|| value.to_owned()))
        };
        let on = env("true").unwrap_or_else(|e| panic!("{e}"));
        assert!(resolve(file.clone().overlay(on.clone())));
        let off = env("0").unwrap_or_else(|e| panic!("{e}"));
        assert!(!resolve(Settings::default().overlay(off)));
        // The flag (--no-resolve) wins over an environment that turns it on.
        let flag = Settings {
            resolve: Some(false),
            ..Settings::default()
        };
        assert!(!resolve(file.overlay(on).overlay(flag)));
        let refused = env("maybe").err().unwrap_or_default();
        assert!(refused.contains("IDGRAPH_RESOLVE=maybe"), "{refused}");
    }

    #[test]
    fn flags_override_the_environment_which_overrides_the_file() {
        let file: Settings =
            toml::from_str("root = \"a\"\nregion = \"eu-west-1\"\nparallelism = \"LOW\"")
                .unwrap_or_else(|e| panic!("{e}"));
        let env = Settings::from_env(|k| (k == "AWS_REGION").then(|| "us-west-2".to_owned()))
            .unwrap_or_else(|e| panic!("{e}"));
        let flags = Settings {
            root: Some("b".into()),
            ..Settings::default()
        };
        let merged = file.overlay(env).overlay(flags);
        assert_eq!(merged.root.as_deref(), Some("b"));
        assert_eq!(merged.region.as_deref(), Some("us-west-2"));
        assert_eq!(merged.parallelism.as_deref(), Some("LOW"));
    }

    #[test]
    fn the_local_default_needs_nothing_and_a_cluster_needs_s3_a_role_and_a_region() {
        let plan = Plan::resolve(Settings::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.root, Location::Local("data".into()));
        assert_eq!(
            plan.target,
            Target::Local {
                data_dir: "data/neptune-local".into()
            }
        );
        assert!(plan.stage.is_none());
        let cluster = Settings {
            neptune_endpoint: Some("https://c:8182".into()),
            ..Settings::default()
        };
        assert!(
            Plan::resolve(cluster.clone())
                .err()
                .unwrap_or_default()
                .contains("stage")
        );
        let with_stage = Settings {
            stage: Some("s3://b/p".into()),
            ..cluster
        };
        assert!(
            Plan::resolve(with_stage.clone())
                .err()
                .unwrap_or_default()
                .contains("iam_role_arn")
        );
        let full = Settings {
            iam_role_arn: Some("arn:aws:iam::1:role/r".into()),
            region: Some("us-east-1".into()),
            ..with_stage
        };
        assert!(Plan::resolve(full).is_ok());
        let bad = Settings {
            encryption: Some("rot13".into()),
            ..Settings::default()
        };
        assert!(
            Plan::resolve(bad)
                .err()
                .unwrap_or_default()
                .contains("encryption")
        );
    }
}
