//! `streams`: follow a Neptune cluster's (or neptune-local's) change stream into change files,
//! a Redis identity cache and JSON lines, with a durable checkpoint.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use idgraph_storage::{Location, Store};
use serde::Deserialize;
use streams::{CacheRules, Mode, Progress, Start, StreamPlan, StreamReport};

#[derive(Debug, Parser)]
#[command(
    name = "streams",
    version,
    about = "Follow a Neptune change stream into change files, a Redis identity cache and JSON lines",
    after_help = "Examples:\n  \
        streams run --endpoint http://127.0.0.1:8182 --files data/changes --once\n  \
        streams run --endpoint https://my-cluster:8182 --iam-region eu-west-1 \\\n      \
        --checkpoint-dir s3://bucket/streams --files s3://bucket/changes --gzip --daemon\n  \
        streams run --endpoint http://127.0.0.1:8182 --redis redis://127.0.0.1:6379 --once\n  \
        streams lookup jane.doe@example.com --redis redis://127.0.0.1:6379\n  \
        streams run --endpoint http://127.0.0.1:8182 --stdout --once | jq .data.type"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum StartArg {
    TrimHorizon,
    Latest,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read the stream from the checkpoint (or --from) and hand every change to the handlers.
    Run(Box<RunArgs>),
    /// Which users an identifier (email, phone, customer id, cookie, device) belongs to,
    /// from the Redis identity cache.
    Lookup {
        key: String,
        #[arg(long, env = "IDGRAPH_STREAM_REDIS")]
        redis: String,
        #[arg(long, default_value = "idgraph")]
        redis_prefix: String,
        /// The graph mapping whose normalisation the key gets [default: the built-in
        /// schemas/graph.toml]
        #[arg(long)]
        mapping: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

/// `run`'s settings: flags, or the same keys in a TOML file (`--config`); a flag wins.
#[derive(Debug, clap::Args, Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct RunArgs {
    /// A TOML file with any of these settings (keys as the flags, without `--`).
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// The Neptune endpoint: https://CLUSTER:8182, or neptune-local's http://127.0.0.1:8182
    #[arg(long, env = "IDGRAPH_STREAM_ENDPOINT")]
    endpoint: Option<String>,
    /// Sign requests for IAM database authentication in this region (standard AWS
    /// credential chain)
    #[arg(long)]
    iam_region: Option<String>,
    /// The consumer's name: one checkpoint and one lease per name [default: changes]
    #[arg(long)]
    name: Option<String>,
    /// Folder or s3:// prefix of the checkpoint and the lease [default: data/streams]
    #[arg(long)]
    checkpoint_dir: Option<String>,
    /// Where a consumer without a checkpoint starts [default: trim-horizon]
    #[arg(long = "from", value_enum)]
    #[serde(rename = "from")]
    start: Option<StartArg>,
    /// Catch up, then exit (the default)
    #[arg(long, conflicts_with = "daemon")]
    once: bool,
    /// Keep following until SIGINT or SIGTERM
    #[arg(long)]
    daemon: bool,
    /// Records per request, 1 to 100000 [default: 10000]
    #[arg(long)]
    limit: Option<u64>,
    /// Milliseconds to wait when caught up, doubling up to --idle-max-ms [default: 1000]
    #[arg(long)]
    idle_min_ms: Option<u64>,
    /// [default: 60000]
    #[arg(long)]
    idle_max_ms: Option<u64>,
    /// Change files (NDJSON) under this folder or s3:// prefix
    #[arg(long)]
    files: Option<String>,
    /// gzip the change files
    #[arg(long)]
    gzip: bool,
    /// The Redis identity cache: redis://HOST:PORT (ElastiCache too)
    #[arg(long, env = "IDGRAPH_STREAM_REDIS")]
    redis: Option<String>,
    /// Prefix of the cache's keys [default: idgraph]
    #[arg(long)]
    redis_prefix: Option<String>,
    /// The graph mapping whose [cache] table names the cache's edge labels [default: the
    /// built-in schemas/graph.toml]
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// JSON lines on stdout, one per change
    #[arg(long)]
    stdout: bool,
    /// Stop after this many batches
    #[arg(long)]
    max_batches: Option<u64>,
    /// Print a JSON report instead of text
    #[arg(long)]
    json: bool,
    /// No progress line
    #[arg(long)]
    quiet: bool,
}

impl RunArgs {
    /// The file's settings under the flags'.
    fn merged(self) -> anyhow::Result<RunArgs> {
        let Some(path) = &self.config else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let file: RunArgs = toml::from_str(&text)
            .with_context(|| format!("{}: not a valid settings file", path.display()))?;
        Ok(RunArgs {
            config: self.config,
            endpoint: self.endpoint.or(file.endpoint),
            iam_region: self.iam_region.or(file.iam_region),
            name: self.name.or(file.name),
            checkpoint_dir: self.checkpoint_dir.or(file.checkpoint_dir),
            start: self.start.or(file.start),
            once: self.once || file.once,
            daemon: self.daemon || (file.daemon && !self.once),
            limit: self.limit.or(file.limit),
            idle_min_ms: self.idle_min_ms.or(file.idle_min_ms),
            idle_max_ms: self.idle_max_ms.or(file.idle_max_ms),
            files: self.files.or(file.files),
            gzip: self.gzip || file.gzip,
            redis: self.redis.or(file.redis),
            redis_prefix: self.redis_prefix.or(file.redis_prefix),
            mapping: self.mapping.or(file.mapping),
            stdout: self.stdout || file.stdout,
            max_batches: self.max_batches.or(file.max_batches),
            json: self.json || file.json,
            quiet: self.quiet || file.quiet,
        })
    }

    fn plan(&self) -> anyhow::Result<StreamPlan> {
        let endpoint = self.endpoint.clone().context(
            "--endpoint is needed (or IDGRAPH_STREAM_ENDPOINT, or endpoint in --config)",
        )?;
        let location = |text: &str| -> anyhow::Result<Location> {
            text.parse()
                .map_err(|e| anyhow::anyhow!("{text}: not a folder or s3:// location: {e}"))
        };
        let limit = self.limit.unwrap_or(10_000);
        anyhow::ensure!(
            (1..=100_000).contains(&limit),
            "--limit must be between 1 and 100000, not {limit}"
        );
        let name = self.name.clone().unwrap_or_else(|| "changes".into());
        anyhow::ensure!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "--name must be letters, digits, - and _ (it names files), not {name:?}"
        );
        anyhow::ensure!(
            self.files.is_some() || self.redis.is_some() || self.stdout,
            "nothing to do: give --files, --redis or --stdout"
        );
        Ok(StreamPlan {
            endpoint,
            iam_region: self.iam_region.clone(),
            name,
            checkpoint_dir: location(self.checkpoint_dir.as_deref().unwrap_or("data/streams"))?,
            start: match self.start {
                Some(StartArg::Latest) => Start::Latest,
                _ => Start::TrimHorizon,
            },
            mode: if self.daemon {
                Mode::Daemon
            } else {
                Mode::Once
            },
            limit,
            idle_min: Duration::from_millis(positive_ms("--idle-min-ms", self.idle_min_ms, 1_000)?),
            idle_max: Duration::from_millis(positive_ms(
                "--idle-max-ms",
                self.idle_max_ms,
                60_000,
            )?),
            lease_ttl: Duration::from_secs(60),
            files: self.files.as_deref().map(location).transpose()?,
            gzip: self.gzip,
            redis: self.redis.clone(),
            redis_prefix: self
                .redis_prefix
                .clone()
                .unwrap_or_else(|| "idgraph".into()),
            cache_rules: match &self.mapping {
                Some(path) => CacheRules::from_mapping(&transform::Mapping::from_file(path)?)?,
                None => CacheRules::from_mapping(&transform::Mapping::default_mapping()?)?,
            },
            stdout: self.stdout,
            max_batches: self.max_batches,
        })
    }
}

/// An interval in milliseconds: 0 would poll without pause (a busy loop), so it is refused.
fn positive_ms(flag: &str, given: Option<u64>, default: u64) -> anyhow::Result<u64> {
    match given.unwrap_or(default) {
        0 => anyhow::bail!("{flag} must be at least 1 (0 would poll without a pause)"),
        ms => Ok(ms),
    }
}

/// A progress line on stderr per batch.
struct Line {
    quiet: bool,
}

impl Progress for Line {
    fn batch(&self, r: &StreamReport) {
        if !self.quiet {
            eprintln!(
                "streams {}: {} batches, {} records, at {}, lag {}",
                r.name,
                r.batches,
                r.records,
                r.position
                    .map(|e| format!("{}/{}", e.commit_num, e.op_num))
                    .unwrap_or_else(|| "-".into()),
                r.lag_ms
                    .map(|l| format!("{:.1} s", l as f64 / 1000.0))
                    .unwrap_or_else(|| "-".into())
            );
        }
    }
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("streams: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => {
            let args = args.merged()?;
            let plan = args.plan()?;
            let stop = Arc::new(AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(signal, stop.clone())
                    .context("cannot watch for stop signals")?;
            }
            let store = Store::default();
            let report = streams::run(&plan, &store, &stop, &Line { quiet: args.quiet })?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if !plan.stdout {
                println!(
                    "streams {}: {} records in {} batches ({:.0} records/s), {} files written{}; \
                     at {}{}",
                    report.name,
                    report.records,
                    report.batches,
                    report.records_per_second,
                    report.files_written,
                    if report.recovered_files > 0 {
                        format!(
                            ", {} files of an interrupted batch removed and written again",
                            report.recovered_files
                        )
                    } else {
                        String::new()
                    },
                    report
                        .position
                        .map(|e| format!("commit {} op {}", e.commit_num, e.op_num))
                        .unwrap_or_else(|| "the start".into()),
                    if report.caught_up { ", caught up" } else { "" }
                );
                if stop.load(Ordering::SeqCst) {
                    eprintln!("streams: stopped by a signal after a whole batch");
                }
            }
            Ok(())
        }
        Command::Lookup {
            key,
            redis,
            redis_prefix,
            mapping,
            json,
        } => {
            let mapping = match mapping {
                Some(path) => transform::Mapping::from_file(&path)?,
                None => transform::Mapping::default_mapping()?,
            };
            let found = streams::lookup(
                &redis,
                &redis_prefix,
                &CacheRules::from_mapping(&mapping)?,
                &mapping,
                &key,
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else if found.matches.is_empty() {
                println!("{key}: not in the identity cache");
            } else {
                for m in &found.matches {
                    println!("{key} as {} ({}):", m.label, m.vertex_id);
                    for user in &m.users {
                        println!("  user {user}");
                    }
                }
            }
            Ok(())
        }
    }
}
