//! What `transform` promises, checked on its output files: golden output for a hand-made
//! batch, ids stable across full and incremental runs, exact reconciliation of dirty data,
//! the validator passing on every output, S3 in and out, reference-generator exports, and bad
//! input that never panics.
//!
//! Golden files: `tests/fixtures/golden/expected/` is what `tests/fixtures/golden/input/`
//! transforms into. After an intended change of output, regenerate them with
//! `UPDATE_GOLDEN=1 cargo test -p transform --test transform golden`, and review the diff.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use idgraph_core::{BatchId, Layout, SourceKind};
use testkit::snapshot;
use transform::{Location, Mapping, Options, Selection};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

fn options(input: &Path, output: &Path) -> Options {
    Options::new(
        Location::Local(input.to_path_buf()),
        Location::Local(output.to_path_buf()),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn run(options: &Options) -> transform::RunReport {
    transform::run(options).unwrap_or_else(|e| panic!("transform failed: {e}"))
}

fn graph_dir(root: &Path, kind: &SourceKind) -> PathBuf {
    root.join(Layout::graph_dir(kind))
}

#[track_caller]
fn assert_valid(dir: &Path) {
    let report = gremlin_csv::validate_dir(dir, gremlin_csv::Options::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        report.is_valid(),
        "{} is not valid: {:#?}",
        dir.display(),
        report.violations
    );
}

/// Rows of a Gremlin CSV file, keyed by header name.
fn rows(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut records = gremlin_csv::Records::new(&text).map(|r| {
        r.unwrap_or_else(|e| panic!("{e}"))
            .fields
            .into_iter()
            .map(|f| f.text.into_owned())
            .collect::<Vec<_>>()
    });
    let header = records.next().unwrap_or_default();
    records
        .map(|fields| {
            header
                .iter()
                .map(|h| h.split(':').next().unwrap_or(h).to_owned())
                .zip(fields)
                .collect()
        })
        .collect()
}

fn copy_tree(from: &Path, to: &Path) {
    for (relative, bytes) in snapshot(from) {
        let target = to.join(&relative);
        fs::create_dir_all(target.parent().unwrap_or(to)).unwrap_or_else(|e| panic!("{e}"));
        fs::write(target, bytes).unwrap_or_else(|e| panic!("{e}"));
    }
}

mod golden {
    use super::*;

    /// The golden batch holds a rejected row on purpose.
    fn golden_options(output: &Path) -> Options {
        let mut o = options(&fixtures().join("golden/input"), output);
        o.max_reject_rate = 0.2;
        o
    }

    #[test]
    fn the_hand_made_batch_transforms_into_the_golden_files() {
        let out = tempdir();
        let report = run(&golden_options(out.path()));
        let batch = graph_dir(out.path(), &SourceKind::Initial);
        assert_valid(&batch);
        let got = snapshot(&batch);
        let expected_dir = fixtures().join("golden/expected");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            let _ = fs::remove_dir_all(&expected_dir);
            copy_tree(&batch, &expected_dir);
        }
        let expected = snapshot(&expected_dir);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "file set"
        );
        for (name, bytes) in &expected {
            assert!(
                got.get(name) == Some(bytes),
                "{name} differs from the golden file:\n{}",
                String::from_utf8_lossy(got.get(name).map(Vec::as_slice).unwrap_or_default())
            );
        }

        // What the golden files say, spelled out, so that regenerating them cannot hide a bug.
        let m = &report.batches[0].manifest;
        let fp = m
            .datasets
            .iter()
            .find(|d| d.dataset == "first_party")
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            (fp.rows_read, fp.rows_used, fp.duplicates, fp.rejects),
            (5, 3, 1, 1)
        );
        let rejects = fs::read_to_string(batch.join("rejects.csv")).unwrap_or_default();
        assert!(
            rejects.contains("first_party_data_full.csv,6,postcode,"),
            "{rejects}"
        );

        let emails = rows(&batch.join("vertices/Email-00000.csv"));
        let jane: Vec<_> = emails
            .iter()
            .filter(|r| r["email"] == "jane.doe0001@example.com")
            .collect();
        assert_eq!(
            jane.len(),
            1,
            "one Email vertex for all spellings of jane's address"
        );
        assert_eq!(emails.len(), 2, "the rejected row's email made no vertex");
        let phones = rows(&batch.join("vertices/PhoneNumber-00000.csv"));
        assert!(phones.iter().any(|r| r["phoneNumber"] == "2025550143"));
        assert_eq!(
            phones.len(),
            2,
            "(202) 555-0143 x12 and 202.555.0143 are one number"
        );

        let users = rows(&batch.join("vertices/User-00000.csv"));
        let jdoe = users
            .iter()
            .find(|r| r["userName"] == "jdoe0001")
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            jdoe["streetAddress"], "9 New Road\\; Rear",
            "the later row wins, `;` escaped"
        );
        assert_eq!(jdoe["loyaltyPoints"], "650");
        assert_eq!(jdoe["birthday"], "1990-01-05");
        assert!(
            !users.iter().any(|r| r["userName"] == "bwayne0003"),
            "the rejected row made nothing"
        );

        let purchases = rows(&batch.join("edges/hasPurchased-00000.csv"));
        assert_eq!(purchases.len(), 3, "a repeated purchase is its own edge");
        let jane_id = jane[0]["~id"].clone();
        assert_eq!(
            purchases.iter().filter(|r| r["~from"] == jane_id).count(),
            2
        );
        let sessions = rows(&batch.join("vertices/SessionID-00000.csv"));
        let first = sessions
            .iter()
            .find(|r| r["sessionId"] == "aaaaaaaa-0000-4000-8000-000000000001")
            .cloned()
            .unwrap_or_default();
        assert_eq!(first["startTimestamp"], "2021-08-12T10:35:17Z");
        let cookies = rows(&batch.join("vertices/Cookie-00000.csv"));
        assert!(
            cookies
                .iter()
                .any(|r| r["lastAction"] == "2022-09-28T14:15:31Z")
        );
        let devices = rows(&batch.join("vertices/DeviceID-00000.csv"));
        assert_eq!(devices[0]["deviceId"], "ABCDEF0123456789");
        let domains = rows(&batch.join("vertices/DomainName-00000.csv"));
        assert_eq!(
            domains.len(),
            1,
            "Example.com and example.com are one domain"
        );
        let logged = rows(&batch.join("edges/loggedAs-00000.csv"));
        assert_eq!(
            logged.len(),
            1,
            "the cookie's ` JDoe0001 ` and the session's jdoe0001 give one edge"
        );
        for file in ["vertices/User-00000.csv", "edges/hasEmail-00000.csv"] {
            let ids: Vec<String> = rows(&batch.join(file))
                .iter()
                .map(|r| r["~id"].clone())
                .collect();
            let mut sorted = ids.clone();
            sorted.sort();
            assert_eq!(ids, sorted, "{file} is sorted by id");
        }
    }

    #[test]
    fn output_does_not_depend_on_threads_or_gzip_content() {
        let (a, b, gz) = (tempdir(), tempdir(), tempdir());
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .map(|p| p.install(|| run(&golden_options(a.path()))))
            .unwrap_or_else(|e| panic!("{e}"));
        rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .map(|p| p.install(|| run(&golden_options(b.path()))))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(snapshot(a.path()) == snapshot(b.path()));
        let mut zipped = golden_options(gz.path());
        zipped.gzip = true;
        run(&zipped);
        let batch = graph_dir(gz.path(), &SourceKind::Initial);
        assert_valid(&batch);
        let plain = snapshot(&graph_dir(a.path(), &SourceKind::Initial));
        for (name, bytes) in snapshot(&batch) {
            if let Some(stem) = name.strip_suffix(".gz") {
                let mut text = Vec::new();
                std::io::Read::read_to_end(
                    &mut flate2::read::GzDecoder::new(&bytes[..]),
                    &mut text,
                )
                .unwrap_or_else(|e| panic!("{e}"));
                assert!(plain.get(stem) == Some(&text), "{name}");
            }
        }
    }
}

mod datagen_data {
    use super::*;

    fn generate(root: &Path, tweak: impl FnOnce(&mut datagen::Config)) -> datagen::Report {
        let mut config = datagen::Config {
            root: root.to_path_buf(),
            records: 3_000,
            ..datagen::Config::default()
        };
        tweak(&mut config);
        datagen::generate(&config).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn dirty_data_reconciles_exactly() {
        let dir = tempdir();
        let generated = generate(dir.path(), |c| {
            c.records = 20_000;
            c.dirty_rate = 0.05;
        });
        let report = run(&options(dir.path(), dir.path()));
        let manifest = &report.batches[0].manifest;
        assert_valid(&graph_dir(dir.path(), &SourceKind::Initial));
        for counts in &manifest.datasets {
            let made = generated
                .datasets
                .iter()
                .find(|d| d.dataset == counts.dataset)
                .unwrap_or_else(|| panic!("{}", counts.dataset));
            assert_eq!(
                counts.rows_read, made.stats.rows,
                "{}: every row is read",
                counts.dataset
            );
            assert_eq!(
                counts.rows_read,
                counts.rows_used + counts.duplicates + counts.rejects,
                "{}",
                counts.dataset
            );
            // Malformed rows are exactly the rejects, duplicated rows exactly the duplicates.
            assert_eq!(
                counts.rejects, made.stats.dirt.malformed,
                "{}: rejects",
                counts.dataset
            );
            assert_eq!(
                counts.duplicates, made.stats.dirt.duplicate,
                "{}: duplicates",
                counts.dataset
            );
        }
        let rejects =
            fs::read_to_string(graph_dir(dir.path(), &SourceKind::Initial).join("rejects.csv"))
                .unwrap_or_default();
        let total: u64 = manifest.datasets.iter().map(|d| d.rejects).sum();
        assert_eq!(rejects.lines().count() as u64, total + 1);

        // Case and space variants of user names land on their clean spelling's vertex: User
        // vertices are the distinct normalised names of the rows that were not rejected.
        let rejected: std::collections::HashSet<(String, u64)> = rejects
            .lines()
            .skip(1)
            .filter_map(|l| {
                let fields: Vec<&str> = l.splitn(4, ',').collect();
                Some((fields.get(1)?.to_string(), fields.get(2)?.parse().ok()?))
            })
            .collect();
        let (mut normalised, mut raw) = (
            std::collections::HashSet::new(),
            std::collections::HashSet::new(),
        );
        for (dataset, column) in [("first_party", 0), ("cookie", 3), ("clickstream", 7)] {
            let file = format!("datasets/sources/initial/{dataset}/{dataset}_data_full.csv");
            let text = fs::read_to_string(dir.path().join(&file)).unwrap_or_default();
            for record in gremlin_csv::Records::new(&text).skip(1).flatten() {
                if rejected.contains(&(file.clone(), record.line)) {
                    continue;
                }
                let name = record
                    .fields
                    .get(column)
                    .map(|f| f.text.to_string())
                    .unwrap_or_default();
                if !name.trim().is_empty() {
                    normalised.insert(name.trim().to_lowercase());
                    raw.insert(name);
                }
            }
        }
        assert_eq!(manifest.vertices["User"], normalised.len() as u64);
        assert!(
            raw.len() > normalised.len() + 100,
            "the data holds variants ({} spellings)",
            raw.len()
        );
    }

    #[test]
    fn ids_agree_between_the_full_run_and_incremental_batches() {
        let dir = tempdir();
        generate(dir.path(), |_| {});
        let batch: BatchId = "20260120_000000".parse().unwrap_or_else(|e| panic!("{e}"));
        generate(dir.path(), |c| {
            c.records = 500;
            c.incremental = true;
            c.batch = Some(batch.clone());
        });
        run(&options(dir.path(), dir.path()));
        let mut incremental = options(dir.path(), dir.path());
        incremental.selection = Selection::Pending;
        let report = run(&incremental);
        assert_eq!(report.batches.len(), 1);
        assert_eq!(report.batches[0].manifest.batch, "20260120_000000");
        assert!(
            run(&incremental).batches.is_empty(),
            "a second run finds nothing pending"
        );

        let full = graph_dir(dir.path(), &SourceKind::Initial);
        let inc = graph_dir(dir.path(), &SourceKind::Incremental(batch));
        assert_valid(&full);
        assert_valid(&inc);
        let index = |dir: &Path, file: &str, key: &str| -> BTreeMap<String, String> {
            rows(&dir.join(file))
                .into_iter()
                .map(|r| (r[key].clone(), r["~id"].clone()))
                .collect()
        };
        let mut shared = 0;
        for (file, key) in [
            ("vertices/User-00000.csv", "userName"),
            ("vertices/Email-00000.csv", "email"),
            ("vertices/City-00000.csv", "name"),
        ] {
            let before = index(&full, file, key);
            for (k, id) in index(&inc, file, key) {
                if let Some(old) = before.get(&k) {
                    assert_eq!(old, &id, "{file}: {k} changed id");
                    shared += 1;
                }
            }
        }
        assert!(
            shared > 500,
            "the batch names existing people ({shared} shared vertices)"
        );
    }

    #[test]
    fn too_many_rejects_fail_the_run_and_keep_the_rejects() {
        let dir = tempdir();
        generate(dir.path(), |c| {
            c.records = 2_000;
            c.dirty_rate = 0.5;
        });
        let err = transform::run(&options(dir.path(), dir.path()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("more than --max-reject-rate") && err.contains("rejects.csv"),
            "{err}"
        );
        let batch = graph_dir(dir.path(), &SourceKind::Initial);
        assert!(batch.join("rejects.csv").exists());
        assert!(!batch.join("manifest.json").exists() && !batch.join("vertices").exists());
        let mut lenient = options(dir.path(), dir.path());
        lenient.max_reject_rate = 1.0;
        run(&lenient);
        assert_valid(&batch);
    }

    #[test]
    fn a_transformed_batch_is_not_redone_unless_forced_and_files_split_at_the_limit() {
        let dir = tempdir();
        generate(dir.path(), |_| {});
        let mut small = options(dir.path(), dir.path());
        small.max_file_bytes = 50_000;
        let report = run(&small);
        let users: Vec<_> = report.batches[0]
            .manifest
            .files
            .iter()
            .filter(|f| f.label == "User")
            .collect();
        assert!(users.len() > 1, "User is split into several files");
        assert!(users.iter().all(|f| f.bytes <= 50_000 + 512));
        assert_valid(&graph_dir(dir.path(), &SourceKind::Initial));
        let again = transform::run(&small)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(again.contains("already transformed"), "{again}");
        small.force = true;
        small.max_file_bytes = 256_000_000;
        let report = run(&small);
        let names: Vec<_> = snapshot(&graph_dir(dir.path(), &SourceKind::Initial))
            .into_keys()
            .collect();
        assert_eq!(
            names.len(),
            report.batches[0].manifest.files.len() + 2,
            "no stale split files: {names:?}"
        );
    }

    #[test]
    fn an_edited_mapping_changes_the_output_without_a_rebuild() {
        let dir = tempdir();
        generate(dir.path(), |c| c.records = 300);
        let text = transform::DEFAULT_MAPPING_TOML
            .replace("key_property = \"userName\"", "key_property = \"login\"")
            .replace("label = \"usedUserAgent\"", "label = \"browsedWith\"")
            // and in the identity rules, which name every edge label.
            .replace("\"usedUserAgent\",", "\"browsedWith\",");
        let mapping_file = dir.path().join("my-graph.toml");
        fs::write(&mapping_file, text).unwrap_or_else(|e| panic!("{e}"));
        let mut custom = options(dir.path(), dir.path());
        custom.mapping = Mapping::from_file(&mapping_file).unwrap_or_else(|e| panic!("{e}"));
        let report = run(&custom);
        let batch = graph_dir(dir.path(), &SourceKind::Initial);
        assert_valid(&batch);
        assert!(report.batches[0].manifest.edges.contains_key("browsedWith"));
        let header = fs::read_to_string(batch.join("vertices/User-00000.csv")).unwrap_or_default();
        assert!(
            header.starts_with("~id,~label,login:String(single)"),
            "{}",
            header.lines().next().unwrap_or_default()
        );
    }
}

mod inputs {
    use super::*;

    #[test]
    fn reference_generator_exports_transform_with_zero_rejects() {
        let out = tempdir();
        let report = run(&options(&fixtures().join("reference"), out.path()));
        let manifest = &report.batches[0].manifest;
        for d in &manifest.datasets {
            assert_eq!(
                d.rejects,
                0,
                "{}: {:?}",
                d.dataset,
                fs::read_to_string(graph_dir(out.path(), &SourceKind::Initial).join("rejects.csv"))
            );
            assert!(d.rows_read > 0);
        }
        assert_valid(&graph_dir(out.path(), &SourceKind::Initial));
        // The reference writes `null` for absent values: no vertex is made from it.
        assert!(!manifest.vertices.is_empty());
        let batch = graph_dir(out.path(), &SourceKind::Initial);
        assert!(
            rows(&batch.join("vertices/User-00000.csv"))
                .iter()
                .all(|r| r["userName"] != "null")
        );
        assert!(
            rows(&batch.join("vertices/DeviceID-00000.csv"))
                .iter()
                .all(|r| r["deviceId"] != "NULL")
        );
    }

    /// A batch with one dataset file replaced by `bytes` (the others from the golden input).
    fn with_first_party(name: &str, bytes: &[u8]) -> tempfile::TempDir {
        let dir = tempdir();
        copy_tree(&fixtures().join("golden/input"), dir.path());
        let folder = dir.path().join("datasets/sources/initial/first_party");
        fs::remove_dir_all(&folder).unwrap_or_else(|e| panic!("{e}"));
        fs::create_dir_all(&folder).unwrap_or_else(|e| panic!("{e}"));
        fs::write(folder.join(name), bytes).unwrap_or_else(|e| panic!("{e}"));
        dir
    }

    /// Runs the transform; what it writes when it succeeds must be valid.
    fn attempt(dir: &Path) -> Result<transform::RunReport, String> {
        let mut o = options(dir, dir);
        o.max_reject_rate = 1.0;
        let report = transform::run(&o).map_err(|e| e.to_string())?;
        let batch = graph_dir(dir, &SourceKind::Initial);
        let check = gremlin_csv::validate_dir(&batch, gremlin_csv::Options::default())
            .map_err(|e| e.to_string())?;
        if !check.is_valid() {
            return Err(format!("the output is not valid: {:?}", check.violations));
        }
        Ok(report)
    }

    const HEADER: &str = "user_name,email,phone_number,external_id,street_address,postcode,city,country,birthday,loyalty_points,loyalty_level\n";
    const ROW: &str =
        "u1,u1@example.com,555-0100,123-45-6789,1 Road,10001,Town,Land,1990-01-01,100,beginner\n";

    fn first_party_counts(report: &transform::RunReport) -> transform::DatasetCounts {
        report.batches[0].manifest.datasets[0].clone()
    }

    #[test]
    fn bad_input_gets_an_error_or_a_reject_never_a_panic() {
        // An empty file and a header-only file: no rows, and a note for the empty one.
        let empty = attempt(with_first_party("first_party_data_full.csv", b"").path())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            empty.batches[0]
                .manifest
                .notes
                .iter()
                .any(|n| n.contains("empty file"))
        );
        let header_only =
            attempt(with_first_party("first_party_data_full.csv", HEADER.as_bytes()).path())
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first_party_counts(&header_only).rows_read, 0);

        // A wrong delimiter: an error naming the file and the likely delimiter.
        let semicolons = HEADER.replace(',', ";") + &ROW.replace(',', ";");
        let e = attempt(with_first_party("x.csv", semicolons.as_bytes()).path())
            .err()
            .unwrap_or_default();
        assert!(e.contains("x.csv") && e.contains("delimiter"), "{e}");

        // Invalid UTF-8: the row is rejected with its reason, the others are used.
        let mut latin1 = format!("{HEADER}{ROW}").into_bytes();
        latin1.extend_from_slice(b"u2,u2@example.com,555-0101,123-45-6790,1 Stra\xdfe,10001,Town,Land,1990-01-01,100,beginner\n");
        let dir = with_first_party("latin1.csv", &latin1);
        let report = attempt(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (
                first_party_counts(&report).rows_used,
                first_party_counts(&report).rejects
            ),
            (1, 1)
        );
        let rejects =
            fs::read_to_string(graph_dir(dir.path(), &SourceKind::Initial).join("rejects.csv"))
                .unwrap_or_default();
        assert!(
            rejects.contains("latin1.csv,3,street_address,") && rejects.contains("UTF-8"),
            "{rejects}"
        );

        // A byte-order mark and CRLF line ends are read as usual.
        let bom_crlf = format!("\u{feff}{HEADER}{ROW}").replace('\n', "\r\n");
        let report = attempt(with_first_party("bom.csv", bom_crlf.as_bytes()).path())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first_party_counts(&report).rows_used, 1);
        assert!(
            report.batches[0]
                .manifest
                .notes
                .iter()
                .any(|n| n.contains("byte-order mark"))
        );

        // An unbalanced quote: that row is rejected, reading goes on at the next line.
        let unbalanced = format!(
            "{HEADER}u3,\"u3@example.com,555,123-45-6791,1 Road,10001,Town,Land,1990-01-01,100,beginner\n{ROW}"
        );
        let dir = with_first_party("q.csv", unbalanced.as_bytes());
        let report = attempt(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let counts = first_party_counts(&report);
        assert_eq!(
            (counts.rows_read, counts.rows_used, counts.rejects),
            (2, 1, 1)
        );

        // A 10 MB field goes through as a property value.
        let huge = "a".repeat(10_000_000);
        let big = format!(
            "{HEADER}u4,u4@example.com,555,123-45-6792,{huge},10001,Town,Land,1990-01-01,100,beginner\n"
        );
        let dir = with_first_party("big.csv", big.as_bytes());
        let report = attempt(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first_party_counts(&report).rows_used, 1);
        assert_valid(&graph_dir(dir.path(), &SourceKind::Initial));

        // A truncated gzip: an error naming the file.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, format!("{HEADER}{ROW}{ROW}").as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut bytes = gz.finish().unwrap_or_default();
        bytes.truncate(bytes.len() - 10);
        let e = attempt(with_first_party("cut.csv.gz", &bytes).path())
            .err()
            .unwrap_or_default();
        assert!(e.contains("cut.csv.gz") && e.contains("gzip"), "{e}");

        // No sources at all: an error that says where they were looked for.
        let nothing = tempdir();
        let e = attempt(nothing.path()).err().unwrap_or_default();
        assert!(
            e.contains("no source files") && e.contains("datasets/sources/initial"),
            "{e}"
        );

        // A renamed column: an error naming the file and the column.
        let renamed = HEADER.replace("external_id", "customer_ref") + ROW;
        let e = attempt(with_first_party("r.csv", renamed.as_bytes()).path())
            .err()
            .unwrap_or_default();
        assert!(
            e.contains("r.csv") && e.contains("customer_ref") && e.contains("external_id"),
            "{e}"
        );

        // Files that are not CSV are skipped with a note, not read as data.
        let dir = with_first_party(
            "first_party_data_full.csv",
            format!("{HEADER}{ROW}").as_bytes(),
        );
        fs::write(
            dir.path()
                .join("datasets/sources/initial/first_party/README.txt"),
            "notes",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let report = attempt(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            report.batches[0]
                .manifest
                .notes
                .iter()
                .any(|n| n.contains("README.txt"))
        );
    }

    mod arbitrary_rows {
        use super::*;
        use idgraph_core::{Dataset, Layout, SourceSchemas};
        use proptest::prelude::*;
        use testkit::rows::{RowPlan, row_plans, source_file};

        fn every_dataset() -> impl Strategy<Value = Vec<Vec<RowPlan>>> {
            Dataset::ALL
                .iter()
                .map(|d| row_plans(SourceSchemas::embedded().get(*d), 8))
                .collect::<Vec<_>>()
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

            /// Whatever bytes follow a good header, the run ends in a report or an error, and
            /// every row is accounted for.
            #[test]
            fn no_row_makes_the_transform_panic(body in proptest::collection::vec(any::<u8>(), 0..600),
                                                rows in proptest::collection::vec("[a-z0-9@., \"\\r\\n;-]{0,60}", 0..20)) {
                let mut bytes = HEADER.as_bytes().to_vec();
                bytes.extend_from_slice(&body);
                bytes.push(b'\n');
                bytes.extend_from_slice(rows.join("\n").as_bytes());
                let dir = with_first_party("fuzz.csv", &bytes);
                match attempt(dir.path()) {
                    Ok(report) => {
                        let c = first_party_counts(&report);
                        prop_assert_eq!(c.rows_read, c.rows_used + c.duplicates + c.rejects);
                    }
                    // A refused input is fine; an invalid output written for it is not.
                    Err(e) => prop_assert!(!e.starts_with("the output is not valid"), "{}", e),
                }
            }

            /// Rows of the right shape for every dataset with arbitrary contents: the manifest
            /// counts what the rows were made to be, the rejects file names each bad row's line,
            /// and the output is valid.
            #[test]
            fn every_dataset_reconciles_with_how_its_rows_were_made(plans in every_dataset()) {
                let dir = tempdir();
                let mut files = Vec::new();
                for (dataset, plans) in Dataset::ALL.iter().zip(&plans) {
                    let file = source_file(SourceSchemas::embedded().get(*dataset), plans);
                    let folder = dir.path().join(Layout::source_dir(&SourceKind::Initial, *dataset));
                    fs::create_dir_all(&folder).unwrap_or_else(|e| panic!("{e}"));
                    fs::write(folder.join("rows.csv"), &file.text).unwrap_or_else(|e| panic!("{e}"));
                    files.push(file);
                }
                let report = attempt(dir.path()).map_err(TestCaseError::fail)?;
                let rejects = rows(&graph_dir(dir.path(), &SourceKind::Initial).join("rejects.csv"));
                for ((dataset, file), counts) in Dataset::ALL.iter().zip(&files).zip(&report.batches[0].manifest.datasets) {
                    prop_assert_eq!(&counts.dataset, dataset.name());
                    prop_assert_eq!(
                        (counts.rows_read, counts.rows_used, counts.duplicates, counts.rejects),
                        (file.rows, file.used, file.duplicates, file.reject_lines.len() as u64)
                    );
                    let lines: Vec<u64> = rejects
                        .iter()
                        .filter(|r| r["dataset"] == dataset.name())
                        .filter_map(|r| r["line"].parse().ok())
                        .collect();
                    prop_assert_eq!(&lines, &file.reject_lines);
                }
            }
        }
    }
}

mod command_line {
    use super::*;

    fn transform_cmd(dir: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_transform"));
        cmd.current_dir(dir);
        cmd
    }

    #[test]
    fn a_huge_file_size_is_a_usage_error_not_an_overflow() {
        let dir = tempdir();
        let out = transform_cmd(dir.path())
            .args(["--max-file-mb", "18446744073709552"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--max-file-mb"));
    }

    #[test]
    fn defaults_work_after_datagen_and_validate_reports_by_exit_status() {
        let dir = tempdir();
        datagen::generate(&datagen::Config {
            root: dir.path().join("data"),
            records: 500,
            ..datagen::Config::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let out = transform_cmd(dir.path())
            .arg("--quiet")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("batch initial") && stdout.contains("first_party"),
            "{stdout}"
        );

        let check = transform_cmd(dir.path())
            .args(["validate", "data/datasets/graph/initial"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stdout)
        );
        fs::write(
            dir.path()
                .join("data/datasets/graph/initial/edges/extra.csv"),
            "~id,~from,~to,~label\ne1,nowhere,nothing,x\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let check = transform_cmd(dir.path())
            .args(["validate", "data/datasets/graph/initial"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(check.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&check.stdout)
                .contains("edges/extra.csv:2: [edge.missing-vertex]")
        );

        let json = transform_cmd(dir.path())
            .args(["--json", "--force"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let report: serde_json::Value =
            serde_json::from_slice(&json.stdout).unwrap_or_else(|e| panic!("{e}"));
        assert!(report["batches"][0]["timings"]["total"].as_f64().is_some());
        let bad = transform_cmd(dir.path())
            .args(["--mapping", "missing.toml"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("missing.toml")
        );
    }
}

mod s3 {
    use super::*;

    use testkit::LocalS3;

    #[test]
    fn s3_input_and_output_give_the_local_output_byte_for_byte() {
        let local = tempdir();
        datagen::generate(&datagen::Config {
            root: local.path().to_path_buf(),
            records: 2_000,
            dirty_rate: 0.01,
            ..datagen::Config::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        run(&options(local.path(), local.path()));

        // The bucket is a folder of the server's root: seed it with the same sources.
        let server_root = tempdir();
        let bucket = server_root.path().join("idgraph");
        copy_tree(
            &local.path().join("datasets/sources"),
            &bucket.join("datasets/sources"),
        );
        let server = LocalS3::start(server_root.path());

        let out = server
            .aws_env(&mut Command::new(env!("CARGO_BIN_EXE_transform")))
            .args([
                "--input",
                "s3://idgraph",
                "--output",
                "s3://idgraph/copy",
                "--quiet",
            ])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Every object the transform wrote asked for server-side encryption.
        let writes: Vec<testkit::Recorded> = server
            .requests()
            .into_iter()
            .filter(|r| r.writes_an_object() && r.target.contains("/copy/"))
            .collect();
        assert!(
            writes.iter().any(|w| w.target.contains("manifest.json")),
            "{writes:?}"
        );
        for write in &writes {
            assert_eq!(write.encryption.as_deref(), Some("AES256"), "{write:?}");
        }
        drop(server);

        let from_s3 = snapshot(
            &bucket
                .join("copy")
                .join(Layout::graph_dir(&SourceKind::Initial)),
        );
        let from_disk = snapshot(&graph_dir(local.path(), &SourceKind::Initial));
        assert_eq!(
            from_s3.keys().collect::<Vec<_>>(),
            from_disk.keys().collect::<Vec<_>>()
        );
        assert!(
            from_s3 == from_disk,
            "S3 output differs from the local output"
        );
    }
}

/// Publishing a batch again never mixes its generations, whatever instant a run dies at.
mod publish_again {
    use super::*;

    use testkit::LocalS3;

    fn transform_cmd(server: &LocalS3, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_transform"));
        server.aws_env(&mut command);
        command
            .args([
                "--input",
                "s3://idgraph",
                "--output",
                "s3://idgraph",
                "--quiet",
            ])
            .args(args)
            .env_remove("IDGRAPH_TEST_EXIT_AT");
        command
    }

    fn exit_code(mut command: Command) -> Option<i32> {
        let out = command.output().unwrap_or_else(|e| panic!("{e}"));
        if !out.status.success() && out.status.code() != Some(86) {
            panic!("{}", String::from_utf8_lossy(&out.stderr));
        }
        out.status.code()
    }

    /// The files under the batch's prefix, relative to it.
    fn objects(batch: &Path) -> Vec<String> {
        snapshot(batch).into_keys().collect()
    }

    /// The manifest's files, with its own name and the rejects file.
    fn listed(batch: &Path) -> Vec<String> {
        let manifest: serde_json::Value = serde_json::from_slice(
            &fs::read(batch.join("manifest.json")).unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut names: Vec<String> = manifest["files"]
            .as_array()
            .unwrap_or_else(|| panic!("no files"))
            .iter()
            .map(|f| f["path"].as_str().unwrap_or_default().to_owned())
            .chain(["manifest.json".to_owned(), "rejects.csv".to_owned()])
            .collect();
        names.sort();
        names
    }

    #[test]
    fn on_s3_a_new_generation_with_fewer_files_leaves_none_of_the_old_and_a_kill_no_manifest() {
        let local = tempdir();
        datagen::generate(&datagen::Config {
            root: local.path().to_path_buf(),
            records: 20_000,
            ..datagen::Config::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let server_root = tempdir();
        let bucket = server_root.path().join("idgraph");
        copy_tree(
            &local.path().join("datasets/sources"),
            &bucket.join("datasets/sources"),
        );
        let server = LocalS3::start(server_root.path());
        let batch = bucket.join(Layout::graph_dir(&SourceKind::Initial));
        // First generation: labels split into files of 1 MB.
        assert_eq!(
            exit_code(transform_cmd(&server, &["--max-file-mb", "1"])),
            Some(0)
        );
        let first = objects(&batch);
        assert!(
            first.iter().any(|p| p.ends_with("-00001.csv")),
            "no label was split: {first:?}"
        );
        assert_eq!(first, listed(&batch));
        // A run killed once the old manifest is gone, and one killed with every new file
        // written: neither leaves a manifest, so no reader takes the mix for a batch.
        for point in ["after-manifest-removed", "after-files"] {
            let mut killed = transform_cmd(&server, &["--force"]);
            killed.env("IDGRAPH_TEST_EXIT_AT", point);
            assert_eq!(exit_code(killed), Some(86), "{point}");
            assert!(
                !batch.join("manifest.json").exists(),
                "{point}: a manifest over a mix of generations"
            );
        }
        // The next run completes the batch: exactly the files its manifest lists.
        assert_eq!(exit_code(transform_cmd(&server, &[])), Some(0));
        let second = objects(&batch);
        assert_eq!(second, listed(&batch));
        assert!(second.len() < first.len(), "{second:?}");
        assert!(
            !second.iter().any(|p| p.ends_with("-00001.csv")),
            "{second:?}"
        );
    }

    #[test]
    fn locally_a_kill_between_the_two_renames_gets_the_old_batch_back_on_the_next_run() {
        let dir = tempdir();
        datagen::generate(&datagen::Config {
            root: dir.path().to_path_buf(),
            records: 300,
            ..datagen::Config::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let transform = |args: &[&str], exit_at: Option<&str>| {
            let mut command = Command::new(env!("CARGO_BIN_EXE_transform"));
            command
                .arg("--input")
                .arg(dir.path())
                .arg("--quiet")
                .args(args)
                .env_remove("IDGRAPH_TEST_EXIT_AT");
            if let Some(point) = exit_at {
                command.env("IDGRAPH_TEST_EXIT_AT", point);
            }
            command.output().unwrap_or_else(|e| panic!("{e}"))
        };
        assert!(transform(&[], None).status.success());
        let batch = graph_dir(dir.path(), &SourceKind::Initial);
        let old = snapshot(&batch);
        let killed = transform(&["--force", "--gzip"], Some("between-renames"));
        assert_eq!(killed.status.code(), Some(86));
        assert!(
            !batch.exists(),
            "the kill came after the old batch moved aside"
        );
        // The next run of the command puts the old batch back (and so finds it transformed),
        // and leaves nothing behind.
        let again = transform(&[], None);
        assert!(
            String::from_utf8_lossy(&again.stderr).contains("already transformed"),
            "{}",
            String::from_utf8_lossy(&again.stderr)
        );
        assert!(
            snapshot(&batch) == old,
            "the old batch did not come back whole"
        );
        let graph = dir.path().join("datasets/graph");
        let leftovers: Vec<_> = fs::read_dir(&graph)
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        assert!(transform(&["--force", "--gzip"], None).status.success());
        let new = snapshot(&batch);
        assert!(
            new.keys()
                .filter(|k| k.starts_with("vertices/") || k.starts_with("edges/"))
                .all(|k| k.ends_with(".csv.gz")),
            "{:?}",
            new.keys().collect::<Vec<_>>()
        );
    }
}
