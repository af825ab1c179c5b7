//! `release_held_locks`, which releases every S3 lock of the process: in a test binary of its
//! own, so that it cannot release the locks of other tests running beside it.

use std::time::Duration;

use idgraph_storage::Location;
use loader::Lock;

#[test]
fn a_stop_that_cannot_unwind_still_releases_the_s3_lock() {
    let (_dir, _server, store) = testkit::LocalS3::with_buckets(&["bucket"]);
    let root: Location = "s3://bucket/root"
        .parse()
        .unwrap_or_else(|e: String| panic!("{e}"));
    let lock = Lock::acquire(&store, &root.join(loader::LOCK), Duration::from_secs(600))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(Lock::acquire(&store, &root.join(loader::LOCK), Duration::from_secs(600)).is_err());
    // What the second SIGINT or SIGTERM does before it exits.
    loader::release_held_locks();
    let body: serde_json::Value = serde_json::from_slice(
        &store
            .read(&root.join("datasets/loader/lock"))
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body["released"], true);
    std::mem::forget(lock);
    Lock::acquire(&store, &root.join(loader::LOCK), Duration::from_secs(600))
        .unwrap_or_else(|e| panic!("{e}"));
}
