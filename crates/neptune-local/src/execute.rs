//! Running one load: list the source, read and check every file as strictly as Neptune
//! (neptune-reference.md §1), apply vertex files before edge files to the graph store, and
//! report counters, feeds and errors as the loader does (§2.6).

use std::borrow::Cow;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gremlin_csv::{
    Cardinality, Column, Field, FileKind, Header, PropertyColumn, Records, ValueProblem, ValueType,
    check_value, split_values,
};
use idgraph_storage::{Location, Store};

use crate::jobs::{Jobs, now_seconds};
use crate::model::{Counters, ErrorLog, Feed, Load, LoadRequest, status};
use crate::sandbox::Sandbox;
use crate::store::{Applied, GraphStore, PropertyValues, StoreError};

const PARSING_ERROR: &str = "PARSING_ERROR";
/// Rows applied between commits (and between progress reports and cancel checks).
const BATCH_ROWS: usize = 20_000;

/// Where a load's `source` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Local(PathBuf),
    S3 { bucket: String, key_prefix: String },
}

impl Source {
    /// The forms of §2.2 (`s3://bucket/key`, `https://s3.amazonaws.com/bucket/key`,
    /// `https://s3.<region>.amazonaws.com/bucket/key`), plus a local path or `file://` URI.
    pub fn parse(source: &str) -> Result<Source, String> {
        let s3_path = source.strip_prefix("s3://").or_else(|| {
            let rest = source.strip_prefix("https://")?;
            let (host, path) = rest.split_once('/')?;
            (host == "s3.amazonaws.com"
                || (host.starts_with("s3.") && host.ends_with(".amazonaws.com")))
            .then_some(path)
        });
        if let Some(path) = s3_path {
            let (bucket, key_prefix) = path.split_once('/').unwrap_or((path, ""));
            if bucket.is_empty() {
                return Err(format!("S3 bucket not found for source {source}"));
            }
            return Ok(Source::S3 {
                bucket: bucket.to_owned(),
                key_prefix: key_prefix.to_owned(),
            });
        }
        if source.contains("://") && !source.starts_with("file://") {
            return Err(format!(
                "Invalid source {source}: expected s3://bucket/prefix or a local path"
            ));
        }
        Ok(Source::Local(PathBuf::from(
            source.strip_prefix("file://").unwrap_or(source),
        )))
    }

    /// The files the source names, in key order: every object under the S3 prefix, or the
    /// local file, or every file below the local folder. Local files must be regular files
    /// inside one of `roots` (canonical paths) once `..` and links are resolved.
    pub fn list(
        &self,
        store: &Store,
        sandbox: &Sandbox,
        source: &str,
    ) -> Result<Vec<(String, Location)>, String> {
        if let Source::S3 { bucket, .. } = self {
            sandbox.check_bucket(bucket, source)?;
        }
        let files = self.list_all(store, source)?;
        if matches!(self, Source::Local(_)) {
            for (name, _) in &files {
                sandbox.check_local(std::path::Path::new(name), source)?;
            }
        }
        Ok(files)
    }

    fn list_all(&self, store: &Store, source: &str) -> Result<Vec<(String, Location)>, String> {
        let missing = || format!("The source {source} does not exist/not reachable");
        match self {
            Source::S3 { bucket, key_prefix } => {
                let objects = store.list_key_prefix(bucket, key_prefix).map_err(|e| {
                    if e.0.contains("NoSuchBucket") {
                        format!("S3 bucket not found for source {source}")
                    } else {
                        format!("Unable to perform S3 list operation for {source}: {e}")
                    }
                })?;
                if objects.is_empty() {
                    return Err(missing());
                }
                Ok(objects
                    .into_iter()
                    .map(|o| {
                        let key = o.name[5 + bucket.len() + 1..].to_owned();
                        (
                            o.name,
                            Location::S3 {
                                bucket: bucket.clone(),
                                prefix: key,
                            },
                        )
                    })
                    .collect())
            }
            Source::Local(path) if path.is_file() => Ok(vec![(
                path.display().to_string(),
                Location::Local(path.clone()),
            )]),
            Source::Local(path) if path.is_dir() => {
                let objects = store
                    .list(&Location::Local(path.clone()))
                    .map_err(|e| e.to_string())?;
                if objects.is_empty() {
                    return Err(missing());
                }
                Ok(objects
                    .into_iter()
                    .map(|o| (o.name.clone(), Location::Local(PathBuf::from(o.name))))
                    .collect())
            }
            Source::Local(path) if path.exists() => Err(format!(
                "The source {source} is not a regular file or a folder"
            )),
            Source::Local(_) => Err(missing()),
        }
    }
}

/// An error log message as kept: the loader's own words, which can quote a record's values (a
/// header line, a value of the wrong type, a property's old and new value), only when asked;
/// otherwise a message naming the code. Messages of neptune-local's own (`INTERNAL_ERROR`)
/// quote no data and are kept.
fn withheld(show_values: bool, code: &str, message: String) -> String {
    if show_values || code == "INTERNAL_ERROR" {
        return message;
    }
    format!(
        "{code}: the message is withheld because it can quote the data; neptune-local keeps it \
         with --show-values"
    )
}

/// The worker: owns the graph store and runs loads one at a time.
#[derive(Debug)]
pub(crate) struct Worker {
    pub graph: GraphStore,
    /// What local and S3 sources may be read.
    pub sandbox: Arc<Sandbox>,
    pub storage: Arc<Store>,
    /// Keep the loader's messages, which can quote the data, in the error log; off, a record's
    /// entry keeps its code, file and record number only.
    pub show_values: bool,
    pub jobs: Arc<Jobs>,
}

/// What stopped a load early.
enum Stop {
    Cancelled,
    Failed,
    Store(StoreError),
}

/// A file read and decoded, with its kind once the header is known.
struct LoadFile {
    uri: String,
    text: Result<String, (&'static str, String)>,
}

impl Worker {
    pub fn run(mut self) {
        while let Some((id, request, skip, cancel)) = self.jobs.next() {
            let started = Instant::now();
            // A bug in one load must not stop the worker and leave every later load waiting.
            let executed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.execute(&id, &request, &skip, &cancel)
            }));
            let mut final_status = executed.unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                self.log(
                    &id,
                    "INTERNAL_ERROR",
                    format!("neptune-local failed while loading: {what}"),
                    &request.source,
                    0,
                );
                status::UNEXPECTED_ERROR.to_owned()
            });
            if cancel.load(Ordering::SeqCst) && self.jobs.is_shutting_down() {
                final_status = status::UNEXPECTED_ERROR.to_owned();
                self.jobs.update(&id, false, Load::mark_interrupted);
            }
            self.jobs
                .finish(&id, &final_status, started.elapsed().as_secs_f64());
        }
    }

    fn log(&self, id: &str, code: &str, message: String, file: &str, record: u64) {
        let message = withheld(self.show_values, code, message);
        self.jobs.update(id, false, |load| {
            load.push_error(code, message, file, record)
        });
    }

    fn read(&self, uri: &str, location: &Location) -> Result<String, (&'static str, String)> {
        if self.jobs.faults.take_failing_read() {
            return Err((
                status::S3_READ_ERROR,
                format!("Injected fault: transient read error on {uri}"),
            ));
        }
        let bytes = match location {
            // Opened once and checked on the handle that is read.
            Location::Local(path) => self
                .sandbox
                .read_local(path, uri)
                .map_err(|message| (status::FEED_MODIFIED_OR_DELETED, message)),
            Location::S3 { .. } => self.storage.read(location).map_err(|e| {
                let message = e.to_string();
                let status = if message.contains("AccessDenied") {
                    status::S3_ACCESS_DENIED
                } else if message.contains("NoSuchKey") || message.contains("No such file") {
                    status::FEED_MODIFIED_OR_DELETED
                } else {
                    status::S3_READ_ERROR
                };
                (status, message)
            }),
        }?;
        let lower = uri.to_ascii_lowercase();
        let bytes = if lower.ends_with(".gz") {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .map_err(|e| (status::FAILED, format!("Cannot decompress {uri}: {e}")))?;
            out
        } else if lower.ends_with(".bz2") {
            return Err((
                status::FAILED,
                format!(
                    "{uri}: bzip2 files are not supported by neptune-local (Neptune reads them); use gzip"
                ),
            ));
        } else {
            bytes
        };
        // Neptune reads every file as UTF-8 whatever it holds (§1.1), garbling what is not.
        Ok(match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    fn execute(
        &mut self,
        id: &str,
        request: &LoadRequest,
        skip: &[String],
        cancel: &AtomicBool,
    ) -> String {
        if let Err(e) = self.graph.roll_back_open_transaction() {
            self.log(id, "INTERNAL_ERROR", e.to_string(), &request.source, 0);
            return status::UNEXPECTED_ERROR.to_owned();
        }
        if let Some(injected) = self.jobs.faults.take_failing_load() {
            self.log(
                id,
                "INTERNAL_ERROR",
                format!("Injected fault: this load ends in {injected}"),
                &request.source,
                0,
            );
            return injected;
        }
        let listed = Source::parse(&request.source)
            .and_then(|s| s.list(&self.storage, &self.sandbox, &request.source));
        let listed = match listed {
            Ok(files) => files,
            Err(message) => {
                self.log(id, PARSING_ERROR, message, &request.source, 0);
                return status::INVALID_REQUEST.to_owned();
            }
        };
        // A slow load (fault injection) waits between listing and reading, as a real one spends
        // time between the two; a file changed meanwhile fails its feed.
        let delay = self.jobs.faults.load_delay();
        let until = Instant::now() + delay;
        while Instant::now() < until {
            if cancel.load(Ordering::SeqCst) {
                return status::CANCELLED_BY_USER.to_owned();
            }
            std::thread::sleep(Duration::from_millis(10).min(until - Instant::now()));
        }
        let mut files: Vec<LoadFile> = Vec::new();
        for (uri, location) in listed {
            if skip.contains(&uri) {
                continue;
            }
            let text = self.read(&uri, &location);
            files.push(LoadFile { uri, text });
        }
        // Vertex files before edge files unless edgeOnlyLoad (§1.1); a file whose header cannot
        // be read goes first, so its error shows even when failOnError stops the load.
        if !request.edge_only_load {
            files.sort_by_key(|f| match &f.text {
                Ok(text) => match first_line_kind(text) {
                    Some(FileKind::Edge) => 2,
                    Some(FileKind::Vertex) => 1,
                    None => 0,
                },
                Err(_) => 0,
            });
        }
        let mut failed = false;
        for file in files {
            if cancel.load(Ordering::SeqCst) {
                return status::CANCELLED_BY_USER.to_owned();
            }
            let start = Instant::now();
            let feed_index = {
                let mut index = 0;
                self.jobs.update(id, false, |load| {
                    load.feeds.push(Feed {
                        full_uri: file.uri.clone(),
                        status: status::IN_PROGRESS.to_owned(),
                        start_time: now_seconds(),
                        time_spent: 0.0,
                        counters: Counters::default(),
                    });
                    index = load.feeds.len() - 1;
                });
                index
            };
            let outcome = match &file.text {
                Err((feed_status, message)) => {
                    let code = match *feed_status {
                        status::S3_READ_ERROR => status::S3_READ_ERROR,
                        status::S3_ACCESS_DENIED => "S3_ACCESS_DENIED_ERROR",
                        status::FEED_MODIFIED_OR_DELETED => "FILE_MODIFICATION_OR_DELETION_ERROR",
                        _ => PARSING_ERROR,
                    };
                    self.log(id, code, message.clone(), &file.uri, 0);
                    Err((feed_status.to_string(), Stop::Failed))
                }
                Ok(text) => self
                    .load_text(id, feed_index, request, &file.uri, text, cancel)
                    .map_err(|stop| (status::FAILED.to_owned(), stop)),
            };
            let feed_status = match outcome {
                Ok(()) => status::COMPLETED.to_owned(),
                Err((_, Stop::Cancelled)) => status::CANCELLED_BY_USER.to_owned(),
                Err((_, Stop::Store(e))) => {
                    self.log(id, "INTERNAL_ERROR", e.to_string(), &file.uri, 0);
                    status::UNEXPECTED_ERROR.to_owned()
                }
                Err((feed_status, Stop::Failed)) => feed_status,
            };
            self.jobs.update(id, true, |load| {
                let feed = &mut load.feeds[feed_index];
                feed.status = feed_status.clone();
                feed.time_spent = start.elapsed().as_secs_f64();
            });
            match feed_status.as_str() {
                status::COMPLETED => {}
                status::CANCELLED_BY_USER | status::UNEXPECTED_ERROR => return feed_status,
                _ => {
                    failed = true;
                    if request.fail_on_error {
                        return status::FAILED.to_owned();
                    }
                }
            }
        }
        if failed {
            status::FAILED.to_owned()
        } else {
            status::COMPLETED.to_owned()
        }
    }

    /// Loads one decoded file. `Err(Stop::Failed)` means the file failed: a header error, or
    /// the first error when `failOnError` is TRUE.
    fn load_text(
        &mut self,
        id: &str,
        feed_index: usize,
        request: &LoadRequest,
        uri: &str,
        text: &str,
        cancel: &AtomicBool,
    ) -> Result<(), Stop> {
        let show_values = self.show_values;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut records = Records::new(text);
        let header = match records.next() {
            None => Err("The file is empty: it has no header row".to_owned()),
            Some(Err(e)) => Err(e.to_string()),
            Some(Ok(record)) => {
                let fields: Vec<&str> = record.fields.iter().map(|f| f.text.as_ref()).collect();
                Header::parse(&fields).map_err(|e| format!("Invalid header: {e}"))
            }
        };
        let header = match header {
            Ok(header) => header,
            Err(message) => {
                self.jobs.update(id, false, |load| {
                    let c = Counters {
                        total_records: 1,
                        parsing_errors: 1,
                        ..Counters::default()
                    };
                    load.feeds[feed_index].counters.add(&c);
                    load.counters.add(&c);
                    load.push_error(
                        PARSING_ERROR,
                        withheld(show_values, PARSING_ERROR, message),
                        uri,
                        1,
                    );
                });
                return Err(Stop::Failed);
            }
        };
        let plan = RowPlan::new(&header, request);
        let mut counters = Counters::default();
        let mut errors: Vec<ErrorLog> = Vec::new();
        let flush = |jobs: &Jobs, counters: &mut Counters, errors: &mut Vec<ErrorLog>| {
            jobs.update(id, false, |load| {
                load.feeds[feed_index].counters.add(counters);
                load.counters.add(counters);
                for e in errors.drain(..) {
                    let message = withheld(show_values, &e.error_code, e.error_message);
                    load.push_error(&e.error_code, message, &e.file_name, e.record_num);
                }
            });
            *counters = Counters::default();
        };
        self.graph.begin().map_err(Stop::Store)?;
        let mut rows = 0usize;
        let mut result = Ok(());
        for record in records {
            rows += 1;
            if rows.is_multiple_of(BATCH_ROWS) {
                self.graph.commit().map_err(Stop::Store)?;
                flush(&self.jobs, &mut counters, &mut errors);
                if cancel.load(Ordering::SeqCst) {
                    return Err(Stop::Cancelled);
                }
                self.graph.begin().map_err(Stop::Store)?;
            }
            let mut error = |code: &str, message: String, line: u64| {
                errors.push(ErrorLog {
                    error_code: code.to_owned(),
                    error_message: message,
                    file_name: uri.to_owned(),
                    record_num: line,
                });
            };
            let record = match record {
                Ok(record) => record,
                Err(e) => {
                    counters.total_records += 1;
                    counters.parsing_errors += 1;
                    error(PARSING_ERROR, format!("Parsing error: {e}"), e.line());
                    if request.fail_on_error {
                        result = Err(Stop::Failed);
                        break;
                    }
                    continue;
                }
            };
            let row = match plan.row(&record.fields) {
                Ok(row) => row,
                Err(message) => {
                    counters.total_records += 1;
                    counters.parsing_errors += 1;
                    error(PARSING_ERROR, message, record.line);
                    if request.fail_on_error {
                        result = Err(Stop::Failed);
                        break;
                    }
                    continue;
                }
            };
            counters.total_records += 1 + row.properties.len() as u64 + row.mismatches.len() as u64;
            counters.datatype_mismatch_errors += row.mismatches.len() as u64;
            for message in &row.mismatches {
                error(PARSING_ERROR, message.clone(), record.line);
            }
            if !row.mismatches.is_empty() && request.fail_on_error {
                result = Err(Stop::Failed);
                break;
            }
            let update = request.update_single_cardinality_properties;
            let applied = match &row.edge {
                None => self
                    .graph
                    .apply_vertex(&row.id, &row.labels, &row.properties, update),
                Some((from, to)) => self.graph.apply_edge(
                    &row.id,
                    &row.labels[0],
                    from,
                    to,
                    &row.properties,
                    update,
                ),
            }
            .map_err(Stop::Store)?;
            let mut insert_failed = false;
            for outcome in applied {
                match outcome {
                    Applied::New => {}
                    Applied::Duplicate => counters.total_duplicates += 1,
                    Applied::Failed(code, message) => {
                        counters.insert_errors += 1;
                        error(code, message, record.line);
                        insert_failed = true;
                    }
                }
            }
            if insert_failed && request.fail_on_error {
                result = Err(Stop::Failed);
                break;
            }
        }
        self.graph.commit().map_err(Stop::Store)?;
        flush(&self.jobs, &mut counters, &mut errors);
        result
    }
}

/// The kind of file a first line announces, if it parses as a header.
fn first_line_kind(text: &str) -> Option<FileKind> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let record = Records::new(text).next()?.ok()?;
    let fields: Vec<&str> = record.fields.iter().map(|f| f.text.as_ref()).collect();
    Header::parse(&fields).ok().map(|h| h.kind)
}

/// A data row, checked and converted.
struct Row {
    id: String,
    labels: Vec<String>,
    edge: Option<(String, String)>,
    properties: Vec<PropertyValues>,
    /// Properties whose value does not fit the column type (§1.4): not loaded.
    mismatches: Vec<String>,
}

/// How to read the rows of one file, worked out once from its header.
struct RowPlan<'h> {
    header: &'h Header,
    id: usize,
    label: Option<usize>,
    ends: Option<(usize, usize)>,
    allow_empty_strings: bool,
}

impl<'h> RowPlan<'h> {
    fn new(header: &'h Header, request: &LoadRequest) -> RowPlan<'h> {
        let at = |c: &Column| header.position(c);
        RowPlan {
            header,
            id: at(&Column::Id).unwrap_or(0),
            label: at(&Column::Label),
            ends: at(&Column::From).zip(at(&Column::To)),
            allow_empty_strings: request.allow_empty_strings(),
        }
    }

    /// Checks a row against the rules of §1; `Err` is a parsing error's message.
    fn row(&self, fields: &[Field<'_>]) -> Result<Row, String> {
        let columns = &self.header.columns;
        if fields.len() != columns.len() {
            return Err(format!(
                "Record has {} columns than header ({} against {})",
                if fields.len() > columns.len() {
                    "more"
                } else {
                    "fewer"
                },
                fields.len(),
                columns.len()
            ));
        }
        let required = |at: usize, name: &str| -> Result<String, String> {
            let field = &fields[at];
            if field.is_blank() {
                return Err(format!("Required column {name} is blank"));
            }
            Ok(unquoted_trim(field).into_owned())
        };
        let id = required(self.id, "~id")?;
        let edge = match self.ends {
            Some((from, to)) => Some((required(from, "~from")?, required(to, "~to")?)),
            None => None,
        };
        let labels = match self.label {
            None => vec![if edge.is_some() { "edge" } else { "vertex" }.to_owned()],
            Some(at) => split_values(&unquoted_trim(&fields[at])),
        };
        if labels.iter().any(String::is_empty) {
            return Err("Label is empty: ~label must not be empty".into());
        }
        if edge.is_some() && labels.len() > 1 {
            return Err(format!(
                "An edge has exactly one label; this record gives {}",
                labels.len()
            ));
        }
        let mut properties = Vec::new();
        let mut mismatches = Vec::new();
        for (column, field) in columns.iter().zip(fields) {
            let Column::Property(p) = column else {
                continue;
            };
            match self.property(p, field, edge.is_some()) {
                Ok(Some(values)) => properties.push(values),
                Ok(None) => {}
                Err(message) => mismatches.push(message),
            }
        }
        Ok(Row {
            id,
            labels,
            edge,
            properties,
            mismatches,
        })
    }

    /// The values of one property field, `None` when it holds none.
    fn property(
        &self,
        column: &PropertyColumn,
        field: &Field<'_>,
        edge: bool,
    ) -> Result<Option<PropertyValues>, String> {
        if field.is_blank() {
            return Ok(None);
        }
        let text = unquoted_trim(field);
        if text.is_empty() && !(self.allow_empty_strings && column.ty == ValueType::String) {
            // `""` is null unless allowEmptyStrings (§1.10).
            return Ok(None);
        }
        let raw = if column.array {
            split_values(&text)
        } else {
            // Outside arrays only `\;` is unescaped: the writer escapes `;` in every string.
            vec![text.replace("\\;", ";")]
        };
        let mut values = Vec::with_capacity(raw.len());
        for value in raw {
            if value.is_empty() && column.ty != ValueType::String {
                continue;
            }
            if value.is_empty() && !self.allow_empty_strings {
                continue;
            }
            values.push(stored_value(column, &value)?);
        }
        if values.is_empty() {
            return Ok(None);
        }
        Ok(Some(PropertyValues {
            name: column.name.clone(),
            type_name: column.ty.name(),
            single: edge || column.cardinality == Some(Cardinality::Single),
            values,
        }))
    }
}

/// Unquoted fields lose the spaces next to their delimiters (§1.6).
fn unquoted_trim<'a>(field: &'a Field<'_>) -> Cow<'a, str> {
    if field.quoted {
        Cow::Borrowed(field.text.as_ref())
    } else {
        Cow::Borrowed(field.text.trim_matches(' '))
    }
}

/// The value as stored: integers in canonical form, dates as `yyyy-MM-ddTHH:mm:ssZ`, Bools as
/// Neptune reads them (anything but `true` is false, §1.4).
fn stored_value(column: &PropertyColumn, value: &str) -> Result<String, String> {
    match check_value(column.ty, value) {
        Ok(()) | Err(ValueProblem::Silent(_)) => {}
        Err(ValueProblem::Mismatch(m)) => {
            return Err(format!("Datatype mismatch in column {}: {m}", column.name));
        }
    }
    Ok(match column.ty {
        ValueType::Bool => (value == "true").to_string(),
        ValueType::Byte | ValueType::Short | ValueType::Int | ValueType::Long => value
            .parse::<i64>()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| value.to_owned()),
        ValueType::Date => {
            let mut out = value.trim_end_matches('Z').to_owned();
            match out.len() {
                10 => out.push_str("T00:00:00"),
                16 => out.push_str(":00"),
                _ => {}
            }
            out.push('Z');
            out
        }
        _ => value.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_take_the_documented_forms() {
        let s3 = |b: &str, k: &str| Source::S3 {
            bucket: b.into(),
            key_prefix: k.into(),
        };
        assert_eq!(Source::parse("s3://b/run/v/"), Ok(s3("b", "run/v/")));
        assert_eq!(
            Source::parse("https://s3.amazonaws.com/b/k"),
            Ok(s3("b", "k"))
        );
        assert_eq!(
            Source::parse("https://s3.eu-west-1.amazonaws.com/b/k"),
            Ok(s3("b", "k"))
        );
        assert_eq!(
            Source::parse("file:///tmp/x"),
            Ok(Source::Local(PathBuf::from("/tmp/x")))
        );
        assert!(Source::parse("s3:///k").is_err());
        assert!(Source::parse("ftp://host/x").is_err());
    }

    #[test]
    fn values_are_stored_canonically() {
        let column = |ty| PropertyColumn::new("p", ty, None);
        assert_eq!(stored_value(&column(ValueType::Int), "+7"), Ok("7".into()));
        assert_eq!(
            stored_value(&column(ValueType::Date), "2021-08-12"),
            Ok("2021-08-12T00:00:00Z".into())
        );
        assert_eq!(
            stored_value(&column(ValueType::Bool), "TRUE"),
            Ok("false".into())
        );
        assert!(stored_value(&column(ValueType::Byte), "200").is_err());
    }
}
