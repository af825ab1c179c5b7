//! The `validate` command, shared by `gremlin-csv validate` and `transform validate`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::{Options, validate_dir};

/// Validate every Gremlin load file under DIR (under DIR/vertices and DIR/edges when DIR has
/// them): headers, quoting, field counts, ids, labels, every typed value, unique ids, and that
/// every edge's endpoints are vertices of the same folder. Exit 1 on any violation.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The folder to check.
    pub dir: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Violations to list (all are counted).
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub max_violations: usize,
}

/// Runs the command: the report on stdout, exit 0 when valid, 1 with violations, 2 when the
/// folder cannot be read. `program` names the command in error messages.
pub fn run_validate(program: &str, args: &ValidateArgs) -> ExitCode {
    let options = Options {
        max_violations: args.max_violations,
    };
    let report = match validate_dir(&args.dir, options) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("{program}: error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("{program}: error: cannot encode the report: {e}");
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
