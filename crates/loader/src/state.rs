//! Durable run state (the watermark, one record per batch with its files, load ids, statuses
//! and counts), under the root, locally or on S3: `datasets/loader/state.json`; and where the
//! run lock lives (`datasets/loader/lock`, an [`idgraph_storage::Lock`]).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use idgraph_storage::{Location, Lock, Store};
use serde::{Deserialize, Serialize};

use crate::neptune::LoadStatus;

const STATE: &str = "datasets/loader/state.json";
/// The run lock of a root (see [`idgraph_storage::Lock`]), shared with `resolve run`.
pub const LOCK: &str = idgraph_core::Layout::RUN_LOCK;

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
    /// The loads of `source` that the endpoint had before this one was asked for: none of them
    /// is this load, whatever their status (an earlier generation of the batch reads the same
    /// prefix).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known_loads: Vec<String>,
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
    /// The batch's files changed after this target recorded them (transformed again): same
    /// names, other rows, so it loads with mode NEW until it is loaded (AUTO would skip them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replaced_files: bool,
}

impl BatchRecord {
    /// The batch's graph files are not the ones recorded (it was transformed again).
    pub fn files_replaced(&self, files: &[FileRecord]) -> bool {
        !self.files.is_empty() && self.files != files
    }
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
        StateFile::parse(&location, &bytes)
    }

    fn parse(location: &Location, bytes: &[u8]) -> Result<StateFile, String> {
        serde_json::from_slice(bytes)
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
    /// fsync and a rename locally; one PUT on S3), fenced on the run lock the caller holds: the
    /// file is read once, this target's state put into it, and on S3 the write lands only if
    /// the lock is still this run's and the file is still the version read (see
    /// [`Lock::update_fenced`]).
    pub fn save(
        &self,
        store: &Store,
        root: &Location,
        target: &str,
        lock: &Lock<'_>,
    ) -> Result<(), String> {
        let location = root.join(STATE);
        lock.update_fenced(store, &location, |current| {
            let mut file = match current {
                Some(bytes) => StateFile::parse(&location, bytes)?,
                None => StateFile::default(),
            };
            file.targets.insert(target.to_owned(), self.clone());
            serde_json::to_vec_pretty(&file).map_err(|e| e.to_string())
        })
    }
}
