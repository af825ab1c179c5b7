//! A Neptune Streams consumer (issue 12): reads any Neptune endpoint's change stream (or
//! neptune-local's), in batches cut at transaction ends, into change files, a Redis identity
//! cache and JSON lines, with a durable checkpoint and a lease.
//!
//! Delivery is at-least-once and every handler is idempotent. Before a batch's output is
//! written, the checkpoint records the files the batch will write (its intent); after the
//! output is durable, the checkpoint moves past the batch. A run killed in between removes the
//! intended files and reads the batch again, so its output equals an uninterrupted run's.

mod client;
mod handlers;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use idgraph_storage::{Location, Lock, Store};
use serde::{Deserialize, Serialize};

pub use client::{Data, EventId, From, Record, Value};
pub use handlers::CacheRules;

/// What can stop a consumer. Matched by variant; the text is for people.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("cannot reach the stream: {0}")]
    Transport(String),
    #[error("the stream at {url} answered something that is not a stream response: {message}")]
    Response { url: String, message: String },
    #[error("the stream refused the request (HTTP {status} {code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error(
        "the checkpoint's position has expired from the stream ({0}). The changes since it are \
         gone: re-seed the consumers from a full load, then start again with --from latest \
         (and a new --name or the checkpoint removed)"
    )]
    Expired(String),
    #[error(
        "a gap in the stream: expected {expected} next but got {got}. Changes were lost between \
         them: re-seed from a full load, then start again with --from latest"
    )]
    Gap { expected: String, got: String },
    #[error("another consumer named {name} is running: {message}")]
    Leased { name: String, message: String },
    #[error("the checkpoint {location}: {message}")]
    Checkpoint { location: String, message: String },
    #[error("writing change output: {0}")]
    Output(String),
    #[error("the Redis identity cache: {0}")]
    Redis(String),
}

/// Whether to stop once caught up or keep following.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Catch up, then exit (cron, a Kubernetes CronJob).
    Once,
    /// Follow until SIGINT or SIGTERM.
    Daemon,
}

/// Where the consumer starts when it has no checkpoint yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Start {
    TrimHorizon,
    Latest,
}

/// Everything a consumer run needs, resolved once.
#[derive(Debug, Clone)]
pub struct StreamPlan {
    /// `https://cluster:8182`, or neptune-local's `http://127.0.0.1:8182`.
    pub endpoint: String,
    /// Sign requests (IAM database authentication) for this region.
    pub iam_region: Option<String>,
    /// The consumer's name: its checkpoint and lease.
    pub name: String,
    /// The folder (or `s3://` prefix) of checkpoints and leases.
    pub checkpoint_dir: Location,
    pub start: Start,
    pub mode: Mode,
    /// Records asked for per request (1 to 100,000).
    pub limit: u64,
    /// Waits when caught up: starts at `idle_min`, doubles to `idle_max`.
    pub idle_min: Duration,
    pub idle_max: Duration,
    /// How long a lease on S3 lives without renewal.
    pub lease_ttl: Duration,
    /// Change files here, when set.
    pub files: Option<Location>,
    pub gzip: bool,
    /// The Redis identity cache, when set: `redis://127.0.0.1:6379`.
    pub redis: Option<String>,
    pub redis_prefix: String,
    pub cache_rules: CacheRules,
    /// JSON lines on stdout.
    pub stdout: bool,
    /// Stop after this many batches (tests, and a bounded cron run).
    pub max_batches: Option<u64>,
}

/// The durable checkpoint: the last event whose batch's output is durable, and the files of a
/// batch being written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Checkpoint {
    name: String,
    position: Option<EventId>,
    /// Files a batch was writing when the consumer stopped: removed, then written again.
    #[serde(default)]
    intent: Vec<String>,
    records: u64,
    batches: u64,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct StreamReport {
    pub name: String,
    pub mode: Mode,
    /// Where the run started and ended (`None`: nothing read yet).
    pub started_at: Option<EventId>,
    pub position: Option<EventId>,
    pub batches: u64,
    pub records: u64,
    /// By kind and op: `vl ADD`, `vp REMOVE`, ...
    pub changes: std::collections::BTreeMap<String, u64>,
    pub files_written: u64,
    /// Files of an interrupted batch removed at start.
    pub recovered_files: u64,
    /// Milliseconds between now and the commit time of the last change processed.
    pub lag_ms: Option<i64>,
    pub caught_up: bool,
    pub seconds: f64,
    pub records_per_second: f64,
}

fn checkpoint_error(location: &Location, e: impl std::fmt::Display) -> StreamError {
    StreamError::Checkpoint {
        location: location.to_string(),
        message: e.to_string(),
    }
}

impl Checkpoint {
    fn load(store: &Store, location: &Location, name: &str) -> Result<Checkpoint, StreamError> {
        if !store
            .exists(location)
            .map_err(|e| checkpoint_error(location, e))?
        {
            return Ok(Checkpoint {
                name: name.to_owned(),
                ..Checkpoint::default()
            });
        }
        let bytes = store
            .read(location)
            .map_err(|e| checkpoint_error(location, e))?;
        serde_json::from_slice(&bytes).map_err(|e| checkpoint_error(location, e))
    }

    /// Writes the checkpoint, fenced on the consumer's lease: on S3 only while the lease is
    /// still this consumer's and the checkpoint as it was (a consumer paused past its lease
    /// does not overwrite the one that took over).
    fn save(
        &self,
        store: &Store,
        location: &Location,
        lease: &Lock<'_>,
    ) -> Result<(), StreamError> {
        let mut bytes =
            serde_json::to_vec_pretty(self).map_err(|e| checkpoint_error(location, e))?;
        bytes.push(b'\n');
        lease
            .update_fenced(store, location, |_| Ok(bytes))
            .map_err(|e| checkpoint_error(location, e))
    }
}

/// Progress, for a line on stderr.
pub trait Progress {
    fn batch(&self, report: &StreamReport);
}

/// Checks that `records` follow `after` with no gap: each event is the next op of its commit,
/// or op 1 of the next commit after a transaction's last op.
fn check_order(after: Option<EventId>, records: &[Record]) -> Result<(), StreamError> {
    let mut previous: Option<(EventId, bool)> = after.map(|e| (e, true));
    for record in records {
        let e = record.event_id;
        if let Some((p, ended)) = previous {
            let expected = if ended {
                EventId {
                    commit_num: p.commit_num + 1,
                    op_num: 1,
                }
            } else {
                EventId {
                    commit_num: p.commit_num,
                    op_num: p.op_num + 1,
                }
            };
            if e != expected {
                return Err(StreamError::Gap {
                    expected: format!("{expected:?}"),
                    got: format!("{e:?}"),
                });
            }
        }
        previous = Some((e, record.is_last_op));
    }
    Ok(())
}

/// Exit points for the kill tests (see [`idgraph_core::process::exit_point`]): `after-read`,
/// `after-intent`, `after-files`, `after-redis`, `after-checkpoint`, each at the batch
/// numbered by `IDGRAPH_TEST_EXIT_BATCH` (default 1) of the process.
fn exit_point(point: &str, batch: u64) {
    let wanted = std::env::var("IDGRAPH_TEST_EXIT_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(1);
    if batch == wanted {
        idgraph_core::process::exit_point("streams", point);
    }
}

/// Runs a consumer until caught up (`Mode::Once`), until `stop` is set, or until
/// `max_batches`.
pub fn run(
    plan: &StreamPlan,
    store: &Store,
    stop: &AtomicBool,
    progress: &dyn Progress,
) -> Result<StreamReport, StreamError> {
    let started = Instant::now();
    let lease_location = plan.checkpoint_dir.join(&format!("{}.lease", plan.name));
    let lease = Lock::acquire(store, &lease_location, plan.lease_ttl).map_err(|message| {
        StreamError::Leased {
            name: plan.name.clone(),
            message,
        }
    })?;
    let location = plan.checkpoint_dir.join(&format!("{}.json", plan.name));
    let mut checkpoint = Checkpoint::load(store, &location, &plan.name)?;
    let mut report = StreamReport {
        name: plan.name.clone(),
        mode: plan.mode,
        started_at: checkpoint.position,
        position: checkpoint.position,
        batches: 0,
        records: 0,
        changes: Default::default(),
        files_written: 0,
        recovered_files: 0,
        lag_ms: None,
        caught_up: false,
        seconds: 0.0,
        records_per_second: 0.0,
    };
    // A batch that was being written when the last run stopped: its files go (the batch is
    // read again), then the checkpoint says so.
    if !checkpoint.intent.is_empty() {
        for path in &checkpoint.intent {
            let file: Location = path.parse().map_err(|e| checkpoint_error(&location, e))?;
            store
                .remove(&file)
                .map_err(|e| StreamError::Output(e.to_string()))?;
            report.recovered_files += 1;
        }
        checkpoint.intent.clear();
        checkpoint.save(store, &location, &lease)?;
    }
    let client = client::Client::new(&plan.endpoint, plan.iam_region.as_deref())?;
    let files = plan.files.as_ref().map(|root| handlers::ChangeFiles {
        root: root.clone(),
        gzip: plan.gzip,
    });
    let mut cache = match &plan.redis {
        None => None,
        Some(url) => {
            let connection = connect_redis(url)?;
            Some(handlers::IdentityCache {
                connection,
                prefix: plan.redis_prefix.clone(),
                rules: plan.cache_rules.clone(),
            })
        }
    };
    let mut idle = plan.idle_min;
    let mut in_process = 0u64;
    // The page after a batch, read while the batch was handled: (where it starts, what came).
    let mut prefetched: Option<(From, Result<client::Fetched, StreamError>)> = None;
    while !stop.load(Ordering::SeqCst) && plan.max_batches.is_none_or(|m| in_process < m) {
        let from = match checkpoint.position {
            Some(e) => From::After(e),
            None => match plan.start {
                Start::TrimHorizon => From::TrimHorizon,
                Start::Latest => From::Latest,
            },
        };
        // Read until a transaction ends: one transaction can be larger than a response.
        let mut records: Vec<Record> = Vec::new();
        let mut caught_up = false;
        loop {
            let next = match records.last() {
                Some(r) => From::After(r.event_id),
                None => from,
            };
            let fetched = match prefetched.take() {
                Some((at, fetched)) if at == next => fetched?,
                _ => client.fetch(next, plan.limit)?,
            };
            match fetched {
                client::Fetched::CaughtUp => {
                    caught_up = true;
                    break;
                }
                client::Fetched::Records(page) => {
                    let ends = page.iter().any(|r| r.is_last_op);
                    records.extend(page);
                    if ends {
                        break;
                    }
                }
            }
        }
        // A whole number of transactions; the rest is read again next time.
        let whole = records
            .iter()
            .rposition(|r| r.is_last_op)
            .map_or(0, |i| i + 1);
        records.truncate(whole);
        if records.is_empty() {
            report.caught_up = caught_up;
            if plan.mode == Mode::Once {
                break;
            }
            // Idle: wait, doubling up to the maximum, waking for a stop.
            let until = Instant::now() + idle;
            while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50).min(idle));
            }
            idle = (idle * 2).min(plan.idle_max);
            continue;
        }
        idle = plan.idle_min;
        // LATEST gives the newest record: a position to follow from, not a batch to process
        // (its transaction may have begun before it).
        if from == From::Latest && checkpoint.position.is_none() {
            checkpoint.position = records.last().map(|r| r.event_id);
            checkpoint.save(store, &location, &lease)?;
            report.started_at = checkpoint.position;
            report.position = checkpoint.position;
            continue;
        }
        // No position (the horizon): the first record is taken as it comes.
        check_order(checkpoint.position, &records)?;
        in_process += 1;
        exit_point("after-read", in_process);

        // The next page is read meanwhile: reading changes nothing, so a stop or a crash
        // loses only the read.
        let last = records[records.len() - 1].clone();
        let after_batch = From::After(last.event_id);
        let (handled, next) = std::thread::scope(|scope| {
            let reader = scope.spawn(|| client.fetch(after_batch, plan.limit));
            let handled = handle_batch(
                &Handlers {
                    plan,
                    store,
                    location: &location,
                    files: files.as_ref(),
                    lease: &lease,
                },
                &mut checkpoint,
                cache.as_mut(),
                &records,
                in_process,
            );
            let next = reader
                .join()
                .unwrap_or_else(|_| Err(StreamError::Transport("the page reader stopped".into())));
            (handled, next)
        });
        report.files_written += handled?;
        prefetched = Some((after_batch, next));

        report.batches += 1;
        report.records += records.len() as u64;
        for record in &records {
            *report
                .changes
                .entry(format!("{} {}", record.data.kind, record.op))
                .or_default() += 1;
        }
        report.position = checkpoint.position;
        report.lag_ms = Some(chrono::Utc::now().timestamp_millis() - last.commit_timestamp);
        report.caught_up = caught_up;
        report.seconds = started.elapsed().as_secs_f64();
        progress.batch(&report);
        if caught_up && plan.mode == Mode::Once {
            break;
        }
    }
    lease.release().map_err(|message| StreamError::Leased {
        name: plan.name.clone(),
        message,
    })?;
    report.seconds = started.elapsed().as_secs_f64();
    report.records_per_second = report.records as f64 / report.seconds.max(1e-9);
    Ok(report)
}

/// What handles a batch, besides the checkpoint and the cache.
struct Handlers<'a> {
    plan: &'a StreamPlan,
    store: &'a Store,
    location: &'a Location,
    files: Option<&'a handlers::ChangeFiles>,
    /// The consumer's lease: checkpoint writes are fenced on it.
    lease: &'a Lock<'a>,
}

/// Hands one batch to the handlers, its intent saved before and its position after; returns
/// the files written.
fn handle_batch(
    h: &Handlers<'_>,
    checkpoint: &mut Checkpoint,
    cache: Option<&mut handlers::IdentityCache>,
    records: &[Record],
    batch_number: u64,
) -> Result<u64, StreamError> {
    let mut written = 0;
    let planned = h.files.map(|f| f.plan(records)).unwrap_or_default();
    if !planned.is_empty() {
        checkpoint.intent = planned.iter().map(|(l, _)| l.to_string()).collect();
        checkpoint.save(h.store, h.location, h.lease)?;
    }
    exit_point("after-intent", batch_number);
    if let Some(files) = h.files {
        for (file, part) in &planned {
            files.write(h.store, file, part)?;
            written += 1;
        }
    }
    exit_point("after-files", batch_number);
    if let Some(cache) = cache {
        cache.apply(records)?;
    }
    exit_point("after-redis", batch_number);
    if h.plan.stdout {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for record in records {
            let line =
                serde_json::to_string(record).map_err(|e| StreamError::Output(e.to_string()))?;
            writeln!(out, "{line}").map_err(|e| StreamError::Output(e.to_string()))?;
        }
        out.flush()
            .map_err(|e| StreamError::Output(e.to_string()))?;
    }
    let last = &records[records.len() - 1];
    checkpoint.position = Some(last.event_id);
    checkpoint.intent.clear();
    checkpoint.records += records.len() as u64;
    checkpoint.batches += 1;
    checkpoint.save(h.store, h.location, h.lease)?;
    exit_point("after-checkpoint", batch_number);
    Ok(written)
}

/// What the cache knows about one key.
#[derive(Debug, Clone, Serialize)]
pub struct Lookup {
    pub key: String,
    /// Each identifier kind the key reads as, with the users it belongs to.
    pub matches: Vec<LookupMatch>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LookupMatch {
    /// The identifier's vertex label (`Email`, `Cookie`, ...) and id.
    pub label: String,
    pub vertex_id: String,
    pub users: Vec<String>,
}

/// Looks `key` up in the cache: normalised as each identifier the cache rules reach (as the
/// transform normalises it), then read from Redis.
///
/// (A connection error names the URL without its userinfo: it can hold the password.)
pub fn lookup(
    redis_url: &str,
    prefix: &str,
    rules: &CacheRules,
    mapping: &transform::Mapping,
    key: &str,
) -> Result<Lookup, StreamError> {
    let mut connection = connect_redis(redis_url)?;
    // The vertex labels at the identifier end of the cache's edges.
    let mut labels: Vec<&str> = mapping
        .datasets
        .iter()
        .flat_map(|d| &d.edges)
        .filter(|rule| {
            let name = &mapping.edges[rule.label].name;
            rules.direct.contains(name) || rules.via_session.contains(name)
        })
        .map(|rule| mapping.vertices[rule.to.label].name.as_str())
        .collect();
    labels.sort_unstable();
    labels.dedup();
    let mut matches = Vec::new();
    for label in labels {
        let Some(index) = mapping.vertex_label(label) else {
            continue;
        };
        let normalised = mapping.vertices[index].normalise.apply(key);
        if normalised.is_empty() {
            continue;
        }
        let mut vertex_id = String::new();
        transform::push_id(&mut vertex_id, transform::vertex_id(label, &normalised));
        let mut users: Vec<String> = redis::cmd("SMEMBERS")
            .arg(handlers::IdentityCache::users_key(prefix, &vertex_id))
            .query(&mut connection)
            .map_err(|e| StreamError::Redis(e.to_string()))?;
        if !users.is_empty() {
            users.sort();
            matches.push(LookupMatch {
                label: label.to_owned(),
                vertex_id,
                users,
            });
        }
    }
    Ok(Lookup {
        key: key.to_owned(),
        matches,
    })
}

/// A connection to the cache: `redis://` or `rediss://` (TLS, checked against the platform's
/// roots, as ElastiCache's in-transit encryption needs). An error names the URL without its
/// password.
fn connect_redis(url: &str) -> Result<redis::Connection, StreamError> {
    if url.starts_with("rediss://") {
        // One provider for the process (the AWS SDK's); already installed is as good.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
    redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .map_err(|e| {
            let safe = idgraph_core::process::without_userinfo(url);
            StreamError::Redis(idgraph_core::process::redact_url(
                &format!("{safe}: {e}"),
                url,
            ))
        })
}
