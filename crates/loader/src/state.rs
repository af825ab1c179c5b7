//! Durable run state (the watermark, one record per batch with its files, load ids, statuses
//! and counts) and the lock that keeps two runs from overlapping. Both live under the root,
//! locally or on S3: `datasets/loader/state.json` and `datasets/loader/lock`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use idgraph_storage::{Location, Store};
use serde::{Deserialize, Serialize};

use crate::neptune::LoadStatus;

const STATE: &str = "datasets/loader/state.json";
const LOCK: &str = "datasets/loader/lock";
/// How long a run waits after taking an S3 lock before checking that it still holds it.
const S3_SETTLE: Duration = Duration::from_secs(1);

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// A file of a batch as uploaded (or loaded in place).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileRecord {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// One load of a batch. Recorded before the loader is asked to start it, so that a run that
/// dies before it learns the load's id still knows to look for it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoadRecord {
    /// `vertices` or `edges`.
    pub part: String,
    pub source: String,
    /// `None`: the start was asked for (or was about to be) but its answer never recorded.
    pub load_id: Option<String>,
    pub status: Option<LoadStatus>,
}

/// What happened to one graph batch.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BatchRecord {
    /// `pending`, `uploaded`, `loading`, `loaded` or `failed`.
    pub stage: String,
    pub files: Vec<FileRecord>,
    pub loads: Vec<LoadRecord>,
    pub vertices: BTreeMap<String, u64>,
    pub edges: BTreeMap<String, u64>,
    pub updated_at: u64,
    /// The batch was transformed again (another mapping): its files changed under the same
    /// names, so it loads with mode NEW until it is loaded (AUTO would skip them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replaced_files: bool,
}

/// What one target (a loader endpoint, with the stage it reads) holds: everything a later run
/// against it needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct State {
    /// The newest incremental batch loaded; `None` before the first.
    pub watermark: Option<String>,
    pub batches: BTreeMap<String, BatchRecord>,
}

/// The state file: one [`State`] per target, so that a root loaded into one graph is not taken
/// as loaded into another.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StateFile {
    #[serde(default)]
    pub targets: BTreeMap<String, State>,
    /// A state file written before states were kept per target: which target it describes is
    /// unknown, so no target takes its batches as loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batches: Option<BTreeMap<String, BatchRecord>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
}

impl StateFile {
    pub fn load(store: &Store, root: &Location) -> Result<StateFile, String> {
        let location = root.join(STATE);
        if !store.exists(&location).map_err(|e| e.to_string())? {
            return Ok(StateFile::default());
        }
        let bytes = store.read(&location).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("{location}: the run state is unreadable: {e}"))
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl State {
    /// The state of one target (see [`crate::Plan::target_key`]).
    pub fn load(store: &Store, root: &Location, target: &str) -> Result<State, String> {
        Ok(StateFile::load(store, root)?
            .targets
            .remove(target)
            .unwrap_or_default())
    }

    /// Writes the target's state into the state file, whole and at once (a temporary file, an
    /// fsync and a rename locally; one PUT on S3). The caller holds the run lock, so no other
    /// run changes the file between the read and the write.
    pub fn save(&self, store: &Store, root: &Location, target: &str) -> Result<(), String> {
        let mut file = StateFile::load(store, root)?;
        file.targets.insert(target.to_owned(), self.clone());
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| e.to_string())?;
        store
            .write(&root.join(STATE), bytes)
            .map_err(|e| e.to_string())
    }
}

/// The run lock, released on drop.
#[derive(Debug)]
pub struct Lock<'a> {
    store: &'a Store,
    location: Location,
    released: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct LockBody {
    /// Unique per acquisition: tells this run's lock from another's.
    #[serde(default)]
    token: String,
    owner: String,
    expires_at: u64,
    #[serde(default)]
    host: String,
    #[serde(default)]
    pid: u32,
}

impl LockBody {
    /// Held by a live run: not expired, and not left by a dead process of this host.
    fn is_live(&self) -> bool {
        let dead_here = self.host == hostname()
            && self.pid != 0
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists();
        self.expires_at > now() && !dead_here
    }
}

impl<'a> Lock<'a> {
    /// Takes the lock, or says who holds it. A lock whose holder is gone (expired, or left by a
    /// process of this host that no longer runs) is taken over.
    pub fn acquire(store: &'a Store, root: &Location, ttl: Duration) -> Result<Lock<'a>, String> {
        let location = root.join(LOCK);
        let token = format!("{}-{}-{}", hostname(), std::process::id(), now_nanos());
        let body = LockBody {
            token: token.clone(),
            owner: format!("pid {} on {}", std::process::id(), hostname()),
            expires_at: now() + ttl.as_secs(),
            host: hostname(),
            pid: std::process::id(),
        };
        let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
        for _ in 0..2 {
            if store
                .create_new(&location, bytes.clone())
                .map_err(|e| e.to_string())?
            {
                let lock = Lock {
                    store,
                    location: location.clone(),
                    released: false,
                };
                // S3 makes conditional writes atomic, but some S3-compatible servers check and
                // write apart, so two runs can both succeed. After a pause the object holds the
                // last writer's token: only that run keeps the lock.
                if matches!(location, Location::S3 { .. }) {
                    std::thread::sleep(S3_SETTLE);
                    let current: Option<LockBody> = store
                        .read(&location)
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok());
                    match current {
                        Some(current) if current.token == token => {}
                        Some(current) => {
                            let mut lock = lock;
                            lock.released = true;
                            return Err(format!(
                                "another run took the lock {location} at the same moment ({})",
                                current.owner
                            ));
                        }
                        // Simultaneous writes garbled it: nobody holds it. Dropping the lock
                        // removes it, so that the next run can proceed.
                        None => {
                            drop(lock);
                            return Err(format!(
                                "another run wrote the lock {location} at the same moment; \
                                 neither run proceeds, run again"
                            ));
                        }
                    }
                }
                return Ok(lock);
            }
            let held: Option<LockBody> = store
                .read(&location)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            match held {
                Some(held) if held.is_live() => {
                    return Err(format!(
                        "another run holds the lock {location} ({}, until {} s from now); \
                         it stops when that run ends or the lock expires",
                        held.owner,
                        held.expires_at - now()
                    ));
                }
                Some(_) => store.remove(&location).map_err(|e| e.to_string())?,
                // Unreadable: perhaps being written this instant. Not taken over.
                None => {
                    return Err(format!(
                        "the lock {location} exists but cannot be read; if no run is active, \
                         delete it"
                    ));
                }
            }
        }
        Err(format!("could not take the lock {location}"))
    }

    pub fn release(mut self) -> Result<(), String> {
        self.released = true;
        self.store.remove(&self.location).map_err(|e| e.to_string())
    }
}

impl Drop for Lock<'_> {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.store.remove(&self.location);
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "this host".into())
}
