//! The S3 side of the store against a local S3-compatible server (s3s-fs).

use idgraph_storage::{Encryption, Location, Store};
use sha2::{Digest, Sha256};

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn server() -> (tempfile::TempDir, testkit::LocalS3, Store) {
    testkit::LocalS3::with_buckets(&["bucket"])
}

#[test]
fn large_objects_go_up_in_parts_and_come_back_whole() {
    let (root, _server, store) = server();
    let store = store.with_multipart_threshold(8 << 20);
    // 40 MiB that differ everywhere, so a misplaced part shows.
    let bytes: Vec<u8> = (0..40u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let sha = hex(&bytes);
    let location: Location = "s3://bucket/big/file.csv"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .put(&location, bytes.clone(), &sha)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        store.read(&location).unwrap_or_else(|e| panic!("{e}")),
        bytes
    );
    assert_eq!(
        std::fs::read(root.path().join("bucket/big/file.csv")).unwrap_or_else(|e| panic!("{e}")),
        bytes
    );
    assert_eq!(
        store
            .stored_sha256(&location)
            .unwrap_or_else(|e| panic!("{e}")),
        Some(sha)
    );
    // A small object goes up in one request, with the same metadata.
    let small: Location = "s3://bucket/small.csv"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .put(&small, b"~id\na\n".to_vec(), &hex(b"~id\na\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        store
            .stored_sha256(&small)
            .unwrap_or_else(|e| panic!("{e}")),
        Some(hex(b"~id\na\n"))
    );
    let missing: Location = "s3://bucket/none.csv"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        store
            .stored_sha256(&missing)
            .unwrap_or_else(|e| panic!("{e}")),
        None
    );
}

#[test]
fn keys_are_listed_by_raw_prefix_as_s3_and_neptune_read_a_source() {
    let (_root, _server, store) = server();
    for key in ["run-1/v.csv", "run-10/v.csv", "run-2/v.csv"] {
        let location: Location = format!("s3://bucket/{key}")
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .write(&location, b"x".to_vec())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let names = |prefix: &str| -> Vec<String> {
        store
            .list_key_prefix("bucket", prefix)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|o| o.name)
            .collect()
    };
    assert_eq!(names("run-1/"), ["s3://bucket/run-1/v.csv"]);
    assert_eq!(
        names("run-1"),
        ["s3://bucket/run-1/v.csv", "s3://bucket/run-10/v.csv"]
    );
}

#[test]
fn create_new_writes_only_where_nothing_is() {
    let (_root, _server, store) = server();
    let lock: Location = "s3://bucket/datasets/loader/lock"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        store
            .create_new(&lock, b"first".to_vec())
            .unwrap_or_else(|e| panic!("{e}"))
    );
    assert!(
        !store
            .create_new(&lock, b"second".to_vec())
            .unwrap_or_else(|e| panic!("{e}"))
    );
    assert_eq!(
        store.read(&lock).unwrap_or_else(|e| panic!("{e}")),
        b"first"
    );
    store.remove(&lock).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        store
            .create_new(&lock, b"third".to_vec())
            .unwrap_or_else(|e| panic!("{e}"))
    );
}

#[test]
fn every_write_asks_for_encryption_and_an_unconfirmed_one_fails() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(root.path().join("bucket")).unwrap_or_else(|e| panic!("{e}"));
    let server = testkit::LocalS3::start(root.path());
    let at = |key: &str| -> Location {
        format!("s3://bucket/{key}")
            .parse()
            .unwrap_or_else(|e: String| panic!("{e}"))
    };
    let big: Vec<u8> = (0..12u32 << 20).map(|i| (i % 251) as u8).collect();
    for (encryption, header) in [
        (Encryption::Aes256, "AES256"),
        (Encryption::Kms(Some("key-1".into())), "aws:kms"),
    ] {
        let store = Store::for_endpoint(&server.endpoint(), testkit::KEY, testkit::SECRET)
            .with_multipart_threshold(8 << 20)
            .with_encryption(encryption);
        let before = server.requests().len();
        store
            .write(&at("state.json"), b"{}".to_vec())
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .put(&at("small.csv"), b"~id\n".to_vec(), &hex(b"~id\n"))
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .put(&at("big.csv"), big.clone(), &hex(&big))
            .unwrap_or_else(|e| panic!("{e}"));
        store.remove(&at("lock")).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            store
                .create_new(&at("lock"), b"token".to_vec())
                .unwrap_or_else(|e| panic!("{e}"))
        );
        let writes: Vec<testkit::Recorded> = server.requests()[before..]
            .iter()
            .filter(|r| r.writes_an_object())
            .cloned()
            .collect();
        // state.json, small.csv, the multipart start of big.csv, the lock.
        assert_eq!(writes.len(), 4, "{writes:?}");
        for write in &writes {
            assert_eq!(write.encryption.as_deref(), Some(header), "{write:?}");
            let key = (header == "aws:kms").then_some("key-1");
            assert_eq!(write.kms_key_id.as_deref(), key, "{write:?}");
        }
    }
    // A server that answers with another KMS key than the one asked for: refused, on every
    // kind of write.
    let other = testkit::LocalS3::start_answering_kms_key(root.path(), "someone-elses-key");
    let store = Store::for_endpoint(&other.endpoint(), testkit::KEY, testkit::SECRET)
        .with_multipart_threshold(8 << 20)
        .with_encryption(Encryption::Kms(Some("key-1".into())));
    let refusals = [
        store.write(&at("k.json"), b"{}".to_vec()).err(),
        store
            .put(&at("k.csv"), b"~id\n".to_vec(), &hex(b"~id\n"))
            .err(),
        store.put(&at("k-big.csv"), big.clone(), &hex(&big)).err(),
    ];
    for refusal in refusals {
        let message = refusal.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("asked for KMS key key-1") && message.contains("someone-elses-key"),
            "{message}"
        );
    }
    // The key's ARN is as good as its id.
    let arn = Store::for_endpoint(&server.endpoint(), testkit::KEY, testkit::SECRET)
        .with_encryption(Encryption::Kms(Some(
            "arn:aws:kms:us-east-1:000000000000:key/key-2".into(),
        )));
    arn.write(&at("arn.json"), b"{}".to_vec())
        .unwrap_or_else(|e| panic!("{e}"));
    // A server that does not confirm the encryption: the write is reported, not trusted.
    let silent = testkit::LocalS3::start_ignoring_encryption(root.path());
    let store = Store::for_endpoint(&silent.endpoint(), testkit::KEY, testkit::SECRET);
    let e = store
        .write(&at("clear.json"), b"{}".to_vec())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("s3://bucket/clear.json") && e.contains("AES256") && e.contains("none"),
        "{e}"
    );
    // Unless the user asked for no encryption.
    Store::for_endpoint(&silent.endpoint(), testkit::KEY, testkit::SECRET)
        .with_encryption(Encryption::None)
        .write(&at("clear.json"), b"{}".to_vec())
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_fenced_write_fails_once_another_writer_changed_the_object() {
    let (_root, _server, store) = server();
    let at: Location = "s3://bucket/lock".parse().unwrap_or_else(|e| panic!("{e}"));
    store
        .write(&at, b"first".to_vec())
        .unwrap_or_else(|e| panic!("{e}"));
    let (_, etag) = store
        .read_versioned(&at)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("missing"));
    let renewed = store
        .write_if_match(&at, b"second".to_vec(), &etag)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("the fenced write was refused"));
    store
        .write(&at, b"another writer".to_vec())
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("etag {etag} renewed {renewed}");
    assert_eq!(
        store
            .write_if_match(&at, b"third".to_vec(), &renewed)
            .unwrap_or_else(|e| panic!("{e}")),
        None
    );
    assert_eq!(
        store.read(&at).unwrap_or_else(|e| panic!("{e}")),
        b"another writer"
    );
    assert_eq!(
        store
            .read_versioned(
                &"s3://bucket/none"
                    .parse()
                    .unwrap_or_else(|e: String| panic!("{e}"))
            )
            .unwrap_or_else(|e| panic!("{e}")),
        None
    );
}

#[test]
fn a_streamed_write_lands_whole_or_not_at_all() {
    let (_root, _server, store) = server();
    let local = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Larger than the write buffer, written in uneven pieces.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let fill = |w: &mut dyn std::io::Write| {
        for piece in data.chunks(70_001) {
            w.write_all(piece)?;
        }
        Ok(())
    };
    let fail = |w: &mut dyn std::io::Write| {
        w.write_all(&data[..2_500_000])?;
        Err(std::io::Error::other("the writer gave up"))
    };
    let local_at = Location::Local(local.path().join("state/members.bin"));
    let s3_at: Location = "s3://bucket/state/members.bin"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    for at in [&local_at, &s3_at] {
        store
            .write_streamed(at, fill)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            store.read(at).unwrap_or_else(|e| panic!("{e}")),
            data,
            "{at}"
        );
        // A failed write names the object and leaves the old one as it was.
        let err = store
            .write_streamed(at, fail)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("members.bin") && err.contains("the writer gave up"),
            "{err}"
        );
        assert_eq!(
            store.read(at).unwrap_or_else(|e| panic!("{e}")),
            data,
            "{at}"
        );
    }
    // ... and no temporary file beside it.
    let names: Vec<String> = std::fs::read_dir(local.path().join("state"))
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(names, ["members.bin"]);
    let fresh = Location::Local(local.path().join("state/new.bin"));
    assert!(store.write_streamed(&fresh, fail).is_err());
    assert!(!store.exists(&fresh).unwrap_or_else(|e| panic!("{e}")));
}

/// What a write killed before its rename leaves beside its file (a hidden temporary file) is
/// reclaimed by the next write of that file, plain or streamed.
#[test]
fn a_killed_writes_temporary_files_go_with_the_next_write() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = Store::default();
    for (name, streamed) in [("state.json", false), ("graph.csv", true)] {
        let path = dir.path().join(name);
        let left = dir.path().join(format!(".{name}.a1B2c3.tmp"));
        std::fs::write(&left, b"half of it").unwrap_or_else(|e| panic!("{e}"));
        let other = dir.path().join(".other.json.x.tmp");
        std::fs::write(&other, b"another file's").unwrap_or_else(|e| panic!("{e}"));
        let location = Location::Local(path.clone());
        if streamed {
            store
                .write_streamed(&location, |out| out.write_all(b"whole"))
                .unwrap_or_else(|e| panic!("{e}"));
        } else {
            store
                .write(&location, b"whole".to_vec())
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(!left.exists(), "{} is still there", left.display());
        assert!(other.exists(), "another file's temporary file went too");
        assert_eq!(std::fs::read(&path).unwrap_or_default(), b"whole");
    }
}
