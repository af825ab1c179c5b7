//! The run lock: locally an OS lock that a dead run cannot leave behind; on S3 a lock object
//! whose every write after the first is fenced on the ETag its holder last saw, renewed while
//! the run works.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use idgraph_storage::{Location, Store};
use loader::Lock;

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_local_lock_is_refused_while_held_and_free_once_its_holder_is_gone() {
    let dir = tempdir();
    let root = Location::Local(dir.path().to_path_buf());
    let store = Store::default();
    let path = dir.path().join("datasets/loader/lock");
    std::fs::create_dir_all(path.parent().unwrap_or(dir.path())).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        &path,
        r#"{"token":"t","owner":"the other run","expires_at":1}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Another holder of the OS lock (what a live run of another process has): refused, named.
    let other = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{e}"));
    other.try_lock().unwrap_or_else(|e| panic!("{e}"));
    let refused = Lock::acquire(&store, &root.join(loader::LOCK), Duration::from_secs(60))
        .err()
        .unwrap_or_default();
    assert!(
        refused.contains("another run holds") && refused.contains("the other run"),
        "{refused}"
    );
    // Its holder is gone (as when a process dies, however it dies): the file left behind does
    // not matter, whatever it says; no /proc or host name is consulted.
    drop(other);
    let lock = Lock::acquire(&store, &root.join(loader::LOCK), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    let second = Lock::acquire(&store, &root.join(loader::LOCK), Duration::from_secs(60));
    assert!(second.is_err());
    lock.release().unwrap_or_else(|e| panic!("{e}"));
    Lock::acquire(&store, &root.join(loader::LOCK), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
}

fn s3() -> (tempfile::TempDir, testkit::LocalS3, Store, Location) {
    let (dir, server, store) = testkit::LocalS3::with_buckets(&["bucket"]);
    let root: Location = "s3://bucket/root"
        .parse()
        .unwrap_or_else(|e: String| panic!("{e}"));
    (dir, server, store, root)
}

fn body(store: &Store, root: &Location) -> serde_json::Value {
    let bytes = store
        .read(&root.join("datasets/loader/lock"))
        .unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[test]
fn an_s3_lock_is_taken_over_only_when_expired_and_released_only_by_its_holder() {
    let (_dir, _server, store, root) = s3();
    let at = root.join("datasets/loader/lock");
    let other = |expires_at: u64| {
        serde_json::to_vec(&serde_json::json!({
            "token": "other", "owner": "the other run", "expires_at": expires_at
        }))
        .unwrap_or_default()
    };
    store
        .write(&at, other(now() + 3600))
        .unwrap_or_else(|e| panic!("{e}"));
    let refused = Lock::acquire(&store, &root.join(loader::LOCK), Duration::from_secs(60))
        .err()
        .unwrap_or_default();
    assert!(refused.contains("the other run"), "{refused}");
    // Expired: taken over.
    store.write(&at, other(1)).unwrap_or_else(|e| panic!("{e}"));
    let lock = Lock::acquire(&store, &root.join(loader::LOCK), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(body(&store, &root)["token"], "other");
    // Another run takes it (say this one stalled past its expiry): releasing this lock must
    // leave the other run's alone.
    store
        .write(&at, other(now() + 3600))
        .unwrap_or_else(|e| panic!("{e}"));
    lock.release().unwrap_or_else(|e| panic!("{e}"));
    let after = body(&store, &root);
    assert_eq!(after["token"], "other");
    assert_eq!(after["released"], serde_json::Value::Null);
    // A released lock is free at once.
    store.write(&at, other(1)).unwrap_or_else(|e| panic!("{e}"));
    let lock = Lock::acquire(&store, &root.join(loader::LOCK), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    lock.release().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body(&store, &root)["released"], true);
    Lock::acquire(&store, &root.join(loader::LOCK), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
}

static LOST: AtomicBool = AtomicBool::new(false);

fn lost() {
    LOST.store(true, Ordering::SeqCst);
}

#[test]
fn an_s3_lock_is_renewed_while_held_and_a_run_that_loses_it_is_told() {
    let (_dir, _server, store, root) = s3();
    let lock = Lock::acquire_with(
        &store,
        &root.join(loader::LOCK),
        Duration::from_secs(6),
        lost,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let token = body(&store, &root)["token"].clone();
    // Well past its lifetime of 6 s (renewed every 2 s), it is still this run's and still live.
    std::thread::sleep(Duration::from_secs(9));
    let now_held = body(&store, &root);
    assert_eq!(now_held["token"], token);
    assert!(now_held["expires_at"].as_u64().unwrap_or(0) > now());
    assert!(Lock::acquire(&store, &root.join(loader::LOCK), Duration::from_secs(6)).is_err());
    assert!(!LOST.load(Ordering::SeqCst));
    // Another run overwrites it: the next renewal finds out and says so. (The local S3 server
    // checks a condition and writes apart, so a renewal in flight can still overwrite the
    // theft; then the theft is tried again.)
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !LOST.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
        if body(&store, &root)["token"] != "thief" {
            store
                .write(
                    &root.join("datasets/loader/lock"),
                    serde_json::to_vec(&serde_json::json!({
                        "token": "thief", "owner": "another run", "expires_at": now() + 3600
                    }))
                    .unwrap_or_default(),
                )
                .unwrap_or_else(|e| panic!("{e}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(LOST.load(Ordering::SeqCst));
    drop(lock);
    assert_eq!(body(&store, &root)["token"], "thief");
}

fn never() {}

/// Writes under the lock (the run state, a stream checkpoint) are fenced on it: on S3 they
/// land only while the lock is still this run's, so a holder paused past its lease, whose lock
/// another run took, writes nothing over the new holder's work.
#[test]
fn writes_fenced_on_an_s3_lock_land_only_while_it_is_held() {
    let (_dir, _server, store, root) = s3();
    let lock = Lock::acquire_with(
        &store,
        &root.join(loader::LOCK),
        Duration::from_secs(3600),
        never,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let state = root.join("datasets/loader/state.json");
    lock.update_fenced(&store, &state, |current| {
        assert_eq!(current, None);
        Ok(b"one".to_vec())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    // The update is made from the version read, and the write lands on it.
    lock.update_fenced(&store, &state, |current| {
        assert_eq!(current, Some(&b"one"[..]));
        Ok(b"two".to_vec())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.read(&state).unwrap_or_default(), b"two");
    // Another writer changes the file between this run's read and its write: the write, made
    // from the version read, does not land over it.
    let conflict = lock
        .update_fenced(&store, &state, |_| {
            store
                .write(&state, b"meanwhile".to_vec())
                .unwrap_or_else(|e| panic!("{e}"));
            Ok(b"from the old version".to_vec())
        })
        .err()
        .unwrap_or_default();
    assert!(conflict.contains("another writer changed it"), "{conflict}");
    assert_eq!(store.read(&state).unwrap_or_default(), b"meanwhile");
    // Another run took the lock over (as after this one's lease ran out while it was paused).
    store
        .write(
            &root.join(loader::LOCK),
            serde_json::to_vec(&serde_json::json!({
                "token": "new-holder", "owner": "another run", "expires_at": now() + 3600
            }))
            .unwrap_or_default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .write(&state, b"the new holder's".to_vec())
        .unwrap_or_else(|e| panic!("{e}"));
    let refused = lock
        .update_fenced(&store, &state, |_| Ok(b"stale".to_vec()))
        .err()
        .unwrap_or_default();
    assert!(refused.contains("no longer this run's"), "{refused}");
    assert_eq!(store.read(&state).unwrap_or_default(), b"the new holder's");
    drop(lock);
}
