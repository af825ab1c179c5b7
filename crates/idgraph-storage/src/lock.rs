//! A lock on a location that keeps two runs (of the loader, of a stream consumer) from working
//! at once, locally or on S3.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{Location, Store};

/// How long a run waits after taking an S3 lock before checking that it still holds it.
const S3_SETTLE: Duration = Duration::from_secs(1);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// A lock, released on drop. `location` is the lock object itself.
///
/// - **Local**: an OS lock (`flock`) on the file, held as long as the file is
///   open. The OS releases it however the process ends, so a dead run never blocks the next one
///   and no liveness check (`/proc`, host names) is needed; the file names the holder.
/// - **S3**: an object whose body holds a token and an expiry. It is taken with a
///   conditional create (`If-None-Match: *`), or, when expired or released, with a write fenced
///   on its ETag (`If-Match`); renewed (fenced again) every third of its lifetime while the run
///   works; released by a fenced write of a released body. Every write is conditional on the
///   ETag this run last saw, so a run never removes or overwrites a lock that another holds.
///   Some S3-compatible servers check conditions and write apart, so after taking the lock the
///   run waits a second and reads it back: only the run whose token is there goes on.
#[derive(Debug)]
pub struct Lock<'a> {
    /// The lock lives no longer than the store it was taken with (its renewer has a store of
    /// its own).
    store: std::marker::PhantomData<&'a Store>,
    location: Location,
    held: Held,
    released: bool,
}

#[derive(Debug)]
enum Held {
    Local(std::fs::File),
    S3(Arc<S3Hold>),
}

/// An S3 lock this process holds, shared with the thread that renews it.
#[derive(Debug)]
struct S3Hold {
    store: Store,
    location: Location,
    token: String,
    owner: String,
    ttl: Duration,
    /// The ETag of the lock object as this run last wrote it.
    etag: Mutex<String>,
    stop: AtomicBool,
    renewer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// S3 locks this process holds, so that a stop on a second signal can release them.
static HELD: Mutex<Vec<Arc<S3Hold>>> = Mutex::new(Vec::new());

#[derive(Debug, Serialize, Deserialize)]
struct LockBody {
    /// Unique per acquisition: tells this run's lock from another's.
    #[serde(default)]
    token: String,
    owner: String,
    expires_at: u64,
    /// Released by its holder: free to take.
    #[serde(default)]
    released: bool,
}

impl LockBody {
    fn is_live(&self) -> bool {
        !self.released && self.expires_at > now()
    }
}

/// What a run does when it finds that another run took its S3 lock: stop at once, as a kill
/// would (the state records every step, so the next run resumes), rather than go on beside it.
fn stop_the_process() {
    std::process::exit(75);
}

impl<'a> Lock<'a> {
    /// Takes the lock, or says who holds it. An S3 lock lives `ttl` without renewal.
    pub fn acquire(
        store: &'a Store,
        location: &Location,
        ttl: Duration,
    ) -> Result<Lock<'a>, String> {
        Lock::acquire_with(store, location, ttl, stop_the_process)
    }

    /// [`Lock::acquire`], with what to do when another run took the S3 lock over.
    pub fn acquire_with(
        store: &'a Store,
        location: &Location,
        ttl: Duration,
        on_lost: fn(),
    ) -> Result<Lock<'a>, String> {
        let location = location.clone();
        let token = format!("{}-{}-{}", hostname(), std::process::id(), now_nanos());
        let owner = format!("pid {} on {}", std::process::id(), hostname());
        let held = match &location {
            Location::Local(path) => Held::Local(lock_local(path, &token, &owner)?),
            Location::S3 { .. } => {
                let hold = Arc::new(S3Hold {
                    store: store.detached(),
                    location: location.clone(),
                    token,
                    owner,
                    ttl,
                    etag: Mutex::new(String::new()),
                    stop: AtomicBool::new(false),
                    renewer: Mutex::new(None),
                });
                hold.take()?;
                let renewing = hold.clone();
                let renewer = std::thread::Builder::new()
                    .name("lock-renewer".into())
                    .spawn(move || renewing.renew_until_stopped(on_lost))
                    .map_err(|e| format!("cannot start renewing the lock {location}: {e}"))?;
                *lock(&hold.renewer) = Some(renewer);
                lock(&HELD).push(hold.clone());
                Held::S3(hold)
            }
        };
        Ok(Lock {
            store: std::marker::PhantomData,
            location,
            held,
            released: false,
        })
    }

    /// Replaces `location` with what `update` makes of its current content (`None`: no such
    /// object), only while this lock is still this run's. Locally (an OS lock, which only the
    /// end of the process releases) a plain read and write. On S3 the object and its ETag are
    /// read once, `update` runs on that content, the lock object is read back and must still
    /// carry this run's token and be live, and the write is conditional on that ETag
    /// (`If-Match`; `If-None-Match: *` for a new object). So the write lands only on the
    /// version the update was made from, and a holder paused past its lifetime, whose lock
    /// another run took, fails here instead of overwriting what the new holder wrote.
    pub fn update_fenced(
        &self,
        store: &Store,
        location: &Location,
        update: impl FnOnce(Option<&[u8]>) -> Result<Vec<u8>, String>,
    ) -> Result<(), String> {
        let Held::S3(hold) = &self.held else {
            let current = if store.exists(location).map_err(|e| e.to_string())? {
                Some(store.read(location).map_err(|e| e.to_string())?)
            } else {
                None
            };
            let bytes = update(current.as_deref())?;
            return store.write(location, bytes).map_err(|e| e.to_string());
        };
        let current = store.read_versioned(location).map_err(|e| e.to_string())?;
        let bytes = update(current.as_ref().map(|(bytes, _)| bytes.as_slice()))?;
        match hold.read()? {
            Some((Some(body), _)) if body.token == hold.token && body.is_live() => {}
            _ => {
                return Err(format!(
                    "{location} not written: the lock {} is no longer this run's (another run \
                     took it over)",
                    self.location
                ));
            }
        }
        let written = match current {
            Some((_, etag)) => store
                .write_if_match(location, bytes, &etag)
                .map_err(|e| e.to_string())?
                .is_some(),
            None => store
                .create_new(location, bytes)
                .map_err(|e| e.to_string())?,
        };
        if !written {
            return Err(format!(
                "{location} not written: another writer changed it while this run held the lock \
                 {}",
                self.location
            ));
        }
        Ok(())
    }

    /// Releases the lock: locally the OS lock; on S3 a released body, written only if the
    /// lock is still this run's.
    pub fn release(mut self) -> Result<(), String> {
        self.released = true;
        self.release_held()
    }

    fn release_held(&mut self) -> Result<(), String> {
        match &self.held {
            Held::Local(file) => file
                .unlock()
                .map_err(|e| format!("cannot release the lock {}: {e}", self.location)),
            Held::S3(hold) => {
                lock(&HELD).retain(|h| !Arc::ptr_eq(h, hold));
                hold.release()
            }
        }
    }
}

impl Drop for Lock<'_> {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.release_held();
        }
    }
}

/// Releases every S3 lock this process holds (each only if it is still this process's): for
/// a stop that cannot wait for the run to unwind.
pub fn release_held_locks() {
    let held: Vec<Arc<S3Hold>> = lock(&HELD).drain(..).collect();
    for hold in held {
        let _ = hold.release();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn lock_local(path: &std::path::Path, token: &str, owner: &str) -> Result<std::fs::File, String> {
    use std::io::{Read, Seek, Write};
    let fail = |e: std::io::Error| format!("cannot take the lock {}: {e}", path.display());
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(fail)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = serde_json::from_str::<LockBody>(&text)
                .map(|b| b.owner)
                .unwrap_or_else(|_| "another process".into());
            return Err(format!(
                "another run holds the lock {} ({holder}); it is released when that run ends",
                path.display()
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(fail(e)),
    }
    let body = serde_json::to_vec(&LockBody {
        token: token.to_owned(),
        owner: owner.to_owned(),
        expires_at: u64::MAX,
        released: false,
    })
    .map_err(|e| e.to_string())?;
    file.set_len(0).map_err(fail)?;
    file.rewind().map_err(fail)?;
    file.write_all(&body).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    Ok(file)
}

impl S3Hold {
    fn body(&self, released: bool) -> Result<Vec<u8>, String> {
        serde_json::to_vec(&LockBody {
            token: self.token.clone(),
            owner: self.owner.clone(),
            expires_at: if released {
                0
            } else {
                now() + self.ttl.as_secs().max(1)
            },
            released,
        })
        .map_err(|e| e.to_string())
    }

    fn read(&self) -> Result<Option<(Option<LockBody>, String)>, String> {
        // A read can fail in passing (a network error; on an S3-compatible server that writes
        // objects in place, a body read while another run writes it fails its checksum):
        // read again after a pause before giving up.
        let mut attempt = 0;
        loop {
            match self.store.read_versioned(&self.location) {
                Ok(found) => {
                    return Ok(
                        found.map(|(bytes, etag)| (serde_json::from_slice(&bytes).ok(), etag))
                    );
                }
                Err(_) if attempt < 2 => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Takes the lock: creates it, or takes over an expired or released one by a write fenced
    /// on its ETag; then checks after a pause that it is still this run's.
    fn take(&self) -> Result<(), String> {
        let location = &self.location;
        for _ in 0..3 {
            let taken = match self.read()? {
                None => self
                    .store
                    .create_new(location, self.body(false)?)
                    .map_err(|e| e.to_string())?,
                Some((Some(held), _)) if held.is_live() => {
                    return Err(format!(
                        "another run holds the lock {location} ({}, for {} s more unless it \
                         renews it); it is released when that run ends",
                        held.owner,
                        held.expires_at.saturating_sub(now())
                    ));
                }
                Some((Some(_), etag)) => self
                    .store
                    .write_if_match(location, self.body(false)?, &etag)
                    .map_err(|e| e.to_string())?
                    .is_some(),
                Some((None, _)) => {
                    return Err(format!(
                        "the lock {location} exists but cannot be read; if no run is active, \
                         delete it"
                    ));
                }
            };
            if !taken {
                // Another run wrote it between the read and the write: look again.
                continue;
            }
            std::thread::sleep(S3_SETTLE);
            return match self.read()? {
                Some((Some(current), etag)) if current.token == self.token => {
                    *lock(&self.etag) = etag;
                    Ok(())
                }
                Some((Some(current), _)) => Err(format!(
                    "another run took the lock {location} at the same moment ({})",
                    current.owner
                )),
                _ => Err(format!(
                    "another run wrote the lock {location} at the same moment; neither run \
                     proceeds, run again"
                )),
            };
        }
        Err(format!(
            "could not take the lock {location}: other runs keep writing it"
        ))
    }

    /// Renews the lock every third of its lifetime until stopped. When the lock is found to be
    /// another run's, or cannot be renewed before it expires, calls `on_lost`.
    fn renew_until_stopped(&self, on_lost: fn()) {
        let every = (self.ttl / 3).max(Duration::from_millis(500));
        let mut valid_until = std::time::Instant::now() + self.ttl;
        loop {
            let next = std::time::Instant::now() + every;
            while std::time::Instant::now() < next {
                if self.stop.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let etag = lock(&self.etag).clone();
            let renewed = self.body(false).and_then(|body| {
                self.store
                    .write_if_match(&self.location, body, &etag)
                    .map_err(|e| e.to_string())
            });
            match renewed {
                Ok(Some(new)) => {
                    *lock(&self.etag) = new;
                    valid_until = std::time::Instant::now() + self.ttl;
                }
                Ok(None) => {
                    if self.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    eprintln!(
                        "another run took over the lock {}; this run stops now",
                        self.location
                    );
                    on_lost();
                    return;
                }
                // A passing error: try again, unless the lock has expired meanwhile.
                Err(e) if std::time::Instant::now() + every < valid_until => {
                    eprintln!("could not renew the lock {} ({e}); retrying", self.location);
                }
                Err(e) => {
                    eprintln!(
                        "could not renew the lock {} before it expired ({e}); this run \
                         stops now",
                        self.location
                    );
                    on_lost();
                    return;
                }
            }
        }
    }

    /// Stops renewing and writes a released body, fenced on this run's ETag: a lock another
    /// run holds now is left alone.
    fn release(&self) -> Result<(), String> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(renewer) = lock(&self.renewer).take() {
            let _ = renewer.join();
        }
        let etag = lock(&self.etag).clone();
        if etag.is_empty() {
            return Ok(());
        }
        self.store
            .write_if_match(&self.location, self.body(true)?, &etag)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "this host".into())
}
