use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use datagen::Config;
use idgraph_core::BatchId;

const EXAMPLES: &str = "\
Examples:
  # The initial population: 10,000 profiles and the datasets that go with them, under data/
  datagen --records 10000

  # The same, reproducibly different: another seed, smaller IP and device pools, gzip
  datagen --records 10000 --seed 7 --uniqueness 10 --gzip --out /tmp/idgraph

  # Dirty data (duplicates, case/space variants, empty fields, malformed rows) and ground truth
  datagen --records 100000 --dirty-rate 0.05 --truth --force

  # People scattered over several profiles, emails, cookies and households, for resolve
  datagen --records 100000 --fragmentation 0.2 --truth --force

  # An incremental batch about the same people (run after the initial population)
  datagen --incremental --records 2000 --timestamp 20260115_060000

  # A machine-readable report
  datagen --records 1000 --force --json | jq .rows

Output layout (under --out):
  datasets/sources/initial/<dataset>/<dataset>_data_full.csv
  datasets/sources/incremental/<dataset>/<YYYYMMDD_HHMMSS>/<dataset>_data_inc.csv
  datasets/truth/...            with --truth: line,person_id for every row
  datasets/sources/datagen_state.json   the population incremental batches refer to";

/// Generate mock first-party (CRM), cookie, clickstream and transaction datasets for an
/// identity graph: seeded, parallel, with identities that overlap across datasets.
#[derive(Debug, Parser)]
#[command(name = "datagen", version, after_help = EXAMPLES)]
struct Cli {
    /// First-party profiles to generate (the initial population, or one incremental batch).
    /// The other datasets scale with it: as many purchases, about 0.75x clickstream sessions
    /// (a third of them web sessions with a cookie) and about 0.25x cookies.
    #[arg(short = 'n', long, value_name = "N", default_value = "10000", value_parser = positive_count, allow_hyphen_values = true)]
    records: u64,

    /// Size of the client-IP and device-id pools, in percent of --records (1 to 100).
    #[arg(short, long, value_name = "PCT", default_value_t = 30, value_parser = percentage, allow_hyphen_values = true)]
    uniqueness: u32,

    /// Random seed. The same arguments and seed give byte-identical files. [default: 42 for the
    /// initial population; a batch uses the population's]
    #[arg(short, long, value_name = "SEED")]
    seed: Option<u64>,

    /// Generate an incremental batch about the existing population under --out: new profiles,
    /// profile updates, and sessions, cookies and purchases of known and new people.
    #[arg(long)]
    incremental: bool,

    /// The incremental batch's UTC timestamp, YYYYMMDD_HHMMSS. [default: now]
    #[arg(long, value_name = "YYYYMMDD_HHMMSS", requires = "incremental")]
    timestamp: Option<BatchId>,

    /// In an incremental batch, the share of profile rows that update existing people, and the
    /// chance that a purchase, session or cookie belongs to an existing person (0 to 1).
    #[arg(long, value_name = "S", default_value_t = 0.5, value_parser = fraction, allow_hyphen_values = true)]
    update_share: f64,

    /// The initial population's "today" (yyyy-MM-dd): events fall in the ten years before it,
    /// birthdays give ages 12 to 115 on it. Fixed by default so that output is reproducible.
    #[arg(long, value_name = "DATE")]
    as_of: Option<chrono::NaiveDate>,

    /// Root of the datasets/ tree: a folder, or s3://BUCKET[/PREFIX] (written through a local
    /// staging folder, then uploaded with the standard AWS configuration).
    #[arg(short, long, value_name = "ROOT", default_value = "data")]
    out: String,

    /// Fraction of rows made dirty the way real exports are (0 to 1).
    #[arg(long, value_name = "R", default_value_t = 0.0, value_parser = fraction, allow_hyphen_values = true)]
    dirty_rate: f64,

    /// Also write ground truth: for every row, its line and who made it (a person's number, or
    /// anon-SCOPE-VISIT for a visitor the data never names).
    #[arg(long)]
    truth: bool,

    /// Share of people (0 to 1) whose traces only identity resolution can join: a second CRM
    /// profile sharing the phone or external id, purchases by an email in another case or with
    /// spaces, anonymous sessions with a cookie later seen logged in, and households sharing an
    /// IP and device (which must never merge them). Counted in the summary.
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = fraction, allow_hyphen_values = true)]
    fragmentation: f64,

    /// Worker threads. [default: one per core]
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,

    /// Replace existing output.
    #[arg(short, long)]
    force: bool,

    /// Write gzip-compressed files (.csv.gz).
    #[arg(long)]
    gzip: bool,

    /// Print the report as JSON on stdout instead of the summary.
    #[arg(long)]
    json: bool,

    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
}

fn positive_count(s: &str) -> Result<u64, String> {
    match s.trim().parse::<i128>() {
        Ok(n) if n >= 1 && n <= i128::from(u64::MAX) => Ok(n as u64),
        Ok(_) => Err(format!("expected a whole number of at least 1, got {s}")),
        Err(_) => Err(format!("expected a whole number of at least 1, got `{s}`")),
    }
}

fn percentage(s: &str) -> Result<u32, String> {
    match s.trim().parse::<i64>() {
        Ok(n) if (1..=100).contains(&n) => Ok(n as u32),
        _ => Err(format!("expected a percentage from 1 to 100, got `{s}`")),
    }
}

fn fraction(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("expected a fraction from 0 to 1, got `{s}`")),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line that names the problem, as for every other error.
            let line = idgraph_core::process::one_line_error(&e.to_string());
            eprintln!("datagen: error: {line} (see datagen --help)");
            return ExitCode::from(2);
        }
    };
    let s3_out: Option<idgraph_storage::Location> = match cli.out.parse() {
        Ok(location @ idgraph_storage::Location::S3 { .. }) => Some(location),
        Ok(_) => None,
        Err(e) => {
            eprintln!("datagen: error: --out: {e}");
            return ExitCode::from(2);
        }
    };
    let staging = match &s3_out {
        Some(_) => match tempfile::tempdir() {
            Ok(dir) => Some(dir),
            Err(e) => {
                eprintln!("datagen: error: cannot create a staging folder: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let store = idgraph_storage::Store::default();
    if let (Some(dest), Some(staging)) = (&s3_out, &staging)
        && let Err(e) = s3::prepare(&store, dest, staging.path(), cli.incremental, cli.force)
    {
        eprintln!("datagen: error: {e}");
        return ExitCode::FAILURE;
    }
    let config = Config {
        root: match &staging {
            Some(dir) => dir.path().to_path_buf(),
            None => PathBuf::from(&cli.out),
        },
        records: cli.records,
        uniqueness: cli.uniqueness,
        seed: cli.seed,
        incremental: cli.incremental,
        batch: cli.timestamp,
        update_share: cli.update_share,
        as_of: cli.as_of,
        dirty_rate: cli.dirty_rate,
        truth: cli.truth,
        fragmentation: cli.fragmentation,
        threads: cli.threads.map(usize::from),
        force: cli.force,
        gzip: cli.gzip,
        progress: !cli.quiet && !cli.json && std::io::stderr().is_terminal(),
    };
    let generated = datagen::generate(&config)
        .map_err(|e| e.to_string())
        .and_then(|report| match (&s3_out, &staging) {
            (Some(dest), Some(staging)) => {
                let kind = match &report.batch {
                    Some(batch) => batch
                        .parse()
                        .map(idgraph_core::SourceKind::Incremental)
                        .map_err(|e| format!("{e}")),
                    None => Ok(idgraph_core::SourceKind::Initial),
                };
                kind.and_then(|kind| s3::upload(&store, staging.path(), dest, &kind))
                    .map(|()| report)
            }
            _ => Ok(report),
        });
    // Reports name the S3 location, not the staging folder.
    let shown = |text: String| match (&s3_out, &staging) {
        (Some(dest), Some(staging)) => {
            text.replace(&staging.path().display().to_string(), &dest.to_string())
        }
        _ => text,
    };
    match generated {
        Ok(report) => {
            if cli.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(json) => println!("{}", shown(json)),
                    Err(e) => {
                        eprintln!("datagen: error: cannot encode the report: {e}");
                        return ExitCode::FAILURE;
                    }
                }
                for warning in &report.warnings {
                    eprintln!("datagen: warning: {warning}");
                }
            } else {
                print!("{}", shown(report.to_string()));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("datagen: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--out s3://...`: generate into a staging folder, then upload it in the same layout.
mod s3 {
    use std::path::Path;

    use idgraph_storage::{Location, Store};
    use rayon::prelude::*;

    const STATE: &str = "datasets/sources/datagen_state.json";

    /// Brings the population state down for an incremental batch, and refuses to overwrite an
    /// initial population without --force, as a local --out does.
    pub fn prepare(
        store: &Store,
        dest: &Location,
        staging: &Path,
        incremental: bool,
        force: bool,
    ) -> Result<(), String> {
        let state = dest.join(STATE);
        if incremental {
            let bytes = store.read(&state).map_err(|e| {
                format!("{e}: an incremental batch needs the initial population's state in {dest}")
            })?;
            store
                .write(&Location::Local(staging.join(STATE)), bytes)
                .map_err(|e| e.to_string())?;
        } else if !force
            && !store
                .list(&dest.join("datasets/sources/initial"))
                .map_err(|e| e.to_string())?
                .is_empty()
        {
            return Err(format!(
                "{dest} already holds an initial population; use --force to replace it"
            ));
        }
        Ok(())
    }

    /// Uploads every staged file to the same path below `dest`, the batch marked in progress
    /// until the last one is there (the population state last of all), as a local run does.
    pub fn upload(
        store: &Store,
        staging: &Path,
        dest: &Location,
        kind: &idgraph_core::SourceKind,
    ) -> Result<(), String> {
        let marker = dest.join(&idgraph_core::Layout::source_batch_in_progress(kind));
        store
            .write(&marker, b"datagen is writing this batch\n".to_vec())
            .map_err(|e| e.to_string())?;
        let files = store
            .list(&Location::Local(staging.to_path_buf()))
            .map_err(|e| e.to_string())?;
        let (state, data): (Vec<_>, Vec<_>) = files.iter().partition(|f| f.relative == STATE);
        let put = |file: &&idgraph_storage::Object| -> Result<(), String> {
            let bytes = std::fs::read(staging.join(&file.relative))
                .map_err(|e| format!("cannot read staged {}: {e}", file.relative))?;
            store
                .write(&dest.join(&file.relative), bytes)
                .map_err(|e| e.to_string())
        };
        data.par_iter().try_for_each(put)?;
        state.iter().try_for_each(put)?;
        store.remove(&marker).map_err(|e| e.to_string())
    }
}
