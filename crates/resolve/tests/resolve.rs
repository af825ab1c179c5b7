//! Identity resolution on datagen's fragmented people: scores computed here from the truth and
//! the graph output (not by the resolver's own scoring), lookups, the report's charts, and the
//! state's care (a rerun, a kill before the commit, damage, order).

use std::collections::HashMap;
use std::path::Path;

use idgraph_core::{Dataset, Layout, SourceKind};
use idgraph_storage::{Location, Store};
use resolve::{Answer, ResolvePlan};

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

fn generate(root: &Path, records: u64, dirty_rate: f64, batch: Option<&str>) {
    datagen::generate(&datagen::Config {
        root: root.to_path_buf(),
        records,
        fragmentation: 0.2,
        dirty_rate,
        truth: true,
        incremental: batch.is_some(),
        batch: batch.map(|b| b.parse().unwrap_or_else(|e| panic!("{e}"))),
        ..datagen::Config::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

fn transform_all(root: &Path) {
    let mut options = transform::Options::new(
        Location::Local(root.to_path_buf()),
        Location::Local(root.to_path_buf()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    options.max_reject_rate = 0.2;
    for selection in [transform::Selection::Initial, transform::Selection::Pending] {
        options.selection = selection;
        transform::run(&options).unwrap_or_else(|e| panic!("{e}"));
    }
}

fn plan(root: &Path) -> ResolvePlan {
    ResolvePlan::new(
        Location::Local(root.to_path_buf()),
        transform::Mapping::default_mapping().unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn resolve_all(root: &Path) -> Vec<resolve::ResolveReport> {
    let plan = plan(root);
    let store = Store::default();
    resolve::pending(&plan, &store)
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|k| resolve::resolve_batch(&plan, &store, k).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn read_csv(path: &Path) -> Vec<Vec<String>> {
    testkit::csv_records(path)
}

/// Every identifier's person id as the graph batches set it, later batches over earlier ones.
fn person_ids(root: &Path, kinds: &[SourceKind]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for kind in kinds {
        let dir = root.join(Layout::identity_graph_dir(kind)).join("vertices");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("personId-"))
            })
            .collect();
        files.sort();
        for file in files {
            for row in read_csv(&file) {
                out.insert(row[0].clone(), row[2].clone());
            }
        }
    }
    out
}

/// The vertex that stands for a source row, by this test's own reading of the model: the
/// profile's user, the session of a cookie or clickstream row, the purchase's customer.
fn row_vertex(dataset: Dataset, row: &[String]) -> Option<String> {
    let (label, key) = match dataset {
        Dataset::FirstParty => ("User", row.first()?.trim().to_lowercase()),
        Dataset::Cookie => ("SessionID", row.get(1)?.trim().to_lowercase()),
        Dataset::Clickstream => ("SessionID", row.first()?.trim().to_lowercase()),
        Dataset::Transactional => {
            let customer = row.get(4)?.trim();
            if customer.contains('@') {
                ("Email", customer.to_lowercase())
            } else {
                ("CustomerID", customer.to_owned())
            }
        }
    };
    let mut id = String::new();
    transform::push_id(&mut id, transform::vertex_id(label, &key));
    Some(id)
}

/// (precision, recall, F1) over every pair of rows about people, counted from the truth files
/// and the person ids the graph output gives.
fn pairwise(root: &Path, kind: &SourceKind) -> (f64, f64, f64) {
    let persons = person_ids(root, std::slice::from_ref(kind));
    let mut cells: HashMap<(String, String), u64> = HashMap::new();
    let mut singletons = 0;
    for dataset in Dataset::ALL {
        let source = root
            .join(Layout::source_dir(kind, dataset))
            .join(Layout::source_file_name(kind, dataset, false));
        let rows = read_csv(&source);
        let width = idgraph_core::SourceSchemas::embedded()
            .get(dataset)
            .columns
            .len();
        let truth = read_csv(
            &root
                .join(Layout::truth_dir(kind))
                .join(Layout::truth_file_name(dataset)),
        );
        assert!(!truth.is_empty());
        for t in truth {
            let line: usize = t[0].parse().unwrap_or_else(|e| panic!("{e}"));
            // The csv reader drops the header: line 2 is rows[0]. Clean data has no multi-line rows.
            let row = &rows[line - 2];
            let cluster = (row.len() == width)
                .then(|| row_vertex(dataset, row))
                .flatten()
                .and_then(|v| persons.get(&v).cloned())
                .unwrap_or_else(|| {
                    singletons += 1;
                    format!("alone-{singletons}")
                });
            *cells.entry((t[1].clone(), cluster)).or_default() += 1;
        }
    }
    let pairs = |n: u64| n * n.saturating_sub(1) / 2;
    let mut by_truth: HashMap<&String, u64> = HashMap::new();
    let mut by_cluster: HashMap<&String, u64> = HashMap::new();
    let mut tp = 0;
    for ((who, cluster), n) in &cells {
        tp += pairs(*n);
        *by_truth.entry(who).or_default() += n;
        *by_cluster.entry(cluster).or_default() += n;
    }
    let true_pairs: u64 = by_truth.values().map(|&n| pairs(n)).sum();
    let predicted: u64 = by_cluster.values().map(|&n| pairs(n)).sum();
    assert!(
        true_pairs > 1_000,
        "too few pairs to say anything: {true_pairs}"
    );
    let (fp, fn_) = (predicted - tp, true_pairs - tp);
    (
        tp as f64 / predicted as f64,
        tp as f64 / true_pairs as f64,
        2.0 * tp as f64 / (2 * tp + fp + fn_) as f64,
    )
}

#[test]
fn fragmented_people_are_resolved_exactly_and_dirty_ones_almost() {
    let clean = tempdir();
    generate(clean.path(), 3_000, 0.0, None);
    transform_all(clean.path());
    resolve_all(clean.path());
    let (p, r, f1) = pairwise(clean.path(), &SourceKind::Initial);
    assert_eq!((p, r, f1), (1.0, 1.0, 1.0));
    let own =
        resolve::score(&plan(clean.path()), &Store::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((own.precision, own.recall, own.f1), (p, r, f1));
    assert_eq!(own.exact_share, 1.0);

    let dirty = tempdir();
    generate(dirty.path(), 3_000, 0.05, None);
    transform_all(dirty.path());
    resolve_all(dirty.path());
    let (p, r, f1) = pairwise(dirty.path(), &SourceKind::Initial);
    assert!(
        p >= 0.999 && f1 >= 0.99,
        "precision {p}, recall {r}, F1 {f1}"
    );
    let own =
        resolve::score(&plan(dirty.path()), &Store::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(own.precision >= 0.999 && own.f1 >= 0.99, "{own}");
    // Both readings agree on precision (the dirty rows they cannot place differ in kind only).
    assert!((own.precision - p).abs() < 1e-3, "{} vs {p}", own.precision);
}

#[test]
fn who_finds_a_person_from_any_identifier_written_any_way() {
    let dir = tempdir();
    let root = dir.path();
    generate(root, 1_500, 0.0, None);
    transform_all(root);
    resolve_all(root);
    let (plan, store) = (plan(root), Store::default());
    let person_of = |key: &str| match resolve::who(&plan, &store, key) {
        Ok(Answer::Person(p)) => p,
        other => panic!("{key}: {other:?}"),
    };
    let kind = SourceKind::Initial;
    let dataset_rows = |d| {
        read_csv(
            &root
                .join(Layout::source_dir(&kind, d))
                .join(Layout::source_file_name(&kind, d, false)),
        )
    };
    let cookies = dataset_rows(Dataset::Cookie);
    let cookie = cookies
        .iter()
        .find(|c| !c[3].is_empty())
        .unwrap_or_else(|| panic!("no logged-in cookie"));
    let profiles = dataset_rows(Dataset::FirstParty);
    let profile = profiles
        .iter()
        .find(|p| p[0] == cookie[3])
        .unwrap_or_else(|| panic!("no profile for {}", cookie[3]));
    let by_user = person_of(&profile[0].to_uppercase());
    assert_eq!(by_user.matched.kind, "User");
    let digits: String = profile[2]
        .split(" x")
        .next()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    for key in [
        format!("  {}  ", profile[1].to_uppercase()),
        format!("+1 {digits}"),
        profile[3].clone(),
        cookie[0].to_uppercase(),
        cookie[1].clone(),
    ] {
        let found = person_of(&key);
        assert_eq!(found.person_id, by_user.person_id, "{key}");
        assert_ne!(found.matched.kind, "Person");
    }
    assert!(
        by_user
            .identifiers
            .iter()
            .any(|i| i.kind == "Cookie" && i.key == cookie[0])
    );
    assert_eq!(person_of(&by_user.person_id).person_id, by_user.person_id);

    // A device is shared, not an identifier: who answers with the people linked to it.
    let clicks = dataset_rows(Dataset::Clickstream);
    let device = clicks
        .iter()
        .find(|c| !c[6].is_empty() && !c[7].is_empty())
        .unwrap_or_else(|| panic!("no logged-in mobile session"));
    let owner = person_of(&device[7]).person_id;
    match resolve::who(&plan, &store, &device[6].to_lowercase()) {
        Ok(Answer::Shared(s)) => {
            assert_eq!(s.kind, "DeviceID");
            assert!(s.people >= 1 && s.others.contains(&owner), "{s:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        resolve::who(&plan, &store, "nobody@nowhere.example"),
        Err(resolve::Error::NotFound(_))
    ));
}

#[test]
fn the_report_charts_decode_and_carry_data() {
    let dir = tempdir();
    let root = dir.path();
    generate(root, 1_000, 0.0, None);
    transform_all(root);
    let reports = resolve_all(root);
    let page = reports[0]
        .html_report
        .clone()
        .unwrap_or_else(|| panic!("no report"));
    let html = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{e}"));
    let report_dir = Path::new(&page)
        .parent()
        .unwrap_or_else(|| panic!("{page}"));
    let charts: Vec<&str> = html
        .split("<img src=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect();
    assert_eq!(charts.len(), 3, "{html}");
    for chart in charts {
        let text = std::fs::read_to_string(report_dir.join(chart))
            .unwrap_or_else(|e| panic!("{chart}: {e}"));
        let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{chart}: {e}"));
        let svg = doc.root_element();
        assert_eq!(svg.tag_name().name(), "svg", "{chart}");
        let width: f64 = svg
            .attribute("width")
            .and_then(|w| w.parse().ok())
            .unwrap_or(0.0);
        // Bars: filled rectangles other than the white background, with a height.
        let bars = svg
            .descendants()
            .filter(|n| n.has_tag_name("rect"))
            .filter(|n| n.attribute("fill").is_some_and(|f| f != "#FFFFFF"))
            .filter(|n| {
                n.attribute("height")
                    .and_then(|h| h.parse::<f64>().ok())
                    .is_some_and(|h| h > 0.5)
            })
            .count();
        assert!(
            width > 100.0 && bars >= 2,
            "{chart}: width {width}, {bars} bars"
        );
        assert!(
            svg.descendants().any(|n| n.has_tag_name("text")),
            "{chart}: no labels"
        );
    }
}

#[test]
fn a_rerun_a_kill_before_the_commit_damage_and_order_are_handled() {
    let dir = tempdir();
    let root = dir.path();
    generate(root, 800, 0.0, None);
    generate(root, 200, 0.0, Some("20260110_000000"));
    generate(root, 200, 0.0, Some("20260111_000000"));
    transform_all(root);
    let (plan, store) = (plan(root), Store::default());
    let first: SourceKind =
        SourceKind::Incremental("20260110_000000".parse().unwrap_or_else(|e| panic!("{e}")));
    let second: SourceKind =
        SourceKind::Incremental("20260111_000000".parse().unwrap_or_else(|e| panic!("{e}")));
    let run = |k: &SourceKind| resolve::resolve_batch(&plan, &store, k);
    run(&SourceKind::Initial).unwrap_or_else(|e| panic!("{e}"));
    run(&first).unwrap_or_else(|e| panic!("{e}"));
    let state_dir = root.join(Layout::IDENTITY).join("state");
    let snapshot =
        |dir: &Path| -> Vec<(String, Vec<u8>)> { testkit::snapshot(dir).into_iter().collect() };
    let state_before = snapshot(&state_dir);
    let done = run(&second).unwrap_or_else(|e| panic!("{e}"));
    assert!(!done.already_resolved);
    let output = snapshot(&root.join(Layout::identity_graph_dir(&second)));
    let state_after = snapshot(&state_dir);
    // Again: nothing to do.
    assert!(
        run(&second)
            .unwrap_or_else(|e| panic!("{e}"))
            .already_resolved
    );
    // Killed after writing everything but state.json: the state folder holds the earlier
    // state's files, with the new ones beside them. The rerun makes the same bytes.
    for (name, bytes) in &state_before {
        std::fs::write(state_dir.join(name), bytes).unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(
        !run(&second)
            .unwrap_or_else(|e| panic!("{e}"))
            .already_resolved
    );
    assert_eq!(
        digest(&snapshot(&root.join(Layout::identity_graph_dir(&second)))),
        digest(&output)
    );
    assert_eq!(digest(&snapshot(&state_dir)), digest(&state_after));
    match run(&first) {
        Ok(r) => assert!(r.already_resolved),
        Err(e) => panic!("{e}"),
    }
    match run(&SourceKind::Initial) {
        Ok(r) => assert!(r.already_resolved),
        Err(e) => panic!("{e}"),
    }
    // A damaged segment is named, not read.
    let members = state_dir.join("members-00000-initial.bin");
    let mut bytes = std::fs::read(&members).unwrap_or_default();
    bytes[100] ^= 1;
    std::fs::write(&members, bytes).unwrap_or_else(|e| panic!("{e}"));
    let err = resolve::who(&plan, &store, "x")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("members-00000-initial.bin") && err.contains("damaged"),
        "{err}"
    );
}

#[test]
fn batches_resolve_in_order_only() {
    let dir = tempdir();
    let root = dir.path();
    generate(root, 300, 0.0, None);
    generate(root, 100, 0.0, Some("20260110_000000"));
    generate(root, 100, 0.0, Some("20260111_000000"));
    transform_all(root);
    let (plan, store) = (plan(root), Store::default());
    let second =
        SourceKind::Incremental("20260111_000000".parse().unwrap_or_else(|e| panic!("{e}")));
    let first =
        SourceKind::Incremental("20260110_000000".parse().unwrap_or_else(|e| panic!("{e}")));
    resolve::resolve_batch(&plan, &store, &second).unwrap_or_else(|e| panic!("{e}"));
    match resolve::resolve_batch(&plan, &store, &first) {
        Err(resolve::Error::OutOfOrder { batch, last }) => {
            assert_eq!(
                (batch.as_str(), last.as_str()),
                ("20260110_000000", "20260111_000000")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        resolve::resolve_batch(&plan, &store, &SourceKind::Initial),
        Err(resolve::Error::OutOfOrder { .. })
    ));
}

/// Names and checksums, for messages that fit on a screen.
fn digest(files: &[(String, Vec<u8>)]) -> Vec<(String, u32)> {
    files
        .iter()
        .map(|(n, b)| (n.clone(), crc32fast::hash(b)))
        .collect()
}

#[test]
fn an_s3_root_resolves_to_the_same_bytes_with_every_write_encrypted() {
    let dir = tempdir();
    let local = dir.path();
    generate(local, 600, 0.0, None);
    transform_all(local);
    resolve_all(local);
    // The same graph batch under an s3:// root.
    let (_s3_dir, s3, store) = testkit::LocalS3::with_buckets(&["lake"]);
    let root: Location = "s3://lake/idgraph"
        .parse()
        .unwrap_or_else(|e: String| panic!("{e}"));
    let graph = Layout::graph_dir(&SourceKind::Initial);
    for (relative, bytes) in testkit::snapshot(&local.join(&graph)) {
        store
            .write(&root.join(&format!("{graph}/{relative}")), bytes)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let plan = ResolvePlan::new(
        root.clone(),
        transform::Mapping::default_mapping().unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let pending = resolve::pending(&plan, &store).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pending, [SourceKind::Initial]);
    let report = resolve::resolve_batch(&plan, &store, &SourceKind::Initial)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!report.already_resolved && report.people > 0);
    // The graph batch and the state hold the bytes a local root gets.
    for (dir, files) in [
        (
            Layout::identity_graph_dir(&SourceKind::Initial),
            testkit::snapshot(&local.join(Layout::identity_graph_dir(&SourceKind::Initial))),
        ),
        (
            format!("{}/state", Layout::IDENTITY),
            testkit::snapshot(&local.join(Layout::IDENTITY).join("state")),
        ),
    ] {
        assert!(!files.is_empty());
        for (relative, bytes) in files {
            let on_s3 = store
                .read(&root.join(&format!("{dir}/{relative}")))
                .unwrap_or_else(|e| panic!("{dir}/{relative}: {e}"));
            assert!(on_s3 == bytes, "{dir}/{relative} differs on S3");
        }
    }
    let writes: Vec<_> = s3
        .requests()
        .into_iter()
        .filter(|r| r.writes_an_object())
        .collect();
    assert!(
        writes
            .iter()
            .any(|w| w.target.contains("/identity/state/state.json"))
    );
    assert!(
        writes
            .iter()
            .all(|w| w.encryption.as_deref() == Some("AES256")),
        "{writes:?}"
    );
    // And a lookup answers from the state on S3.
    let profile = read_csv(
        &local
            .join(Layout::source_dir(
                &SourceKind::Initial,
                Dataset::FirstParty,
            ))
            .join(Layout::source_file_name(
                &SourceKind::Initial,
                Dataset::FirstParty,
                false,
            )),
    );
    match resolve::who(&plan, &store, &profile[0][1]) {
        Ok(Answer::Person(p)) => assert_eq!(p.matched.kind, "Email"),
        other => panic!("{other:?}"),
    }
}

/// `resolve run` takes the root's run lock, as the loader does: it refuses to run beside a
/// holder (a loader run), and runs once the lock is free.
#[test]
fn resolve_run_refuses_beside_a_loader_run_and_runs_once_the_lock_is_free() {
    let dir = tempdir();
    let root = dir.path();
    generate(root, 100, 0.0, None);
    transform_all(root);
    let store = Store::default();
    let resolve = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_resolve"))
            .args(["run", "--root"])
            .arg(root)
            .arg("--no-report")
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let held = idgraph_storage::Lock::acquire(
        &store,
        &Location::Local(root.to_path_buf()).join(Layout::RUN_LOCK),
        std::time::Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let refused = resolve();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("holds the lock"),
        "{stderr}"
    );
    assert!(
        resolve::pending(&plan(root), &store)
            .unwrap_or_else(|e| panic!("{e}"))
            .contains(&SourceKind::Initial),
        "it resolved beside the holder"
    );
    drop(held);
    let ran = resolve();
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(
        resolve::pending(&plan(root), &store)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty()
    );
}
