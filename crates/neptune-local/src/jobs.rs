//! The load jobs: admission (one running, a FIFO queue of 64, dependencies, modes), the durable
//! history (a SQLite file beside the graph), and the worker that runs one load at a time.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use rusqlite::{Connection, params};

use crate::faults::Faults;
use crate::model::{HISTORY_LIMIT, Load, LoadRequest, QUEUE_LIMIT, status};

/// Why a request was refused; the HTTP front turns it into Neptune's answer.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// 400 `BadRequestException`.
    BadRequest(String),
    /// 404: no such load, or not active.
    NotFound(String),
    /// 500 `InternalFailureException`.
    Internal(String),
}

#[derive(Debug, Default)]
struct State {
    loads: BTreeMap<u64, Load>,
    by_id: HashMap<String, u64>,
    next_seq: u64,
    running: Option<(String, Arc<AtomicBool>)>,
    shutdown: bool,
}

impl State {
    fn get(&self, id: &str) -> Option<&Load> {
        self.by_id.get(id).and_then(|seq| self.loads.get(seq))
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut Load> {
        let seq = *self.by_id.get(id)?;
        self.loads.get_mut(&seq)
    }

    fn waiting(&self) -> impl DoubleEndedIterator<Item = &Load> {
        self.loads
            .values()
            .filter(|l| status::is_waiting(&l.status))
    }
}

/// Every load this server knows, and the worker's wake-up call.
#[derive(Debug)]
pub(crate) struct Jobs {
    state: Mutex<State>,
    wake: Condvar,
    history: Mutex<Connection>,
    pub faults: Arc<Faults>,
}

pub(crate) fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Jobs {
    /// Opens the history in `data_dir`. Loads that were running when the server stopped end in
    /// `LOAD_UNEXPECTED_ERROR` (resubmitting with AUTO resumes them); queued ones stay queued.
    pub fn open(data_dir: &Path, faults: Arc<Faults>) -> Result<Jobs, String> {
        let path = data_dir.join("loads.db");
        let fail = |e: rusqlite::Error| format!("load history {}: {e}", path.display());
        let conn = Connection::open(&path).map_err(fail)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000;
             CREATE TABLE IF NOT EXISTS load (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
                                              doc TEXT NOT NULL);",
        )
        .map_err(fail)?;
        let docs: Vec<String> = conn
            .prepare("SELECT doc FROM load ORDER BY seq")
            .map_err(fail)?
            .query_map([], |r| r.get(0))
            .map_err(fail)?
            .collect::<Result<_, _>>()
            .map_err(fail)?;
        let mut state = State::default();
        let mut interrupted = Vec::new();
        for doc in docs {
            let mut load: Load = serde_json::from_str(&doc).map_err(|e| {
                format!(
                    "load history {}: a record is unreadable: {e}",
                    path.display()
                )
            })?;
            if load.status == status::IN_PROGRESS {
                load.mark_interrupted();
                interrupted.push(load.clone());
            }
            state.next_seq = state.next_seq.max(load.seq + 1);
            state.by_id.insert(load.id.clone(), load.seq);
            state.loads.insert(load.seq, load);
        }
        let jobs = Jobs {
            state: Mutex::new(state),
            wake: Condvar::new(),
            history: Mutex::new(conn),
            faults,
        };
        for load in &interrupted {
            jobs.persist(load)?;
        }
        Ok(jobs)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn persist(&self, load: &Load) -> Result<(), String> {
        let doc = serde_json::to_string(load).map_err(|e| e.to_string())?;
        self.history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .execute(
                "INSERT OR REPLACE INTO load (seq, id, doc) VALUES (?1, ?2, ?3)",
                params![load.seq as i64, load.id, doc],
            )
            .map(|_| ())
            .map_err(|e| format!("cannot record load {}: {e}", load.id))
    }

    /// Admits a load, or refuses it as Neptune would (§2.4, §2.5, the mode notes of §2.2).
    pub fn submit(&self, request: LoadRequest) -> Result<String, Refusal> {
        let mut state = self.lock();
        if state.shutdown {
            return Err(Refusal::Internal("the server is stopping".into()));
        }
        for dependency in &request.dependencies {
            if state.get(dependency).is_none() {
                return Err(Refusal::BadRequest(format!(
                    "Failed to start new load for the source {}. Dependency load id {dependency} \
                     does not exist",
                    request.source
                )));
            }
        }
        let waiting = state.waiting().count();
        let busy = state.running.is_some() || waiting > 0;
        if busy && !request.queue_request {
            return Err(Refusal::BadRequest(format!(
                "Failed to start new load for the source {}. Max concurrent load limit breached. \
                 Limit is 1",
                request.source
            )));
        }
        if waiting >= QUEUE_LIMIT {
            return Err(Refusal::BadRequest(format!(
                "Failed to start new load for the source {}. Max load task queue size limit \
                 breached. Limit is {QUEUE_LIMIT}",
                request.source
            )));
        }
        let previous = state.loads.values().rev().find(|l| {
            l.request.source == request.source
                && !status::is_waiting(&l.status)
                && l.status != status::IN_PROGRESS
        });
        let (run_number, skip_files) = match (request.mode.as_str(), previous) {
            ("RESUME", None) => {
                return Err(Refusal::BadRequest(format!(
                    "Failed to start new load for the source {}. No previous load was found for \
                     this source to resume (mode RESUME)",
                    request.source
                )));
            }
            ("NEW", _) | (_, None) => (1, Vec::new()),
            (_, Some(previous)) => {
                let mut skip = previous.skip_files.clone();
                skip.extend(
                    previous
                        .feeds
                        .iter()
                        .filter(|f| f.status == status::COMPLETED)
                        .map(|f| f.full_uri.clone()),
                );
                skip.sort();
                skip.dedup();
                (previous.run_number + 1, skip)
            }
        };
        let seq = state.next_seq;
        let load = Load {
            id: uuid::Uuid::new_v4().to_string(),
            seq,
            request,
            status: if busy {
                status::IN_QUEUE
            } else {
                status::NOT_STARTED
            }
            .to_owned(),
            run_number,
            retry_number: 0,
            start_time: None,
            time_spent: 0.0,
            counters: Default::default(),
            feeds: Vec::new(),
            errors: Vec::new(),
            errors_dropped: 0,
            skip_files,
        };
        self.persist(&load).map_err(Refusal::Internal)?;
        let id = load.id.clone();
        state.next_seq += 1;
        state.by_id.insert(id.clone(), seq);
        state.loads.insert(seq, load);
        self.prune(&mut state);
        self.wake.notify_all();
        Ok(id)
    }

    /// Keeps the most recent `HISTORY_LIMIT` loads (§1.13); waiting and running ones stay.
    fn prune(&self, state: &mut State) {
        while state.loads.len() > HISTORY_LIMIT {
            let Some(oldest) = state
                .loads
                .values()
                .find(|l| !status::is_waiting(&l.status) && l.status != status::IN_PROGRESS)
                .map(|l| (l.seq, l.id.clone()))
            else {
                return;
            };
            state.loads.remove(&oldest.0);
            state.by_id.remove(&oldest.1);
            let _ = self
                .history
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .execute("DELETE FROM load WHERE seq = ?1", [oldest.0 as i64]);
        }
    }

    /// Runs `f` on a load's record.
    pub fn with_load<T>(&self, id: &str, f: impl FnOnce(&Load) -> T) -> Option<T> {
        self.lock().get(id).map(f)
    }

    /// Updates a load's record; `persist` also writes it to the history.
    pub fn update(&self, id: &str, persist: bool, f: impl FnOnce(&mut Load)) {
        let mut state = self.lock();
        if let Some(load) = state.get_mut(id) {
            f(load);
            if persist {
                let load = load.clone();
                if let Err(e) = self.persist(&load) {
                    eprintln!("neptune-local: {e}");
                }
            }
        }
    }

    /// Load ids, newest first; waiting ones first when included (§2.8).
    pub fn list(&self, limit: usize, include_queued: bool) -> Vec<String> {
        let state = self.lock();
        let mut ids: Vec<String> = Vec::new();
        if include_queued {
            ids.extend(state.waiting().rev().map(|l| l.id.clone()));
        }
        ids.extend(
            state
                .loads
                .values()
                .rev()
                .filter(|l| !status::is_waiting(&l.status))
                .map(|l| l.id.clone()),
        );
        ids.truncate(limit);
        ids
    }

    /// Cancels a waiting or running load (§2.9).
    pub fn cancel(&self, id: &str) -> Result<(), Refusal> {
        let mut state = self.lock();
        let not_active = || {
            Refusal::NotFound(format!(
                "The load with id = {id} does not exist or not active"
            ))
        };
        if let Some((running, flag)) = &state.running
            && running == id
        {
            flag.store(true, Ordering::SeqCst);
            return Ok(());
        }
        let load = state.get_mut(id).ok_or_else(not_active)?;
        if !status::is_waiting(&load.status) {
            return Err(not_active());
        }
        load.status = status::CANCELLED_BY_USER.to_owned();
        let load = load.clone();
        self.persist(&load).map_err(Refusal::Internal)?;
        self.wake.notify_all();
        Ok(())
    }

    /// Waits for the next load that may run, marks it running, and returns its id, request,
    /// the files to skip and its cancel flag. `None` once the server stops.
    pub fn next(&self) -> Option<(String, LoadRequest, Vec<String>, Arc<AtomicBool>)> {
        let mut state = self.lock();
        loop {
            if state.shutdown {
                return None;
            }
            if state.running.is_none() {
                let mut picked = None;
                let mut failed_dependents = Vec::new();
                for load in state.waiting() {
                    let deps: Vec<Option<&str>> = load
                        .request
                        .dependencies
                        .iter()
                        .map(|d| state.get(d).map(|l| l.status.as_str()))
                        .collect();
                    // A dependency that fell out of the history completed long ago.
                    let done = |s: &Option<&str>| s.is_none_or(|s| s == status::COMPLETED);
                    let pending = |s: &Option<&str>| {
                        s.is_some_and(|s| status::is_waiting(s) || s == status::IN_PROGRESS)
                    };
                    if deps.iter().any(|s| !done(s) && !pending(s)) {
                        failed_dependents.push(load.id.clone());
                    } else if deps.iter().all(done) {
                        picked = Some(load.id.clone());
                        break;
                    }
                }
                for id in failed_dependents {
                    if let Some(load) = state.get_mut(&id) {
                        load.status = status::DEPENDENCY_NOT_SATISFIED.to_owned();
                        let load = load.clone();
                        if let Err(e) = self.persist(&load) {
                            eprintln!("neptune-local: {e}");
                        }
                    }
                    // A failed dependent may itself be a dependency: scan again.
                    self.wake.notify_all();
                }
                if let Some(id) = picked {
                    let flag = Arc::new(AtomicBool::new(false));
                    state.running = Some((id.clone(), flag.clone()));
                    let load = state.get_mut(&id)?;
                    load.status = status::IN_PROGRESS.to_owned();
                    load.start_time = Some(now_seconds());
                    let load = load.clone();
                    if let Err(e) = self.persist(&load) {
                        eprintln!("neptune-local: {e}");
                    }
                    return Some((id, load.request, load.skip_files, flag));
                }
            }
            state = self
                .wake
                .wait_timeout(state, std::time::Duration::from_millis(200))
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Records the end of the running load.
    pub fn finish(&self, id: &str, final_status: &str, time_spent: f64) {
        let mut state = self.lock();
        if let Some(load) = state.get_mut(id) {
            load.status = final_status.to_owned();
            load.time_spent = time_spent;
            let load = load.clone();
            if let Err(e) = self.persist(&load) {
                eprintln!("neptune-local: {e}");
            }
        }
        state.running = None;
        self.wake.notify_all();
    }

    /// Stops the worker: a running load is interrupted like a crash would.
    pub fn shutdown(&self) {
        let mut state = self.lock();
        state.shutdown = true;
        if let Some((_, flag)) = &state.running {
            flag.store(true, Ordering::SeqCst);
        }
        self.wake.notify_all();
    }

    pub fn is_shutting_down(&self) -> bool {
        self.lock().shutdown
    }
}
