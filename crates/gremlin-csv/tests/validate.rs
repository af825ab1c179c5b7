//! The validator on hand-made load files: one bad fixture per rule, each reported with its file
//! and line, and good files that pass.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use gremlin_csv::{Options, ValidationReport, validate_dir};

const GOOD_VERTICES: &str = "~id,~label,name:String(single),age:Int,tags:String[],born:Date\n\
v1,person,\"marko\",29,\"sailing;graphs\",2001-02-03\n\
v2,software,lop,,,2021-08-12T10:40:17Z\n";
const GOOD_EDGES: &str = "~id,~from,~to,~label,weight:Double\ne1,v1,v2,created,0.4\n";

fn write_files(root: &Path, files: &[(&str, &[u8])]) {
    for (name, bytes) in files {
        let path = root.join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
    }
}

fn check(files: &[(&str, &[u8])]) -> ValidationReport {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write_files(dir.path(), files);
    validate_dir(dir.path(), Options::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// The batch with one file replaced or added.
fn with(name: &'static str, bytes: &'static [u8]) -> Vec<(&'static str, &'static [u8])> {
    let mut files: Vec<(&str, &[u8])> = vec![
        ("vertices/v.csv", GOOD_VERTICES.as_bytes()),
        ("edges/e.csv", GOOD_EDGES.as_bytes()),
    ];
    files.retain(|(n, _)| *n != name);
    files.push((name, bytes));
    files
}

#[track_caller]
fn assert_one(report: &ValidationReport, rule: &str, file: &str, line: Option<u64>, says: &str) {
    let found = report
        .violations
        .iter()
        .find(|v| v.rule == rule)
        .unwrap_or_else(|| panic!("no {rule} violation in {:#?}", report.violations));
    assert_eq!(found.file, file, "{found}");
    assert_eq!(found.line, line, "{found}");
    assert!(found.message.contains(says), "`{says}` not in: {found}");
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap_or_else(|e| panic!("{e}"));
    encoder.finish().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_good_batch_passes_and_is_counted() {
    let report = check(&with("edges/e.csv", GOOD_EDGES.as_bytes()));
    assert!(report.is_valid(), "{:#?}", report.violations);
    assert_eq!((report.vertices, report.edges), (2, 1));
    assert_eq!(report.vertex_labels.get("person"), Some(&1));
    assert_eq!(report.edge_labels.get("created"), Some(&1));

    // CRLF line ends, gzip, quoted newlines and commas, escaped quotes, multi-labels: all fine.
    let crlf = GOOD_VERTICES.replace('\n', "\r\n");
    let tricky = "~id,~label,bio:String\n\"v 3\",a;b,\"line one\nline two, \"\"quoted\"\"\"\n";
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("vertices/v.csv", crlf.into_bytes()),
        ("vertices/more.csv.gz", gzip(tricky.as_bytes())),
        ("edges/e.csv", GOOD_EDGES.as_bytes().to_vec()),
    ];
    let borrowed: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    let report = check(&borrowed);
    assert!(report.is_valid(), "{:#?}", report.violations);
    assert_eq!(report.vertices, 3);
    assert_eq!(report.vertex_labels.get("a"), Some(&1));
}

#[test]
fn file_level_rules() {
    let bom = [b"\xEF\xBB\xBF".as_slice(), GOOD_VERTICES.as_bytes()].concat();
    let bom: &'static [u8] = Box::leak(bom.into_boxed_slice());
    assert_one(
        &check(&with("vertices/v.csv", bom)),
        "file.bom",
        "vertices/v.csv",
        Some(1),
        "byte-order mark",
    );

    let bad_utf8: &[u8] = b"~id,~label\nv1,person\nv2,pers\xFFon\n";
    assert_one(
        &check(&with("vertices/x.csv", bad_utf8)),
        "file.utf8",
        "vertices/x.csv",
        Some(3),
        "UTF-8",
    );

    assert_one(
        &check(&with("vertices/empty.csv", b"")),
        "file.empty",
        "vertices/empty.csv",
        None,
        "header",
    );

    let truncated = gzip(GOOD_VERTICES.as_bytes());
    let truncated: &'static [u8] = Box::leak(
        truncated[..truncated.len() - 12]
            .to_vec()
            .into_boxed_slice(),
    );
    let report = check(&with("vertices/v.csv.gz", truncated));
    assert_one(&report, "file.gzip", "vertices/v.csv.gz", None, "gzip");

    assert_one(
        &check(&with("vertices/all.tar.gz", b"x")),
        "file.archive",
        "vertices/all.tar.gz",
        None,
        "archives",
    );
}

#[test]
fn header_rules() {
    let cases: [(&'static [u8], &str); 7] = [
        (b"~id,~id,~label\nv1,v1,person\n", "more than once"),
        (b"~id,first name:String\nv1,x\n", "space"),
        (b"~label,name\nperson,x\n", "no ~id"),
        (b"~id,age:Integer\nv1,3\n", "unknown type"),
        (b"~id,tags:String(single)[]\nv1,x\n", "cannot be an array"),
        (b"~id,~kind\nv1,x\n", "unknown system column"),
        (b"~id,~from,~label\ne1,v1,x\n", "both ~from and ~to"),
    ];
    for (bytes, says) in cases {
        assert_one(
            &check(&with("vertices/h.csv", bytes)),
            "header",
            "vertices/h.csv",
            Some(1),
            says,
        );
    }
    let edge_cases: [(&'static [u8], &str); 2] = [
        (
            b"~id,~from,~to,~label,w:Double[]\ne1,v1,v2,x,1\n",
            "edge properties hold one value",
        ),
        (
            b"~id,~from,~to,~label,w:Double(set)\ne1,v1,v2,x,1\n",
            "edge properties are single",
        ),
    ];
    for (bytes, says) in edge_cases {
        assert_one(
            &check(&with("edges/e.csv", bytes)),
            "header",
            "edges/e.csv",
            Some(1),
            says,
        );
    }
}

#[test]
fn record_rules() {
    let quote_in_field: &[u8] = b"~id,~label,name:String\nv3,person,ok\nv4,person,say \"hi\"\n";
    assert_one(
        &check(&with("vertices/q.csv", quote_in_field)),
        "record.quoting",
        "vertices/q.csv",
        Some(3),
        "not quoted",
    );

    let unbalanced: &[u8] = b"~id,~label,name:String\nv3,person,\"open\nv4,person,x\n";
    assert_one(
        &check(&with("vertices/q.csv", unbalanced)),
        "record.quoting",
        "vertices/q.csv",
        Some(2),
        "never closed",
    );

    let more: &[u8] = b"~id,~label\nv3,person\nv4,person,extra\n";
    assert_one(
        &check(&with("vertices/c.csv", more)),
        "record.columns",
        "vertices/c.csv",
        Some(3),
        "more columns than header",
    );
    let fewer: &[u8] = b"~id,~label,name:String\nv3,person\n";
    assert_one(
        &check(&with("vertices/c.csv", fewer)),
        "record.columns",
        "vertices/c.csv",
        Some(2),
        "fewer columns",
    );

    let blank_id: &[u8] = b"~id,~label\n,person\n";
    assert_one(
        &check(&with("vertices/i.csv", blank_id)),
        "record.id",
        "vertices/i.csv",
        Some(2),
        "~id is blank",
    );
    let blank_from: &[u8] = b"~id,~from,~to,~label\ne1,v1,v2,created\ne2,,v2,created\n";
    assert_one(
        &check(&with("edges/e.csv", blank_from)),
        "record.id",
        "edges/e.csv",
        Some(3),
        "~from is blank",
    );
    // A quoted empty id is a real (empty) id, not a blank one.
    let quoted_empty: &[u8] = b"~id,~label\n\"\",person\n";
    assert!(
        check(&with("vertices/i.csv", quoted_empty))
            .violations
            .iter()
            .all(|v| v.rule != "record.id")
    );

    let empty_label: &[u8] = b"~id,~label\nv3,\n";
    assert_one(
        &check(&with("vertices/l.csv", empty_label)),
        "record.label",
        "vertices/l.csv",
        Some(2),
        "empty",
    );
    let two_labels: &[u8] = b"~id,~from,~to,~label\ne1,v1,v2,created;made\n";
    assert_one(
        &check(&with("edges/e.csv", two_labels)),
        "record.label",
        "edges/e.csv",
        Some(2),
        "exactly one label",
    );
}

#[test]
fn value_rules() {
    let cases: [(&'static [u8], &str, &str); 7] = [
        (
            b"~id,n:Int\nv3,2147483648\n",
            "value.type",
            "out of range for Int",
        ),
        (
            b"~id,n:Byte\nv3,200\n",
            "value.type",
            "out of range for Byte",
        ),
        (b"~id,n:Long\nv3,12a\n", "value.type", "not a whole number"),
        (
            b"~id,d:Date\nv3,2021-08-12 10:40:17\n",
            "value.type",
            "not a date",
        ),
        (b"~id,f:Float\nv3,INF\n", "value.type", "not a Float"),
        (b"~id,s:String\nv3,a\0b\n", "value.type", "NUL"),
        (
            b"~id,ok:Bool\nv3,yes\n",
            "value.silent",
            "stores it as false",
        ),
    ];
    for (bytes, rule, says) in cases {
        assert_one(
            &check(&with("vertices/t.csv", bytes)),
            rule,
            "vertices/t.csv",
            Some(2),
            says,
        );
    }
    let arrays: &[u8] = b"~id,n:Int[]\nv3,1;2;x\n";
    assert_one(
        &check(&with("vertices/t.csv", arrays)),
        "value.type",
        "vertices/t.csv",
        Some(2),
        "`x`",
    );
    let spaces: &[u8] = b"~id,s:String\nv3, padded\n";
    assert_one(
        &check(&with("vertices/t.csv", spaces)),
        "value.spaces",
        "vertices/t.csv",
        Some(2),
        "dropped",
    );
    let semicolon: &[u8] = b"~id,s:String(single)\nv3,a;b\n";
    assert_one(
        &check(&with("vertices/t.csv", semicolon)),
        "value.semicolon",
        "vertices/t.csv",
        Some(2),
        "\\;",
    );
}

#[test]
fn id_and_closure_rules() {
    let again: &[u8] = b"~id,~label\nv9,person\nv1,person\n";
    assert_one(
        &check(&with("vertices/w.csv", again)),
        "id.duplicate-vertex",
        "vertices/w.csv",
        Some(3),
        "vertices/v.csv:2",
    );

    let same_edge_twice: &[u8] =
        b"~id,~from,~to,~label,weight:Double\ne1,v1,v2,created,0.4\ne1,v1,v2,created,0.4\n";
    assert_one(
        &check(&with("edges/e.csv", same_edge_twice)),
        "id.duplicate-edge",
        "edges/e.csv",
        Some(3),
        "edges/e.csv:2",
    );
    let reused: &[u8] = b"~id,~from,~to,~label\ne1,v1,v2,created\ne1,v2,v1,created\n";
    let report = check(&with("edges/e.csv", reused));
    assert_one(
        &report,
        "id.edge-reused",
        "edges/e.csv",
        Some(3),
        "other endpoints",
    );
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.neptune == "ID_ASSIGNED_TO_MULTIPLE_EDGES")
    );

    let dangling: &[u8] = b"~id,~from,~to,~label\ne1,v1,v2,created\ne2,v1,v404,created\n";
    let report = check(&with("edges/e.csv", dangling));
    assert_one(
        &report,
        "edge.missing-vertex",
        "edges/e.csv",
        Some(3),
        "`v404`",
    );
    assert_eq!(
        report.violations_by_rule.get("edge.missing-vertex"),
        Some(&1)
    );

    let report = check(&[]);
    assert_one(&report, "dir.empty", "", None, "no files");
}

#[test]
fn the_command_reports_file_and_line_and_exits_by_the_result() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write_files(dir.path(), &with("edges/e.csv", GOOD_EDGES.as_bytes()));
    let run = |json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gremlin-csv"));
        cmd.arg("validate").arg(dir.path());
        if json {
            cmd.arg("--json");
        }
        cmd.output().unwrap_or_else(|e| panic!("{e}"))
    };
    let ok = run(false);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    write_files(
        dir.path(),
        &[(
            "edges/bad.csv",
            b"~id,~from,~to,~label\ne7,v1,nowhere,created\n",
        )],
    );
    let bad = run(false);
    let text = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text.contains("edges/bad.csv:2: [edge.missing-vertex]"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&run(true).stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json["violation_count"], 1);
    assert_eq!(json["violations"][0]["line"], 2);
    let missing = Command::new(env!("CARGO_BIN_EXE_gremlin-csv"))
        .args(["validate", "/nonexistent/folder"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(missing.status.code(), Some(2));
}
