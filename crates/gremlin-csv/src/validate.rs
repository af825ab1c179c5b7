//! Checks a folder of Gremlin load files against the loader's rules (neptune-reference.md §1),
//! plus two promises of this toolkit's output: ids are unique, and every edge's endpoints are
//! vertices of the same folder (a closed batch).
//!
//! Every violation names its file and line, a stable rule name, and what Neptune would do with
//! it: the error it reports, or that it loads the data silently altered.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;
use xxhash_rust::xxh3::xxh3_128;

use crate::header::{Cardinality, Column, FileKind, Header, PropertyColumn, ValueType};
use crate::record::{Field, Records};
use crate::value::{ValueProblem, check_value, has_unescaped_semicolon, split_values};

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The file, relative to the validated folder.
    pub file: String,
    /// The line the record starts on (the header is line 1); `None` for a whole file.
    pub line: Option<u64>,
    /// A stable name of the rule, such as `record.columns` or `edge.missing-vertex`.
    pub rule: &'static str,
    /// What Neptune does: the error code it reports, or `loads silently altered`, or
    /// `accepted` for this toolkit's own stricter promises.
    pub neptune: &'static str,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: ", self.file)?,
            None => write!(f, "{}: ", self.file)?,
        }
        write!(
            f,
            "[{}] {} (Neptune: {})",
            self.rule, self.message, self.neptune
        )
    }
}

/// One file that was read.
#[derive(Debug, Clone, Serialize)]
pub struct FileSummary {
    pub file: String,
    pub kind: Option<FileKind>,
    /// Data records (the header not counted).
    pub rows: u64,
    pub bytes: u64,
}

/// The result of validating a folder.
#[derive(Debug, Clone, Serialize)]
pub struct ValidationReport {
    pub root: PathBuf,
    pub files: Vec<FileSummary>,
    pub vertices: u64,
    pub edges: u64,
    /// Vertex rows per label (a row with several labels counts for each).
    pub vertex_labels: BTreeMap<String, u64>,
    pub edge_labels: BTreeMap<String, u64>,
    pub violation_count: u64,
    pub violations_by_rule: BTreeMap<&'static str, u64>,
    /// The first violations found (at most `Options::max_violations`), in file and line order.
    pub violations: Vec<Violation>,
}

impl ValidationReport {
    pub fn is_valid(&self) -> bool {
        self.violation_count == 0
    }
}

impl std::fmt::Display for ValidationReport {
    /// The listed violations, one a line, then a summary with counts per rule.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for violation in &self.violations {
            writeln!(f, "{violation}")?;
        }
        let unlisted = self.violation_count - self.violations.len() as u64;
        if unlisted > 0 {
            writeln!(
                f,
                "... and {unlisted} more (raise --max-violations to list them)"
            )?;
        }
        writeln!(
            f,
            "{}: {} files, {} vertices, {} edges, {} violations",
            self.root.display(),
            self.files.len(),
            self.vertices,
            self.edges,
            self.violation_count
        )?;
        for (rule, n) in &self.violations_by_rule {
            writeln!(f, "  {rule}: {n}")?;
        }
        Ok(())
    }
}

/// How much detail to keep.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub max_violations: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_violations: 1_000,
        }
    }
}

/// The folder could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {source}", path.display())]
pub struct ValidateError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

const PARSING_ERROR: &str = "PARSING_ERROR";
const DATATYPE_MISMATCH: &str = "datatype mismatch (counted in datatypeMismatchErrors)";
const SILENT: &str = "loads silently altered";
const ACCEPTED: &str = "accepted; this toolkit's output promises otherwise";
const UNSUPPORTED: &str = "cannot load this file";

/// What one file contributes, before the files are checked against each other.
#[derive(Debug, Default)]
struct FileOutcome {
    summary: Option<FileSummary>,
    violations: Vec<Violation>,
    labels: BTreeMap<String, u64>,
    /// (id hash, line)
    vertex_ids: Vec<(u128, u64)>,
    edges: Vec<EdgeRef>,
}

#[derive(Debug)]
struct EdgeRef {
    id: u128,
    /// Hash of (label, from, to): the same id with another value is another edge.
    shape: u128,
    from: u128,
    to: u128,
    from_text: String,
    to_text: String,
    line: u64,
}

/// The files to check: those under `vertices/` and `edges/` when the folder has either (a graph
/// batch, beside which a manifest and rejects may sit), otherwise every file below it. Hidden
/// files are included: the loader reads every object under a prefix.
fn list_files(root: &Path) -> Result<Vec<PathBuf>, ValidateError> {
    let tops: Vec<PathBuf> = ["vertices", "edges"]
        .iter()
        .map(|d| root.join(d))
        .filter(|p| p.is_dir())
        .collect();
    let mut stack = if tops.is_empty() {
        vec![root.to_path_buf()]
    } else {
        tops
    };
    let mut files = Vec::new();
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| ValidateError {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let path = entry
                .map_err(|source| ValidateError {
                    path: dir.clone(),
                    source,
                })?
                .path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Validates every Gremlin load file under `root`.
pub fn validate_dir(root: &Path, options: Options) -> Result<ValidationReport, ValidateError> {
    if !root.is_dir() {
        return Err(ValidateError {
            path: root.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a folder"),
        });
    }
    let files = list_files(root)?;
    let outcomes: Vec<FileOutcome> = files
        .par_iter()
        .map(|path| {
            let name = path
                .strip_prefix(root)
                .unwrap_or(path)
                .to_string_lossy()
                .into_owned();
            match std::fs::read(path) {
                Ok(bytes) => validate_file(&name, &bytes),
                Err(e) => FileOutcome {
                    violations: vec![Violation {
                        file: name,
                        line: None,
                        rule: "file.unreadable",
                        neptune: UNSUPPORTED,
                        message: e.to_string(),
                    }],
                    ..FileOutcome::default()
                },
            }
        })
        .collect();
    Ok(combine(root, outcomes, options))
}

/// Validates files given as (name, bytes), as one batch.
pub fn validate_files(files: &[(String, Vec<u8>)], options: Options) -> ValidationReport {
    let outcomes = files
        .par_iter()
        .map(|(name, bytes)| validate_file(name, bytes))
        .collect();
    combine(Path::new(""), outcomes, options)
}

fn combine(root: &Path, outcomes: Vec<FileOutcome>, options: Options) -> ValidationReport {
    let mut violations: Vec<Violation> = Vec::new();
    let mut files = Vec::new();
    let (mut vertex_labels, mut edge_labels) = (BTreeMap::new(), BTreeMap::new());
    let mut vertex_seen: HashMap<u128, (usize, u64)> = HashMap::new();
    let mut edge_seen: HashMap<u128, (usize, u64, u128)> = HashMap::new();
    let (mut vertices, mut edges) = (0u64, 0u64);

    for (index, outcome) in outcomes.iter().enumerate() {
        violations.extend(outcome.violations.iter().cloned());
        if let Some(summary) = &outcome.summary {
            let labels = match summary.kind {
                Some(FileKind::Edge) => {
                    edges += summary.rows;
                    &mut edge_labels
                }
                _ => {
                    vertices += summary.rows;
                    &mut vertex_labels
                }
            };
            for (label, n) in &outcome.labels {
                *labels.entry(label.clone()).or_insert(0) += n;
            }
            files.push(summary.clone());
        }
        let file = |i: usize| {
            outcomes[i]
                .summary
                .as_ref()
                .map(|s| s.file.clone())
                .unwrap_or_default()
        };
        for &(id, line) in &outcome.vertex_ids {
            if let Some(&(first_file, first_line)) = vertex_seen.get(&id) {
                violations.push(Violation {
                    file: file(index),
                    line: Some(line),
                    rule: "id.duplicate-vertex",
                    neptune: ACCEPTED,
                    message: format!(
                        "vertex id already given at {}:{first_line}; the loader would merge the rows",
                        file(first_file)
                    ),
                });
            } else {
                vertex_seen.insert(id, (index, line));
            }
        }
        for edge in &outcome.edges {
            match edge_seen.get(&edge.id) {
                Some(&(first_file, first_line, shape)) => violations.push(Violation {
                    file: file(index),
                    line: Some(edge.line),
                    rule: if shape == edge.shape {
                        "id.duplicate-edge"
                    } else {
                        "id.edge-reused"
                    },
                    neptune: if shape == edge.shape {
                        ACCEPTED
                    } else {
                        "ID_ASSIGNED_TO_MULTIPLE_EDGES"
                    },
                    message: format!(
                        "edge id already given at {}:{first_line}{}",
                        file(first_file),
                        if shape == edge.shape {
                            ""
                        } else {
                            " for another label or other endpoints"
                        }
                    ),
                }),
                None => {
                    edge_seen.insert(edge.id, (index, edge.line, edge.shape));
                }
            }
        }
    }
    // Closure: every endpoint is a vertex of this batch.
    for outcome in &outcomes {
        let Some(summary) = &outcome.summary else {
            continue;
        };
        for edge in &outcome.edges {
            for (end, hash, text) in [
                ("~from", edge.from, &edge.from_text),
                ("~to", edge.to, &edge.to_text),
            ] {
                if !vertex_seen.contains_key(&hash) {
                    violations.push(Violation {
                        file: summary.file.clone(),
                        line: Some(edge.line),
                        rule: "edge.missing-vertex",
                        neptune: "FROM_OR_TO_VERTEX_ARE_MISSING",
                        message: format!("{end} `{text}` is not a vertex of this batch"),
                    });
                }
            }
        }
    }
    if files.is_empty() && violations.is_empty() {
        violations.push(Violation {
            file: String::new(),
            line: None,
            rule: "dir.empty",
            neptune: UNSUPPORTED,
            message: "no files to load".to_owned(),
        });
    }
    violations.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    let mut violations_by_rule = BTreeMap::new();
    for v in &violations {
        *violations_by_rule.entry(v.rule).or_insert(0) += 1;
    }
    let violation_count = violations.len() as u64;
    violations.truncate(options.max_violations);
    ValidationReport {
        root: root.to_path_buf(),
        files,
        vertices,
        edges,
        vertex_labels,
        edge_labels,
        violation_count,
        violations_by_rule,
        violations,
    }
}

/// Decompresses by extension; `Err` holds a whole-file violation.
fn decode(name: &str, bytes: &[u8]) -> Result<Vec<u8>, (&'static str, &'static str, String)> {
    let lower = name.to_ascii_lowercase();
    if [".tar", ".tgz", ".tar.gz", ".zip", ".7z"]
        .iter()
        .any(|ext| lower.ends_with(ext))
    {
        return Err((
            "file.archive",
            UNSUPPORTED,
            "archives are not supported; compress each file on its own with gzip or bzip2".into(),
        ));
    }
    if lower.ends_with(".bz2") {
        return Err((
            "file.compression",
            "loads it (bzip2 is supported)",
            "bzip2 files are not checked by this validator; use gzip to have them checked".into(),
        ));
    }
    if lower.ends_with(".gz") {
        let mut out = Vec::new();
        return match flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out) {
            Ok(_) => Ok(out),
            Err(e) => Err((
                "file.gzip",
                UNSUPPORTED,
                format!("not a complete gzip file: {e}"),
            )),
        };
    }
    Ok(bytes.to_vec())
}

fn validate_file(name: &str, raw: &[u8]) -> FileOutcome {
    let mut out = FileOutcome::default();
    let violation = |line: Option<u64>, rule, neptune, message: String| Violation {
        file: name.to_owned(),
        line,
        rule,
        neptune,
        message,
    };
    let bytes = match decode(name, raw) {
        Ok(bytes) => bytes,
        Err((rule, neptune, message)) => {
            out.violations.push(violation(None, rule, neptune, message));
            return out;
        }
    };
    let (text, bom) = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (rest, true),
        None => (&bytes[..], false),
    };
    if bom {
        out.violations.push(violation(
            Some(1),
            "file.bom",
            "not documented; may be read as part of the first column name",
            "the file starts with a UTF-8 byte-order mark; write files without one".into(),
        ));
    }
    let text = match std::str::from_utf8(text) {
        Ok(t) => std::borrow::Cow::Borrowed(t),
        Err(e) => {
            let line = 1 + text[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64;
            out.violations.push(violation(
                Some(line),
                "file.utf8",
                SILENT,
                "the file is not valid UTF-8 (the loader reads it as UTF-8 anyway, garbling it)"
                    .into(),
            ));
            String::from_utf8_lossy(text)
        }
    };
    let mut records = Records::new(&text);
    let header = match records.next() {
        None => {
            out.violations.push(violation(
                None,
                "file.empty",
                PARSING_ERROR,
                "the file is empty: it needs a header row".into(),
            ));
            return out;
        }
        Some(Err(e)) => {
            out.violations.push(violation(
                Some(e.line()),
                "header",
                PARSING_ERROR,
                e.to_string(),
            ));
            return out;
        }
        Some(Ok(record)) => {
            let fields: Vec<&str> = record.fields.iter().map(|f| f.text.as_ref()).collect();
            match Header::parse(&fields) {
                Ok(header) => header,
                Err(e) => {
                    out.violations
                        .push(violation(Some(1), "header", PARSING_ERROR, e.to_string()));
                    return out;
                }
            }
        }
    };
    let mut summary = FileSummary {
        file: name.to_owned(),
        kind: Some(header.kind),
        rows: 0,
        bytes: raw.len() as u64,
    };
    let position = |c: &Column| header.position(c);
    let (id_at, label_at, from_at, to_at) = (
        position(&Column::Id),
        position(&Column::Label),
        position(&Column::From),
        position(&Column::To),
    );
    for record in records {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                summary.rows += 1;
                out.violations.push(violation(
                    Some(e.line()),
                    "record.quoting",
                    PARSING_ERROR,
                    e.to_string(),
                ));
                continue;
            }
        };
        summary.rows += 1;
        let line = Some(record.line);
        let fields = &record.fields;
        if fields.len() != header.columns.len() {
            let more = fields.len() > header.columns.len();
            out.violations.push(violation(
                line,
                "record.columns",
                PARSING_ERROR,
                format!(
                    "record has {} columns than header ({} against {})",
                    if more { "more" } else { "fewer" },
                    fields.len(),
                    header.columns.len()
                ),
            ));
            continue;
        }
        let mut bad = false;
        for (column, at) in [("~id", id_at), ("~from", from_at), ("~to", to_at)] {
            if let Some(at) = at
                && fields[at].is_blank()
            {
                out.violations.push(violation(
                    line,
                    "record.id",
                    PARSING_ERROR,
                    format!("{column} is blank"),
                ));
                bad = true;
            }
        }
        let labels: Vec<String> = match label_at {
            None => vec![match header.kind {
                FileKind::Vertex => "vertex".to_owned(),
                FileKind::Edge => "edge".to_owned(),
            }],
            Some(at) => split_values(&fields[at].text),
        };
        if labels.iter().any(String::is_empty) {
            out.violations.push(violation(
                line,
                "record.label",
                PARSING_ERROR,
                "~label is empty".into(),
            ));
            bad = true;
        } else if header.kind == FileKind::Edge && labels.len() > 1 {
            out.violations.push(violation(
                line,
                "record.label",
                PARSING_ERROR,
                format!(
                    "an edge has exactly one label, this one has {}",
                    labels.len()
                ),
            ));
            bad = true;
        }
        for (column, field) in header.columns.iter().zip(fields) {
            if let Column::Property(p) = column
                && let Some(v) = check_field(name, record.line, p, field, header.kind)
            {
                // A bad value loses the property, not the element: the id still counts for
                // uniqueness and closure.
                out.violations.push(v);
            }
        }
        if bad {
            continue;
        }
        for label in labels {
            *out.labels.entry(label).or_insert(0) += 1;
        }
        let text = |at: Option<usize>| at.map(|i| fields[i].text.as_ref()).unwrap_or_default();
        let id = xxh3_128(text(id_at).as_bytes());
        match header.kind {
            FileKind::Vertex => out.vertex_ids.push((id, record.line)),
            FileKind::Edge => {
                let (from, to) = (text(from_at), text(to_at));
                let shape =
                    xxh3_128(format!("{}\u{1f}{from}\u{1f}{to}", text(label_at)).as_bytes());
                out.edges.push(EdgeRef {
                    id,
                    shape,
                    from: xxh3_128(from.as_bytes()),
                    to: xxh3_128(to.as_bytes()),
                    from_text: from.to_owned(),
                    to_text: to.to_owned(),
                    line: record.line,
                });
            }
        }
    }
    out.summary = Some(summary);
    out
}

/// Checks one property field; at most one violation per field.
fn check_field(
    file: &str,
    line: u64,
    column: &PropertyColumn,
    field: &Field<'_>,
    kind: FileKind,
) -> Option<Violation> {
    let violation = |rule, neptune, message: String| {
        Some(Violation {
            file: file.to_owned(),
            line: Some(line),
            rule,
            neptune,
            message: format!("column {column}: {message}"),
        })
    };
    if field.is_blank() {
        return None;
    }
    let text = field.text.as_ref();
    if !field.quoted && text.trim_matches(' ') != text {
        return violation(
            "value.spaces",
            SILENT,
            "unquoted spaces next to a delimiter are dropped; quote the field".into(),
        );
    }
    let values = if column.array {
        split_values(text)
    } else {
        if column.ty == ValueType::String && has_unescaped_semicolon(text) {
            let single = column.cardinality == Some(Cardinality::Single) || kind == FileKind::Edge;
            return violation(
                "value.semicolon",
                if single {
                    "undocumented: if it splits the value, single cardinality rejects it"
                } else {
                    "undocumented: may store two values"
                },
                "an unescaped `;` may split the value in two; escape it as `\\;`".into(),
            );
        }
        vec![text.to_owned()]
    };
    for value in values.iter().filter(|v| !v.is_empty()) {
        match check_value(column.ty, value) {
            Ok(()) => {}
            Err(ValueProblem::Mismatch(m)) => return violation("value.type", DATATYPE_MISMATCH, m),
            Err(ValueProblem::Silent(m)) => return violation("value.silent", SILENT, m),
        }
    }
    None
}
