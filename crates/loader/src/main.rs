//! `loader`: full and incremental loads of the identity graph into Neptune (or the local
//! stand-in), a scheduler, and the loader's status, list, errors and cancel calls.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use loader::{Neptune, Plan, RunReport, Runner, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "loader",
    version,
    about = "Upload the identity graph to S3 and drive the Neptune bulk loader: full and incremental runs",
    after_help = "Settings come from --config FILE, then the environment (IDGRAPH_ROOT, IDGRAPH_STAGE, \
NEPTUNE_ENDPOINT, NEPTUNE_IAM_ROLE_ARN, AWS_REGION, IDGRAPH_ENCRYPTION, NEPTUNE_PARALLELISM, \
IDGRAPH_MAPPING, IDGRAPH_MAX_REJECT_RATE, IDGRAPH_MAX_FILE_MB, IDGRAPH_GZIP, ...), then flags. \
The transform step takes the same mapping and settings as `transform`, on every command \
(schedule included); a batch transformed with another mapping is refused unless --force. With no Neptune endpoint, the local stand-in (neptune-local) runs in this process over \
<root>/neptune-local and loads the local folder in place.\n\n\
Examples:\n  \
loader full                                   # local default: data/ into data/neptune-local\n  \
loader incremental --json                     # every new batch, oldest first\n  \
loader schedule --every 15m                   # run incremental every 15 minutes until SIGINT/SIGTERM\n  \
loader schedule --once                        # one incremental run, for cron or a Kubernetes CronJob\n  \
loader full --root s3://my-bucket --neptune-endpoint https://my-cluster:8182 \\\n      \
--iam-role-arn arn:aws:iam::123456789012:role/NeptuneLoadFromS3 --region us-east-1\n  \
loader errors LOAD_ID                         # every page of a load's error log"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Common {
    /// TOML settings file (keys as the long flags, with underscores).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Local folder or s3://BUCKET[/PREFIX] holding datasets/ [default: data]
    #[arg(long, global = true)]
    root: Option<String>,
    /// s3://BUCKET[/PREFIX] the graph files are uploaded to [default: the root when on S3]
    #[arg(long, global = true)]
    stage: Option<String>,
    /// The cluster's loader endpoint, https://HOST:8182 [default: local neptune-local]
    #[arg(long, global = true)]
    neptune_endpoint: Option<String>,
    /// The local endpoint's data folder [default: <root>/neptune-local]
    #[arg(long, global = true)]
    neptune_data_dir: Option<PathBuf>,
    /// The IAM role the cluster reads S3 with (required for a cluster)
    #[arg(long, global = true)]
    iam_role_arn: Option<String>,
    /// The cluster's and the bucket's region (required for a cluster) [default: AWS_REGION]
    #[arg(long, global = true)]
    region: Option<String>,
    /// AES256, aws:kms or none [default: AES256]
    #[arg(long, global = true)]
    encryption: Option<String>,
    /// The KMS key of --encryption aws:kms [default: the bucket's]
    #[arg(long, global = true)]
    kms_key_id: Option<String>,
    /// LOW, MEDIUM, HIGH or OVERSUBSCRIBE [default: HIGH]
    #[arg(long, global = true)]
    parallelism: Option<String>,
    /// Stop a load at its first error [default: true]
    #[arg(long, global = true)]
    fail_on_error: Option<bool>,
    /// Let new values replace single-cardinality ones [default: true]
    #[arg(long, global = true)]
    update_single_cardinality_properties: Option<bool>,
    /// Errors tolerated per record before a load fails the run [default: 0]
    #[arg(long, global = true)]
    max_error_rate: Option<f64>,
    /// Cancel a load still running after this many seconds [default: 7200]
    #[arg(long, global = true)]
    load_timeout_secs: Option<u64>,
    /// The loader's mode: AUTO, NEW or RESUME [default: AUTO]
    #[arg(long, global = true)]
    mode: Option<String>,
    /// Queue behind a running load instead of failing [default: true]
    #[arg(long, global = true)]
    queue_request: Option<bool>,
    /// Load `""` as an empty string (parserConfiguration.allowEmptyStrings) [default: false]
    #[arg(long, global = true)]
    allow_empty_strings: Option<bool>,
    /// A load id the first load of a batch must wait for (repeatable)
    #[arg(long = "depends-on", global = true, value_name = "LOAD_ID")]
    depends_on: Vec<String>,
    /// The graph mapping batches are transformed with [default: schemas/graph.toml, built in]
    #[arg(long, global = true, value_name = "FILE")]
    mapping: Option<PathBuf>,
    /// Fail a transform past this share of rejected rows [default: 0.01]
    #[arg(long, global = true, value_name = "R")]
    max_reject_rate: Option<f64>,
    /// Start a new graph file after this many MB [default: 256]
    #[arg(long, global = true, value_name = "MB")]
    max_file_mb: Option<u64>,
    /// Transform batches into .csv.gz files [default: false]
    #[arg(long, global = true)]
    gzip: Option<bool>,
    /// Transform again a batch whose graph was made with another mapping or other transform
    /// settings (--gzip, --max-file-mb, --max-reject-rate), and load it
    #[arg(long, global = true)]
    force: bool,
    /// Print the loader's error messages, which can quote customer data [default: off: file,
    /// record and error code only]
    #[arg(long, global = true)]
    show_values: bool,
    /// Seconds an S3 run lock lasts unless renewed; a run renews it every third of that
    /// [default: 600]
    #[arg(long, global = true, value_name = "SECS")]
    lock_ttl_secs: Option<u64>,
    /// Do not resolve identities after each batch's load (resolution gives every identifier of
    /// a person one `personId` and loads it as its own batch)
    #[arg(long, global = true)]
    no_resolve: bool,
    #[command(flatten)]
    engine: spark_engine::EngineSettings,
    /// Print the report as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// No progress output.
    #[arg(long, short, global = true)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Transform (if needed), upload and load the initial graph.
    Full {
        /// Print what would be done and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Transform, upload and load every incremental batch newer than the watermark.
    Incremental {
        #[arg(long)]
        dry_run: bool,
    },
    /// Transform (if needed) and upload one batch to the stage, loading nothing.
    Upload {
        /// An incremental batch (YYYYMMDD_HHMMSS); the initial graph when absent.
        #[arg(long)]
        batch: Option<String>,
    },
    /// Run `incremental` on an interval until SIGINT or SIGTERM, or once (--once).
    Schedule {
        /// The interval: 90s, 15m, 1h.
        #[arg(long, value_parser = parse_interval, required_unless_present = "once")]
        every: Option<Duration>,
        /// One run, then exit: for cron, EventBridge or a Kubernetes CronJob.
        #[arg(long)]
        once: bool,
    },
    /// A load's status and counters.
    Status { load_id: String },
    /// Recent load ids, newest first.
    List {
        #[arg(long, default_value_t = 20)]
        limit: i32,
    },
    /// Every page of a load's error log.
    Errors { load_id: String },
    /// Cancel a queued or running load.
    Cancel { load_id: String },
    /// The run state of every target (endpoint and stage): watermark, batches, load ids.
    State,
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected a number and a unit, e.g. 15m"))?;
    let seconds = match unit {
        "" | "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        _ => return Err(format!("`{text}`: the unit is s, m or h")),
    }
    .ok_or_else(|| format!("`{text}`: too long an interval"))?;
    if seconds == 0 {
        return Err("the interval must be positive".into());
    }
    Ok(Duration::from_secs(seconds))
}

fn settings(common: &Common) -> anyhow::Result<Settings> {
    let file = match &common.config {
        Some(path) => Settings::from_file(path).map_err(anyhow::Error::msg)?,
        None => Settings::default(),
    };
    let env = Settings::from_env(|k| std::env::var(k).ok()).map_err(anyhow::Error::msg)?;
    let flags = Settings {
        root: common.root.clone(),
        stage: common.stage.clone(),
        neptune_endpoint: common.neptune_endpoint.clone(),
        neptune_data_dir: common.neptune_data_dir.clone(),
        iam_role_arn: common.iam_role_arn.clone(),
        region: common.region.clone(),
        encryption: common.encryption.clone(),
        kms_key_id: common.kms_key_id.clone(),
        parallelism: common.parallelism.clone(),
        fail_on_error: common.fail_on_error,
        update_single_cardinality_properties: common.update_single_cardinality_properties,
        max_error_rate: common.max_error_rate,
        load_timeout_secs: common.load_timeout_secs,
        mode: common.mode.clone(),
        queue_request: common.queue_request,
        allow_empty_strings: common.allow_empty_strings,
        dependencies: (!common.depends_on.is_empty()).then(|| common.depends_on.clone()),
        mapping: common.mapping.clone(),
        max_reject_rate: common.max_reject_rate,
        max_file_mb: common.max_file_mb,
        gzip: common.gzip,
        force: common.force.then_some(true),
        show_values: common.show_values.then_some(true),
        lock_ttl_secs: common.lock_ttl_secs,
        resolve: common.no_resolve.then_some(false),
        engine: common.engine.clone(),
    };
    Ok(file.overlay(env).overlay(flags))
}

fn print_report(report: &RunReport, json: bool, seconds: f64) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    for batch in &report.batches {
        print_batch(batch);
        if let Some(identity) = &batch.identity {
            let r = &identity.resolved;
            println!(
                "identity {}: {} people resolved from {} identifiers ({} new people, {} merges; personId set on {}){}",
                r.batch,
                r.people,
                r.identifiers,
                r.new_people,
                r.merges.len(),
                r.changed_identifiers,
                if r.already_resolved {
                    ", resolved by an earlier run"
                } else {
                    ""
                }
            );
            if let Some(page) = &r.html_report {
                println!("  report: {page}");
            }
            if r.skipped_rows > 0 {
                println!(
                    "  skipped {} rows that are not graph rows, such as {}",
                    r.skipped_rows,
                    r.skipped.first().map(String::as_str).unwrap_or_default()
                );
            }
            print_batch(&identity.load);
        }
    }
    if let Some(watermark) = &report.watermark {
        println!("watermark: {watermark}");
    }
    if let Some(graph) = &report.graph {
        println!(
            "graph ({}): {} vertices, {} edges",
            report.target, graph.vertices, graph.edges
        );
        println!("  vertex labels: {}", graph.vertex_labels.join(", "));
        println!("  edge labels: {}", graph.edge_labels.join(", "));
    }
    println!("done in {seconds:.1} s");
    Ok(())
}

fn print_batch(batch: &loader::BatchReport) {
    let vertices: u64 = batch.vertices.values().sum();
    let edges: u64 = batch.edges.values().sum();
    println!(
        "batch {}: {}{} files, {} uploaded ({} bytes); {vertices} vertices, {edges} edges",
        batch.batch,
        if batch.transformed {
            "transformed, "
        } else {
            ""
        },
        batch.files,
        batch.uploaded_files,
        batch.uploaded_bytes
    );
    if batch.already_loaded {
        println!("  already loaded by an earlier run");
    }
    for load in &batch.loads {
        match &load.status {
            Some(s) => println!(
                "  {} load {}: {}, {} records, {} duplicates, {} errors, {:.1} s",
                load.part,
                load.load_id.as_deref().unwrap_or("(id not recorded)"),
                s.status,
                s.total_records,
                s.total_duplicates,
                s.errors(),
                s.total_time_spent
            ),
            None => println!(
                "  {} load {}",
                load.part,
                load.load_id.as_deref().unwrap_or("(id not recorded)")
            ),
        }
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

/// SIGINT or SIGTERM asks the scheduler to stop after the batch in flight; a second one stops
/// at once (the run state already records any load in flight, which the next run follows).
fn watch_signals() {
    std::thread::spawn(|| {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                if STOP.swap(true, Ordering::SeqCst) {
                    // A local lock goes with the process; an S3 one is released here, if it is
                    // still this run's.
                    loader::release_held_locks();
                    eprintln!("loader: stopping now; the next run resumes from the run state");
                    std::process::exit(130);
                }
                eprintln!("loader: stopping after the batch in flight (signal again to stop now)");
            }
        });
    });
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let plan = Plan::resolve(settings(&cli.common)?).map_err(anyhow::Error::msg)?;
    // Every S3 write of the run (state, lock, staged files, the transform's output) is
    // encrypted as the plan says.
    let store = idgraph_storage::Store::default().with_encryption(plan.encryption.clone());
    let json = cli.common.json;
    let progress = !cli.common.quiet && !json;
    match cli.command {
        Command::Full { dry_run } | Command::Incremental { dry_run } if dry_run => {
            let incremental = matches!(cli.command, Command::Incremental { .. });
            let planned = loader::plan_only(&plan, &store, incremental)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&planned)?);
            } else {
                for p in &planned {
                    println!(
                        "batch {}: {}{}{}",
                        p.batch,
                        if p.transform { "transform, " } else { "" },
                        match (p.files, p.bytes) {
                            (Some(f), Some(b)) => format!("{f} files ({b} bytes), "),
                            _ => String::new(),
                        },
                        if p.already_loaded {
                            "already loaded".to_owned()
                        } else {
                            format!(
                                "{}load {}",
                                p.stage_to
                                    .as_ref()
                                    .map(|s| format!("upload to {s}, "))
                                    .unwrap_or_default(),
                                p.loads.join(", then ")
                            )
                        }
                    );
                }
                if planned.is_empty() {
                    println!("nothing to do");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Full { .. } | Command::Incremental { .. } => {
            let started = Instant::now();
            let lock = loader::lock_run(&plan, &store)?;
            let neptune = Neptune::connect(&plan)?;
            let runner = Runner {
                plan: &plan,
                store: &store,
                neptune: &neptune,
                progress,
                stop: &STOP,
                lock: &lock,
            };
            let report = if matches!(cli.command, Command::Full { .. }) {
                runner.full()?
            } else {
                runner.incremental()?
            };
            lock.release().map_err(anyhow::Error::msg)?;
            print_report(&report, json, started.elapsed().as_secs_f64())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Schedule { every, once } => {
            watch_signals();
            let neptune = Neptune::connect(&plan)?;
            let mut failed;
            loop {
                let started = Instant::now();
                // The lock is taken for each run and released between runs.
                let run = loader::lock_run(&plan, &store).and_then(|lock| {
                    Runner {
                        plan: &plan,
                        store: &store,
                        neptune: &neptune,
                        progress,
                        stop: &STOP,
                        lock: &lock,
                    }
                    .incremental()
                });
                match run {
                    Ok(report) => {
                        failed = false;
                        print_report(&report, json, started.elapsed().as_secs_f64())?;
                    }
                    Err(e) => {
                        failed = true;
                        eprintln!("loader: {e}");
                    }
                }
                let Some(every) = every.filter(|_| !once) else {
                    break;
                };
                let next = Instant::now() + every;
                while Instant::now() < next && !STOP.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(200));
                }
                if STOP.load(Ordering::SeqCst) {
                    break;
                }
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Upload { batch } => {
            let started = Instant::now();
            let batch = batch
                .map(|b| b.parse::<idgraph_core::BatchId>())
                .transpose()?;
            let lock = loader::lock_run(&plan, &store)?;
            let (files, uploaded, bytes) = loader::upload(&plan, &store, progress, batch)?;
            lock.release().map_err(anyhow::Error::msg)?;
            let seconds = started.elapsed().as_secs_f64();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"files": files, "uploaded_files": uploaded,
                                       "uploaded_bytes": bytes, "seconds": seconds})
                );
            } else {
                println!("{files} files, {uploaded} uploaded ({bytes} bytes) in {seconds:.2} s");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { load_id } => {
            let neptune = Neptune::connect(&plan)?;
            let status = neptune.status(&load_id)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                println!(
                    "{load_id}: {}, {} records, {} duplicates, {} parsing, {} datatype, {} insert errors, {:.1} s",
                    status.status,
                    status.total_records,
                    status.total_duplicates,
                    status.parsing_errors,
                    status.datatype_mismatch_errors,
                    status.insert_errors,
                    status.total_time_spent
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::List { limit } => {
            let neptune = Neptune::connect(&plan)?;
            let ids = neptune.list(limit)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&ids)?);
            } else {
                for id in ids {
                    println!("{id}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Errors { load_id } => {
            let neptune = Neptune::connect(&plan)?;
            let mut errors = neptune.errors(&load_id)?;
            if !plan.show_values {
                for e in &mut errors {
                    e.message.clear();
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&errors)?);
            } else {
                for e in &errors {
                    println!("{}", loader::error_line(e, plan.show_values));
                }
                println!("{} errors", errors.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Cancel { load_id } => {
            Neptune::connect(&plan)?.cancel(&load_id)?;
            println!("cancelled {load_id}");
            Ok(ExitCode::SUCCESS)
        }
        Command::State => {
            // Every target's state: which graphs hold which batches.
            let state = loader::StateFile::load(&store, &plan.root).map_err(anyhow::Error::msg)?;
            println!("{}", serde_json::to_string_pretty(&state)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loader: {e:#}");
            ExitCode::FAILURE
        }
    }
}
