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
    Validate(gremlin_csv::ValidateArgs),
}

fn main() -> ExitCode {
    let Command::Validate(args) = Cli::parse().command;
    gremlin_csv::run_validate("gremlin-csv", &args)
}
