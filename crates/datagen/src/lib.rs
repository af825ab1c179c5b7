//! Seeded, parallel mock data for identity-graph pipelines: first-party (CRM) profiles,
//! cookies, clickstream sessions and purchases whose identities overlap the way real ones do,
//! incremental batches about the same people, optional dirt, and ground truth.
//!
//! ```no_run
//! let config = datagen::Config { records: 1_000, ..datagen::Config::default() };
//! let report = datagen::generate(&config)?;
//! println!("{report}");
//! # Ok::<(), datagen::Error>(())
//! ```

mod catalog;
mod config;
mod dirt;
mod output;
mod people;
mod report;
mod rng;
mod rows;
mod state;
mod timefmt;

use std::path::PathBuf;
use std::time::Instant;

use idgraph_core::{Dataset, Layout, SourceKind, SourceSchemas};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

pub use config::{Config, DEFAULT_AS_OF, DEFAULT_SEED};
pub use dirt::DirtCounts;
pub use output::{FileStats, FragmentCounts};
pub use report::{DatasetReport, Report};

use output::{FinishedFile, OutputFile, SealedChunk, remove_if_present};
use rows::{CHUNK_ITEMS, Generator, Job};
use state::GenState;

/// Why a run failed. Each message names the argument, file or folder concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("output already exists: {} (pass --force to replace it)", .0.display())]
    OutputExists(PathBuf),
    #[error("cannot create output folder {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    State { path: PathBuf, message: String },
    #[error(
        "no initial population under {}: run datagen without --incremental first (with the same --out)",
        .0.display()
    )]
    NoInitialPopulation(PathBuf),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<csv::Error> for Error {
    fn from(e: csv::Error) -> Error {
        Error::Internal(format!("csv: {e}"))
    }
}

/// Where each dataset of a run goes.
struct Target {
    path: PathBuf,
    /// The same file with the other compression, replaced by this run with `--force`.
    other_compression: PathBuf,
    truth: PathBuf,
}

fn targets(root: &std::path::Path, kind: &SourceKind, gzip: bool) -> Vec<Target> {
    Dataset::ALL
        .iter()
        .map(|&dataset| {
            let dir = root.join(Layout::source_dir(kind, dataset));
            Target {
                path: dir.join(Layout::source_file_name(kind, dataset, gzip)),
                other_compression: dir.join(Layout::source_file_name(kind, dataset, !gzip)),
                truth: root
                    .join(Layout::truth_dir(kind))
                    .join(Layout::truth_file_name(dataset)),
            }
        })
        .collect()
}

/// Generates one set of datasets (the initial population, or one incremental batch).
pub fn generate(config: &Config) -> Result<Report, Error> {
    let started = Instant::now();
    let plan = config::Plan::resolve(config)?;
    let targets = targets(&plan.root, &plan.kind, plan.gzip);

    // Refuse before doing any work, so that a refused run changes nothing.
    if !plan.force {
        let state_path = GenState::path(&plan.root);
        let mut taken = targets.iter().flat_map(|t| {
            let truth = plan.truth.then_some(&t.truth);
            [Some(&t.path), Some(&t.other_compression), truth]
        });
        if let Some(path) = taken.find_map(|p| p.filter(|p| p.exists())) {
            return Err(Error::OutputExists(path.clone()));
        }
        if plan.kind == SourceKind::Initial && state_path.exists() {
            return Err(Error::OutputExists(state_path));
        }
    }

    // What an earlier run killed before its renames left beside the targets (its temporary
    // files) goes first: this run writes the same files again.
    for target in &targets {
        for path in [&target.path, &target.other_compression, &target.truth] {
            idgraph_core::process::remove_temp_files_beside(path).map_err(|source| {
                Error::Write {
                    path: path.clone(),
                    source,
                }
            })?;
        }
    }

    let generator = Generator::new(&plan, SourceSchemas::embedded())?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(plan.threads)
        .build()
        .map_err(|e| Error::Internal(format!("cannot start {} threads: {e}", plan.threads)))?;
    let progress = if plan.progress {
        let bar = ProgressBar::new(plan.records * Job::ALL.len() as u64);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} {msg:<14} [{bar:30}] {percent:>3}% {human_pos}/{human_len} items, ETA {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    } else {
        ProgressBar::hidden()
    };

    let mut finished: Vec<FinishedFile> = Vec::with_capacity(Dataset::ALL.len());
    for job in Job::ALL {
        progress.set_message(job.outputs()[0].name());
        let mut files = job
            .outputs()
            .iter()
            .map(|&dataset| {
                let target = &targets[dataset as usize];
                let header = SourceSchemas::embedded().get(dataset).header_line();
                let truth = plan.truth.then(|| target.truth.clone());
                OutputFile::create(dataset, target.path.clone(), &header, plan.gzip, truth)
            })
            .collect::<Result<Vec<_>, _>>()?;
        pool.install(|| run_job(&generator, job, plan.records, &mut files, &progress))?;
        for file in files {
            finished.push(file.finish()?);
        }
    }
    progress.finish_and_clear();

    // Every file is complete: move them all into place, then record the run. The batch says it
    // is incomplete until the last step is done (readers refuse it meanwhile).
    let marker = plan.root.join(Layout::source_batch_in_progress(&plan.kind));
    output::write_atomically(&marker, b"datagen is writing this batch\n")?;
    let mut written = Vec::with_capacity(finished.len());
    for file in finished {
        written.push(file.commit()?);
        idgraph_core::process::exit_point("datagen", "mid-commit");
    }
    written.sort_by_key(|w| w.dataset);
    if plan.force {
        for target in &targets {
            remove_if_present(&target.other_compression)?;
            if !plan.truth {
                // Truth about data this run replaced would be wrong now.
                remove_if_present(&target.truth)?;
            }
        }
    }
    plan.state_after.save(&plan.root)?;
    remove_if_present(&marker)?;

    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let mut dirt = DirtCounts::default();
    let mut fragments = FragmentCounts::default();
    let datasets: Vec<DatasetReport> = written
        .into_iter()
        .map(|w| {
            dirt.add(&w.stats.dirt);
            fragments.add(&w.stats.fragments);
            DatasetReport {
                dataset: w.dataset.name().to_owned(),
                path: w.path,
                bytes: w.bytes,
                uncompressed_bytes: w.raw_bytes,
                stats: w.stats,
                truth: w.truth_path,
            }
        })
        .collect();
    let rows: u64 = datasets.iter().map(|d| d.stats.rows).sum();
    let bytes: u64 = datasets.iter().map(|d| d.bytes).sum();
    let existing: u64 = datasets.iter().map(|d| d.stats.existing_person_rows).sum();
    let pool_total = |p: &config::Pools| p.base.size + p.batch.map_or(0, |b| b.size);
    Ok(Report {
        kind: match plan.kind {
            SourceKind::Initial => "initial",
            SourceKind::Incremental(_) => "incremental",
        }
        .to_owned(),
        batch: plan.batch().map(ToString::to_string),
        root: plan.root.clone(),
        seed: plan.seed,
        records: plan.records,
        threads: plan.threads,
        gzip: plan.gzip,
        dirty_rate: plan.dirty_rate,
        ip_pool: pool_total(&plan.ips),
        device_pool: pool_total(&plan.devices),
        datasets,
        rows,
        bytes,
        dirt,
        fragmentation: plan.fragmentation,
        fragments,
        existing_person_rows: existing,
        existing_share: if rows == 0 {
            0.0
        } else {
            existing as f64 / rows as f64
        },
        elapsed_seconds: elapsed,
        rows_per_second: rows as f64 / elapsed,
        records_per_second: plan.records as f64 / elapsed,
        megabytes_per_second: bytes as f64 / 1e6 / elapsed,
        peak_rss_bytes: idgraph_core::process::peak_rss_bytes(),
        warnings: plan.warnings.clone(),
    })
}

/// Generates a job's chunks in parallel and appends them in order. Writing one window of
/// chunks overlaps with generating the next, and at most two windows are in memory: memory
/// stays flat however many records are asked for.
fn run_job(
    generator: &Generator<'_>,
    job: Job,
    items: u64,
    files: &mut [OutputFile],
    progress: &ProgressBar,
) -> Result<(), Error> {
    let chunks = items.div_ceil(CHUNK_ITEMS);
    let window = (rayon::current_num_threads() as u64 * 4).max(2);
    let mut pending: Vec<(u64, Vec<SealedChunk>)> = Vec::new();
    let mut next = 0u64;
    loop {
        let range = next..(next + window).min(chunks);
        next = range.end;
        let to_write = std::mem::take(&mut pending);
        if range.is_empty() && to_write.is_empty() {
            return Ok(());
        }
        let (written, generated) = rayon::join(
            || -> Result<(), Error> {
                for (count, sealed) in to_write {
                    for (file, chunk) in files.iter_mut().zip(sealed) {
                        file.append(chunk)?;
                    }
                    progress.inc(count);
                }
                Ok(())
            },
            || {
                range
                    .into_par_iter()
                    .map(|c| {
                        let items = c * CHUNK_ITEMS..((c + 1) * CHUNK_ITEMS).min(items);
                        let count = items.end - items.start;
                        generator.chunk(job, items).map(|sealed| (count, sealed))
                    })
                    .collect::<Result<Vec<_>, Error>>()
            },
        );
        written?;
        pending = generated?;
    }
}
