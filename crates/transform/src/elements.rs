//! The heart of the transform: source rows to vertex and edge rows, by the mapping. No I/O.
//!
//! A chunk of a source file goes in; out come its rejects (with file, line, column and reason),
//! a hash of every good row (to count exact duplicates across the dataset), and per label the
//! vertex and edge rows it yields, each with its source sequence number so that merging can let
//! the latest value win.

use std::borrow::Cow;
use std::collections::HashSet;

use gremlin_csv::{Record, Records};
use idgraph_core::{Dataset, DatasetSchema};
use xxhash_rust::xxh3::Xxh3;

use crate::ids::{edge_id, vertex_id};
use crate::mapping::Mapping;
use crate::source::{convert, sequence};

/// A row that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub dataset: Dataset,
    pub file: String,
    pub line: u64,
    /// The column at fault, when one is.
    pub column: Option<String>,
    pub reason: String,
}

/// Vertex rows of one label, column by column.
#[derive(Debug, Default)]
pub struct VertexRows {
    pub ids: Vec<u128>,
    pub seqs: Vec<u64>,
    pub keys: Vec<String>,
    /// `props[p][row]`, in the label's property order.
    pub props: Vec<Vec<Option<String>>>,
}

/// Edge rows of one label, column by column.
#[derive(Debug, Default)]
pub struct EdgeRows {
    pub ids: Vec<u128>,
    pub seqs: Vec<u64>,
    pub from: Vec<u128>,
    pub to: Vec<u128>,
    pub props: Vec<Vec<Option<String>>>,
}

impl VertexRows {
    fn with_properties(n: usize) -> VertexRows {
        VertexRows {
            props: vec![Vec::new(); n],
            ..VertexRows::default()
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn append(&mut self, mut other: VertexRows) {
        self.ids.append(&mut other.ids);
        self.seqs.append(&mut other.seqs);
        self.keys.append(&mut other.keys);
        for (mine, theirs) in self.props.iter_mut().zip(other.props) {
            mine.extend(theirs);
        }
    }
}

impl EdgeRows {
    fn with_properties(n: usize) -> EdgeRows {
        EdgeRows {
            props: vec![Vec::new(); n],
            ..EdgeRows::default()
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn append(&mut self, mut other: EdgeRows) {
        self.ids.append(&mut other.ids);
        self.seqs.append(&mut other.seqs);
        self.from.append(&mut other.from);
        self.to.append(&mut other.to);
        for (mine, theirs) in self.props.iter_mut().zip(other.props) {
            mine.extend(theirs);
        }
    }
}

/// What one chunk of a source file yields.
#[derive(Debug)]
pub struct ChunkOutput {
    /// Records read (good and rejected).
    pub rows: u64,
    pub rejects: Vec<Reject>,
    /// One hash per good row, in order.
    pub row_hashes: Vec<u128>,
    /// Indexed by vertex label.
    pub vertices: Vec<VertexRows>,
    /// Indexed by edge label.
    pub edges: Vec<EdgeRows>,
}

/// One chunk of one source file.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    pub dataset: Dataset,
    pub schema: &'a DatasetSchema,
    pub file: &'a str,
    pub file_index: usize,
    pub text: &'a str,
    pub first_line: u64,
    /// The file was not valid UTF-8; rows holding a replacement character are rejected.
    pub lossy: bool,
}

/// Parses one chunk and maps its rows to graph elements.
pub fn map_chunk(mapping: &Mapping, chunk: Chunk<'_>) -> ChunkOutput {
    let rules = mapping.rules(chunk.dataset);
    let mut out = ChunkOutput {
        rows: 0,
        rejects: Vec::new(),
        row_hashes: Vec::new(),
        vertices: mapping
            .vertices
            .iter()
            .map(|v| VertexRows::with_properties(v.properties.len()))
            .collect(),
        edges: mapping
            .edges
            .iter()
            .map(|e| EdgeRows::with_properties(e.properties.len()))
            .collect(),
    };
    // Rows that carry no properties repeat a lot (every profile names its country): keep one
    // per chunk. Rows with properties are all kept, for the merge to pick the latest value.
    let mut plain_vertices: HashSet<u128> = HashSet::new();
    let mut plain_edges: HashSet<u128> = HashSet::new();
    let width = chunk.schema.columns.len();

    for record in Records::new(chunk.text) {
        out.rows += 1;
        let reject = |line: u64, column: Option<String>, reason: String| Reject {
            dataset: chunk.dataset,
            file: chunk.file.to_owned(),
            line,
            column,
            reason,
        };
        let record: Record<'_> = match record {
            Ok(record) => record,
            Err(e) => {
                out.rejects
                    .push(reject(chunk.first_line + e.line() - 1, None, e.to_string()));
                continue;
            }
        };
        let line = chunk.first_line + record.line - 1;
        if record.fields.len() != width {
            out.rejects.push(reject(
                line,
                None,
                format!("expected {width} fields, found {}", record.fields.len()),
            ));
            continue;
        }
        let mut values: Vec<Option<Cow<'_, str>>> = Vec::with_capacity(width);
        let mut problem = None;
        for (i, (column, field)) in chunk.schema.columns.iter().zip(&record.fields).enumerate() {
            if chunk.lossy && field.text.contains('\u{FFFD}') {
                problem = Some((
                    column.name.clone(),
                    format!("column {} is not valid UTF-8", column.name),
                ));
                break;
            }
            match convert(column, field, rules.int32_columns.binary_search(&i).is_ok()) {
                Ok(value) => values.push(value),
                Err(reason) => {
                    problem = Some((column.name.clone(), reason));
                    break;
                }
            }
        }
        if let Some((column, reason)) = problem {
            out.rejects.push(reject(line, Some(column), reason));
            continue;
        }
        let value = |i: usize| values[i].as_deref().unwrap_or("");

        let mut hasher = Xxh3::new();
        for v in &values {
            match v {
                Some(v) => {
                    hasher.update(&[1]);
                    hasher.update(v.as_bytes());
                }
                None => hasher.update(&[0]),
            }
            hasher.update(&[0x1f]);
        }
        out.row_hashes.push(hasher.digest128());
        let seq = sequence(chunk.dataset, chunk.file_index, line);

        for rule in &rules.vertices {
            let label = &mapping.vertices[rule.label];
            let key = label.normalise.apply(value(rule.key_column));
            if key.is_empty() {
                continue;
            }
            let rows = &mut out.vertices[rule.label];
            rows.ids.push(vertex_id(&label.name, &key));
            rows.seqs.push(seq);
            rows.keys.push(key.into_owned());
            for (p, column) in rows.props.iter_mut().enumerate() {
                let source = rule.properties.iter().find(|s| s.property == p);
                column.push(source.and_then(|s| values[s.column].as_deref().map(str::to_owned)));
            }
        }

        for rule in &rules.edges {
            let from_raw = value(rule.from.column);
            if let Some(condition) = rule.from.when
                && !condition.holds(from_raw)
            {
                continue;
            }
            let (from_label, to_label) = (
                &mapping.vertices[rule.from.label],
                &mapping.vertices[rule.to.label],
            );
            let from_key = from_label.normalise.apply(from_raw);
            let to_key = to_label.normalise.apply(value(rule.to.column));
            if from_key.is_empty() || to_key.is_empty() {
                continue;
            }
            let from = vertex_id(&from_label.name, &from_key);
            let to = vertex_id(&to_label.name, &to_key);
            // Both endpoints belong to this batch, so every batch is closed.
            for (label_index, id, key) in [
                (rule.from.label, from, &from_key),
                (rule.to.label, to, &to_key),
            ] {
                if plain_vertices.insert(id) {
                    let rows = &mut out.vertices[label_index];
                    rows.ids.push(id);
                    rows.seqs.push(seq);
                    rows.keys.push(key.to_string());
                    for column in &mut rows.props {
                        column.push(None);
                    }
                }
            }
            let edge_label = &mapping.edges[rule.label];
            let keys: Vec<&str> = rule.key_columns.iter().map(|&c| value(c)).collect();
            let id = edge_id(&edge_label.name, from, to, &keys);
            if rule.properties.is_empty() && !plain_edges.insert(id) {
                continue;
            }
            let rows = &mut out.edges[rule.label];
            rows.ids.push(id);
            rows.seqs.push(seq);
            rows.from.push(from);
            rows.to.push(to);
            for (p, column) in rows.props.iter_mut().enumerate() {
                let source = rule.properties.iter().find(|s| s.property == p);
                column.push(source.and_then(|s| values[s.column].as_deref().map(str::to_owned)));
            }
        }
    }
    out
}
