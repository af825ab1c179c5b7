use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use idgraph_storage::{Location, Store};
use resolve::ResolvePlan;
use transform::Mapping;

const EXAMPLES: &str = "\
Examples:
  # Resolve every transformed batch not resolved yet (initial first, then incremental ones)
  resolve run --root data

  # How good is it? Pairwise precision, recall and F1 against datagen's truth
  datagen --records 100000 --fragmentation 0.2 --truth --force && transform && resolve run
  resolve score --root data

  # Who is this? Any email, phone, customer id, cookie, session, device or user name
  resolve who 'Jane.Doe123@Example.com '
  resolve who '(555) 123-4567' --json

What it writes (under --root, local or s3://):
  datasets/identity/state/          the identity state (every identifier's person)
  datasets/identity/graph/<batch>/  a graph batch for the loader: personId on new or changed
                                    identifiers, Person vertices; report/index.html beside it";

/// Identity resolution: one stable person id for every identifier of a person, over the
/// transform's graph batches, scored against ground truth.
#[derive(Debug, Parser)]
#[command(name = "resolve", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Common {
    /// Root of the datasets/ tree: a folder, or s3://BUCKET[/PREFIX].
    #[arg(long, value_name = "ROOT", default_value = "data")]
    root: String,
    /// The graph mapping with its [identity] rules. [default: the built-in schemas/graph.toml]
    #[arg(long, value_name = "FILE")]
    mapping: Option<PathBuf>,
    /// Print a JSON report instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Resolve the transformed batches not resolved yet, in order.
    Run {
        #[command(flatten)]
        common: Common,
        /// Skip the HTML report.
        #[arg(long)]
        no_report: bool,
    },
    /// Score the resolved batches against datagen's truth (datagen --truth).
    Score {
        #[command(flatten)]
        common: Common,
    },
    /// Print the person behind an identifier or a person id, or the people linked to a shared
    /// device, IP or other weakly linked thing.
    Who {
        /// An email, phone, customer id, cookie, session, user name, device or IP, as written
        /// anywhere (normalisation makes case, spacing and phone formats agree).
        key: String,
        #[command(flatten)]
        common: Common,
    },
}

fn plan(common: &Common) -> anyhow::Result<ResolvePlan> {
    let root: Location = common.root.parse().map_err(anyhow::Error::msg)?;
    let mapping = match &common.mapping {
        Some(path) => Mapping::from_file(path)?,
        None => Mapping::default_mapping()?,
    };
    Ok(ResolvePlan::new(root, mapping)?)
}

fn print<T: serde::Serialize + std::fmt::Display>(value: &T, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{value}");
    }
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let store = Store::default();
    match cli.command {
        Command::Run { common, no_report } => {
            let mut plan = plan(&common)?;
            plan.html_report = !no_report;
            // The root's run lock, as the loader takes it: resolution beside a loader run (whose
            // own resolve step holds the lock) could commit a state naming a file the other
            // just replaced. Released on drop, and on a stop signal by the default handler.
            let _lock = idgraph_storage::Lock::acquire(
                &store,
                &plan.root.join(idgraph_core::Layout::RUN_LOCK),
                std::time::Duration::from_secs(600),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let pending = resolve::pending(&plan, &store)?;
            let mut reports = Vec::new();
            for kind in &pending {
                let report = resolve::resolve_batch(&plan, &store, kind)?;
                if !common.json {
                    println!(
                        "resolve: batch {}: {} new identifiers, {} new people, {} merges, personId set on {}; {} people in all ({:.2} s)",
                        report.batch,
                        report.new_identifiers,
                        report.new_people,
                        report.merges.len(),
                        report.changed_identifiers,
                        report.people,
                        report.seconds
                    );
                    if let Some(page) = &report.html_report {
                        println!("  report: {page}");
                    }
                    if report.skipped_rows > 0 {
                        println!(
                            "  skipped {} rows that are not graph rows, such as:",
                            report.skipped_rows
                        );
                        for s in &report.skipped {
                            println!("    {s}");
                        }
                    }
                }
                reports.push(report);
            }
            if common.json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else if pending.is_empty() {
                println!(
                    "resolve: every transformed batch under {} is resolved",
                    plan.root
                );
            }
        }
        Command::Score { common } => {
            let plan = plan(&common)?;
            print(&resolve::score(&plan, &store)?, common.json)?;
        }
        Command::Who { key, common } => {
            let plan = plan(&common)?;
            print(&resolve::who(&plan, &store, &key)?, common.json)?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("resolve: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
