//! The Spark job (`python/idgraph_transform.py` on local Spark, `pyspark` 3.5) against the Rust
//! transform, element for element, on the same sources: clean data, dirty data, an incremental
//! batch, the reference generator's exports and the odd rows of the golden fixture. The Spark
//! output must pass the Gremlin CSV validator and load into neptune-local with zero errors, the
//! loader driving the transform with `--engine spark`. On `s3://` (a local S3 server) the job
//! writes the same batch, every object encrypted, and nothing of a batch with too many rejects.
//!
//! Needs Spark: `scripts/test.sh` installs `pyspark` into `target/pyenv` (or set
//! IDGRAPH_SPARK_SUBMIT and IDGRAPH_SPARK_PYTHON).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use idgraph_storage::Store;
use loader::{Neptune, Plan, Runner, Settings};
use spark_engine::{BatchJob, EngineName, EnginePlan, EngineSettings, SparkPlan};

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// spark-submit and the Python it runs the job with (which has `xxhash`).
fn spark() -> (String, String) {
    let venv = workspace().join("target/pyenv/bin");
    let submit = std::env::var("IDGRAPH_SPARK_SUBMIT")
        .unwrap_or_else(|_| venv.join("spark-submit").display().to_string());
    let python = std::env::var("IDGRAPH_SPARK_PYTHON")
        .unwrap_or_else(|_| venv.join("python").display().to_string());
    assert!(
        Path::new(&submit).exists() && Path::new(&python).exists(),
        "no Spark at {submit} (python {python}): run scripts/test.sh, which installs pyspark into target/pyenv"
    );
    (submit, python)
}

/// `conf`: more Spark settings (`key=value`) for the job.
fn spark_settings(conf: &[&str]) -> EngineSettings {
    let (submit, python) = spark();
    let mut spark_conf = vec!["spark.driver.memory=1g".to_owned()];
    spark_conf.extend(conf.iter().map(|c| (*c).to_owned()));
    EngineSettings {
        engine: Some(EngineName::Spark),
        spark_submit: Some(submit),
        spark_master: Some("local[2]".to_owned()),
        spark_conf,
        spark_python: Some(python),
        ..EngineSettings::default()
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{e}"));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{e}")) {
        let entry = entry.unwrap_or_else(|e| panic!("{e}"));
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

fn read_text(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if path.extension().is_some_and(|e| e == "gz") {
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{e}"));
        text
    } else {
        String::from_utf8(bytes).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Every element of a graph batch folder: id -> its non-empty fields by column header.
fn elements(batch: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for kind in ["vertices", "edges"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(batch.join(kind))
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
            .collect();
        files.sort();
        for file in files {
            let text = read_text(&file);
            let mut records = gremlin_csv::Records::new(&text);
            let header: Vec<String> = match records.next() {
                Some(Ok(r)) => r.fields.iter().map(|f| f.text.to_string()).collect(),
                other => panic!("{}: no header: {other:?}", file.display()),
            };
            for record in records {
                let record = record.unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                let fields: BTreeMap<String, String> = header
                    .iter()
                    .zip(&record.fields)
                    .filter(|(_, f)| !f.text.is_empty())
                    .map(|(h, f)| (h.clone(), f.text.to_string()))
                    .collect();
                let id = fields.get("~id").cloned().unwrap_or_default();
                assert!(
                    out.insert(id.clone(), fields).is_none(),
                    "{}: id {id} twice",
                    file.display()
                );
            }
        }
    }
    out
}

fn manifest(batch: &Path) -> serde_json::Value {
    serde_json::from_str(&read_text(&batch.join("manifest.json"))).unwrap_or_else(|e| panic!("{e}"))
}

/// The Spark batch equals the Rust batch: every element, the counts and reconciliation, the
/// notes and every reject. Files may be split differently.
fn assert_same_batch(rust: &Path, spark: &Path) -> usize {
    let (r, s) = (elements(rust), elements(spark));
    let missing: Vec<&String> = r.keys().filter(|k| !s.contains_key(*k)).take(3).collect();
    let extra: Vec<&String> = s.keys().filter(|k| !r.contains_key(*k)).take(3).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{}: ids only in Rust's output {missing:?}, only in Spark's {extra:?}",
        spark.display()
    );
    for (id, fields) in &r {
        assert_eq!(Some(fields), s.get(id), "element {id}");
    }
    let (mr, ms) = (manifest(rust), manifest(spark));
    for key in [
        "format",
        "batch",
        "mapping_sha256",
        "vertices",
        "edges",
        "datasets",
        "notes",
        "rejects_file",
    ] {
        assert_eq!(mr[key], ms[key], "manifest {key}");
    }
    assert_eq!(
        read_text(&rust.join("rejects.csv")),
        read_text(&spark.join("rejects.csv")),
        "rejects.csv"
    );
    let report = gremlin_csv::validate_dir(spark, gremlin_csv::Options::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        report.violation_count,
        0,
        "{}: {:?}",
        spark.display(),
        report.violations
    );
    r.len()
}

fn rust_transform(root: &Path, selection: transform::Selection, reject_rate: f64) {
    let mut options = transform::Options::new(
        root.display()
            .to_string()
            .parse()
            .unwrap_or_else(|e| panic!("{e}")),
        root.display()
            .to_string()
            .parse()
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    options.selection = selection;
    options.max_reject_rate = reject_rate;
    transform::run(&options).unwrap_or_else(|e| panic!("{e}"));
}

/// The loader on `root` with the Spark engine (`conf`: more Spark settings): transforms with
/// Spark, loads into neptune-local (zero errors, or the run fails).
fn load_with_spark(root: &Path, incremental: bool, conf: &[&str]) -> loader::RunReport {
    let plan = Plan::resolve(Settings {
        root: Some(root.display().to_string()),
        engine: spark_settings(conf),
        ..Settings::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(plan.transform.engine, EnginePlan::Spark(_)));
    let store = Store::default();
    let stop = AtomicBool::new(false);
    let neptune = Neptune::connect(&plan).unwrap_or_else(|e| panic!("{e}"));
    let lock = loader::lock_run(&plan, &store).unwrap_or_else(|e| panic!("{e}"));
    let runner = Runner {
        plan: &plan,
        store: &store,
        neptune: &neptune,
        progress: false,
        stop: &stop,
        lock: &lock,
    };
    if incremental {
        runner.incremental()
    } else {
        runner.full()
    }
    .unwrap_or_else(|e| panic!("{e}"))
}

fn generate(root: &Path, records: u64, dirty_rate: f64) {
    datagen::generate(&datagen::Config {
        root: root.to_path_buf(),
        records,
        dirty_rate,
        ..datagen::Config::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

const BATCH: &str = "20260115_060000";

#[test]
fn clean_data_and_an_incremental_batch_on_spark_equal_rust_and_load_without_errors() {
    let (rust_dir, spark_dir) = (tempdir(), tempdir());
    let (rust, spark) = (rust_dir.path(), spark_dir.path());
    generate(rust, 2_000, 0.0);
    copy_tree(
        &rust.join("datasets/sources"),
        &spark.join("datasets/sources"),
    );
    rust_transform(rust, transform::Selection::Initial, 0.01);
    // Chunks of 20 kB: each task maps several, in and out of source order, so what a task
    // keeps across chunks (resolved keys, rows without properties it has already sent) and the
    // merge of chunks in source order are exercised, not only one chunk per file.
    let small_chunks = ["spark.idgraph.chunkBytes=20000"];
    let report = load_with_spark(spark, false, &small_chunks);
    let initial = "datasets/graph/initial";
    let n = assert_same_batch(&rust.join(initial), &spark.join(initial));
    // The same sources again give the same files, byte for byte, whether the driver reads
    // this small batch (the first run) or a stage of tasks does (as a large batch is read).
    let again = tempdir();
    let task_read = [
        "spark.idgraph.chunkBytes=20000",
        "spark.idgraph.driverReadBytes=0",
    ];
    let rerun = spark_job(spark, again.path(), &task_read, 0.01);
    assert_eq!(
        files_with_digests(&manifest(&spark.join(initial))),
        files_with_digests(&rerun),
        "a second run wrote different files"
    );
    assert!(n > 5_000, "{n} elements");
    let loaded = &report.batches[0];
    assert!(loaded.transformed);
    assert_eq!(
        loaded.vertices.values().sum::<u64>() + loaded.edges.values().sum::<u64>(),
        n as u64,
        "every element loaded"
    );

    datagen::generate(&datagen::Config {
        root: rust.to_path_buf(),
        records: 500,
        incremental: true,
        batch: Some(BATCH.parse().unwrap_or_else(|e| panic!("{e}"))),
        ..datagen::Config::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    copy_tree(
        &rust.join("datasets/sources/incremental"),
        &spark.join("datasets/sources/incremental"),
    );
    rust_transform(
        rust,
        transform::Selection::Batch(BATCH.parse().unwrap_or_else(|e| panic!("{e}"))),
        0.01,
    );
    let report = load_with_spark(spark, true, &[]);
    assert_eq!(report.batches.len(), 1);
    let batch = format!("datasets/graph/incremental/{BATCH}");
    assert_same_batch(&rust.join(&batch), &spark.join(&batch));
}

#[test]
fn dirty_data_on_spark_equals_rust_reject_for_reject_and_loads_without_errors() {
    let (rust_dir, spark_dir) = (tempdir(), tempdir());
    let (rust, spark) = (rust_dir.path(), spark_dir.path());
    generate(rust, 2_000, 0.05);
    copy_tree(
        &rust.join("datasets/sources"),
        &spark.join("datasets/sources"),
    );
    rust_transform(rust, transform::Selection::Initial, 0.01);
    // Partitions of 100 kB of source bytes: elements meet by label group and id range, as they
    // do when the input is large (a small batch's meet by label group alone); and the sources
    // are read by a stage of tasks, as a large batch's are (a small batch's by the driver).
    load_with_spark(
        spark,
        false,
        &[
            "spark.idgraph.partitionInputBytes=100000",
            "spark.idgraph.driverReadBytes=0",
        ],
    );
    let initial = Path::new("datasets/graph/initial");
    assert_same_batch(&rust.join(initial), &spark.join(initial));
    let partitions: BTreeSet<String> = manifest(&spark.join(initial))["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["path"].as_str()?.rsplit('-').nth(1).map(str::to_owned))
        .collect();
    assert!(
        partitions.len() > 4,
        "id ranges split the label groups: partitions {partitions:?}"
    );
    let rejects = manifest(&spark.join(initial))["datasets"]
        .as_array()
        .map(|d| d.iter().filter_map(|d| d["rejects"].as_u64()).sum::<u64>())
        .unwrap_or_default();
    assert!(rejects > 0, "dirty data has rejects to compare");
}

/// The reference generator's exports and the golden fixture's odd rows (quoted separators,
/// `;` in values, a duplicate row, a bad number), through spark-submit directly.
#[test]
fn reference_exports_and_odd_rows_on_spark_equal_rust() {
    let fixtures = workspace().join("crates/transform/tests/fixtures");
    for (name, reject_rate) in [("reference", 0.01), ("golden/input", 0.5)] {
        let input = fixtures.join(name);
        let (rust_dir, spark_dir) = (tempdir(), tempdir());
        copy_tree(
            &input.join("datasets/sources"),
            &rust_dir.path().join("datasets/sources"),
        );
        rust_transform(rust_dir.path(), transform::Selection::Initial, reject_rate);
        // Chunks of 256 bytes, a few rows each: an element's rows fall in different chunks and
        // tasks, and their merge must still take them in source order.
        let settings = spark_settings(&["spark.idgraph.chunkBytes=256"]);
        let plan = settings
            .resolve(&spark_dir.path().display().to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        let EnginePlan::Spark(SparkPlan { .. }) = &plan else {
            panic!("a Spark plan")
        };
        let job = BatchJob {
            input: idgraph_storage::Location::Local(input.clone()),
            output: idgraph_storage::Location::Local(spark_dir.path().to_path_buf()),
            kind: idgraph_core::SourceKind::Initial,
            mapping_toml: transform::DEFAULT_MAPPING_TOML.to_owned(),
            max_reject_rate: reject_rate,
            max_file_bytes: SPLIT_AT,
            gzip: name.starts_with("golden"),
            force: false,
            encryption: idgraph_storage::Encryption::default(),
            show_values: false,
        };
        let report =
            spark_engine::run_batch(&plan, &job, &Store::default(), &AtomicBool::new(false))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(report.state, "FINISHED");
        let batch = Path::new("datasets/graph/initial");
        assert_same_batch(&rust_dir.path().join(batch), &spark_dir.path().join(batch));
        // The settings it was made with, as the Rust transform records them.
        assert_eq!(
            manifest(&spark_dir.path().join(batch))["settings"],
            serde_json::json!({
                "gzip": job.gzip,
                "max_file_bytes": SPLIT_AT,
                "max_reject_rate": reject_rate,
            }),
            "{name}"
        );
        assert_split(&spark_dir.path().join(batch), name);
    }
}

/// The Spark job run directly (spark-submit) on `input`'s initial sources into `output`, with
/// more Spark settings; its manifest.
fn spark_job(input: &Path, output: &Path, conf: &[&str], reject_rate: f64) -> serde_json::Value {
    let report = run_spark_job(input, output, conf, reject_rate).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.state, "FINISHED");
    manifest(&output.join("datasets/graph/initial"))
}

fn run_spark_job(
    input: &Path,
    output: &Path,
    conf: &[&str],
    reject_rate: f64,
) -> Result<spark_engine::JobReport, spark_engine::EngineError> {
    let plan = spark_settings(conf)
        .resolve(&output.display().to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    let job = BatchJob {
        input: idgraph_storage::Location::Local(input.to_path_buf()),
        output: idgraph_storage::Location::Local(output.to_path_buf()),
        kind: idgraph_core::SourceKind::Initial,
        mapping_toml: transform::DEFAULT_MAPPING_TOML.to_owned(),
        max_reject_rate: reject_rate,
        max_file_bytes: 256_000_000,
        gzip: false,
        force: false,
        encryption: idgraph_storage::Encryption::default(),
        show_values: false,
    };
    spark_engine::run_batch(&plan, &job, &Store::default(), &AtomicBool::new(false))
}

/// (path, SHA-256) of every file a manifest lists.
fn files_with_digests(manifest: &serde_json::Value) -> Vec<(String, String)> {
    manifest["files"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| (f["path"].to_string(), f["sha256"].to_string()))
        .collect()
}

/// Bytes of text after which the job starts a new file, in the test above.
const SPLIT_AT: u64 = 300;

/// Files are split by size: none holds more than `SPLIT_AT` bytes of text unless it holds a
/// single row, and some label has several files.
fn assert_split(batch: &Path, name: &str) {
    let manifest = manifest(batch);
    let files = manifest["files"].as_array().cloned().unwrap_or_default();
    let mut per_label: BTreeMap<String, usize> = BTreeMap::new();
    for file in &files {
        let path = file["path"].as_str().unwrap_or_default();
        let text = read_text(&batch.join(path));
        let rows = file["rows"].as_u64().unwrap_or_default();
        assert!(
            text.len() as u64 <= SPLIT_AT || rows <= 1,
            "{name}: {path} has {rows} rows in {} bytes",
            text.len()
        );
        *per_label.entry(file["label"].to_string()).or_default() += 1;
    }
    assert!(
        per_label.values().any(|&n| n > 1),
        "{name}: no label was split: {per_label:?}"
    );
}

#[test]
fn a_bad_header_fails_the_spark_job_with_the_files_name_and_column() {
    let (input, output) = (tempdir(), tempdir());
    let fixtures = workspace().join("crates/transform/tests/fixtures/golden/input");
    copy_tree(&fixtures.join("datasets"), &input.path().join("datasets"));
    let cookie = input
        .path()
        .join("datasets/sources/initial/cookie/cookie_data_full.csv");
    let text = read_text(&cookie).replacen("session_id", "session", 1);
    std::fs::write(&cookie, text).unwrap_or_else(|e| panic!("{e}"));
    for read_by in READ_BY {
        let error = run_spark_job(input.path(), output.path(), &[read_by], 0.5)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("cookie_data_full.csv")
                && error.contains("`session`")
                && error.contains("session_id"),
            "{read_by}: {error}"
        );
        assert!(
            !output.path().join("datasets/graph/initial").exists(),
            "{read_by}: no graph batch after a failed job"
        );
    }
}

/// The two ways the job reads a batch's sources: by the driver (a small batch's) and by a stage
/// of tasks (a large batch's).
const READ_BY: [&str; 2] = [
    "spark.idgraph.driverReadBytes=67108864",
    "spark.idgraph.driverReadBytes=0",
];

#[test]
fn too_many_rejects_fail_the_spark_job_and_publish_no_graph() {
    // The golden rows reject about a third of their rows: with at most 1% allowed, the job
    // fails after mapping, having published nothing but the rejects (whether the driver or a
    // stage of tasks reads the sources).
    let fixtures = workspace().join("crates/transform/tests/fixtures/golden/input");
    for read_by in READ_BY {
        let output = tempdir();
        let error = run_spark_job(&fixtures, output.path(), &[read_by], 0.01)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("rows rejected") && error.contains("the graph was not written"),
            "{read_by}: {error}"
        );
        let graph = output.path().join("datasets/graph");
        let batch = graph.join("initial");
        assert!(
            batch.join("rejects.csv").is_file(),
            "{read_by}: rejects.csv"
        );
        assert!(
            !batch.join("manifest.json").exists() && !batch.join("vertices").exists(),
            "{read_by}: a graph was published"
        );
        let left: Vec<_> = std::fs::read_dir(&graph)
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(
            left,
            ["initial"],
            "{read_by}: only the rejects' folder is left"
        );
    }
}

/// The job run by spark-submit with `s3://` sources and output on a local S3 server: the
/// input and output roots are `s3://data/<prefix>`.
fn spark_job_on_s3(
    server: &testkit::LocalS3,
    prefix: &str,
    reject_rate: f64,
    extra: &[&str],
) -> std::process::Output {
    let (submit, python) = spark();
    let root = format!("s3://data/{prefix}");
    let schemas = workspace().join("schemas");
    let mut command = std::process::Command::new(submit);
    command
        .args(["--master", "local[2]", "--conf", "spark.driver.memory=1g"])
        .args(["--conf", "spark.driver.host=127.0.0.1"])
        .args(["--conf", "spark.driver.bindAddress=127.0.0.1"])
        .args(["--conf", "spark.ui.enabled=false"])
        .arg(workspace().join("python/idgraph_transform.py"))
        .args(["--input", &root, "--output", &root, "--batch", "initial"])
        .arg("--sources-schema")
        .arg(schemas.join("sources.toml"))
        .arg("--mapping")
        .arg(schemas.join("graph.toml"))
        .args(["--max-reject-rate", &reject_rate.to_string()])
        .args(extra)
        .env("PYSPARK_PYTHON", &python)
        .env("PYSPARK_DRIVER_PYTHON", &python);
    server.aws_env(&mut command);
    command.output().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn on_s3_the_job_writes_the_batch_encrypted_and_nothing_of_a_failing_one() {
    let (root, server, _store) = testkit::LocalS3::with_buckets(&["data"]);
    let rust_dir = tempdir();
    let rust = rust_dir.path();
    generate(rust, 500, 0.0);
    rust_transform(rust, transform::Selection::Initial, 0.01);
    let clean = root.path().join("data/clean");
    copy_tree(
        &rust.join("datasets/sources"),
        &clean.join("datasets/sources"),
    );
    let initial = Path::new("datasets/graph/initial");
    // Generations of one batch on S3, written in place: many small files, then fewer larger
    // ones. Each leaves exactly the objects its manifest lists (the loader reads every object
    // under the prefix, listed or not), and equals the Rust batch.
    let mut files_before = usize::MAX;
    for extra in [
        &[][..],
        &["--max-file-bytes", "300", "--force", "true"][..],
        &["--force", "true"][..],
    ] {
        let output = spark_job_on_s3(&server, "clean", 0.01, extra);
        assert!(
            output.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let n = assert_same_batch(&rust.join(initial), &clean.join(initial));
        assert!(n > 1_000, "{n} elements");
        let mut listed: Vec<String> = manifest(&clean.join(initial))["files"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| f["path"].as_str().unwrap_or_default().to_owned())
            .chain(["manifest.json".to_owned(), "rejects.csv".to_owned()])
            .collect();
        listed.sort();
        let stored: Vec<String> = testkit::snapshot(&clean.join(initial))
            .into_keys()
            .filter(|k| !k.rsplit('/').next().unwrap_or_default().starts_with('.'))
            .collect();
        assert_eq!(
            stored, listed,
            "{extra:?}: objects the manifest does not list"
        );
        if extra.is_empty() {
            continue;
        }
        if files_before != usize::MAX {
            assert!(stored.len() < files_before, "{extra:?}: {stored:?}");
        }
        files_before = stored.len();
    }

    // On S3 the graph's files are written in place: with too many rejects (the golden rows'),
    // the job fails before writing any, leaving rejects.csv alone.
    let golden = root.path().join("data/golden");
    copy_tree(
        &workspace().join("crates/transform/tests/fixtures/golden/input/datasets"),
        &golden.join("datasets"),
    );
    let output = spark_job_on_s3(&server, "golden", 0.01, &[]);
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && said.contains("rows rejected"),
        "{said}"
    );
    let written: Vec<String> = std::fs::read_dir(golden.join(initial))
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|name| !name.starts_with('.'))
        .collect();
    assert_eq!(written, ["rejects.csv"], "only the rejects are written");

    // Every object either run wrote (the batch's files, its manifest, both rejects files) was
    // written encrypted.
    let writes: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.writes_an_object())
        .collect();
    assert!(writes.len() > 10, "{writes:?}");
    let plain: Vec<_> = writes
        .iter()
        .filter(|r| r.encryption.as_deref() != Some("AES256"))
        .collect();
    assert!(
        plain.is_empty(),
        "objects written without encryption: {plain:?}"
    );
}
