//! Writing merged labels as Gremlin CSV files (neptune-reference.md §1.15): one header per file,
//! typed property columns, Neptune quoting and escaping, rows sorted by id, files split at a size
//! limit, optionally gzipped; each file's SHA-256 for the manifest.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use gremlin_csv::{
    Column as HeaderColumn, PropertyColumn, ValueType, push_field, push_string_value,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Error;
use crate::frames::{MergedEdges, MergedVertices};
use crate::ids::push_id;
use crate::mapping::{EdgeLabel, VertexLabel};

/// One graph file, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GraphFile {
    /// Relative to the batch folder: `vertices/User-00000.csv`.
    pub path: String,
    /// `vertex` or `edge`.
    pub kind: &'static str,
    pub label: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// Counts and hashes what goes to the file.
struct Hashing<W: Write> {
    inner: W,
    sha: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

enum Sink {
    Plain(BufWriter<Hashing<File>>),
    Gzip(flate2::write::GzEncoder<BufWriter<Hashing<File>>>),
}

struct Part {
    sink: Sink,
    path: String,
    rows: u64,
    text_bytes: u64,
}

/// Writes the rows of one label into numbered parts of at most `limit` bytes of text.
struct PartWriter<'a> {
    dir: &'a Path,
    stem: String,
    label: String,
    kind: &'static str,
    header: String,
    gzip: bool,
    limit: u64,
    next_part: usize,
    current: Option<Part>,
    done: Vec<GraphFile>,
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Output(format!("cannot write {}: {e}", path.display()))
}

impl<'a> PartWriter<'a> {
    fn new(
        dir: &'a Path,
        kind: &'static str,
        label: &str,
        columns: Vec<HeaderColumn>,
        limit: u64,
        gzip: bool,
    ) -> Self {
        let folder = if kind == "vertex" {
            "vertices"
        } else {
            "edges"
        };
        PartWriter {
            dir,
            stem: format!("{folder}/{label}"),
            label: label.to_owned(),
            kind,
            header: header(columns),
            gzip,
            limit,
            next_part: 0,
            current: None,
            done: Vec::new(),
        }
    }

    fn open(&mut self) -> Result<Part, Error> {
        let ext = if self.gzip { "csv.gz" } else { "csv" };
        let relative = format!("{}-{:05}.{ext}", self.stem, self.next_part);
        self.next_part += 1;
        let path: PathBuf = self.dir.join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
        }
        let file = File::create(&path).map_err(|e| io_error(&path, e))?;
        let hashing = Hashing {
            inner: file,
            sha: Sha256::new(),
            bytes: 0,
        };
        let buffered = BufWriter::with_capacity(1 << 20, hashing);
        let mut sink = if self.gzip {
            // mtime 0: the same rows give the same bytes on every run.
            Sink::Gzip(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .write(buffered, flate2::Compression::new(6)),
            )
        } else {
            Sink::Plain(buffered)
        };
        let header = format!("{}\n", self.header);
        match &mut sink {
            Sink::Plain(w) => w.write_all(header.as_bytes()),
            Sink::Gzip(w) => w.write_all(header.as_bytes()),
        }
        .map_err(|e| io_error(&path, e))?;
        Ok(Part {
            sink,
            path: relative,
            rows: 0,
            text_bytes: header.len() as u64,
        })
    }

    fn row(&mut self, line: &str) -> Result<(), Error> {
        let full = self
            .current
            .as_ref()
            .is_some_and(|p| p.rows > 0 && p.text_bytes + line.len() as u64 > self.limit);
        if full {
            self.close()?;
        }
        if self.current.is_none() {
            let part = self.open()?;
            self.current = Some(part);
        }
        if let Some(part) = &mut self.current {
            let result = match &mut part.sink {
                Sink::Plain(w) => w.write_all(line.as_bytes()),
                Sink::Gzip(w) => w.write_all(line.as_bytes()),
            };
            result.map_err(|e| io_error(&self.dir.join(&part.path), e))?;
            part.rows += 1;
            part.text_bytes += line.len() as u64;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), Error> {
        let Some(part) = self.current.take() else {
            return Ok(());
        };
        let path = self.dir.join(&part.path);
        let buffered = match part.sink {
            Sink::Plain(w) => w,
            Sink::Gzip(w) => w.finish().map_err(|e| io_error(&path, e))?,
        };
        let hashing = buffered
            .into_inner()
            .map_err(|e| io_error(&path, e.into_error()))?;
        self.done.push(GraphFile {
            path: part.path,
            kind: self.kind,
            label: self.label.clone(),
            rows: part.rows,
            bytes: hashing.bytes,
            sha256: format!("{:x}", hashing.sha.finalize()),
        });
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<GraphFile>, Error> {
        if self.current.is_none() && self.done.is_empty() {
            // A label with no rows still gets its (header-only) file: the set of files of a
            // batch does not depend on its data.
            let part = self.open()?;
            self.current = Some(part);
        }
        self.close()?;
        Ok(self.done)
    }
}

fn push_property(out: &mut String, ty: ValueType, value: Option<&str>) {
    out.push(',');
    match value {
        None => {}
        Some(v) if ty == ValueType::String => push_string_value(out, v),
        Some(v) => push_field(out, v),
    }
}

fn header(columns: Vec<HeaderColumn>) -> String {
    columns
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Writes one vertex label under `dir/vertices/`.
pub fn write_vertices(
    dir: &Path,
    label: &VertexLabel,
    merged: &MergedVertices,
    limit: u64,
    gzip: bool,
) -> Result<Vec<GraphFile>, Error> {
    let mut columns = vec![
        HeaderColumn::Id,
        HeaderColumn::Label,
        HeaderColumn::Property(PropertyColumn::new(
            label.key_property.clone(),
            ValueType::String,
            Some(gremlin_csv::Cardinality::Single),
        )),
    ];
    columns.extend(label.properties.iter().cloned().map(HeaderColumn::Property));
    let mut writer = PartWriter::new(dir, "vertex", &label.name, columns, limit, gzip);
    let mut line = String::with_capacity(512);
    for (row, &id) in merged.ids.iter().enumerate() {
        line.clear();
        push_id(&mut line, id);
        line.push(',');
        push_field(&mut line, &label.name);
        line.push(',');
        let (key, values) = merged.element(row);
        push_string_value(&mut line, key);
        for (property, value) in label.properties.iter().zip(values) {
            push_property(&mut line, property.ty, value);
        }
        line.push('\n');
        writer.row(&line)?;
    }
    writer.finish()
}

/// Writes one edge label under `dir/edges/`.
pub fn write_edges(
    dir: &Path,
    label: &EdgeLabel,
    merged: &MergedEdges,
    limit: u64,
    gzip: bool,
) -> Result<Vec<GraphFile>, Error> {
    let mut columns = vec![
        HeaderColumn::Id,
        HeaderColumn::From,
        HeaderColumn::To,
        HeaderColumn::Label,
    ];
    columns.extend(label.properties.iter().cloned().map(HeaderColumn::Property));
    let mut writer = PartWriter::new(dir, "edge", &label.name, columns, limit, gzip);
    let mut line = String::with_capacity(256);
    for (row, &id) in merged.ids.iter().enumerate() {
        line.clear();
        push_id(&mut line, id);
        line.push(',');
        push_id(&mut line, merged.from[row]);
        line.push(',');
        push_id(&mut line, merged.to[row]);
        line.push(',');
        push_field(&mut line, &label.name);
        // Most edge labels have none: finding the row of an edge's values would be wasted.
        if !label.properties.is_empty() {
            for (property, value) in label.properties.iter().zip(merged.properties(row)) {
                push_property(&mut line, property.ty, value);
            }
        }
        line.push('\n');
        writer.row(&line)?;
    }
    writer.finish()
}
