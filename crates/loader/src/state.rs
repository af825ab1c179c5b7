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

/// A file of a batch as uploaded (or loaded in place).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileRecord {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// One load of a batch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoadRecord {
    /// `vertices` or `edges`.
    pub part: String,
    pub source: String,
    pub load_id: String,
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
}

/// Everything a later run needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct State {
    /// The newest incremental batch loaded; `None` before the first.
    pub watermark: Option<String>,
    pub batches: BTreeMap<String, BatchRecord>,
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl State {
    pub fn load(store: &Store, root: &Location) -> Result<State, String> {
        let location = root.join(STATE);
        if !store.exists(&location).map_err(|e| e.to_string())? {
            return Ok(State::default());
        }
        let bytes = store.read(&location).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("{location}: the run state is unreadable: {e}"))
    }

    /// Writes the whole state at once (a temporary file and a rename locally; one PUT on S3).
    pub fn save(&self, store: &Store, root: &Location) -> Result<(), String> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
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
        let body = LockBody {
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
                return Ok(Lock {
                    store,
                    location,
                    released: false,
                });
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
                // Expired, dead or unreadable: the holder is gone.
                _ => store.remove(&location).map_err(|e| e.to_string())?,
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
