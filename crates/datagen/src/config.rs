//! What the user asked for (`Config`), checked once and resolved into what to do (`Plan`).

use std::ops::Range;
use std::path::PathBuf;

use chrono::{NaiveDate, Utc};
use idgraph_core::{BatchId, SourceKind};

use crate::Error;
use crate::catalog::Pool;
use crate::people::{ALIAS_BASE, MAX_PEOPLE};
use crate::state::{BatchRecord, GenState};
use crate::timefmt::{SECONDS_PER_DAY, days_since_epoch};

/// The seed used when none is given, so that two runs with the same arguments agree.
pub const DEFAULT_SEED: u64 = 42;
/// The reference "today" of the initial population when none is given: dates count back from
/// it, so that output does not change with the day it is generated on.
pub const DEFAULT_AS_OF: &str = "2026-01-01";

/// A request to generate one set of source datasets.
#[derive(Debug, Clone)]
pub struct Config {
    /// The local root under which the `datasets/` tree is written.
    pub root: PathBuf,
    /// First-party profiles in the initial population, or in one incremental batch.
    pub records: u64,
    /// Size of the client-IP and device pools, in percent of `records`.
    pub uniqueness: u32,
    /// `None`: the default seed for an initial run, the population's seed for a batch.
    pub seed: Option<u64>,
    /// Generate an incremental batch about the existing population instead.
    pub incremental: bool,
    /// The batch's timestamp; `None`: now (UTC).
    pub batch: Option<BatchId>,
    /// The share of an incremental batch's references to people that name existing people.
    pub update_share: f64,
    /// The initial population's reference date; `None`: `DEFAULT_AS_OF`.
    pub as_of: Option<NaiveDate>,
    /// Fraction of rows made dirty (see the `dirt` module).
    pub dirty_rate: f64,
    /// Also write ground-truth files mapping rows to people.
    pub truth: bool,
    /// The share of people who leave traces that only identity resolution can join (a second
    /// profile, purchases by a differently written email, anonymous sessions, a shared
    /// household); 0 keeps every person's traces tidy.
    pub fragmentation: f64,
    /// Worker threads; `None`: one per core.
    pub threads: Option<usize>,
    /// Replace existing output.
    pub force: bool,
    /// Write `.csv.gz` instead of `.csv`.
    pub gzip: bool,
    /// Draw a progress bar on a terminal.
    pub progress: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            root: PathBuf::from("data"),
            records: 10_000,
            uniqueness: 30,
            seed: None,
            incremental: false,
            batch: None,
            update_share: 0.5,
            as_of: None,
            dirty_rate: 0.0,
            truth: false,
            fragmentation: 0.0,
            threads: None,
            force: false,
            gzip: false,
            progress: false,
        }
    }
}

/// Client IPs or devices: the population's pool, and in a batch also the batch's own pool of
/// new ones.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pools {
    pub(crate) base: Pool,
    pub(crate) batch: Option<Pool>,
    /// In a batch: the chance that a session uses an IP or device the population already had.
    pub(crate) base_share: f64,
}

/// A checked, resolved request.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) kind: SourceKind,
    pub(crate) seed: u64,
    /// 0 for the initial population; the batch timestamp as a number for a batch.
    pub(crate) scope: u64,
    pub(crate) records: u64,
    /// Event times fall in this range of seconds since 1970.
    pub(crate) window: Range<i64>,
    pub(crate) as_of_days: i64,
    /// People `0..existing_people` existed before this run.
    pub(crate) existing_people: u64,
    /// This run's new people are `existing_people..existing_people + new_people`.
    pub(crate) new_people: u64,
    pub(crate) update_share: f64,
    pub(crate) initial_records: u64,
    pub(crate) first_profile_update: u64,
    pub(crate) first_purchase: u64,
    pub(crate) ips: Pools,
    pub(crate) devices: Pools,
    pub(crate) dirty_rate: f64,
    pub(crate) truth: bool,
    pub(crate) fragmentation: f64,
    pub(crate) gzip: bool,
    pub(crate) force: bool,
    pub(crate) threads: usize,
    pub(crate) progress: bool,
    pub(crate) root: PathBuf,
    /// The state to save once the files are in place.
    pub(crate) state_after: GenState,
    pub(crate) warnings: Vec<String>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidArgument(message.into())
}

fn pool_size(records: u64, uniqueness: u32) -> u64 {
    (records.saturating_mul(u64::from(uniqueness)) / 100).max(1)
}

impl Plan {
    pub(crate) fn resolve(config: &Config) -> Result<Plan, Error> {
        if config.records == 0 {
            return Err(invalid("--records must be at least 1"));
        }
        if !(1..=100).contains(&config.uniqueness) {
            return Err(invalid(format!(
                "--uniqueness must be a percentage from 1 to 100, got {}",
                config.uniqueness
            )));
        }
        if !(0.0..=1.0).contains(&config.dirty_rate) {
            return Err(invalid(format!(
                "--dirty-rate must be a fraction from 0 to 1, got {}",
                config.dirty_rate
            )));
        }
        if !(0.0..=1.0).contains(&config.fragmentation) {
            return Err(invalid(format!(
                "--fragmentation must be a fraction from 0 to 1, got {}",
                config.fragmentation
            )));
        }
        if !(0.0..=1.0).contains(&config.update_share) {
            return Err(invalid(format!(
                "--update-share must be a fraction from 0 to 1, got {}",
                config.update_share
            )));
        }
        let threads = match config.threads {
            Some(0) => return Err(invalid("--threads must be at least 1")),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        if config.root.as_os_str().is_empty() {
            return Err(invalid("--out must name a folder"));
        }
        // An unusable --out is reported as such, before anything else is read or written.
        std::fs::create_dir_all(&config.root).map_err(|source| Error::CreateDir {
            path: config.root.clone(),
            source,
        })?;
        if config.incremental {
            Self::resolve_batch(config, threads)
        } else {
            Self::resolve_initial(config, threads)
        }
    }

    fn common(config: &Config, threads: usize, kind: SourceKind, state: GenState) -> Plan {
        let pool = Pool {
            seed: state.seed,
            scope: 0,
            size: pool_size(config.records, config.uniqueness),
        };
        Plan {
            kind,
            seed: state.seed,
            scope: 0,
            records: config.records,
            window: 0..1,
            as_of_days: 0,
            existing_people: 0,
            new_people: config.records,
            update_share: 0.0,
            initial_records: state.initial_records,
            first_profile_update: 0,
            first_purchase: 0,
            ips: Pools {
                base: pool,
                batch: None,
                base_share: 1.0,
            },
            devices: Pools {
                base: pool,
                batch: None,
                base_share: 1.0,
            },
            dirty_rate: config.dirty_rate,
            truth: config.truth,
            fragmentation: config.fragmentation,
            gzip: config.gzip,
            force: config.force,
            threads,
            progress: config.progress,
            root: config.root.clone(),
            state_after: state,
            warnings: Vec::new(),
        }
    }

    fn resolve_initial(config: &Config, threads: usize) -> Result<Plan, Error> {
        if config.batch.is_some() {
            return Err(invalid(
                "--timestamp names an incremental batch; add --incremental",
            ));
        }
        if config.records > MAX_PEOPLE {
            return Err(invalid(format!(
                "--records must be at most {MAX_PEOPLE} (every person needs a distinct SSN-style external id)"
            )));
        }
        check_alias_room(config, config.records)?;
        let as_of = match config.as_of {
            Some(date) => date,
            None => DEFAULT_AS_OF
                .parse::<NaiveDate>()
                .map_err(|e| Error::Internal(e.to_string()))?,
        };
        let seed = config.seed.unwrap_or(DEFAULT_SEED);
        let as_of_days = days_since_epoch(as_of);
        let state = GenState::initial(seed, as_of.to_string(), config.records, config.uniqueness);
        let mut plan = Plan::common(config, threads, SourceKind::Initial, state);
        // Events of the initial population fall in the ten years before the reference date.
        let end = as_of_days * SECONDS_PER_DAY;
        plan.window = end - 3_652 * SECONDS_PER_DAY..end;
        plan.as_of_days = as_of_days;
        if let Some(old) = GenState::load(&config.root)?
            && !old.batches.is_empty()
            && config.force
        {
            plan.warnings.push(format!(
                "the {} incremental batch(es) under {} were generated for the population this run \
                 replaces; regenerate them too",
                old.batches.len(),
                config.root.display()
            ));
        }
        Ok(plan)
    }

    fn resolve_batch(config: &Config, threads: usize) -> Result<Plan, Error> {
        let Some(mut state) = GenState::load(&config.root)? else {
            return Err(Error::NoInitialPopulation(config.root.clone()));
        };
        if let Some(seed) = config.seed
            && seed != state.seed
        {
            return Err(invalid(format!(
                "the population under {} was generated with seed {}; an incremental batch must use \
                 the same seed (drop --seed or pass --seed {})",
                config.root.display(),
                state.seed,
                state.seed
            )));
        }
        if config.as_of.is_some() {
            return Err(invalid(format!(
                "--as-of applies to the initial population; batches keep its reference date ({})",
                state.as_of
            )));
        }
        let batch = match &config.batch {
            Some(batch) => batch.clone(),
            None => now_batch_id()?,
        };
        // Regenerating the latest batch takes back the ids it had; an older one cannot be
        // regenerated without clashing with the ids of the batches after it.
        if let Some(last) = state.batches.last().cloned() {
            if batch.as_str() == last.batch {
                state.people = last.first_person;
                state.purchases = last.first_purchase;
                state.profile_updates = last.first_profile_update;
                state.batches.pop();
            } else if batch.as_str() < last.batch.as_str() {
                return Err(invalid(format!(
                    "batch {batch} is not after the latest batch {}; batches are generated in time order",
                    last.batch
                )));
            }
        }
        let as_of: NaiveDate = state.as_of.parse().map_err(|e| Error::State {
            path: GenState::path(&config.root),
            message: format!("as_of `{}` is not a date: {e}", state.as_of),
        })?;
        let updates = (config.records as f64 * config.update_share).floor() as u64;
        let new_people = config.records - updates;
        if state.people.saturating_add(new_people) > MAX_PEOPLE {
            return Err(invalid(format!(
                "the population would exceed {MAX_PEOPLE} people, the most that distinct \
                 SSN-style external ids allow"
            )));
        }

        check_alias_room(config, state.people.saturating_add(new_people))?;
        let (year, month, day, hour, minute, second) = batch.parts();
        let batch_time = NaiveDate::from_ymd_opt(year as i32, month, day)
            .and_then(|d| d.and_hms_opt(hour, minute, second))
            .ok_or_else(|| Error::Internal(format!("batch id {batch} is not a time")))?
            .and_utc()
            .timestamp();
        let scope = batch
            .as_str()
            .replace('_', "")
            .parse::<u64>()
            .map_err(|e| Error::Internal(e.to_string()))?;

        let record = BatchRecord {
            batch: batch.to_string(),
            records: config.records,
            first_person: state.people,
            new_people,
            first_purchase: state.purchases,
            purchases: config.records,
            first_profile_update: state.profile_updates,
            profile_updates: updates,
        };
        let mut after = state.clone();
        after.people += new_people;
        after.purchases += config.records;
        after.profile_updates += updates;
        after.batches.push(record);

        let mut plan = Plan::common(config, threads, SourceKind::Incremental(batch), after);
        plan.scope = scope;
        // A batch holds what happened in the day before its timestamp.
        plan.window = batch_time - SECONDS_PER_DAY..batch_time;
        plan.as_of_days = days_since_epoch(as_of);
        plan.existing_people = state.people;
        plan.new_people = new_people;
        plan.update_share = config.update_share;
        plan.first_profile_update = state.profile_updates;
        plan.first_purchase = state.purchases;
        let base = Pool {
            seed: state.seed,
            scope: 0,
            size: pool_size(state.initial_records, state.uniqueness),
        };
        let own = Pool {
            seed: state.seed,
            scope,
            size: pool_size(config.records, config.uniqueness),
        };
        let pools = Pools {
            base,
            batch: Some(own),
            base_share: config.update_share,
        };
        plan.ips = pools;
        plan.devices = pools;
        Ok(plan)
    }

    pub(crate) fn batch(&self) -> Option<&BatchId> {
        match &self.kind {
            SourceKind::Initial => None,
            SourceKind::Incremental(batch) => Some(batch),
        }
    }
}

/// Second profiles take their names from person numbers above `ALIAS_BASE`, so a fragmented
/// population must stay below it.
fn check_alias_room(config: &Config, people: u64) -> Result<(), Error> {
    if config.fragmentation > 0.0 && people > ALIAS_BASE {
        return Err(invalid(format!(
            "--fragmentation needs the population to stay at most {ALIAS_BASE} people (second \
             profiles take names from the numbers above); it would reach {people}"
        )));
    }
    Ok(())
}

fn now_batch_id() -> Result<BatchId, Error> {
    let now = Utc::now().format("%Y%m%d_%H%M%S").to_string();
    now.parse()
        .map_err(|e: idgraph_core::BatchIdError| Error::Internal(e.to_string()))
}
