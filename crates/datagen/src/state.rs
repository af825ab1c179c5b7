//! What earlier runs generated under a root: the population's seed and size, and the id ranges
//! each incremental batch took. An incremental batch reads it to refer to existing people and
//! to give its new people, purchases and profile updates ids that no other batch uses.
//!
//! Kept at `datasets/sources/datagen_state.json`, beside (not inside) the dataset folders.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::output::write_atomically;

const STATE_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GenState {
    pub(crate) format: u32,
    pub(crate) seed: u64,
    /// The reference date of the initial population (`yyyy-MM-dd`).
    pub(crate) as_of: String,
    pub(crate) initial_records: u64,
    /// `--uniqueness` of the initial population (sizes its IP and device pools).
    pub(crate) uniqueness: u32,
    /// People generated so far: person ids `0..people` exist.
    pub(crate) people: u64,
    /// Purchases generated so far (purchase serials `0..purchases` are taken).
    pub(crate) purchases: u64,
    /// Profile updates generated so far (positions in the update order of the initial people).
    pub(crate) profile_updates: u64,
    pub(crate) batches: Vec<BatchRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchRecord {
    pub(crate) batch: String,
    pub(crate) records: u64,
    pub(crate) first_person: u64,
    pub(crate) new_people: u64,
    pub(crate) first_purchase: u64,
    pub(crate) purchases: u64,
    pub(crate) first_profile_update: u64,
    pub(crate) profile_updates: u64,
}

impl GenState {
    pub(crate) fn initial(seed: u64, as_of: String, records: u64, uniqueness: u32) -> GenState {
        GenState {
            format: STATE_FORMAT,
            seed,
            as_of,
            initial_records: records,
            uniqueness,
            people: records,
            purchases: records,
            profile_updates: 0,
            batches: Vec::new(),
        }
    }

    pub(crate) fn path(root: &Path) -> PathBuf {
        root.join(idgraph_core::Layout::SOURCES)
            .join("datagen_state.json")
    }

    /// Reads the state under `root`; `None` when no initial population was generated there.
    pub(crate) fn load(root: &Path) -> Result<Option<GenState>, Error> {
        let path = Self::path(root);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::State {
                    path,
                    message: e.to_string(),
                });
            }
        };
        let state: GenState = serde_json::from_str(&text).map_err(|e| Error::State {
            path: path.clone(),
            message: format!("not a datagen state file: {e}"),
        })?;
        if state.format != STATE_FORMAT {
            return Err(Error::State {
                path,
                message: format!(
                    "written by another version of datagen (format {}, this one reads {STATE_FORMAT})",
                    state.format
                ),
            });
        }
        Ok(Some(state))
    }

    pub(crate) fn save(&self, root: &Path) -> Result<(), Error> {
        let mut text =
            serde_json::to_vec_pretty(self).map_err(|e| Error::Internal(e.to_string()))?;
        text.push(b'\n');
        write_atomically(&Self::path(root), &text)
    }
}
