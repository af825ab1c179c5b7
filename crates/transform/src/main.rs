use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use idgraph_core::BatchId;
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
        None => transform_sources(cli.run),
    }
}

fn transform_sources(args: RunArgs) -> ExitCode {
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
    let options = Options {
        input,
        output,
        selection,
        mapping,
        max_reject_rate: args.max_reject_rate,
        max_file_bytes: args.max_file_mb * 1_000_000,
        gzip: args.gzip,
        encryption: transform::Encryption::default(),
        force: args.force,
        progress: !args.quiet && !args.json && std::io::stderr().is_terminal(),
    };
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

fn print_report(report: &RunReport) {
    if report.batches.is_empty() {
        println!("transform: nothing to do (every batch already has its graph output)");
    }
    for batch in &report.batches {
        let m = &batch.manifest;
        println!("transform: batch {} -> {}", m.batch, batch.output);
        println!(
            "  {:<14} {:>10} {:>10} {:>10} {:>8}",
            "dataset", "read", "used", "duplicate", "rejected"
        );
        for d in &m.datasets {
            println!(
                "  {:<14} {:>10} {:>10} {:>10} {:>8}",
                d.dataset, d.rows_read, d.rows_used, d.duplicates, d.rejects
            );
        }
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
