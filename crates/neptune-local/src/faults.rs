//! Fault injection, so a client's error paths can be exercised against the stand-in.

use std::sync::Mutex;
use std::time::Duration;

use crate::model::status;

#[derive(Debug, Default)]
struct State {
    failing_loads: Vec<String>,
    load_delay: Duration,
    failing_reads: u32,
    failing_requests: u32,
}

/// Faults to inject. Shared by the HTTP front and the load worker of one server.
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<State>,
}

/// A status code that no load can end in.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a terminal load status (neptune-reference.md §2.7)")]
pub struct NotTerminal(String);

impl Faults {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut state)
    }

    /// The next load that starts ends with `status` (for example `LOAD_FAILED` or
    /// `LOAD_DATA_DEADLOCK`) without touching the graph. Calls queue up, one per load.
    pub fn fail_next_load(&self, status: &str) -> Result<(), NotTerminal> {
        if !status::TERMINAL.contains(&status) {
            return Err(NotTerminal(status.to_owned()));
        }
        self.with(|s| s.failing_loads.push(status.to_owned()));
        Ok(())
    }

    /// Every load stays `LOAD_IN_PROGRESS` at least this long before it reads its first file
    /// (a cancel still stops it at once).
    pub fn set_load_delay(&self, delay: Duration) {
        self.with(|s| s.load_delay = delay);
    }

    /// The next `n` file reads fail as a transient S3 read error (feed `LOAD_S3_READ_ERROR`).
    pub fn fail_next_reads(&self, n: u32) {
        self.with(|s| s.failing_reads = n);
    }

    /// The next `n` HTTP requests are answered `500 InternalFailureException`.
    pub fn fail_next_requests(&self, n: u32) {
        self.with(|s| s.failing_requests = n);
    }

    /// Clears every fault.
    pub fn clear(&self) {
        self.with(|s| *s = State::default());
    }

    pub(crate) fn take_failing_load(&self) -> Option<String> {
        self.with(|s| (!s.failing_loads.is_empty()).then(|| s.failing_loads.remove(0)))
    }

    pub(crate) fn load_delay(&self) -> Duration {
        self.with(|s| s.load_delay)
    }

    pub(crate) fn take_failing_read(&self) -> bool {
        self.with(|s| {
            let fail = s.failing_reads > 0;
            s.failing_reads = s.failing_reads.saturating_sub(1);
            fail
        })
    }

    pub(crate) fn take_failing_request(&self) -> bool {
        self.with(|s| {
            let fail = s.failing_requests > 0;
            s.failing_requests = s.failing_requests.saturating_sub(1);
            fail
        })
    }
}
