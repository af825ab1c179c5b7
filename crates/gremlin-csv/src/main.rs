use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  # Check a graph batch written by transform (its vertices/ and edges/ folders)
  gremlin-csv validate data/datasets/graph/initial

  # Any folder of load files; a JSON report for machines
  gremlin-csv validate ./my-export --json > report.json

Exit status: 0 when every file is valid, 1 when there are violations, 2 on usage errors.";

/// Check Gremlin CSV files against the Amazon Neptune bulk loader's rules.
#[derive(Debug, Parser)]
#[command(name = "gremlin-csv", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate every load file under DIR (under DIR/vertices and DIR/edges when DIR has
    /// them): headers, quoting, field counts, ids, labels, every typed value, unique ids, and
    /// that every edge's endpoints are vertices of the same folder.
    Validate {
        /// The folder to check.
        dir: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Violations to list (all are counted).
        #[arg(long, value_name = "N", default_value_t = 1_000)]
        max_violations: usize,
    },
}

fn main() -> ExitCode {
    let Command::Validate {
        dir,
        json,
        max_violations,
    } = Cli::parse().command;
    let report = match gremlin_csv::validate_dir(&dir, gremlin_csv::Options { max_violations }) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("gremlin-csv: error: {e}");
            return ExitCode::from(2);
        }
    };
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("gremlin-csv: error: cannot encode the report: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{report}");
    }
    if report.is_valid() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
