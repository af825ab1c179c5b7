//! `transform catalog sync`, `transform --glue-database` and `transform --engine glue` as a
//! user runs them, against moto's server (Glue and S3 on one port). moto runs no job script:
//! the batch's graph output is made first by the Rust transform through the catalog, and the
//! Glue run reported is moto's (SUCCEEDED with canned figures).

use std::path::Path;
use std::process::{Command, Output};

use idgraph_storage::Store;
use testkit::moto::Moto;

fn transform(moto: &Moto, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_transform"));
    command
        .args(args)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    for (k, v) in moto.env() {
        command.env(k, v);
    }
    command.output().unwrap_or_else(|e| panic!("{e}"))
}

fn ok(out: Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn json(out: Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).unwrap_or_else(|e| panic!("{e}"))
}

/// A bucket on moto with the golden fixture's sources under s3://lake/root.
fn lake(moto: &Moto) -> Store {
    moto.create_bucket("lake");
    let store = Store::for_endpoint(&moto.endpoint(), "testing", "testing");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden/input");
    for dataset in idgraph_core::Dataset::ALL {
        let relative = format!(
            "datasets/sources/initial/{0}/{0}_data_full.csv",
            dataset.name()
        );
        let bytes = std::fs::read(fixture.join(&relative)).unwrap_or_else(|e| panic!("{e}"));
        store
            .write(
                &format!("s3://lake/root/{relative}")
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}")),
                bytes,
            )
            .unwrap_or_else(|e| panic!("{e}"));
    }
    store
}

#[test]
fn catalog_sync_then_a_transform_from_the_catalog_then_a_glue_run_reported() {
    let moto = Moto::start();
    let store = lake(&moto);

    let first = json(transform(
        &moto,
        &[
            "catalog",
            "sync",
            "--database",
            "idgraph",
            "--root",
            "s3://lake/root",
            "--json",
        ],
    ));
    assert_eq!(first["database_created"], true);
    assert_eq!(first["tables"].as_array().map(Vec::len), Some(4));
    let again = ok(transform(
        &moto,
        &[
            "catalog",
            "sync",
            "--database",
            "idgraph",
            "--root",
            "s3://lake/root",
        ],
    ));
    assert!(again.contains("no change"), "{again}");

    // The sources' root comes from the catalog; the Rust transform writes the batch there.
    let local = json(transform(
        &moto,
        &[
            "--glue-database",
            "idgraph",
            "--max-reject-rate",
            "0.5",
            "--json",
            "--quiet",
        ],
    ));
    assert_eq!(local["batches"][0]["manifest"]["batch"], "initial");
    let manifest = "s3://lake/root/datasets/graph/initial/manifest.json";
    assert!(
        store
            .exists(&manifest.parse().unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"))
    );

    // Without a role the Glue engine says what it needs.
    let refused = transform(&moto, &["--input", "s3://lake/root", "--engine", "glue"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--glue-role"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let glue = |expect_action: &str| {
        let report = json(transform(
            &moto,
            &[
                "--input",
                "s3://lake/root",
                "--engine",
                "glue",
                "--glue-role",
                "arn:aws:iam::123456789012:role/idgraph-glue",
                "--glue-workers",
                "4",
                "--max-reject-rate",
                "0.5",
                "--json",
            ],
        ));
        let batch = &report["batches"][0];
        assert_eq!(batch["engine"], "glue");
        assert_eq!(batch["state"], "SUCCEEDED");
        assert_eq!(batch["job_action"], expect_action);
        assert!(batch["run_id"].as_str().is_some_and(|r| !r.is_empty()));
        assert!(batch["dpu_seconds"].as_f64().is_some());
        assert_eq!(batch["manifest"]["datasets"][0]["rows_read"], 5);
    };
    glue("created");
    glue("unchanged");
    let script = store
        .read(
            &"s3://lake/root/glue-job/idgraph_transform.py"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(script, spark_engine::JOB_SCRIPT.as_bytes());
    let sources = store
        .read(
            &"s3://lake/root/glue-job/sources.toml"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sources, idgraph_core::SOURCES_TOML.as_bytes());
}

/// The Spark job itself on `s3://`: sources read from and the batch written to moto's S3 (the
/// job's boto3 client follows AWS_ENDPOINT_URL), with the same counts as the Rust transform of
/// the same sources, and every file the manifest lists in the bucket with its SHA-256.
#[test]
fn the_spark_job_reads_and_writes_s3() {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/pyenv/bin");
    let (submit, python) = (venv.join("spark-submit"), venv.join("python"));
    assert!(
        submit.exists(),
        "no Spark at {}: run scripts/test.sh, which installs pyspark into target/pyenv",
        submit.display()
    );
    let moto = Moto::start();
    let store = lake(&moto);
    let rust = json(transform(
        &moto,
        &[
            "--input",
            "s3://lake/root",
            "--max-reject-rate",
            "0.5",
            "--json",
            "--quiet",
        ],
    ));
    let spark = json(transform(
        &moto,
        &[
            "--input",
            "s3://lake/root",
            "--output",
            "s3://lake/spark",
            "--engine",
            "spark",
            "--spark-master",
            "local[2]",
            "--spark-submit",
            &submit.display().to_string(),
            "--spark-python",
            &python.display().to_string(),
            "--max-reject-rate",
            "0.5",
            "--json",
        ],
    ));
    let spark = &spark["batches"][0];
    assert_eq!(spark["state"], "FINISHED");
    let rust = &rust["batches"][0]["manifest"];
    let manifest: serde_json::Value = serde_json::from_slice(
        &store
            .read(
                &"s3://lake/spark/datasets/graph/initial/manifest.json"
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}")),
            )
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for key in ["datasets", "vertices", "edges", "notes", "mapping_sha256"] {
        assert_eq!(manifest[key], rust[key], "{key}");
    }
    assert_eq!(spark["manifest"]["vertices"], rust["vertices"]);
    let files = manifest["files"].as_array().cloned().unwrap_or_default();
    assert!(files.len() >= 31, "a file per label at least");
    for file in files {
        let path = file["path"].as_str().unwrap_or_default();
        let bytes = store
            .read(
                &format!("s3://lake/spark/datasets/graph/initial/{path}")
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}")),
            )
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        use sha2::Digest;
        assert_eq!(
            format!("{:x}", sha2::Sha256::digest(&bytes)),
            file["sha256"].as_str().unwrap_or_default(),
            "{path}"
        );
    }
}
