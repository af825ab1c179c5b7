//! Source datasets to normalised, deduplicated, Neptune-valid Gremlin CSV.
//!
//! ```text
//! read (local or S3)  ->  parse + map, in parallel chunks (elements::map_chunk, no I/O)
//!                     ->  merge and sort per label (polars)  ->  write per label
//!                     ->  publish the batch: graph/<batch>/{vertices,edges}/, manifest.json,
//!                         rejects.csv
//! ```
//!
//! Every source row is used, counted as an exact duplicate of an earlier row, or rejected with
//! its file, line, column and reason; the manifest reconciles the three per dataset.

mod elements;
mod frames;
mod ids;
mod mapping;
mod normalise;
mod source;
mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use idgraph_core::{BatchId, Dataset, DatasetSchema, Layout, SourceKind, SourceSchemas};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use idgraph_storage::{Encryption, Location};
pub use ids::{push_id, vertex_id};
pub use mapping::{CacheLabels, DEFAULT_MAPPING_TOML, IdentityRules, Mapping, MappingError};
pub use normalise::Normaliser;
pub use write::GraphFile;

use elements::{Chunk, ChunkOutput, EdgeRows, Reject, VertexRows, map_chunk};
use idgraph_storage::Store;
use ids::IdSet;

/// Why a run failed. Messages name the file, column or location concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Storage(#[from] idgraph_storage::StorageError),
    #[error("{0}")]
    Output(String),
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error(
        "batch {batch}: {rejects} of {rows} rows rejected ({:.2}%), more than --max-reject-rate {:.2}%; \
         the graph was not written. Every reject is in {rejects_file}; the first: {first}",
        100.0 * *rejects as f64 / (*rows).max(1) as f64,
        100.0 * max_rate
    )]
    TooManyRejects {
        batch: String,
        rejects: u64,
        rows: u64,
        max_rate: f64,
        rejects_file: String,
        first: String,
    },
    #[error(
        "batch {0} is already transformed (its manifest.json exists); pass --force to transform it again"
    )]
    AlreadyTransformed(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Which sources to transform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// `datasets/sources/initial/`.
    Initial,
    /// One incremental batch.
    Batch(BatchId),
    /// Every incremental batch that has no graph output yet, oldest first.
    Pending,
}

/// A transform request.
#[derive(Debug, Clone)]
pub struct Options {
    pub input: Location,
    pub output: Location,
    pub selection: Selection,
    pub mapping: Mapping,
    /// Fail when more than this fraction of rows is rejected.
    pub max_reject_rate: f64,
    /// Split a label's file after this many bytes of text.
    pub max_file_bytes: u64,
    pub gzip: bool,
    pub force: bool,
    pub progress: bool,
    /// Server-side encryption of what is written to S3 (default SSE-S3).
    pub encryption: idgraph_storage::Encryption,
    /// Quote source values in messages (a reject's value); off, messages name file, line,
    /// column and rule only, so logs carry no customer data.
    pub show_values: bool,
}

/// The default `--max-reject-rate`.
pub const DEFAULT_MAX_REJECT_RATE: f64 = 0.01;
/// The default `--max-file-mb`, in bytes.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 256_000_000;

impl Options {
    /// The command line's defaults: the initial sources, the default mapping, no gzip, no
    /// force, no progress bar.
    pub fn new(input: Location, output: Location) -> Result<Options, Error> {
        Ok(Options {
            input,
            output,
            selection: Selection::Initial,
            mapping: Mapping::default_mapping()?,
            max_reject_rate: DEFAULT_MAX_REJECT_RATE,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            gzip: false,
            force: false,
            progress: false,
            encryption: idgraph_storage::Encryption::default(),
            show_values: false,
        })
    }
}

/// Rows of one dataset in one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DatasetCounts {
    pub dataset: String,
    /// Source files read, relative to the input root.
    pub files: Vec<String>,
    pub rows_read: u64,
    pub rows_used: u64,
    /// Rows identical (after parsing) to an earlier row of the dataset in the batch.
    pub duplicates: u64,
    pub rejects: u64,
}

/// What a batch's graph output holds. Written as `manifest.json` beside `vertices/` and `edges/`;
/// it depends only on the sources and the mapping (not on where they were read or written).
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub format: u32,
    /// `initial`, or the batch timestamp.
    pub batch: String,
    pub mapping_sha256: String,
    pub files: Vec<GraphFile>,
    pub vertices: BTreeMap<String, u64>,
    pub edges: BTreeMap<String, u64>,
    pub datasets: Vec<DatasetCounts>,
    pub rejects_file: String,
    /// Things worth knowing that lost no data (skipped files, byte-order marks).
    pub notes: Vec<String>,
    /// The settings the batch was made with: a run with others must not take it as its own.
    pub settings: BatchSettings,
}

/// The transform settings a batch's output depends on, as its manifest records them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchSettings {
    pub gzip: bool,
    pub max_file_bytes: u64,
    pub max_reject_rate: f64,
}

impl BatchSettings {
    /// The first setting that differs from `other`: (name as the command line spells it,
    /// this value, the other's).
    pub fn difference(&self, other: &BatchSettings) -> Option<(&'static str, String, String)> {
        if self.gzip != other.gzip {
            return Some(("--gzip", self.gzip.to_string(), other.gzip.to_string()));
        }
        if self.max_file_bytes != other.max_file_bytes {
            return Some((
                "--max-file-mb",
                (self.max_file_bytes / 1_000_000).to_string(),
                (other.max_file_bytes / 1_000_000).to_string(),
            ));
        }
        if self.max_reject_rate != other.max_reject_rate {
            return Some((
                "--max-reject-rate",
                self.max_reject_rate.to_string(),
                other.max_reject_rate.to_string(),
            ));
        }
        None
    }
}

/// Seconds per stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub read: f64,
    pub parse_and_map: f64,
    /// Labels are merged (polars) and written in parallel: one figure for both.
    pub merge_and_write: f64,
    pub publish: f64,
    pub total: f64,
}

/// The result of transforming one batch.
#[derive(Debug, Clone, Serialize)]
pub struct BatchReport {
    pub input: String,
    pub output: String,
    pub manifest: Manifest,
    pub timings: Timings,
    pub peak_rss_bytes: Option<u64>,
}

/// The result of a run: one report per batch transformed.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub batches: Vec<BatchReport>,
}

const MANIFEST: &str = "manifest.json";
const REJECTS: &str = "rejects.csv";
/// Bytes of text per parallel parse chunk.
const CHUNK_BYTES: usize = 4 << 20;

fn batch_name(kind: &SourceKind) -> String {
    match kind {
        SourceKind::Initial => "initial".to_owned(),
        SourceKind::Incremental(b) => b.to_string(),
    }
}

/// Runs the transform for the selected batches.
pub fn run(options: &Options) -> Result<RunReport, Error> {
    let store = Store::default().with_encryption(options.encryption.clone());
    reclaim_leftovers(&options.output)?;
    let kinds = match &options.selection {
        Selection::Initial => vec![SourceKind::Initial],
        Selection::Batch(batch) => vec![SourceKind::Incremental(batch.clone())],
        Selection::Pending => pending_batches(&store, options)?
            .into_iter()
            .map(SourceKind::Incremental)
            .collect(),
    };
    let mut batches = Vec::new();
    for kind in kinds {
        batches.push(transform_batch(&store, options, &kind)?);
    }
    Ok(RunReport { batches })
}

/// Incremental batches found under the input that have no manifest in the output yet, oldest
/// first (what `Selection::Pending` transforms; other engines ask for them here).
pub fn pending(options: &Options) -> Result<Vec<BatchId>, Error> {
    let store = Store::default().with_encryption(options.encryption.clone());
    pending_batches(&store, options)
}

/// Whether the batch already has its graph output (its manifest) under the output root.
pub fn is_transformed(options: &Options, kind: &SourceKind) -> Result<bool, Error> {
    let store = Store::default().with_encryption(options.encryption.clone());
    Ok(store.exists(&options.output.join(&Layout::graph_dir(kind)).join(MANIFEST))?)
}

/// Reclaims what publishes killed midway left under a local output root (see
/// [`idgraph_core::publish::reclaim`]): a batch moved aside is put back, staging folders of
/// runs that are gone are removed. Every run does it first, so a batch is never missing because
/// an earlier run died between its two renames.
pub fn reclaim_leftovers(output: &Location) -> Result<(), Error> {
    let Location::Local(root) = output else {
        return Ok(());
    };
    let graph = root.join(Layout::DATASETS).join("graph");
    idgraph_core::publish::reclaim(&[graph.clone(), graph.join("incremental")])
        .map(drop)
        .map_err(|e| {
            Error::Output(format!(
                "cannot reclaim leftovers under {}: {e}",
                graph.display()
            ))
        })
}

fn pending_batches(store: &Store, options: &Options) -> Result<Vec<BatchId>, Error> {
    let mut found = std::collections::BTreeSet::new();
    for dataset in Dataset::ALL {
        let root = options.input.join(&format!(
            "{}/incremental/{}",
            Layout::SOURCES,
            dataset.name()
        ));
        for object in store.list(&root)? {
            if let Some(batch) = object
                .relative
                .split('/')
                .next()
                .and_then(|b| b.parse::<BatchId>().ok())
            {
                found.insert(batch);
            }
        }
    }
    let mut pending = Vec::new();
    for batch in found {
        let manifest = options
            .output
            .join(&Layout::graph_dir(&SourceKind::Incremental(batch.clone())))
            .join(MANIFEST);
        if !store.exists(&manifest)? {
            pending.push(batch);
        }
    }
    Ok(pending)
}

fn is_source_file(relative: &str) -> bool {
    let hidden = relative.split('/').any(|part| part.starts_with('.'));
    !hidden && (relative.ends_with(".csv") || relative.ends_with(".csv.gz"))
}

/// Everything one batch's rows produced, before merging.
struct Gathered {
    datasets: Vec<DatasetCounts>,
    rejects: Vec<Reject>,
    /// Per label, the blocks of rows of every chunk, in source order.
    vertices: Vec<Vec<VertexRows>>,
    edges: Vec<Vec<EdgeRows>>,
    notes: Vec<String>,
}

/// Adds the outputs of consecutive chunks, in source order, to the batch: counts, rejects, and
/// per label the rows to merge. `rows_seen` holds the hashes of the dataset's good rows so far,
/// to count exact duplicates. (Rows repeating a vertex or edge are not dropped here: the merge
/// groups them. A set of the ids seen so far cost more than the rows it saved; measured on 1M
/// records: 0.5 s more wall time and 60 to 90 MB more at the peak.)
fn absorb(
    outputs: Vec<ChunkOutput>,
    rows_seen: &mut IdSet,
    counts: &mut DatasetCounts,
    gathered: &mut Gathered,
) {
    for output in outputs {
        counts.rows_read += output.rows;
        counts.rejects += output.rejects.len() as u64;
        gathered.rejects.extend(output.rejects);
        // Counted one by one, not as a difference: the manifest's reconciliation is a check.
        for hash in output.row_hashes {
            if rows_seen.insert(hash) {
                counts.rows_used += 1;
            } else {
                counts.duplicates += 1;
            }
        }
        for (blocks, mine) in gathered.vertices.iter_mut().zip(output.vertices) {
            if !mine.ids.is_empty() {
                blocks.push(mine);
            }
        }
        for (blocks, mine) in gathered.edges.iter_mut().zip(output.edges) {
            if !mine.ids.is_empty() {
                blocks.push(mine);
            }
        }
    }
}

fn gather(
    store: &Store,
    options: &Options,
    kind: &SourceKind,
    timings: &mut Timings,
    progress: &indicatif::ProgressBar,
) -> Result<Gathered, Error> {
    let mapping = &options.mapping;
    let schemas = SourceSchemas::embedded();
    let mut gathered = Gathered {
        datasets: Vec::new(),
        rejects: Vec::new(),
        vertices: mapping.vertices.iter().map(|_| Vec::new()).collect(),
        edges: mapping.edges.iter().map(|_| Vec::new()).collect(),
        notes: Vec::new(),
    };
    let mut rows_seen = IdSet::default();
    for dataset in Dataset::ALL {
        let schema = schemas.get(dataset);
        let dir_key = Layout::source_dir(kind, dataset);
        let objects = store.list(&options.input.join(&dir_key))?;
        let mut counts = DatasetCounts {
            dataset: dataset.name().to_owned(),
            ..DatasetCounts::default()
        };
        // Exact duplicate rows are counted within a dataset.
        rows_seen.clear();
        for object in objects {
            let relative = format!("{dir_key}/{}", object.relative);
            if !is_source_file(&object.relative) {
                gathered
                    .notes
                    .push(format!("{relative}: skipped (not a .csv or .csv.gz file)"));
                continue;
            }
            progress.set_message(format!("reading {relative}"));
            let started = Instant::now();
            let bytes = store.read(&options.input.join(&relative))?;
            timings.read += started.elapsed().as_secs_f64();
            let started = Instant::now();
            if bytes.is_empty() {
                gathered
                    .notes
                    .push(format!("{relative}: empty file (no header, no rows)"));
                counts.files.push(relative);
                continue;
            }
            let decoded = source::decode(&relative, bytes)?;
            gathered.notes.extend(decoded.notes.iter().cloned());
            let text = decoded.text.as_str();
            let chunks = file_chunks(&relative, schema, text, CHUNK_BYTES)?;
            // Chunks are mapped in parallel a window at a time and folded in source order, so
            // that only two windows' unfiltered rows are in memory at once. A window is folded
            // while the next one is mapped: folding is mostly set lookups that would otherwise
            // leave a core idle.
            let window = rayon::current_num_threads().max(1) * 2;
            let mut mapped: Option<Vec<ChunkOutput>> = None;
            for group in chunks.chunks(window) {
                let map = || {
                    group
                        .par_iter()
                        .map(|(range, first_line)| {
                            map_chunk(
                                mapping,
                                Chunk {
                                    dataset,
                                    schema,
                                    file: &relative,
                                    text: &text[range.clone()],
                                    first_line: *first_line,
                                    lossy: decoded.lossy,
                                },
                            )
                        })
                        .collect::<Vec<_>>()
                };
                let previous = mapped.take();
                let (outputs, ()) = rayon::join(map, || {
                    if let Some(previous) = previous {
                        absorb(previous, &mut rows_seen, &mut counts, &mut gathered);
                    }
                });
                mapped = Some(outputs);
            }
            if let Some(last) = mapped {
                absorb(last, &mut rows_seen, &mut counts, &mut gathered);
            }
            counts.files.push(relative);
            timings.parse_and_map += started.elapsed().as_secs_f64();
        }
        if counts.rows_read != counts.rows_used + counts.duplicates + counts.rejects {
            return Err(Error::Internal(format!(
                "{}: {} rows read but {} used, {} duplicates and {} rejects",
                counts.dataset,
                counts.rows_read,
                counts.rows_used,
                counts.duplicates,
                counts.rejects
            )));
        }
        gathered.datasets.push(counts);
    }
    if gathered.datasets.iter().all(|d| d.files.is_empty()) {
        return Err(Error::Input(format!(
            "no source files under {} for batch {} (expected {}/<dataset>/...csv[.gz]; run datagen first, or check --input)",
            options.input,
            batch_name(kind),
            options.input.join(&match kind {
                SourceKind::Initial => format!("{}/initial", Layout::SOURCES),
                SourceKind::Incremental(b) => format!("{}/incremental/*/{b}", Layout::SOURCES),
            })
        )));
    }
    Ok(gathered)
}

/// Checks a source file's header against its dataset's schema and cuts the rest into chunks of
/// about `target` bytes at record boundaries, each with the line it starts on.
fn file_chunks(
    relative: &str,
    schema: &DatasetSchema,
    text: &str,
    target: usize,
) -> Result<Vec<(std::ops::Range<usize>, u64)>, Error> {
    let mut records = gremlin_csv::Records::new(text);
    let header = match records.next() {
        Some(Ok(record)) => record,
        Some(Err(e)) => {
            return Err(Error::Input(format!(
                "{relative}: line 1 (the header): {e}"
            )));
        }
        None => {
            return Err(Error::Input(format!("{relative}: no header row")));
        }
    };
    source::check_header(relative, schema, &header.fields)?;
    // The header ends where the first data record starts.
    let body_start = text
        .match_indices('\n')
        .nth(header_lines(&header) as usize - 1)
        .map_or(text.len(), |(i, _)| i + 1);
    Ok(source::split_chunks(
        text,
        body_start,
        header_lines(&header) + 1,
        target,
    ))
}

/// Entry points for the fuzz targets under `fuzz/`; not an API to build on.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// Reads one source file of `dataset` as a run does (gunzip, decode, header check, chunks
    /// at record boundaries, parse and map), with chunks of `chunk_bytes` so that small inputs
    /// cross chunk boundaries too. Returns (rows read, rejects), or the run's error.
    pub fn source_file(
        mapping: &Mapping,
        dataset: Dataset,
        name: &str,
        bytes: Vec<u8>,
        chunk_bytes: usize,
    ) -> Result<(u64, u64), Error> {
        let schema = SourceSchemas::embedded().get(dataset);
        let decoded = source::decode(name, bytes)?;
        let text = decoded.text.as_str();
        let mut totals = (0, 0);
        for (range, first_line) in file_chunks(name, schema, text, chunk_bytes.max(1))? {
            let out = map_chunk(
                mapping,
                Chunk {
                    dataset,
                    schema,
                    file: name,
                    text: &text[range],
                    first_line,
                    lossy: decoded.lossy,
                },
            );
            if out.rows != out.rejects.len() as u64 + out.row_hashes.len() as u64 {
                return Err(Error::Internal(format!(
                    "{name}: {} rows but {} rejects and {} good rows",
                    out.rows,
                    out.rejects.len(),
                    out.row_hashes.len()
                )));
            }
            totals.0 += out.rows;
            totals.1 += out.rejects.len() as u64;
        }
        Ok(totals)
    }
}

/// Lines the header record spans (a quoted header name could hold a line break).
fn header_lines(header: &gremlin_csv::Record<'_>) -> u64 {
    1 + header
        .fields
        .iter()
        .map(|f| f.text.matches('\n').count() as u64)
        .sum::<u64>()
}

fn rejects_csv(rejects: &[Reject]) -> String {
    let mut out = String::from("dataset,file,line,column,reason\n");
    for r in rejects {
        gremlin_csv::push_field(&mut out, r.dataset.name());
        out.push(',');
        gremlin_csv::push_field(&mut out, &r.file);
        out.push(',');
        out.push_str(&r.line.to_string());
        out.push(',');
        gremlin_csv::push_field(&mut out, r.column.as_deref().unwrap_or(""));
        out.push(',');
        gremlin_csv::push_field(&mut out, &r.reason);
        out.push('\n');
    }
    out
}

fn local_staging(
    options: &Options,
    batch: &str,
) -> Result<(PathBuf, Option<tempfile::TempDir>), Error> {
    let fail = |e: std::io::Error| Error::Output(format!("cannot create a staging folder: {e}"));
    match &options.output {
        // Beside the final folder, so that publishing is one rename on the same file system.
        Location::Local(root) => {
            let graph = root.join(Layout::DATASETS).join("graph");
            std::fs::create_dir_all(&graph)
                .map_err(|e| Error::Output(format!("cannot create {}: {e}", graph.display())))?;
            let dir = tempfile::Builder::new()
                .prefix(&idgraph_core::publish::staging_prefix(batch))
                .tempdir_in(&graph)
                .map_err(fail)?;
            Ok((dir.path().to_path_buf(), Some(dir)))
        }
        Location::S3 { .. } => {
            let dir = tempfile::tempdir().map_err(fail)?;
            Ok((dir.path().to_path_buf(), Some(dir)))
        }
    }
}

fn transform_batch(
    store: &Store,
    options: &Options,
    kind: &SourceKind,
) -> Result<BatchReport, Error> {
    let started = Instant::now();
    let batch = batch_name(kind);
    let target = options.output.join(&Layout::graph_dir(kind));
    let in_progress = options.input.join(&Layout::source_batch_in_progress(kind));
    if store.exists(&in_progress)? {
        return Err(Error::Input(format!(
            "source batch {batch} is incomplete ({in_progress} says datagen is still writing it, \
             or died doing so); let it finish, or generate it again with --force"
        )));
    }
    if !options.force && store.exists(&target.join(MANIFEST))? {
        return Err(Error::AlreadyTransformed(batch));
    }
    let mut timings = Timings::default();
    let progress = if options.progress {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar.set_prefix(format!("batch {batch}"));
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} {prefix}: {msg} ({elapsed})")
        {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let gathered = gather(store, options, kind, &mut timings, &progress)?;

    let rows: u64 = gathered.datasets.iter().map(|d| d.rows_read).sum();
    let rejected = gathered.rejects.len() as u64;
    let rejects_text = rejects_csv(&gathered.rejects);
    if rows > 0 && rejected as f64 > options.max_reject_rate * rows as f64 {
        let rejects_at = target.join(REJECTS);
        store.write(&rejects_at, rejects_text.into_bytes())?;
        let first = gathered
            .rejects
            .first()
            .map(|r| r.summary(options.show_values))
            .unwrap_or_default();
        return Err(Error::TooManyRejects {
            batch,
            rejects: rejected,
            rows,
            max_rate: options.max_reject_rate,
            rejects_file: rejects_at.to_string(),
            first,
        });
    }

    let (staging, _guard) = local_staging(options, &batch)?;
    let mapping = &options.mapping;
    let (mut vertex_counts, mut edge_counts) = (BTreeMap::new(), BTreeMap::new());
    let mut files = Vec::new();
    let Gathered {
        datasets,
        vertices,
        edges,
        notes,
        ..
    } = gathered;
    // Labels are merged and written in parallel; each label's rows are freed once merged.
    progress.set_message("merging and writing labels");
    let t = Instant::now();
    let (max_bytes, gzip) = (options.max_file_bytes, options.gzip);
    // One parallel pass over every label, the largest first, so that no big label runs alone
    // at the end.
    enum Task {
        Vertices(usize, Vec<VertexRows>),
        Edges(usize, Vec<EdgeRows>),
    }
    let size = |t: &Task| match t {
        Task::Vertices(_, b) => b.iter().map(|r| r.ids.len()).sum::<usize>(),
        Task::Edges(_, b) => b.iter().map(|r| r.ids.len()).sum::<usize>(),
    };
    let mut tasks: Vec<Task> = vertices
        .into_iter()
        .enumerate()
        .map(|(i, b)| Task::Vertices(i, b))
        .chain(
            edges
                .into_iter()
                .enumerate()
                .map(|(i, b)| Task::Edges(i, b)),
        )
        .collect();
    tasks.sort_by_key(|t| std::cmp::Reverse(size(t)));
    struct LabelOutput {
        is_vertex: bool,
        name: String,
        count: u64,
        files: Vec<GraphFile>,
    }
    let results: Vec<Result<LabelOutput, Error>> = tasks
        .into_par_iter()
        .map(|task| match task {
            Task::Vertices(i, blocks) => {
                let label = &mapping.vertices[i];
                let merged = frames::merge_vertices(&label.name, blocks, label.properties.len())?;
                let files = write::write_vertices(&staging, label, &merged, max_bytes, gzip)?;
                Ok(LabelOutput {
                    is_vertex: true,
                    name: label.name.clone(),
                    count: merged.ids.len() as u64,
                    files,
                })
            }
            Task::Edges(i, blocks) => {
                let label = &mapping.edges[i];
                let merged = frames::merge_edges(&label.name, blocks, label.properties.len())?;
                let files = write::write_edges(&staging, label, &merged, max_bytes, gzip)?;
                Ok(LabelOutput {
                    is_vertex: false,
                    name: label.name.clone(),
                    count: merged.ids.len() as u64,
                    files,
                })
            }
        })
        .collect();
    for result in results {
        let output = result?;
        if output.is_vertex {
            vertex_counts.insert(output.name, output.count);
        } else {
            edge_counts.insert(output.name, output.count);
        }
        files.extend(output.files);
    }
    timings.merge_and_write = t.elapsed().as_secs_f64();
    files.sort_by(|a, b| a.path.cmp(&b.path));

    let manifest = Manifest {
        format: 1,
        batch: batch.clone(),
        mapping_sha256: mapping.text_sha256.clone(),
        files,
        vertices: vertex_counts,
        edges: edge_counts,
        datasets,
        rejects_file: REJECTS.to_owned(),
        notes,
        settings: BatchSettings {
            gzip: options.gzip,
            max_file_bytes: options.max_file_bytes,
            max_reject_rate: options.max_reject_rate,
        },
    };
    progress.set_message(format!("publishing to {target}"));
    let t = Instant::now();
    let write_file = |name: &str, bytes: &[u8]| {
        std::fs::write(staging.join(name), bytes).map_err(|e| {
            Error::Output(format!(
                "cannot write {}: {e}",
                staging.join(name).display()
            ))
        })
    };
    write_file(REJECTS, rejects_text.as_bytes())?;
    let mut manifest_text =
        serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Internal(e.to_string()))?;
    manifest_text.push(b'\n');
    write_file(MANIFEST, &manifest_text)?;
    publish(store, &staging, &target, &manifest)?;
    timings.publish = t.elapsed().as_secs_f64();
    timings.total = started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    Ok(BatchReport {
        input: options.input.to_string(),
        output: target.to_string(),
        manifest,
        timings,
        peak_rss_bytes: idgraph_core::process::peak_rss_bytes(),
    })
}

/// Moves a complete staged batch into place: locally by renaming the folder (the old one moved
/// aside first, see [`idgraph_core::publish::replace_dir`]); on S3 the old manifest is removed
/// first (so no reader takes a mix of generations for a batch), then every file is uploaded,
/// every object the new manifest does not list is removed, and the manifest is written last
/// (it is what marks a batch as transformed).
fn publish(
    store: &Store,
    staging: &Path,
    target: &Location,
    manifest: &Manifest,
) -> Result<(), Error> {
    match target {
        Location::Local(final_dir) => idgraph_core::publish::replace_dir(staging, final_dir)
            .map_err(|e| {
                Error::Output(format!(
                    "cannot move the batch into {}: {e}",
                    final_dir.display()
                ))
            }),
        Location::S3 { .. } => {
            store.remove(&target.join(MANIFEST))?;
            idgraph_core::process::exit_point("transform", "after-manifest-removed");
            let mut names: Vec<String> = manifest.files.iter().map(|f| f.path.clone()).collect();
            names.push(REJECTS.to_owned());
            names.par_iter().try_for_each(|name| -> Result<(), Error> {
                let bytes = std::fs::read(staging.join(name))
                    .map_err(|e| Error::Output(format!("cannot read staged {name}: {e}")))?;
                Ok(store.write(&target.join(name), bytes)?)
            })?;
            idgraph_core::process::exit_point("transform", "after-files");
            // Objects of an earlier generation (or of a run killed here) that this one lacks:
            // the loader reads every object under the prefix, listed or not.
            for object in store.list(target)? {
                if object.relative != MANIFEST && !names.contains(&object.relative) {
                    store.remove(&target.join(&object.relative))?;
                }
            }
            let manifest_bytes = std::fs::read(staging.join(MANIFEST))
                .map_err(|e| Error::Output(format!("cannot read staged {MANIFEST}: {e}")))?;
            store.write(&target.join(MANIFEST), manifest_bytes)?;
            Ok(())
        }
    }
}
