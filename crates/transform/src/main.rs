use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use idgraph_core::{BatchId, SourceKind};
use transform::{Location, Mapping, Options, RunReport, Selection};

const EXAMPLES: &str = "\
Examples:
  # After datagen: transform data/datasets/sources/initial into data/datasets/graph/initial
  transform

  # One incremental batch, or every batch not transformed yet (oldest first)
  transform --batch 20260115_060000
  transform --incremental

  # From and to S3 (standard AWS configuration; AWS_ENDPOINT_URL for a local S3 server)
  transform --input s3://my-bucket --output s3://my-bucket

  # Gzip, smaller files, an edited mapping, a JSON report
  transform --gzip --max-file-mb 64 --mapping my-graph.toml --json --force

  # Check any folder of Gremlin CSV against the Neptune bulk loader's rules
  transform validate data/datasets/graph/initial

  # The same batch on Spark (local or a cluster), or as an AWS Glue job
  transform --engine spark --spark-master 'local[*]'
  transform --input s3://lake/idgraph --engine glue --glue-role arn:aws:iam::123456789012:role/glue-idgraph

  # The Glue Data Catalog from schemas/sources.toml, then a transform whose sources it names
  transform catalog sync --database idgraph --root s3://lake/idgraph
  transform --glue-database idgraph --incremental

Output (under --output): datasets/graph/<initial|incremental/TS>/
  vertices/<Label>-00000.csv, edges/<label>-00000.csv, manifest.json, rejects.csv";

/// Transform identity source datasets into Gremlin CSV for the Amazon Neptune bulk loader:
/// normalised keys, deduplicated vertices and edges, deterministic ids, every row accounted for.
#[derive(Debug, Parser)]
#[command(name = "transform", version, after_help = EXAMPLES, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    Validate(gremlin_csv::ValidateArgs),
    /// The Glue Data Catalog of the sources, written from schemas/sources.toml.
    #[command(subcommand)]
    Catalog(CatalogCommand),
}

#[derive(Debug, Subcommand)]
enum CatalogCommand {
    /// Create or update the database, one table per source dataset (columns in order, CSV
    /// SerDe, header skipped) and one partition per batch under the root. A second run changes
    /// nothing; a column the catalog has and the schema lacks is reported, not dropped.
    Sync(CatalogSyncArgs),
}

#[derive(Debug, Args)]
struct CatalogSyncArgs {
    /// The Glue database (created if missing).
    #[arg(long, value_name = "NAME")]
    database: String,
    /// The data root holding datasets/sources/.
    #[arg(long, value_name = "s3://BUCKET[/PREFIX]")]
    root: String,
    /// Update a table even if that drops columns the catalog has and the schema lacks.
    #[arg(long)]
    drop_extra_columns: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Root of the sources: a folder or s3://BUCKET[/PREFIX] holding datasets/sources/.
    #[arg(short, long, value_name = "ROOT", default_value = "data")]
    input: String,
    /// Root of the graph output (datasets/graph/ below it). [default: the input root]
    #[arg(short, long, value_name = "ROOT")]
    output: Option<String>,
    /// Transform one incremental batch (its UTC timestamp) instead of the initial sources.
    #[arg(long, value_name = "YYYYMMDD_HHMMSS", conflicts_with = "incremental")]
    batch: Option<BatchId>,
    /// Transform every incremental batch that has no graph output yet, oldest first.
    #[arg(long)]
    incremental: bool,
    /// The graph mapping. [default: schemas/graph.toml as built in]
    #[arg(short, long, value_name = "FILE")]
    mapping: Option<PathBuf>,
    /// Fail when more than this fraction of the rows is rejected (0 to 1).
    #[arg(long, value_name = "R", default_value_t = transform::DEFAULT_MAX_REJECT_RATE, value_parser = fraction)]
    max_reject_rate: f64,
    /// Start a new file for a label after this many MB of text.
    #[arg(long, value_name = "MB", default_value_t = transform::DEFAULT_MAX_FILE_BYTES / 1_000_000, value_parser = clap::value_parser!(u64).range(1..=u64::MAX / 1_000_000))]
    max_file_mb: u64,
    /// Write .csv.gz files.
    #[arg(long)]
    gzip: bool,
    /// Transform a batch again even if its graph output exists.
    #[arg(short, long)]
    force: bool,
    /// Worker threads. [default: one per core]
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    /// Read the source root and its batches from this Glue Data Catalog database (written by
    /// `transform catalog sync`), refusing a table whose columns disagree with the schema.
    #[arg(long, value_name = "NAME")]
    glue_database: Option<String>,
    #[command(flatten)]
    engine: spark_engine::EngineSettings,
    /// Server-side encryption of everything written to S3: AES256 (SSE-S3), aws:kms (SSE-KMS)
    /// or none; the server's answer must confirm it.
    #[arg(long, value_name = "ALGORITHM", default_value = "AES256")]
    encryption: String,
    /// The KMS key of --encryption aws:kms (its id, ARN or alias); the server must confirm it.
    /// [default: the bucket's default key]
    #[arg(long, value_name = "KEY")]
    kms_key_id: Option<String>,
    /// Quote source values in messages (a reject's value); without it messages name file,
    /// line, column and rule only, so logs carry no customer data.
    #[arg(long)]
    show_values: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// No progress output.
    #[arg(short, long)]
    quiet: bool,
}

fn fraction(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("expected a fraction from 0 to 1, got `{s}`")),
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("transform: error: {message}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let line = idgraph_core::process::one_line_error(&e.to_string());
            eprintln!("transform: error: {line} (see transform --help)");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Some(Command::Validate(args)) => gremlin_csv::run_validate("transform", &args),
        Some(Command::Catalog(CatalogCommand::Sync(args))) => catalog_sync(&args),
        None => transform_sources(cli.run),
    }
}

fn catalog_sync(args: &CatalogSyncArgs) -> ExitCode {
    let plan = spark_engine::catalog::CatalogPlan {
        database: args.database.clone(),
        root: args.root.trim_end_matches('/').to_owned(),
        drop_extra_columns: args.drop_extra_columns,
    };
    let report = spark_engine::GlueClient::from_env().and_then(|glue| {
        glue.sync_catalog(
            &plan,
            idgraph_core::SourceSchemas::embedded(),
            &idgraph_storage::Store::default(),
        )
    });
    let report = match report {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => return fail(e),
        }
    } else {
        println!(
            "catalog: database {}{}",
            report.database,
            if report.database_created {
                " (created)"
            } else {
                ""
            }
        );
        for t in &report.tables {
            println!(
                "  table {:<14} {:<9} partitions: {} created, {} already there",
                t.table,
                t.action,
                t.partitions_created.len(),
                t.partitions_existing
            );
            if !t.extra_columns.is_empty() {
                println!(
                    "    the catalog has columns the schema lacks: {} (not dropped; --drop-extra-columns to drop them)",
                    t.extra_columns.join(", ")
                );
            }
            for (batch, reason) in &t.partition_errors {
                println!("    partition {batch} not created: {reason}");
            }
        }
        if !report.changed() {
            println!("  no change");
        }
    }
    if report.complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn transform_sources(mut args: RunArgs) -> ExitCode {
    // With a catalog database, the sources' root (and, for --incremental, the batches) come
    // from the catalog, after its tables are checked against the schema.
    let mut catalog_batches = None;
    if let Some(database) = &args.glue_database {
        let sources = spark_engine::GlueClient::from_env().and_then(|glue| {
            glue.sources_from_catalog(database, idgraph_core::SourceSchemas::embedded())
        });
        match sources {
            Ok(s) => {
                // --output still defaults to the input root, which is now the catalog's.
                args.input = s.root;
                catalog_batches = Some(s.batches);
            }
            Err(e) => return fail(e),
        }
    }
    let input: Location = match args.input.parse() {
        Ok(l) => l,
        Err(e) => return fail(format!("--input: {e}")),
    };
    let output: Location = match &args.output {
        Some(o) => match o.parse() {
            Ok(l) => l,
            Err(e) => return fail(format!("--output: {e}")),
        },
        None => input.clone(),
    };
    let engine = match args
        .engine
        .clone()
        .or(
            match spark_engine::EngineSettings::from_env(|k| std::env::var(k).ok()) {
                Ok(s) => s,
                Err(e) => return fail(e),
            },
        )
        .resolve(&output.to_string())
    {
        Ok(plan) => plan,
        Err(e) => return fail(e),
    };
    let mapping = match &args.mapping {
        Some(path) => Mapping::from_file(path),
        None => Mapping::default_mapping(),
    };
    let mapping = match mapping {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let selection = match (args.batch, args.incremental) {
        (Some(batch), _) => Selection::Batch(batch),
        (None, true) => Selection::Pending,
        (None, false) => Selection::Initial,
    };
    let encryption = match transform::Encryption::from_setting(&args.encryption, args.kms_key_id) {
        Ok(encryption) => encryption,
        Err(e) => return fail(e),
    };
    let options = Options {
        input,
        output,
        selection,
        mapping,
        max_reject_rate: args.max_reject_rate,
        max_file_bytes: args.max_file_mb * 1_000_000,
        gzip: args.gzip,
        encryption,
        force: args.force,
        progress: !args.quiet && !args.json && std::io::stderr().is_terminal(),
        show_values: args.show_values,
    };
    if !matches!(engine, spark_engine::EnginePlan::Local) || catalog_batches.is_some() {
        return run_on_engine(&engine, &options, catalog_batches, args.json);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.map_or(0, usize::from))
        .build();
    let result = match pool {
        Ok(pool) => pool.install(|| transform::run(&options)),
        Err(e) => return fail(format!("cannot start threads: {e}")),
    };
    match result {
        Ok(report) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(e) => return fail(e),
                }
            } else {
                print_report(&report);
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

static STOP: std::sync::LazyLock<std::sync::Arc<std::sync::atomic::AtomicBool>> =
    std::sync::LazyLock::new(Default::default);

/// The batches the options select, by name. `from_catalog`: the catalog's incremental batches,
/// for `--incremental` instead of listing the input.
fn selected_batches(
    options: &Options,
    from_catalog: Option<Vec<String>>,
) -> Result<Vec<SourceKind>, transform::Error> {
    match &options.selection {
        Selection::Initial => Ok(vec![SourceKind::Initial]),
        Selection::Batch(b) => Ok(vec![SourceKind::Incremental(b.clone())]),
        Selection::Pending => match from_catalog {
            None => Ok(transform::pending(options)?
                .into_iter()
                .map(SourceKind::Incremental)
                .collect()),
            Some(batches) => {
                let mut pending = Vec::new();
                for batch in batches {
                    let kind = SourceKind::Incremental(batch.parse().map_err(|e| {
                        transform::Error::Input(format!("catalog partition {batch}: {e}"))
                    })?);
                    if !transform::is_transformed(options, &kind)? {
                        pending.push(kind);
                    }
                }
                Ok(pending)
            }
        },
    }
}

/// Runs the selected batches on Spark or Glue (or, with only --glue-database, here).
fn run_on_engine(
    engine: &spark_engine::EnginePlan,
    options: &Options,
    from_catalog: Option<Vec<String>>,
    json: bool,
) -> ExitCode {
    let batches = match selected_batches(options, from_catalog) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    if matches!(engine, spark_engine::EnginePlan::Local) {
        // The catalog chose the sources; the Rust transform does the work, batch by batch.
        let mut report = RunReport {
            batches: Vec::new(),
        };
        for kind in batches {
            let mut one = options.clone();
            one.selection = match kind {
                SourceKind::Initial => Selection::Initial,
                SourceKind::Incremental(b) => Selection::Batch(b),
            };
            match transform::run(&one) {
                Ok(r) => report.batches.extend(r.batches),
                Err(e) => return fail(e),
            }
        }
        if json {
            match serde_json::to_string_pretty(&report) {
                Ok(text) => println!("{text}"),
                Err(e) => return fail(e),
            }
        } else {
            print_report(&report);
        }
        return ExitCode::SUCCESS;
    }
    watch_signals();
    let store = idgraph_storage::Store::default().with_encryption(options.encryption.clone());
    let mut reports = Vec::new();
    for kind in batches {
        let job = spark_engine::BatchJob {
            input: options.input.clone(),
            output: options.output.clone(),
            kind,
            mapping_toml: options.mapping.text.clone(),
            max_reject_rate: options.max_reject_rate,
            max_file_bytes: options.max_file_bytes,
            gzip: options.gzip,
            force: options.force,
            encryption: options.encryption.clone(),
            show_values: options.show_values,
        };
        if !json {
            eprintln!("transform: batch {} on {} ...", job.batch(), engine.name());
        }
        match spark_engine::run_batch(engine, &job, &store, &STOP) {
            Ok(report) => {
                if !json {
                    print_job_report(&report);
                }
                reports.push(report);
            }
            Err(e) => return fail(e),
        }
    }
    if json {
        match serde_json::to_string_pretty(&serde_json::json!({ "batches": reports })) {
            Ok(text) => println!("{text}"),
            Err(e) => return fail(e),
        }
    } else if reports.is_empty() {
        println!("transform: nothing to do (every batch already has its graph output)");
    }
    ExitCode::SUCCESS
}

/// SIGINT or SIGTERM stops a Glue run being followed (it is asked to stop before exiting).
fn watch_signals() {
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, std::sync::Arc::clone(&STOP)) {
            eprintln!("transform: warning: cannot watch signal {signal}: {e}");
        }
    }
}

fn print_job_report(report: &spark_engine::JobReport) {
    let m = &report.manifest;
    println!(
        "transform: batch {} -> {} ({})",
        report.batch, report.output, report.engine
    );
    if let Some(run_id) = &report.run_id {
        println!(
            "  Glue run {run_id}: {} (job {})",
            report.state,
            report.job_action.map_or("?", |a| match a {
                spark_engine::JobAction::Created => "created",
                spark_engine::JobAction::Updated => "updated",
                spark_engine::JobAction::Unchanged => "unchanged",
            })
        );
    }
    print_datasets(m.datasets.iter().map(|d| {
        (
            d.dataset.as_str(),
            [d.rows_read, d.rows_used, d.duplicates, d.rejects],
        )
    }));
    println!(
        "  {} vertices in {} labels, {} edges in {} labels",
        m.vertices.values().sum::<u64>(),
        m.vertices.len(),
        m.edges.values().sum::<u64>(),
        m.edges.len()
    );
    for note in &m.notes {
        println!("  note: {note}");
    }
    let mut done = format!("done in {:.2} s", report.seconds);
    if let Some(dpu) = report.dpu_seconds {
        done.push_str(&format!(", {dpu:.0} DPU-seconds"));
    }
    println!("{done}");
}

/// The reconciliation table: per dataset, rows read, used, duplicate and rejected.
fn print_datasets<'a>(rows: impl Iterator<Item = (&'a str, [u64; 4])>) {
    println!(
        "  {:<14} {:>10} {:>10} {:>10} {:>8}",
        "dataset", "read", "used", "duplicate", "rejected"
    );
    for (dataset, [read, used, duplicates, rejects]) in rows {
        println!("  {dataset:<14} {read:>10} {used:>10} {duplicates:>10} {rejects:>8}");
    }
}

fn print_report(report: &RunReport) {
    if report.batches.is_empty() {
        println!("transform: nothing to do (every batch already has its graph output)");
    }
    for batch in &report.batches {
        let m = &batch.manifest;
        println!("transform: batch {} -> {}", m.batch, batch.output);
        print_datasets(m.datasets.iter().map(|d| {
            (
                d.dataset.as_str(),
                [d.rows_read, d.rows_used, d.duplicates, d.rejects],
            )
        }));
        let vertices: u64 = m.vertices.values().sum();
        let edges: u64 = m.edges.values().sum();
        println!(
            "  {} vertices in {} labels, {} edges in {} labels, {} files",
            vertices,
            m.vertices.len(),
            edges,
            m.edges.len(),
            m.files.len()
        );
        for note in &m.notes {
            println!("  note: {note}");
        }
        let t = &batch.timings;
        let mut done = format!(
            "done in {:.2} s (read {:.2}, parse+map {:.2}, merge+write {:.2}, publish {:.2})",
            t.total, t.read, t.parse_and_map, t.merge_and_write, t.publish
        );
        if let Some(rss) = batch.peak_rss_bytes {
            done.push_str(&format!(", peak RSS {:.0} MB", rss as f64 / 1e6));
        }
        println!("{done}");
    }
}
