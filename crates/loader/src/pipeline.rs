//! Full and incremental runs: transform what is not transformed, stage the graph files where
//! the loader reads them, load vertices then edges (a dependent load), and record every step in
//! the run state so a run killed at any point resumes without loading anything twice.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use idgraph_core::{BatchId, Layout, SourceKind};
use idgraph_storage::{Location, Store};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::config::Plan;
use crate::neptune::{
    GraphSummary, LoadErrorEntry, LoadRequest, LoadStatus, Neptune, NeptuneError, Phase, phase,
};
use crate::state::{BatchRecord, FileRecord, LoadRecord, State, now};
use idgraph_storage::Lock;

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Setup(String),
    #[error("{0}")]
    LoadFailed(Box<FailedLoad>),
    #[error(
        "batch {batch} was transformed with another mapping ({manifest} has mapping_sha256 \
         {made_with}; the configured mapping's is {configured}); pass --force to transform it \
         again, or configure the mapping it was made with"
    )]
    MappingChanged {
        batch: String,
        manifest: String,
        made_with: String,
        configured: String,
    },
    #[error(
        "batch {batch} was transformed with {setting} {made_with}, not the configured \
         {configured}; pass --force to transform it again, or configure what it was made with"
    )]
    SettingChanged {
        batch: String,
        setting: &'static str,
        made_with: String,
        configured: String,
    },
    #[error(
        "{file} has SHA-256 {actual}, not the {manifest} its manifest gives: it changed after the \
         transform; nothing of it was uploaded (transform the batch again with --force)"
    )]
    ChangedFile {
        file: String,
        manifest: String,
        actual: String,
    },
    #[error(
        "batch {batch}: {dir} holds files its manifest does not list ({}); the loader would load \
         them too. Transform the batch again (--force), or remove them",
        files.join(", ")
    )]
    UnlistedFiles {
        batch: String,
        dir: String,
        files: Vec<String>,
    },
    /// The local transform failed (too many rejects, a bad source, ...).
    #[error("transform: {0}")]
    Transform(#[source] transform::Error),
    /// The transform on Spark or Glue failed.
    #[error("transform: {0}")]
    Engine(#[from] spark_engine::EngineError),
    /// Identity resolution after a load failed.
    #[error("resolve: {0}")]
    Resolve(#[from] resolve::Error),
}

/// A load that ended badly, with its error log.
#[derive(Debug)]
pub struct FailedLoad {
    pub batch: String,
    pub part: String,
    pub load_id: String,
    pub status: String,
    pub error_count: u64,
    pub errors: Vec<LoadErrorEntry>,
    /// Print the loader's messages, which can quote the data's values (addresses, loyalty
    /// levels): off unless the user asks (`--show-values`), so logs carry no customer data.
    pub show_values: bool,
}

impl std::fmt::Display for FailedLoad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "batch {}: the {} load {} ended {}{}",
            self.batch,
            self.part,
            self.load_id,
            self.status,
            errors_summary(&self.errors, self.error_count, self.show_values)
        )
    }
}

/// One entry of a load's error log for a log line: file, record and code, and the loader's
/// message (which can quote values) only when asked.
pub fn error_line(e: &LoadErrorEntry, show_values: bool) -> String {
    if show_values {
        format!("{}:{}: {} {}", e.file, e.record, e.code, e.message)
    } else {
        format!("{}:{}: {}", e.file, e.record, e.code)
    }
}

fn errors_summary(errors: &[LoadErrorEntry], count: u64, show_values: bool) -> String {
    let mut text = format!(" with {count} errors");
    for e in errors.iter().take(50) {
        text.push_str(&format!("\n  {}", error_line(e, show_values)));
    }
    if errors.len() > 50 {
        text.push_str(&format!(
            "\n  ... and {} more (`loader errors LOAD_ID` lists them all; --show-values adds the \
             loader's messages, which can quote the data)",
            errors.len() - 50
        ));
    }
    text
}

/// What a run did to one batch.
#[derive(Debug, Clone, Serialize)]
pub struct BatchReport {
    pub batch: String,
    pub transformed: bool,
    /// Already loaded by an earlier run: nothing was done.
    pub already_loaded: bool,
    pub files: usize,
    pub uploaded_files: usize,
    pub uploaded_bytes: u64,
    pub loads: Vec<LoadRecord>,
    pub vertices: BTreeMap<String, u64>,
    pub edges: BTreeMap<String, u64>,
    /// Identity resolution after the batch's load, and the load of its `personId` batch.
    pub identity: Option<IdentityReport>,
}

/// What resolving a batch's identities did, and the load of the result.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityReport {
    pub resolved: resolve::ResolveReport,
    pub load: Box<BatchReport>,
}

/// What a run would do to one batch (`--dry-run`).
#[derive(Debug, Clone, Serialize)]
pub struct PlannedBatch {
    pub batch: String,
    /// The batch has no graph output yet: it would be transformed first.
    pub transform: bool,
    pub files: Option<usize>,
    pub bytes: Option<u64>,
    /// Where its files would be uploaded; `None` loads them in place.
    pub stage_to: Option<String>,
    pub loads: Vec<String>,
    pub already_loaded: bool,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub batches: Vec<BatchReport>,
    pub watermark: Option<String>,
    /// The graph as the target's summary API reports it after the run.
    pub graph: Option<GraphSummary>,
    /// The graph the run loaded into (see `Plan::target_key`).
    pub target: String,
}

#[derive(Debug, Deserialize)]
struct ManifestFile {
    path: String,
    bytes: u64,
    sha256: String,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    #[serde(default)]
    mapping_sha256: String,
    /// Absent in manifests of older releases: their settings are unknown, and not checked.
    #[serde(default)]
    settings: Option<transform::BatchSettings>,
    files: Vec<ManifestFile>,
    vertices: BTreeMap<String, u64>,
    edges: BTreeMap<String, u64>,
}

impl Manifest {
    /// The files as the run state records them.
    fn file_records(&self) -> Vec<FileRecord> {
        self.files
            .iter()
            .map(|f| FileRecord {
                path: f.path.clone(),
                bytes: f.bytes,
                sha256: f.sha256.clone(),
            })
            .collect()
    }
}

/// A graph batch to load: the transform's output for a source batch, or resolution's.
struct GraphBatch {
    /// As the run state records it: `initial`, `20260101_000000`, `identity/initial`...
    name: String,
    /// Its folder, relative to the root (and to the stage).
    key: String,
}

impl GraphBatch {
    fn transformed(kind: &SourceKind) -> GraphBatch {
        GraphBatch {
            name: batch_name(kind),
            key: Layout::graph_dir(kind),
        }
    }

    fn identity(kind: &SourceKind) -> GraphBatch {
        GraphBatch {
            name: format!("identity/{}", batch_name(kind)),
            key: Layout::identity_graph_dir(kind),
        }
    }
}

/// Concurrent uploads (as many as `aws s3 cp` makes by default).
const UPLOAD_THREADS: usize = 10;

/// Takes the run lock of the root, so two runs never overlap; take it before connecting to the
/// loader and hold it for the run. Released on drop.
pub fn lock_run<'a>(plan: &Plan, store: &'a Store) -> Result<Lock<'a>, RunError> {
    Lock::acquire(store, &plan.root.join(crate::LOCK), plan.lock_ttl).map_err(setup)
}

/// A run's context: the plan, storage and the loader endpoint.
#[derive(Debug)]
pub struct Runner<'a> {
    pub plan: &'a Plan,
    pub store: &'a Store,
    pub neptune: &'a Neptune,
    pub progress: bool,
    /// Set by a stop signal: the run ends after the batch in flight.
    pub stop: &'a AtomicBool,
    /// The run lock ([`lock_run`]): every state write is fenced on it.
    pub lock: &'a Lock<'a>,
}

fn setup(e: impl std::fmt::Display) -> RunError {
    RunError::Setup(e.to_string())
}

fn batch_name(kind: &SourceKind) -> String {
    match kind {
        SourceKind::Initial => "initial".into(),
        SourceKind::Incremental(b) => b.to_string(),
    }
}

fn graph_dir(plan: &Plan, kind: &SourceKind) -> Location {
    plan.root.join(&Layout::graph_dir(kind))
}

fn read_manifest(plan: &Plan, store: &Store, kind: &SourceKind) -> Result<Manifest, RunError> {
    read_manifest_at(store, &graph_dir(plan, kind))
}

fn read_manifest_at(store: &Store, dir: &Location) -> Result<Manifest, RunError> {
    let location = dir.join("manifest.json");
    let bytes = store.read(&location).map_err(setup)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| setup(format!("{location}: not a transform manifest: {e}")))
}

/// Incremental source batches newer than the watermark, oldest first.
pub fn pending_batches(
    plan: &Plan,
    store: &Store,
    state: &State,
) -> Result<Vec<BatchId>, RunError> {
    let base = plan.root.join(&format!("{}/incremental", Layout::SOURCES));
    let mut batches: Vec<BatchId> = store
        .list(&base)
        .map_err(setup)?
        .iter()
        .filter_map(|o| o.relative.split('/').nth(1)?.parse().ok())
        .filter(|b: &BatchId| state.watermark.as_deref().is_none_or(|w| b.as_str() > w))
        .collect();
    batches.sort();
    batches.dedup();
    // No further than a batch still being written (or whose writer died): loading the ones
    // after it would move the watermark past it, and it would never be loaded.
    for (i, batch) in batches.iter().enumerate() {
        let kind = SourceKind::Incremental(batch.clone());
        let marker = plan.root.join(&Layout::source_batch_in_progress(&kind));
        if store.exists(&marker).map_err(setup)? {
            eprintln!(
                "loader: source batch {batch} is incomplete ({marker}); it and the batches after \
                 it wait for the next run"
            );
            batches.truncate(i);
            break;
        }
    }
    Ok(batches)
}

/// What `full` (or `incremental`) would do, changing nothing.
pub fn plan_only(
    plan: &Plan,
    store: &Store,
    incremental: bool,
) -> Result<Vec<PlannedBatch>, RunError> {
    let state = State::load(store, &plan.root, &plan.target_key()).map_err(setup)?;
    let kinds: Vec<SourceKind> = if incremental {
        pending_batches(plan, store, &state)?
            .into_iter()
            .map(SourceKind::Incremental)
            .collect()
    } else {
        vec![SourceKind::Initial]
    };
    let mut planned = Vec::new();
    for kind in kinds {
        let name = batch_name(&kind);
        let manifest_at = graph_dir(plan, &kind).join("manifest.json");
        let manifest = if store.exists(&manifest_at).map_err(setup)? {
            Some(read_manifest(plan, store, &kind)?)
        } else {
            None
        };
        // As a run decides: loaded, with the files the manifest lists now.
        let loaded = state.batches.get(&name).is_some_and(|b| {
            b.stage == "loaded"
                && !manifest
                    .as_ref()
                    .is_some_and(|m| b.files_replaced(&m.file_records()))
        });
        planned.push(PlannedBatch {
            batch: name,
            transform: manifest.is_none(),
            files: manifest.as_ref().map(|m| m.files.len()),
            bytes: manifest
                .as_ref()
                .map(|m| m.files.iter().map(|f| f.bytes).sum()),
            stage_to: plan
                .stage
                .as_ref()
                .map(|s| s.join(&Layout::graph_dir(&kind)).to_string()),
            loads: if loaded {
                Vec::new()
            } else {
                vec![
                    "vertices".to_owned(),
                    "edges (depends on vertices)".to_owned(),
                ]
            },
            already_loaded: loaded,
        });
    }
    Ok(planned)
}

/// Transforming and staging batches: what a load needs first, and all that `upload` does. It
/// needs no loader endpoint.
struct Stager<'a> {
    plan: &'a Plan,
    store: &'a Store,
    progress: bool,
    /// Asks a Glue transform run being followed to stop.
    stop: &'a AtomicBool,
}

/// The stop flag of a command that takes no stop request.
static NO_STOP: AtomicBool = AtomicBool::new(false);

impl Stager<'_> {
    fn say(&self, message: &str) {
        if self.progress {
            eprintln!("loader: {message}");
        }
    }

    /// Transforms the batch unless its manifest is already there, with the plan's transform
    /// settings. A batch transformed with another mapping is refused, naming both checksums,
    /// or (with `force`) transformed again. Returns whether it was transformed now.
    fn ensure_transformed(&self, kind: &SourceKind) -> Result<bool, RunError> {
        let settings = &self.plan.transform;
        let manifest_at = graph_dir(self.plan, kind).join("manifest.json");
        let mut force = false;
        if self.store.exists(&manifest_at).map_err(setup)? {
            let manifest = read_manifest(self.plan, self.store, kind)?;
            let made_with = manifest.mapping_sha256;
            let configured = transform::BatchSettings {
                gzip: settings.gzip,
                max_file_bytes: settings.max_file_bytes,
                max_reject_rate: settings.max_reject_rate,
            };
            let changed = manifest
                .settings
                .as_ref()
                .and_then(|made| made.difference(&configured));
            if made_with == settings.mapping.text_sha256 && changed.is_none() {
                return Ok(false);
            }
            if !settings.force {
                if made_with != settings.mapping.text_sha256 {
                    return Err(RunError::MappingChanged {
                        batch: batch_name(kind),
                        manifest: manifest_at.to_string(),
                        made_with,
                        configured: settings.mapping.text_sha256.clone(),
                    });
                }
                if let Some((setting, made_with, configured)) = changed {
                    return Err(RunError::SettingChanged {
                        batch: batch_name(kind),
                        setting,
                        made_with,
                        configured,
                    });
                }
            }
            self.say(&format!(
                "transforming {} again: it was made with another mapping or other settings",
                batch_name(kind)
            ));
            force = true;
        } else {
            self.say(&format!("transforming {}", batch_name(kind)));
        }
        if !matches!(settings.engine, spark_engine::EnginePlan::Local) {
            let job = spark_engine::BatchJob {
                input: self.plan.root.clone(),
                output: self.plan.root.clone(),
                kind: kind.clone(),
                mapping_toml: settings.mapping.text.clone(),
                max_reject_rate: settings.max_reject_rate,
                max_file_bytes: settings.max_file_bytes,
                gzip: settings.gzip,
                force,
                encryption: self.plan.encryption.clone(),
                show_values: self.plan.show_values,
            };
            let report = spark_engine::run_batch(&settings.engine, &job, self.store, self.stop)?;
            self.say(&format!(
                "transformed {} on {} in {:.1} s{}",
                report.batch,
                report.engine,
                report.seconds,
                report
                    .run_id
                    .map(|id| format!(" (Glue run {id})"))
                    .unwrap_or_default()
            ));
            return Ok(true);
        }
        let selection = match kind {
            SourceKind::Initial => transform::Selection::Initial,
            SourceKind::Incremental(b) => transform::Selection::Batch(b.clone()),
        };
        transform::run(&transform::Options {
            input: self.plan.root.clone(),
            output: self.plan.root.clone(),
            selection,
            mapping: settings.mapping.clone(),
            max_reject_rate: settings.max_reject_rate,
            max_file_bytes: settings.max_file_bytes,
            gzip: settings.gzip,
            force,
            progress: self.progress,
            encryption: self.plan.encryption.clone(),
            show_values: self.plan.show_values,
        })
        .map_err(RunError::Transform)?;
        Ok(true)
    }

    /// Puts the batch's files where the loader reads them; returns the vertex and edge sources
    /// and (files uploaded, bytes uploaded). Every file is checked against the manifest's
    /// SHA-256 on every path (uploaded, or loaded in place locally or on S3), and a load prefix
    /// that holds a file the manifest does not list is refused: the loader reads every object
    /// under it, so a stale file of an earlier generation would be loaded too. In a stage of
    /// the loader's own, such files are removed first.
    fn stage(
        &self,
        batch: &GraphBatch,
        manifest: &Manifest,
    ) -> Result<(String, String, usize, u64), RunError> {
        let batch_dir = self.plan.root.join(&batch.key);
        let target = match &self.plan.stage {
            Some(stage) => stage.join(&batch.key),
            // The local endpoint reads the local folder in place.
            None => batch_dir.clone(),
        };
        let sources = (
            target.join("vertices").to_string() + "/",
            target.join("edges").to_string() + "/",
        );
        // Uploads wait on the network, not the CPU: more of them than cores.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(UPLOAD_THREADS)
            .build()
            .map_err(setup)?;
        let uploaded = if target == batch_dir {
            // The graph is already where the loader reads it: check it is the manifest's.
            pool.install(|| {
                manifest
                    .files
                    .par_iter()
                    .try_for_each(|file| self.read_checked(&batch_dir, file).map(drop))
            })?;
            (0, 0)
        } else {
            let uploaded = self.upload(batch, manifest, &batch_dir, &target, &pool)?;
            for stale in self.unlisted(&target, manifest)? {
                self.say(&format!(
                    "removing {stale} from the stage: batch {} does not list it",
                    batch.name
                ));
                self.store.remove(&target.join(&stale)).map_err(setup)?;
            }
            uploaded
        };
        let unlisted = self.unlisted(&target, manifest)?;
        if !unlisted.is_empty() {
            return Err(RunError::UnlistedFiles {
                batch: batch.name.clone(),
                dir: target.to_string(),
                files: unlisted,
            });
        }
        Ok((sources.0, sources.1, uploaded.0, uploaded.1))
    }

    /// The files under the batch's load prefixes (`vertices/`, `edges/`) of `dir` that the
    /// manifest does not list, relative to `dir`.
    fn unlisted(&self, dir: &Location, manifest: &Manifest) -> Result<Vec<String>, RunError> {
        let listed: std::collections::BTreeSet<&str> =
            manifest.files.iter().map(|f| f.path.as_str()).collect();
        let mut out = Vec::new();
        for part in ["vertices", "edges"] {
            for object in self.store.list(&dir.join(part)).map_err(setup)? {
                let path = format!("{part}/{}", object.relative);
                if !listed.contains(path.as_str()) {
                    out.push(path);
                }
            }
        }
        Ok(out)
    }

    /// A file of the batch, read and checked against the manifest's SHA-256: a file changed
    /// since the transform would otherwise be loaded under the manifest's checksum.
    fn read_checked(&self, dir: &Location, file: &ManifestFile) -> Result<Vec<u8>, RunError> {
        let source = dir.join(&file.path);
        let bytes = self.store.read(&source).map_err(setup)?;
        let actual = format!("{:x}", sha2::Sha256::digest(&bytes));
        if actual != file.sha256 {
            return Err(RunError::ChangedFile {
                file: source.to_string(),
                manifest: file.sha256.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Uploads the batch's files that the stage does not hold with the same SHA-256 yet;
    /// returns (files uploaded, bytes uploaded).
    fn upload(
        &self,
        batch: &GraphBatch,
        manifest: &Manifest,
        batch_dir: &Location,
        target: &Location,
        pool: &rayon::ThreadPool,
    ) -> Result<(usize, u64), RunError> {
        let total: u64 = manifest.files.iter().map(|f| f.bytes).sum();
        self.say(&format!(
            "uploading {} files ({total} bytes) of batch {} to {target}",
            manifest.files.len(),
            batch.name
        ));
        let bar = if self.progress {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "uploading {msg} {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message(batch.name.clone());
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        let results: Vec<Result<Option<u64>, RunError>> = pool.install(|| {
            manifest
                .files
                .par_iter()
                .map(|file| {
                    let destination = target.join(&file.path);
                    // Same content already there: a re-run uploads nothing new.
                    if self
                        .store
                        .stored_sha256(&destination)
                        .map_err(setup)?
                        .as_deref()
                        == Some(file.sha256.as_str())
                    {
                        bar.inc(file.bytes);
                        return Ok(None);
                    }
                    let bytes = self.read_checked(batch_dir, file)?;
                    self.store
                        .put(&destination, bytes, &file.sha256)
                        .map_err(setup)?;
                    bar.inc(file.bytes);
                    Ok(Some(file.bytes))
                })
                .collect()
        });
        bar.finish_and_clear();
        let mut uploaded = (0usize, 0u64);
        for result in results {
            if let Some(bytes) = result? {
                uploaded.0 += 1;
                uploaded.1 += bytes;
            }
        }
        Ok(uploaded)
    }
}

/// `loader upload`: transforms the batch if needed and stages its files, loading nothing.
/// Returns (files, files uploaded, bytes uploaded).
pub fn upload(
    plan: &Plan,
    store: &Store,
    progress: bool,
    batch: Option<BatchId>,
) -> Result<(usize, usize, u64), RunError> {
    let kind = match batch {
        None => SourceKind::Initial,
        Some(b) => SourceKind::Incremental(b),
    };
    if plan.stage.is_none() {
        return Err(setup(
            "nothing to upload to: give --stage s3://BUCKET/PREFIX (or an s3:// root)",
        ));
    }
    let stager = Stager {
        plan,
        store,
        progress,
        stop: &NO_STOP,
    };
    stager.ensure_transformed(&kind)?;
    let manifest = read_manifest(plan, store, &kind)?;
    let (_, _, files, bytes) = stager.stage(&GraphBatch::transformed(&kind), &manifest)?;
    Ok((manifest.files.len(), files, bytes))
}

/// Exit points for the kill tests (see [`idgraph_core::process::exit_point`]): `before-start`,
/// `after-start`, `after-state`, `polling`, `between-parts`, `after-resolve`,
/// `before-watermark`.
fn exit_point(point: &str, context: &str) {
    idgraph_core::process::exit_point_in("loader", point, context);
}

impl Runner<'_> {
    fn save(&self, state: &State) -> Result<(), RunError> {
        state
            .save(
                self.store,
                &self.plan.root,
                &self.plan.target_key(),
                self.lock,
            )
            .map_err(setup)
    }

    fn stager(&self) -> Stager<'_> {
        Stager {
            plan: self.plan,
            store: self.store,
            progress: self.progress,
            stop: self.stop,
        }
    }

    fn say(&self, message: &str) {
        self.stager().say(message);
    }

    /// `loader full`: the initial graph. The caller holds the run lock ([`lock_run`]).
    pub fn full(&self) -> Result<RunReport, RunError> {
        let mut state =
            State::load(self.store, &self.plan.root, &self.plan.target_key()).map_err(setup)?;
        let batch = self.batch(&mut state, &SourceKind::Initial)?;
        self.report(vec![batch], &state)
    }

    /// `loader incremental`: every pending batch in order, the watermark moved after each.
    pub fn incremental(&self) -> Result<RunReport, RunError> {
        let mut state =
            State::load(self.store, &self.plan.root, &self.plan.target_key()).map_err(setup)?;
        let pending = pending_batches(self.plan, self.store, &state)?;
        if pending.is_empty() {
            self.say("no incremental batch newer than the watermark");
        }
        let mut reports = Vec::new();
        for batch in pending {
            if self.stop.load(Ordering::SeqCst) {
                self.say("stopping before the next batch, as asked");
                break;
            }
            let kind = SourceKind::Incremental(batch.clone());
            reports.push(self.batch(&mut state, &kind)?);
            exit_point("before-watermark", batch.as_str());
            state.watermark = Some(batch.to_string());
            self.save(&state)?;
        }
        self.report(reports, &state)
    }

    fn report(&self, batches: Vec<BatchReport>, state: &State) -> Result<RunReport, RunError> {
        Ok(RunReport {
            batches,
            watermark: state.watermark.clone(),
            // The loads are done and recorded: a summary the endpoint cannot give (an older
            // engine, a role without the statistics permission) does not fail the run.
            graph: match self.neptune.summary() {
                Ok(summary) => Some(summary),
                Err(e) => {
                    eprintln!("loader: no graph summary: {e}");
                    None
                }
            },
            target: self.plan.target_key(),
        })
    }

    /// Transforms and loads one batch, resuming whatever an earlier run of it left in flight;
    /// then, unless turned off, resolves its identities and loads the result.
    fn batch(&self, state: &mut State, kind: &SourceKind) -> Result<BatchReport, RunError> {
        let transformed = self.stager().ensure_transformed(kind)?;
        let mut report = self.load_graph(state, &GraphBatch::transformed(kind), transformed)?;
        if self.plan.resolve {
            report.identity = Some(self.resolve(state, kind)?);
        }
        Ok(report)
    }

    /// Resolves the batch's identities (and first those of earlier batches loaded while
    /// resolution was off) and loads each `personId` batch. Resolving a batch twice does
    /// nothing, and its load is recorded like any other: a run killed anywhere here resumes.
    fn resolve(&self, state: &mut State, kind: &SourceKind) -> Result<IdentityReport, RunError> {
        let plan =
            resolve::ResolvePlan::new(self.plan.root.clone(), self.plan.transform.mapping.clone())?;
        let mut order = resolve::pending(&plan, self.store)?;
        match order.iter().position(|k| k == kind) {
            Some(at) => order.truncate(at),
            None => order.clear(),
        }
        order.push(kind.clone());
        let mut last = None;
        for k in &order {
            let resolved = resolve::resolve_batch(&plan, self.store, k)?;
            self.say(&format!(
                "batch {}: {} people ({} new, {} merges), personId set on {} identifiers",
                resolved.batch,
                resolved.people,
                resolved.new_people,
                resolved.merges.len(),
                resolved.changed_identifiers
            ));
            exit_point("after-resolve", &batch_name(k));
            let load = self.load_graph(state, &GraphBatch::identity(k), false)?;
            last = Some(IdentityReport {
                resolved,
                load: Box::new(load),
            });
        }
        last.ok_or_else(|| setup("nothing to resolve"))
    }

    /// Loads one graph batch, resuming whatever an earlier run of it left in flight.
    fn load_graph(
        &self,
        state: &mut State,
        batch: &GraphBatch,
        transformed: bool,
    ) -> Result<BatchReport, RunError> {
        let name = batch.name.clone();
        let stager = self.stager();
        let manifest = read_manifest_at(self.store, &self.plan.root.join(&batch.key))?;
        let mut report = BatchReport {
            batch: name.clone(),
            transformed,
            already_loaded: false,
            files: manifest.files.len(),
            uploaded_files: 0,
            uploaded_bytes: 0,
            loads: Vec::new(),
            vertices: manifest.vertices.clone(),
            edges: manifest.edges.clone(),
            identity: None,
        };
        let file_records = manifest.file_records();
        // Graph files other than the ones this target recorded for the batch (transformed again,
        // by this run, `upload --force` or `transform --force`): what the target holds of the
        // batch does not count. The mark is saved before anything is loaded, so a run killed at
        // any point after the new files appeared still loads them.
        if let Some(record) = state.batches.get_mut(&name)
            && record.files_replaced(&file_records)
        {
            *record = BatchRecord {
                replaced_files: true,
                ..BatchRecord::default()
            };
            self.save(state)?;
        }
        // Files replaced under the same names: an AUTO load would take them for the files an
        // earlier load completed and skip them, so this batch's loads start NEW.
        let mode = state
            .batches
            .get(&name)
            .is_some_and(|b| b.replaced_files)
            .then(|| "NEW".to_owned());
        if state
            .batches
            .get(&name)
            .is_some_and(|b| b.stage == "loaded")
        {
            self.say(&format!("batch {name} is already loaded"));
            report.already_loaded = true;
            report.loads = state.batches[&name].loads.clone();
            return Ok(report);
        }
        let (vertices_source, edges_source, files, bytes) = stager.stage(batch, &manifest)?;
        report.uploaded_files = files;
        report.uploaded_bytes = bytes;
        {
            let record = state.batches.entry(name.clone()).or_default();
            record.files = file_records;
            record.vertices = manifest.vertices.clone();
            record.edges = manifest.edges.clone();
            if record.stage.is_empty() || record.stage == "pending" || record.stage == "failed" {
                record.stage = "uploaded".into();
            }
            record.updated_at = now();
        }
        self.save(state)?;

        let vertices = self.ensure_load(
            state,
            &name,
            "vertices",
            LoadRequest {
                source: vertices_source,
                dependencies: self.plan.dependencies.clone(),
                mode: mode.clone(),
            },
        )?;
        exit_point("between-parts", &name);
        let vertices_done = vertices.1;
        let dependencies = if vertices_done {
            Vec::new()
        } else {
            vec![vertices.0.clone()]
        };
        let mut parts = vec![("vertices", vertices)];
        // A batch without edges (identity resolution's) has no edge load.
        if manifest.files.iter().any(|f| f.path.starts_with("edges/")) {
            let edges = self.ensure_load(
                state,
                &name,
                "edges",
                LoadRequest {
                    source: edges_source,
                    dependencies,
                    mode,
                },
            )?;
            parts.push(("edges", edges));
        }
        // Loads an earlier run saw complete are checked again too: a load that completed with
        // more errors than --max-error-rate allows fails every run, not only the first.
        for (part, (id, _)) in parts {
            self.finish_load(state, &name, part, &id)?;
        }
        let record = state.batches.entry(name.clone()).or_default();
        record.stage = "loaded".into();
        record.replaced_files = false;
        record.updated_at = now();
        report.loads = record.loads.clone();
        self.save(state)?;
        Ok(report)
    }

    /// The load of one part: the one an earlier run started, if it is still alive or done,
    /// otherwise a new one. Returns its id and whether it already completed.
    ///
    /// A new load is recorded (without an id, with the ids of every load the endpoint already
    /// has of the same source) before the loader is asked to start it, and its id right after.
    /// A run that died in between finds, on restart, a record without an id: it then looks on
    /// the endpoint for a load of that source (`fullUri`) that is not one of the recorded ones
    /// and follows it, so the batch is never loaded twice, and an earlier generation's load of
    /// the same prefix is never taken for this one.
    fn ensure_load(
        &self,
        state: &mut State,
        batch: &str,
        part: &str,
        request: LoadRequest,
    ) -> Result<(String, bool), RunError> {
        let source = request.source.as_str();
        let existing = state
            .batches
            .get(batch)
            .and_then(|b| b.loads.iter().rev().find(|l| l.part == part).cloned());
        if let Some(existing) = existing {
            let found = match &existing.load_id {
                Some(id) => match self.neptune.status(id) {
                    Ok(status) => Some((id.clone(), status)),
                    // Forgotten by the endpoint (it keeps only recent loads): start again.
                    Err(NeptuneError::LoadNotFound(_)) => None,
                    // Anything else may be transient: starting another load now could load twice.
                    Err(e) => return Err(setup(e)),
                },
                None => {
                    let found = self
                        .neptune
                        .find_load_of(source, &existing.known_loads)
                        .map_err(setup)?;
                    if let Some((id, _)) = &found {
                        self.say(&format!(
                            "batch {batch}: an earlier run asked for a {part} load and died before \
                             recording it; the endpoint has it as {id}"
                        ));
                        self.record_load_id(state, batch, part, id)?;
                    }
                    found
                }
            };
            if let Some((id, status)) = found {
                match phase(&status.status) {
                    Phase::Completed => return Ok((id, true)),
                    Phase::Running => {
                        self.say(&format!(
                            "batch {batch}: the {part} load {id} of an earlier run is {}; following it",
                            status.status
                        ));
                        return Ok((id, false));
                    }
                    // Failed: start again; AUTO resumes the files it did not complete.
                    Phase::Failed => {}
                }
            }
        }
        // The loads the endpoint already has of this source (earlier generations of the batch,
        // under the same names) are written into the intent: a run that dies before recording
        // the new load's id then follows only a load that is not one of them.
        let known_loads = self.neptune.loads_of(source).map_err(setup)?;
        let record = state.batches.entry(batch.to_owned()).or_default();
        record.stage = "loading".into();
        record.loads.push(LoadRecord {
            part: part.to_owned(),
            source: source.to_owned(),
            load_id: None,
            status: None,
            known_loads,
        });
        record.updated_at = now();
        self.save(state)?;
        let context = format!("{batch} {part}");
        exit_point("before-start", &context);
        let id = self.neptune.start(self.plan, &request).map_err(setup)?;
        exit_point("after-start", &context);
        self.record_load_id(state, batch, part, &id)?;
        exit_point("after-state", &context);
        // Said only once the id is on record: a run killed after this line resumes this load.
        self.say(&format!(
            "batch {batch}: {part} load {id} started from {source}"
        ));
        Ok((id, false))
    }

    /// Writes the id of the part's newest load, asked for but not yet recorded, to the state.
    fn record_load_id(
        &self,
        state: &mut State,
        batch: &str,
        part: &str,
        id: &str,
    ) -> Result<(), RunError> {
        let record = state.batches.entry(batch.to_owned()).or_default();
        if let Some(load) = record.loads.iter_mut().rev().find(|l| l.part == part) {
            load.load_id = Some(id.to_owned());
        }
        record.updated_at = now();
        self.save(state)
    }

    /// Polls a load to its end, records it, and fails the run on a failed load or too many
    /// errors (every page of the error log is fetched for the report).
    fn finish_load(
        &self,
        state: &mut State,
        batch: &str,
        part: &str,
        id: &str,
    ) -> Result<LoadStatus, RunError> {
        let mut last = String::new();
        let status = self
            .neptune
            .wait(id, self.plan.load_timeout, |s| {
                exit_point("polling", &format!("{batch} {part}"));
                if s.status != last {
                    last = s.status.clone();
                    if self.progress {
                        eprintln!("loader: batch {batch}: {part} load {id}: {}", s.status);
                    }
                }
            })
            .map_err(setup)?;
        if let Some(record) = state.batches.get_mut(batch)
            && let Some(load) = record
                .loads
                .iter_mut()
                .rev()
                .find(|l| l.load_id.as_deref() == Some(id))
        {
            load.status = Some(status.clone());
        }
        let too_many =
            status.errors() as f64 > self.plan.max_error_rate * status.total_records.max(1) as f64;
        if phase(&status.status) != Phase::Completed || too_many {
            if let Some(record) = state.batches.get_mut(batch) {
                record.stage = "failed".into();
            }
            self.save(state)?;
            let errors = self.neptune.errors(id).unwrap_or_default();
            return Err(RunError::LoadFailed(Box::new(FailedLoad {
                batch: batch.to_owned(),
                part: part.to_owned(),
                load_id: id.to_owned(),
                status: if too_many && phase(&status.status) == Phase::Completed {
                    format!(
                        "{} but with more errors than --max-error-rate {} allows",
                        status.status, self.plan.max_error_rate
                    )
                } else {
                    status.status.clone()
                },
                error_count: status.errors(),
                errors,
                show_values: self.plan.show_values,
            })));
        }
        self.save(state)?;
        Ok(status)
    }
}
