//! What `datagen` promises, checked on the files it writes (read back with the csv crate),
//! independently of the counters it reports, and then against those counters.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{NaiveDate, NaiveDateTime};
use datagen::{Config, Report};
use idgraph_core::{BatchId, ColumnType, Dataset, Layout, SourceKind, SourceSchemas};
use testkit::snapshot;

type Row = Vec<String>;

fn generate(root: &Path, tweak: impl FnOnce(&mut Config)) -> Report {
    let mut config = Config {
        root: root.to_path_buf(),
        ..Config::default()
    };
    tweak(&mut config);
    datagen::generate(&config).unwrap_or_else(|e| panic!("datagen failed: {e}"))
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}

fn batch(id: &str) -> BatchId {
    id.parse().unwrap_or_else(|e| panic!("{e}"))
}

fn data_path(root: &Path, kind: &SourceKind, dataset: Dataset) -> PathBuf {
    root.join(Layout::source_dir(kind, dataset))
        .join(Layout::source_file_name(kind, dataset, false))
}

/// The header and the rows of a CSV file (rows may have any number of fields).
fn read_csv(path: &Path) -> (Row, Vec<Row>) {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut records = reader.records().map(|r| {
        r.unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .iter()
            .map(str::to_owned)
            .collect::<Row>()
    });
    let header = records.next().unwrap_or_default();
    (header, records.collect())
}

fn read_dataset(root: &Path, kind: &SourceKind, dataset: Dataset) -> Vec<Row> {
    let (header, rows) = read_csv(&data_path(root, kind, dataset));
    let schema = SourceSchemas::embedded().get(dataset);
    assert_eq!(
        header,
        schema.column_names().collect::<Vec<_>>(),
        "{dataset} header"
    );
    rows
}

fn col(dataset: Dataset, name: &str) -> usize {
    SourceSchemas::embedded()
        .get(dataset)
        .position(name)
        .unwrap_or_else(|| panic!("{dataset} has no column {name}"))
}

fn within(actual: f64, expected: f64, relative: f64) -> bool {
    (actual - expected).abs() <= relative * expected
}

fn parse_timestamp(s: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok()
}

fn reported(report: &Report, dataset: Dataset) -> &datagen::DatasetReport {
    report
        .datasets
        .iter()
        .find(|d| d.dataset == dataset.name())
        .unwrap_or_else(|| panic!("no report for {dataset}"))
}

mod initial_population {
    use super::*;

    #[test]
    fn datasets_follow_the_schema_and_refer_to_each_other() {
        let dir = tempdir();
        let root = dir.path();
        let n = 20_000u64;
        let report = generate(root, |c| c.records = n);
        let kind = SourceKind::Initial;
        let fp = read_dataset(root, &kind, Dataset::FirstParty);
        let tx = read_dataset(root, &kind, Dataset::Transactional);
        let cs = read_dataset(root, &kind, Dataset::Clickstream);
        let ck = read_dataset(root, &kind, Dataset::Cookie);

        // Profiles: one per person, unique user name, email and external id.
        assert_eq!(fp.len() as u64, n);
        let unique = |c: usize| fp.iter().map(|r| r[c].clone()).collect::<HashSet<_>>();
        let names = unique(col(Dataset::FirstParty, "user_name"));
        let emails = unique(col(Dataset::FirstParty, "email"));
        let external_ids = unique(col(Dataset::FirstParty, "external_id"));
        assert_eq!(names.len() as u64, n, "user names are unique");
        assert_eq!(emails.len() as u64, n, "emails are unique");
        assert_eq!(external_ids.len() as u64, n, "external ids are unique");
        let as_of = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default();
        for row in &fp {
            let birthday =
                NaiveDate::parse_from_str(&row[col(Dataset::FirstParty, "birthday")], "%Y-%m-%d")
                    .unwrap_or_else(|e| panic!("birthday {row:?}: {e}"));
            let age = (as_of - birthday).num_days() as f64 / 365.2425;
            assert!((12.0..116.0).contains(&age), "age {age} in {row:?}");
            let points: u32 = row[col(Dataset::FirstParty, "loyalty_points")]
                .parse()
                .unwrap_or(0);
            assert!((100..=10_000).contains(&points), "{row:?}");
            assert!(
                row[col(Dataset::FirstParty, "postcode")]
                    .parse::<u32>()
                    .is_ok(),
                "{row:?}"
            );
        }
        let levels: HashSet<_> = fp
            .iter()
            .map(|r| r[col(Dataset::FirstParty, "loyalty_level")].as_str())
            .collect();
        assert_eq!(levels.len(), 4, "four loyalty levels: {levels:?}");

        // Purchases: N, each by a known customer, by external id or email about half each.
        assert_eq!(tx.len() as u64, n);
        let customer = col(Dataset::Transactional, "customer_id");
        let by_email = tx.iter().filter(|r| emails.contains(&r[customer])).count();
        let by_id = tx
            .iter()
            .filter(|r| external_ids.contains(&r[customer]))
            .count();
        assert_eq!(
            by_email + by_id,
            tx.len(),
            "every customer_id is a first-party email or external id"
        );
        assert!(
            within(by_email as f64, n as f64 / 2.0, 0.05),
            "{by_email} by email"
        );
        let purchases: HashSet<_> = tx.iter().map(|r| r[0].clone()).collect();
        assert_eq!(purchases.len(), tx.len(), "purchase ids are unique");

        // Sessions: about 0.75 N, a third of them web; web sessions and cookies pair up.
        let platform = col(Dataset::Clickstream, "client_platform");
        let device = col(Dataset::Clickstream, "device_id");
        let session = col(Dataset::Clickstream, "session_id");
        assert!(
            within(cs.len() as f64, 0.75 * n as f64, 0.05),
            "{} sessions",
            cs.len()
        );
        assert!(
            within(ck.len() as f64, 0.25 * n as f64, 0.05),
            "{} cookies",
            ck.len()
        );
        let web: HashSet<_> = cs
            .iter()
            .filter(|r| r[platform] == "web")
            .map(|r| r[session].clone())
            .collect();
        assert!(
            within(web.len() as f64, cs.len() as f64 / 3.0, 0.05),
            "{} web of {}",
            web.len(),
            cs.len()
        );
        assert!(
            cs.iter()
                .all(|r| (r[platform] == "mobile") != r[device].is_empty()),
            "devices on mobile sessions only"
        );
        let sessions: HashSet<_> = cs.iter().map(|r| r[session].clone()).collect();
        assert_eq!(sessions.len(), cs.len(), "session ids are unique");
        let cookie_session = col(Dataset::Cookie, "session_id");
        assert!(
            ck.iter().all(|r| web.contains(&r[cookie_session])),
            "every cookie's session is a web session"
        );
        assert_eq!(ck.len(), web.len(), "every web session carries its cookie");

        // About half of the sessions are logged in, always as a known user, and a cookie is
        // logged in as the same user as its session.
        let user = col(Dataset::Clickstream, "user_name");
        let logged_in: Vec<_> = cs.iter().filter(|r| !r[user].is_empty()).collect();
        assert!(
            logged_in.iter().all(|r| names.contains(&r[user])),
            "logged-in users exist in first_party"
        );
        assert!(within(logged_in.len() as f64, cs.len() as f64 / 2.0, 0.05));
        let session_user: HashMap<_, _> = cs
            .iter()
            .map(|r| (r[session].clone(), r[user].clone()))
            .collect();
        let cookie_user = col(Dataset::Cookie, "user_name");
        for row in &ck {
            assert_eq!(
                session_user.get(&row[cookie_session]),
                Some(&row[cookie_user]),
                "{row:?}"
            );
        }

        // Pools: never more distinct IPs or devices than uniqueness% of the records.
        let pool = n * 30 / 100;
        let ips: HashSet<_> = cs
            .iter()
            .map(|r| r[col(Dataset::Clickstream, "client_ip")].clone())
            .collect();
        let devices: HashSet<_> = cs
            .iter()
            .filter(|r| !r[device].is_empty())
            .map(|r| r[device].clone())
            .collect();
        assert!(
            ips.len() as u64 <= pool && ips.len() as u64 > pool / 2,
            "{} ips, pool {pool}",
            ips.len()
        );
        assert!(
            devices.len() as u64 <= pool && devices.len() as u64 > pool / 2,
            "{} devices",
            devices.len()
        );
        for ip in &ips {
            let octets: Vec<u8> = ip.split('.').filter_map(|o| o.parse().ok()).collect();
            assert_eq!(octets.len(), 4, "{ip}");
            assert!(
                octets[0] != 10
                    && octets[0] != 127
                    && octets[0] < 224
                    && !(octets[0] == 192 && octets[1] == 168),
                "{ip} is public"
            );
        }

        // Timestamps: within the ten years before the reference date, start + duration = end.
        let ten_years_before =
            as_of.and_hms_opt(0, 0, 0).unwrap_or_default() - chrono::Duration::days(3_653);
        for row in &cs {
            let start = parse_timestamp(&row[col(Dataset::Clickstream, "start_timestamp")]);
            let end = parse_timestamp(&row[col(Dataset::Clickstream, "end_timestamp")]);
            let (Some(start), Some(end)) = (start, end) else {
                panic!("timestamps in {row:?}")
            };
            let duration: i64 = row[col(Dataset::Clickstream, "session_duration_sec")]
                .parse()
                .unwrap_or(-1);
            assert_eq!((end - start).num_seconds(), duration, "{row:?}");
            assert!(end >= ten_years_before && end.date() < as_of, "{row:?}");
        }

        // The report counts what is in the files.
        for (dataset, rows) in [
            (Dataset::FirstParty, fp.len()),
            (Dataset::Transactional, tx.len()),
            (Dataset::Clickstream, cs.len()),
            (Dataset::Cookie, ck.len()),
        ] {
            let r = reported(&report, dataset);
            assert_eq!(r.stats.rows, rows as u64, "{dataset}");
            assert_eq!(
                r.bytes,
                fs::metadata(&r.path).map(|m| m.len()).unwrap_or(0),
                "{dataset}"
            );
        }
        assert_eq!(report.existing_person_rows, 0);
    }

    #[test]
    fn output_is_byte_identical_for_any_thread_count() {
        // Several chunks per dataset, with dirt and truth, so that ordering across threads,
        // dirt decisions and truth line numbers are all exercised.
        let runs: Vec<_> = [1usize, 2, 8]
            .into_iter()
            .map(|threads| {
                let dir = tempdir();
                generate(dir.path(), |c| {
                    c.records = 30_000;
                    c.threads = Some(threads);
                    c.dirty_rate = 0.05;
                    c.truth = true;
                });
                generate(dir.path(), |c| {
                    c.records = 9_000;
                    c.threads = Some(threads);
                    c.incremental = true;
                    c.batch = Some(batch("20260201_000000"));
                    c.truth = true;
                });
                let files = snapshot(dir.path());
                (threads, files)
            })
            .collect();
        assert_eq!(
            runs[0].1.len(),
            4 + 4 + 4 + 4 + 1,
            "data, truth, batch data, batch truth, state"
        );
        for (threads, files) in &runs[1..] {
            assert!(
                files == &runs[0].1,
                "{threads} threads differ from 1 thread"
            );
        }
        let gz: Vec<_> = [1usize, 8]
            .into_iter()
            .map(|threads| {
                let dir = tempdir();
                generate(dir.path(), |c| {
                    c.records = 20_000;
                    c.threads = Some(threads);
                    c.gzip = true;
                });
                snapshot(dir.path())
            })
            .collect();
        assert!(
            gz[0] == gz[1],
            "gzip output differs between 1 and 8 threads"
        );
    }

    #[test]
    fn another_seed_gives_other_people() {
        let (a, b) = (tempdir(), tempdir());
        generate(a.path(), |c| c.records = 500);
        generate(b.path(), |c| {
            c.records = 500;
            c.seed = Some(7);
        });
        let fa = read_dataset(a.path(), &SourceKind::Initial, Dataset::FirstParty);
        let fb = read_dataset(b.path(), &SourceKind::Initial, Dataset::FirstParty);
        let shared = fa.iter().filter(|r| fb.contains(r)).count();
        assert_eq!(shared, 0);
    }

    #[test]
    fn gzip_output_holds_the_same_csv() {
        let (plain, gz) = (tempdir(), tempdir());
        generate(plain.path(), |c| c.records = 12_000);
        let report = generate(gz.path(), |c| {
            c.records = 12_000;
            c.gzip = true;
        });
        for dataset in Dataset::ALL {
            let kind = SourceKind::Initial;
            let expected = fs::read(data_path(plain.path(), &kind, dataset)).unwrap_or_default();
            let gz_path = gz
                .path()
                .join(Layout::source_dir(&kind, dataset))
                .join(Layout::source_file_name(&kind, dataset, true));
            let compressed =
                fs::read(&gz_path).unwrap_or_else(|e| panic!("{}: {e}", gz_path.display()));
            let mut decoded = Vec::new();
            flate2::read::GzDecoder::new(&compressed[..])
                .read_to_end(&mut decoded)
                .unwrap_or_else(|e| panic!("{}: {e}", gz_path.display()));
            assert!(
                decoded == expected,
                "{dataset}: gzip content differs from the plain file"
            );
            let r = reported(&report, dataset);
            assert_eq!(r.bytes, compressed.len() as u64);
            assert_eq!(r.uncompressed_bytes, expected.len() as u64);
            // Cookie rows are mostly random UUIDs: about 1.7x; the others compress more.
            assert!(
                compressed.len() * 4 < expected.len() * 3,
                "{dataset} compresses"
            );
        }
    }
}

mod incremental {
    use super::*;

    fn keys(rows: &[Row]) -> (HashSet<String>, HashSet<String>, HashSet<String>) {
        let get = |c: &str| {
            rows.iter()
                .map(|r| r[col(Dataset::FirstParty, c)].clone())
                .collect()
        };
        (get("user_name"), get("email"), get("external_id"))
    }

    /// Counts a batch's rows that name someone in `known` (by user name, email or external id),
    /// per dataset.
    fn rows_naming(
        root: &Path,
        kind: &SourceKind,
        known: &(HashSet<String>, HashSet<String>, HashSet<String>),
    ) -> HashMap<Dataset, (u64, u64)> {
        let mut out = HashMap::new();
        for dataset in Dataset::ALL {
            let rows = read_dataset(root, kind, dataset);
            let column = match dataset {
                Dataset::FirstParty => col(dataset, "user_name"),
                Dataset::Transactional => col(dataset, "customer_id"),
                Dataset::Clickstream | Dataset::Cookie => col(dataset, "user_name"),
            };
            let naming = rows
                .iter()
                .filter(|r| {
                    let v = &r[column];
                    known.0.contains(v) || known.1.contains(v) || known.2.contains(v)
                })
                .count() as u64;
            out.insert(dataset, (naming, rows.len() as u64));
        }
        out
    }

    #[test]
    fn batches_update_and_refer_to_existing_people() {
        let dir = tempdir();
        let root = dir.path();
        let n = 5_000u64;
        generate(root, |c| c.records = n);
        let initial = read_dataset(root, &SourceKind::Initial, Dataset::FirstParty);
        let initial_keys = keys(&initial);
        let by_name: HashMap<_, _> = initial.iter().map(|r| (r[0].clone(), r.clone())).collect();

        let m = 2_000u64;
        let first = batch("20260110_000000");
        let report = generate(root, |c| {
            c.records = m;
            c.incremental = true;
            c.batch = Some(first.clone());
            c.update_share = 0.5;
        });
        let kind = SourceKind::Incremental(first.clone());
        let fp = read_dataset(root, &kind, Dataset::FirstParty);
        assert_eq!(fp.len() as u64, m);

        // Exactly floor(M * share) profile rows update existing people: same identity, a new
        // address or loyalty standing. The others are new people with new identifiers.
        let updates: Vec<_> = fp.iter().filter(|r| by_name.contains_key(&r[0])).collect();
        assert_eq!(updates.len() as u64, m / 2);
        for row in &updates {
            let before = &by_name[&row[0]];
            assert_eq!(
                row[..4],
                before[..4],
                "user name, email, phone and external id are kept"
            );
            assert_eq!(row[8], before[8], "birthday is kept");
            assert_ne!(
                row[4..],
                before[4..],
                "an update changes the address or loyalty: {row:?}"
            );
        }
        let updated: HashSet<_> = updates.iter().map(|r| r[0].clone()).collect();
        assert_eq!(
            updated.len(),
            updates.len(),
            "no one is updated twice in a batch"
        );
        let new_rows: Vec<_> = fp.iter().filter(|r| !by_name.contains_key(&r[0])).collect();
        for row in &new_rows {
            assert!(
                !initial_keys.1.contains(&row[1]) && !initial_keys.2.contains(&row[3]),
                "{row:?}"
            );
        }
        let batch_keys = keys(&new_rows.iter().map(|r| (*r).clone()).collect::<Vec<_>>());
        assert_eq!(
            batch_keys.0.len(),
            new_rows.len(),
            "new user names are unique"
        );

        // Purchases, sessions and cookies name existing and new people; the share that names
        // existing people is reported exactly, per dataset and overall.
        let measured = rows_naming(root, &kind, &initial_keys);
        let mut existing_total = 0;
        for dataset in Dataset::ALL {
            let (naming, rows) = measured[&dataset];
            let r = reported(&report, dataset);
            assert_eq!(
                r.stats.existing_person_rows, naming,
                "{dataset}: rows naming existing people"
            );
            assert_eq!(r.stats.rows, rows);
            existing_total += naming;
        }
        assert_eq!(report.existing_person_rows, existing_total);
        assert!((report.existing_share - existing_total as f64 / report.rows as f64).abs() < 1e-12);
        let tx = reported(&report, Dataset::Transactional);
        assert!(
            within(tx.stats.existing_person_rows as f64, m as f64 * 0.5, 0.1),
            "{tx:?}"
        );
        let everyone = (
            &initial_keys.0 | &batch_keys.0,
            &initial_keys.1 | &batch_keys.1,
            &initial_keys.2 | &batch_keys.2,
        );
        let all_known = rows_naming(root, &kind, &everyone);
        for dataset in Dataset::ALL {
            assert_eq!(
                all_known[&dataset].0,
                reported(&report, dataset).stats.person_rows,
                "{dataset}: every reference is to a known or new person"
            );
        }

        // Events happen in the day before the batch timestamp.
        let end = NaiveDate::from_ymd_opt(2026, 1, 10)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .unwrap_or_default();
        for row in read_dataset(root, &kind, Dataset::Cookie) {
            let t = parse_timestamp(&row[2]).unwrap_or_default();
            assert!(t < end && t >= end - chrono::Duration::days(1), "{row:?}");
        }

        // A second batch: new people again distinct from everyone before; people of the first
        // batch now count as existing.
        let second = batch("20260111_000000");
        let report2 = generate(root, |c| {
            c.records = 1_000;
            c.incremental = true;
            c.batch = Some(second.clone());
        });
        let kind2 = SourceKind::Incremental(second.clone());
        let fp2 = read_dataset(root, &kind2, Dataset::FirstParty);
        let measured2 = rows_naming(root, &kind2, &everyone);
        for dataset in Dataset::ALL {
            assert_eq!(
                reported(&report2, dataset).stats.existing_person_rows,
                measured2[&dataset].0,
                "{dataset}"
            );
        }
        let fresh: Vec<_> = fp2.iter().filter(|r| !everyone.0.contains(&r[0])).collect();
        assert_eq!(fresh.len(), 500);
        assert!(
            fresh
                .iter()
                .all(|r| !everyone.1.contains(&r[1]) && !everyone.2.contains(&r[3]))
        );

        // Batches are made in time order; the latest can be regenerated, identically.
        let err = datagen::generate(&Config {
            root: root.to_path_buf(),
            incremental: true,
            batch: Some(batch("20260110_120000")),
            ..Config::default()
        })
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            err.contains("not after the latest batch 20260111_000000"),
            "{err}"
        );
        let before = snapshot(root);
        generate(root, |c| {
            c.records = 1_000;
            c.incremental = true;
            c.batch = Some(second.clone());
            c.force = true;
        });
        assert!(
            snapshot(root) == before,
            "regenerating the latest batch changed the output"
        );
    }

    #[test]
    fn a_batch_needs_a_population_with_the_same_seed() {
        let dir = tempdir();
        let no_population = datagen::generate(&Config {
            root: dir.path().to_path_buf(),
            incremental: true,
            ..Config::default()
        });
        assert!(matches!(
            no_population,
            Err(datagen::Error::NoInitialPopulation(_))
        ));
        generate(dir.path(), |c| c.records = 100);
        let other_seed = datagen::generate(&Config {
            root: dir.path().to_path_buf(),
            incremental: true,
            seed: Some(1),
            ..Config::default()
        });
        let message = other_seed.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("seed 42"), "{message}");
    }
}

mod dirt {
    use super::*;

    /// The optional descriptive columns that clean rows always fill.
    fn emptiable(dataset: Dataset) -> Vec<usize> {
        let names: &[&str] = match dataset {
            Dataset::FirstParty => &[
                "street_address",
                "postcode",
                "city",
                "country",
                "birthday",
                "loyalty_points",
                "loyalty_level",
            ],
            Dataset::Cookie => &["last_action", "session_duration_sec"],
            Dataset::Clickstream => &[
                "canonical_url",
                "app_id",
                "events",
                "start_timestamp",
                "start_event",
                "end_timestamp",
                "end_event",
                "session_duration_sec",
            ],
            Dataset::Transactional => &["purchased_date", "reward_points"],
        };
        names.iter().map(|n| col(dataset, n)).collect()
    }

    /// The column through which a row names a person by email or user name.
    fn referring(dataset: Dataset, row: &Row) -> Option<usize> {
        match dataset {
            Dataset::FirstParty => None,
            Dataset::Transactional => {
                Some(col(dataset, "customer_id")).filter(|&c| row[c].contains('@'))
            }
            Dataset::Clickstream | Dataset::Cookie => {
                Some(col(dataset, "user_name")).filter(|&c| !row[c].is_empty())
            }
        }
    }

    fn is_malformed(dataset: Dataset, row: &Row) -> bool {
        let schema = SourceSchemas::embedded().get(dataset);
        if row.len() != schema.columns.len() {
            return true;
        }
        schema.columns.iter().zip(row).any(|(c, v)| {
            !v.is_empty()
                && match c.ty {
                    ColumnType::Int => v.parse::<i64>().is_err(),
                    ColumnType::Date => NaiveDate::parse_from_str(v, "%Y-%m-%d").is_err(),
                    ColumnType::Timestamp => parse_timestamp(v).is_none(),
                    ColumnType::String => false,
                }
        })
    }

    #[derive(Debug, Default, PartialEq)]
    struct Measured {
        duplicate: u64,
        variant: u64,
        empty: u64,
        malformed: u64,
        /// Clean rows that name someone by email or user name (where a variant could go).
        referring: u64,
    }

    /// Walks the dirty file beside the clean one (same seed): every clean row appears once,
    /// clean or with exactly one kind of dirt, or twice in a row.
    fn classify(dataset: Dataset, clean: &[Row], dirty: &[Row]) -> Measured {
        let mut m = Measured::default();
        let mut j = 0;
        for (i, want) in clean.iter().enumerate() {
            m.referring += u64::from(referring(dataset, want).is_some());
            let got = &dirty[j];
            j += 1;
            if got == want {
                if dirty.get(j) == Some(want) && clean.get(i + 1) != Some(want) {
                    m.duplicate += 1;
                    j += 1;
                }
                continue;
            }
            if is_malformed(dataset, got) {
                m.malformed += 1;
                continue;
            }
            let differing: Vec<usize> = (0..want.len()).filter(|&c| got[c] != want[c]).collect();
            assert_eq!(
                differing.len(),
                1,
                "{dataset}: one field changed in {got:?} (was {want:?})"
            );
            let c = differing[0];
            if got[c].is_empty() {
                assert!(
                    emptiable(dataset).contains(&c),
                    "{dataset}: column {c} emptied"
                );
                m.empty += 1;
            } else {
                assert_eq!(
                    referring(dataset, want),
                    Some(c),
                    "{dataset}: variant of column {c}"
                );
                assert_eq!(
                    got[c].trim().to_lowercase(),
                    want[c],
                    "variant normalises back"
                );
                m.variant += 1;
            }
        }
        assert_eq!(
            j,
            dirty.len(),
            "{dataset}: the dirty file holds nothing else"
        );
        m
    }

    #[test]
    fn dirt_of_each_kind_appears_at_the_requested_rate_and_is_reported_exactly() {
        let (clean_dir, dirty_dir) = (tempdir(), tempdir());
        let n = 40_000;
        let rate = 0.05;
        generate(clean_dir.path(), |c| c.records = n);
        let report = generate(dirty_dir.path(), |c| {
            c.records = n;
            c.dirty_rate = rate;
        });
        let kind = SourceKind::Initial;
        for dataset in Dataset::ALL {
            let clean = read_dataset(clean_dir.path(), &kind, dataset);
            let dirty = read_dataset(dirty_dir.path(), &kind, dataset);
            let m = classify(dataset, &clean, &dirty);
            let r = reported(&report, dataset).stats.dirt;
            assert_eq!(
                (m.duplicate, m.variant, m.empty, m.malformed),
                (r.duplicate, r.variant, r.empty, r.malformed),
                "{dataset}: reported dirt equals the dirt in the file"
            );

            // Expected counts: each row is dirty with probability `rate`; the kind is drawn with
            // weights 3 (duplicate), 3 (variant, rows naming someone by email or user name
            // only), 3 (empty), 1 (malformed).
            let base = clean.len() as f64;
            let f = m.referring as f64 / base;
            let share = |with_ref: f64, without: f64| {
                rate * base * (f * with_ref / 10.0 + (1.0 - f) * without / 7.0)
            };
            let expected = [
                ("duplicate", m.duplicate, share(3.0, 3.0)),
                ("variant", m.variant, share(3.0, 0.0)),
                ("empty", m.empty, share(3.0, 3.0)),
                ("malformed", m.malformed, share(1.0, 1.0)),
            ];
            for (name, got, want) in expected {
                let tolerance = (0.25 * want).max(4.0 * want.sqrt());
                assert!(
                    (got as f64 - want).abs() <= tolerance,
                    "{dataset}: {got} {name} rows, expected {want:.0} ± {tolerance:.0}"
                );
                if want > 0.0 {
                    assert!(got > 0, "{dataset}: no {name} rows");
                }
            }
            let total = (m.duplicate + m.variant + m.empty + m.malformed) as f64;
            assert!(
                within(total, rate * base, 0.15),
                "{dataset}: {total} dirty rows of {base}"
            );
        }
    }
}

mod truth {
    use super::*;

    /// Who made each row: `Ok(person)` or `Err(anonymous visitor id)`.
    fn truth(
        root: &Path,
        kind: &SourceKind,
        dataset: Dataset,
    ) -> HashMap<u64, Result<u64, String>> {
        let path = root
            .join(Layout::truth_dir(kind))
            .join(Layout::truth_file_name(dataset));
        let (header, rows) = read_csv(&path);
        assert_eq!(header, ["line", "person_id"]);
        let mut out = HashMap::new();
        for row in rows {
            let Ok(line) = row[0].parse::<u64>() else {
                panic!("truth row {row:?}")
            };
            let who = match row[1].parse::<u64>() {
                Ok(person) => Ok(person),
                Err(_) if row[1].starts_with("anon-") => Err(row[1].clone()),
                Err(_) => panic!("truth row {row:?}"),
            };
            assert!(out.insert(line, who).is_none(), "line {line} twice");
        }
        out
    }

    fn person(who: Option<&Result<u64, String>>) -> Option<u64> {
        who.and_then(|w| w.as_ref().ok().copied())
    }

    fn norm(s: &str) -> String {
        s.trim().to_lowercase()
    }

    #[test]
    fn truth_covers_every_row() {
        let dir = tempdir();
        let root = dir.path();
        generate(root, |c| {
            c.records = 10_000;
            c.dirty_rate = 0.05;
            c.truth = true;
        });
        let kind = SourceKind::Initial;
        // Person -> identifiers, from the profiles (line numbers count the header as line 1).
        let fp = read_dataset(root, &kind, Dataset::FirstParty);
        let fp_truth = truth(root, &kind, Dataset::FirstParty);
        assert_eq!(
            fp_truth.len(),
            fp.len(),
            "every profile row is in the truth"
        );
        let mut identity: HashMap<u64, (String, String, String)> = HashMap::new();
        for (i, row) in fp.iter().enumerate() {
            let person = person(fp_truth.get(&(i as u64 + 2)))
                .unwrap_or_else(|| panic!("profile line {} made by nobody", i + 2));
            let keys = (row[0].clone(), row[1].clone(), row[3].clone());
            let previous = identity.insert(person, keys.clone());
            assert!(
                previous.is_none() || previous == Some(keys),
                "person {person} has two identities"
            );
        }
        assert_eq!(identity.len(), 10_000);

        for dataset in [
            Dataset::Transactional,
            Dataset::Clickstream,
            Dataset::Cookie,
        ] {
            let rows = read_dataset(root, &kind, dataset);
            let map = truth(root, &kind, dataset);
            let column = match dataset {
                Dataset::Transactional => col(dataset, "customer_id"),
                _ => col(dataset, "user_name"),
            };
            assert_eq!(
                map.len(),
                rows.len(),
                "{dataset}: every row is in the truth"
            );
            for (i, row) in rows.iter().enumerate() {
                let line = i as u64 + 2;
                let named = norm(&row[column]);
                let who = map.get(&line);
                if named.is_empty() {
                    // Without --fragmentation, anonymous rows are made by anonymous visitors.
                    assert!(
                        who.is_some_and(Result::is_err),
                        "{dataset} line {line}: anonymous row made by {who:?}"
                    );
                    continue;
                }
                let person = person(who).unwrap_or_else(|| {
                    panic!("{dataset} line {line} is about someone but made by {who:?}")
                });
                let (user, email, external) = &identity[&person];
                let matches = match dataset {
                    Dataset::Transactional => &named == email || &named == external,
                    _ => &named == user,
                };
                assert!(
                    matches,
                    "{dataset} line {line}: {named} is not person {person}"
                );
            }
        }
        // A web visit's clickstream and cookie rows are one visitor's.
        let cookie_truth = truth(root, &kind, Dataset::Cookie);
        let click_truth = truth(root, &kind, Dataset::Clickstream);
        let anonymous: std::collections::HashSet<&String> = click_truth
            .values()
            .filter_map(|w| w.as_ref().err())
            .collect();
        let cookie_anonymous: Vec<&String> = cookie_truth
            .values()
            .filter_map(|w| w.as_ref().err())
            .collect();
        assert!(!cookie_anonymous.is_empty());
        assert!(cookie_anonymous.iter().all(|v| anonymous.contains(v)));
    }

    #[test]
    fn fragmentation_scatters_people_in_every_way_it_counts() {
        let dir = tempdir();
        let root = dir.path();
        let report = generate(root, |c| {
            c.records = 4_000;
            c.fragmentation = 0.2;
            c.truth = true;
        });
        let f = report.fragments;
        assert!(
            f.second_profiles > 0
                && f.email_purchases > 0
                && f.anonymous_sessions > 0
                && f.household_sessions > 0,
            "{f:?}"
        );
        let kind = SourceKind::Initial;
        let fp = read_dataset(root, &kind, Dataset::FirstParty);
        let fp_truth = truth(root, &kind, Dataset::FirstParty);
        assert_eq!(fp.len() as u64, 4_000 + f.second_profiles);
        // Second profiles: another user name and email, the phone or the external id shared.
        let mut profiles: HashMap<u64, Vec<&Vec<String>>> = HashMap::new();
        for (i, row) in fp.iter().enumerate() {
            let who =
                person(fp_truth.get(&(i as u64 + 2))).unwrap_or_else(|| panic!("line {}", i + 2));
            profiles.entry(who).or_default().push(row);
        }
        let (user, email, phone, external) = (
            col(Dataset::FirstParty, "user_name"),
            col(Dataset::FirstParty, "email"),
            col(Dataset::FirstParty, "phone_number"),
            col(Dataset::FirstParty, "external_id"),
        );
        let twice: Vec<_> = profiles.values().filter(|p| p.len() == 2).collect();
        assert_eq!(twice.len() as u64, f.second_profiles);
        for pair in twice {
            let (a, b) = (pair[0], pair[1]);
            assert!(a[user] != b[user] && a[email] != b[email], "{a:?} {b:?}");
            assert!(
                (a[phone] == b[phone]) != (a[external] == b[external]),
                "exactly one identifier shared: {a:?} {b:?}"
            );
        }
        // Purchases by a variant email: not the profile's text, but the same once normalised.
        let emails: HashMap<u64, &String> = profiles
            .iter()
            .map(|(p, rows)| (*p, &rows[0][email]))
            .collect();
        let tx = read_dataset(root, &kind, Dataset::Transactional);
        let tx_truth = truth(root, &kind, Dataset::Transactional);
        let customer = col(Dataset::Transactional, "customer_id");
        let variants = tx
            .iter()
            .enumerate()
            .filter(|(i, row)| {
                let who = person(tx_truth.get(&(*i as u64 + 2)))
                    .unwrap_or_else(|| panic!("line {}", i + 2));
                row[customer] != *emails[&who] && norm(&row[customer]) == *emails[&who]
            })
            .count() as u64;
        assert_eq!(variants, f.email_purchases);
        // Anonymous sessions of known people: their cookie is seen logged in as them too.
        let cookies = read_dataset(root, &kind, Dataset::Cookie);
        let cookie_truth = truth(root, &kind, Dataset::Cookie);
        let (cookie_id, cookie_user) = (
            col(Dataset::Cookie, "cookie_id"),
            col(Dataset::Cookie, "user_name"),
        );
        let mut logged_in: HashMap<&String, u64> = HashMap::new();
        let mut anonymous_known: Vec<(&String, u64)> = Vec::new();
        for (i, row) in cookies.iter().enumerate() {
            let Some(who) = person(cookie_truth.get(&(i as u64 + 2))) else {
                continue;
            };
            if row[cookie_user].is_empty() {
                anonymous_known.push((&row[cookie_id], who));
            } else {
                logged_in.insert(&row[cookie_id], who);
            }
        }
        assert_eq!(anonymous_known.len() as u64 * 2, f.anonymous_sessions);
        for (cookie, who) in anonymous_known {
            assert_eq!(logged_in.get(cookie), Some(&who), "cookie {cookie}");
        }
    }
}

mod command_line {
    use super::*;

    fn datagen(args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_datagen"))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run datagen: {e}"))
    }

    fn files_under(root: &Path) -> Vec<PathBuf> {
        if root.exists() {
            snapshot(root).into_keys().map(PathBuf::from).collect()
        } else {
            Vec::new()
        }
    }

    /// A run killed while it moves a batch's files into place leaves the batch marked in
    /// progress (readers refuse it); run again with --force, it completes the same batch.
    #[test]
    fn a_batch_killed_mid_commit_says_it_is_incomplete_until_a_rerun_completes_it() {
        let (killed, whole) = (tempdir(), tempdir());
        let marker = |root: &Path, batch: &str| {
            root.join(Layout::source_batch_in_progress(&SourceKind::Incremental(
                batch.parse().unwrap_or_else(|e| panic!("{e}")),
            )))
        };
        for root in [killed.path(), whole.path()] {
            let r = root.to_string_lossy().into_owned();
            assert!(
                datagen(&["--out", &r, "--records", "200", "--quiet"])
                    .status
                    .success()
            );
        }
        let inc = |root: &Path, extra: &[&str], exit_at: Option<&str>| {
            let mut command = Command::new(env!("CARGO_BIN_EXE_datagen"));
            command
                .args([
                    "--out",
                    &root.to_string_lossy(),
                    "--incremental",
                    "--records",
                    "50",
                ])
                .args(["--timestamp", "20260115_060000", "--quiet"])
                .args(extra)
                .env_remove("IDGRAPH_TEST_EXIT_AT");
            if let Some(point) = exit_at {
                command.env("IDGRAPH_TEST_EXIT_AT", point);
            }
            command.output().unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(
            inc(killed.path(), &[], Some("mid-commit")).status.code(),
            Some(86)
        );
        assert!(marker(killed.path(), "20260115_060000").exists());
        let sources = |root: &Path| {
            snapshot(&root.join(Layout::SOURCES))
                .into_iter()
                .filter(|(k, _)| k.starts_with("incremental/"))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let committed: Vec<_> = sources(killed.path())
            .into_keys()
            .filter(|k| !k.rsplit('/').next().unwrap_or_default().starts_with('.'))
            .collect();
        assert_eq!(committed.len(), 1, "one dataset committed: {committed:?}");
        assert!(inc(killed.path(), &["--force"], None).status.success());
        assert!(inc(whole.path(), &[], None).status.success());
        assert!(!marker(killed.path(), "20260115_060000").exists());
        assert!(sources(killed.path()) == sources(whole.path()));
        assert!(
            snapshot(&killed.path().join(Layout::SOURCES))
                == snapshot(&whole.path().join(Layout::SOURCES))
        );
    }

    #[test]
    fn bad_arguments_get_a_one_line_error_and_write_nothing() {
        let dir = tempdir();
        let out = dir.path().join("out");
        let out_arg = out.to_string_lossy().into_owned();
        let cases: &[(&[&str], &str)] = &[
            (&["--records", "0"], "--records"),
            (&["--records", "-5"], "--records"),
            (&["--records", "ten"], "--records"),
            (&["--records", "1.5"], "--records"),
            (&["--uniqueness", "0"], "--uniqueness"),
            (&["--uniqueness", "101"], "--uniqueness"),
            (&["--dirty-rate", "1.01"], "--dirty-rate"),
            (&["--dirty-rate", "-0.1"], "--dirty-rate"),
            (&["--dirty-rate", "often"], "--dirty-rate"),
            (&["--threads", "0"], "--threads"),
            (
                &["--incremental", "--timestamp", "20260230_000000"],
                "20260230_000000",
            ),
            (&["--timestamp", "20260101_000000"], "--incremental"),
        ];
        for (args, named) in cases {
            let output = datagen(&[args, &["--out", &out_arg][..]].concat());
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{args:?} succeeded");
            assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
            assert!(stderr.contains(named), "{args:?}: {stderr}");
            assert!(files_under(&out).is_empty(), "{args:?} wrote files");
        }
    }

    #[test]
    fn an_unwritable_out_is_named() {
        let dir = tempdir();
        let blocker = dir.path().join("a-file");
        fs::write(&blocker, b"not a folder").unwrap_or_else(|e| panic!("{e}"));
        let out = blocker.join("sub");
        let output = datagen(&["--records", "10", "--out", &out.to_string_lossy()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("cannot create output folder") && stderr.contains("a-file/sub"),
            "{stderr}"
        );
    }

    #[test]
    fn existing_output_is_kept_unless_forced() {
        let dir = tempdir();
        let out = dir.path().to_string_lossy().into_owned();
        assert!(
            datagen(&["--records", "300", "-q", "--out", &out])
                .status
                .success()
        );
        let before = snapshot(dir.path());
        let again = datagen(&["--records", "400", "-q", "--out", &out]);
        let stderr = String::from_utf8_lossy(&again.stderr);
        assert!(!again.status.success());
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("already exists")
                && stderr.contains("first_party_data_full.csv")
                && stderr.contains("--force"),
            "{stderr}"
        );
        assert!(
            snapshot(dir.path()) == before,
            "a refused run changed files"
        );

        // --force replaces it, and a switch to gzip leaves no stale plain file behind.
        let forced = datagen(&["--records", "400", "-q", "--gzip", "--force", "--out", &out]);
        assert!(
            forced.status.success(),
            "{}",
            String::from_utf8_lossy(&forced.stderr)
        );
        let names: Vec<_> = files_under(dir.path())
            .into_iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| !n.ends_with(".csv") || n.contains("truth")),
            "{names:?}"
        );
        assert_eq!(
            names.iter().filter(|n| n.ends_with(".csv.gz")).count(),
            4,
            "{names:?}"
        );
    }

    #[test]
    fn a_failed_run_leaves_no_partial_files() {
        let dir = tempdir();
        // Where the truth folder should go stands a file: the run fails after data files were
        // opened, and must clean them up.
        let truth_parent = dir.path().join("datasets/truth");
        fs::create_dir_all(dir.path().join("datasets")).unwrap_or_else(|e| panic!("{e}"));
        fs::write(&truth_parent, b"in the way").unwrap_or_else(|e| panic!("{e}"));
        let output = datagen(&[
            "--records",
            "5000",
            "--truth",
            "--out",
            &dir.path().to_string_lossy(),
        ]);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("datasets/truth"), "{stderr}");
        assert_eq!(
            files_under(dir.path()),
            vec![PathBuf::from("datasets/truth")],
            "only the blocker remains"
        );
    }

    #[test]
    fn help_has_examples_and_json_reports_the_run() {
        let help = datagen(&["--help"]);
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(help.status.success());
        for expected in [
            "Examples:",
            "--records",
            "--uniqueness",
            "--seed",
            "--incremental",
            "--dirty-rate",
            "--truth",
            "--threads",
            "--force",
            "--gzip",
            "--out",
        ] {
            assert!(text.contains(expected), "--help lacks {expected}");
        }
        let dir = tempdir();
        let output = datagen(&[
            "--records",
            "2000",
            "--json",
            "--out",
            &dir.path().to_string_lossy(),
        ]);
        assert!(output.status.success());
        let json: serde_json::Value =
            serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("not JSON: {e}"));
        let datasets = json["datasets"].as_array().cloned().unwrap_or_default();
        assert_eq!(datasets.len(), 4);
        let rows: u64 = datasets.iter().filter_map(|d| d["rows"].as_u64()).sum();
        assert_eq!(Some(rows), json["rows"].as_u64());
        assert_eq!(json["records"].as_u64(), Some(2000));
        assert!(json["elapsed_seconds"].as_f64().is_some());
    }
}

mod s3 {
    use super::*;

    /// `--out s3://...` writes the same files as a local `--out`, initial and incremental.
    #[test]
    fn out_to_s3_writes_the_local_layout_byte_for_byte() {
        let s3_root = tempdir();
        fs::create_dir_all(s3_root.path().join("seed")).unwrap_or_else(|e| panic!("{e}"));
        let server = testkit::LocalS3::start(s3_root.path());
        let local = tempdir();
        let run = |out: &str, extra: &[&str]| {
            let result = server
                .aws_env(&mut Command::new(env!("CARGO_BIN_EXE_datagen")))
                .args(["--records", "300", "--quiet", "--out", out])
                .args(extra)
                .output()
                .unwrap_or_else(|e| panic!("{e}"));
            (
                result.status.success(),
                String::from_utf8_lossy(&result.stderr).into_owned(),
                String::from_utf8_lossy(&result.stdout).into_owned(),
            )
        };
        let local_out = local.path().display().to_string();
        for extra in [
            &[][..],
            &["--incremental", "--timestamp", "20260102_000000"][..],
        ] {
            let (ok, err, out) = run("s3://seed/env", extra);
            assert!(ok, "{err}");
            assert!(
                out.contains("s3://seed/env") && !out.contains("/tmp/"),
                "{out}"
            );
            let (ok, err, _) = run(&local_out, extra);
            assert!(ok, "{err}");
            assert_eq!(
                snapshot(&s3_root.path().join("seed/env")),
                snapshot(local.path())
            );
        }
        // As locally, an initial population is not replaced without --force.
        let (ok, err, _) = run("s3://seed/env", &[]);
        assert!(!ok && err.contains("--force"), "{err}");
        // Every object written asked for server-side encryption.
        let writes: Vec<testkit::Recorded> = server
            .requests()
            .into_iter()
            .filter(|r| r.writes_an_object())
            .collect();
        assert!(writes.len() >= 5, "{writes:?}");
        for write in &writes {
            assert_eq!(write.encryption.as_deref(), Some("AES256"), "{write:?}");
        }
        // The incremental batch was marked in progress before its first file and until its
        // last (the population state last of all); the equal snapshots show the mark is gone.
        let requests = server.requests();
        // (method, path without the query) of each request, in order.
        let at = |method: &str, wanted: &dyn Fn(&str) -> bool| -> Vec<usize> {
            requests
                .iter()
                .enumerate()
                .filter(|(_, r)| {
                    r.method == method && wanted(r.target.split('?').next().unwrap_or_default())
                })
                .map(|(i, _)| i)
                .collect()
        };
        let marker_name = ".in-progress-20260102_000000";
        let marker = at("PUT", &|p| p.ends_with(marker_name));
        let files = at("PUT", &|p| p.contains("/20260102_000000/"));
        let state = at("PUT", &|p| p.ends_with("datagen_state.json"));
        let unmarked = at("DELETE", &|p| p.ends_with(marker_name));
        assert!(
            marker.len() == 1 && unmarked.len() == 1 && files.len() == 4,
            "{requests:?}"
        );
        let last_state = state.last().copied().unwrap_or_default();
        assert!(
            marker[0] < files[0] && files[3] < last_state && last_state < unmarked[0],
            "{marker:?} {files:?} {state:?} {unmarked:?}"
        );
    }
}
