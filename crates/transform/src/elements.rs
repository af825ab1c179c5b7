//! The heart of the transform: source rows to vertex and edge rows, by the mapping. No I/O.
//!
//! A chunk of a source file goes in; out come its rejects (with file, line, column and reason),
//! a hash of every good row (to count exact duplicates across the dataset), and per label the
//! vertex and edge rows it yields, in source order (dataset, file, line), so that merging can
//! let the latest value win.

use std::borrow::Cow;

use gremlin_csv::{Record, Records};
use idgraph_core::{Dataset, DatasetSchema};
use xxhash_rust::xxh3::Xxh3;

use crate::ids::{IdSet, edge_id, vertex_id};
use crate::mapping::{Mapping, PropertySource};
use crate::source::{FieldProblem, convert, rule};

/// A row that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub dataset: Dataset,
    pub file: String,
    pub line: u64,
    /// The column at fault, when one is.
    pub column: Option<String>,
    /// The rule the row breaks, without its value: what messages and logs print.
    pub rule: &'static str,
    /// The rule with the value quoted: what `rejects.csv` holds.
    pub reason: String,
}

impl Reject {
    /// `file:line: column C: rule` (no value), or with the reason and its value when asked.
    pub fn summary(&self, show_values: bool) -> String {
        let what = if show_values {
            self.reason.clone()
        } else {
            match &self.column {
                Some(column) => format!("column {column}: {}", self.rule),
                None => self.rule.to_owned(),
            }
        };
        format!("{}:{}: {what}", self.file, self.line)
    }
}

/// The text values of a block of rows, row by row: each row's fields end to end in one string.
/// A run holds tens of millions of values, and a `String` each cost an allocation plus 24 bytes
/// (measured: a fifth of the run's time went to the allocator and to faulting in memory); and
/// the writer, which visits rows in id order, finds all of a row's values in one place.
/// An empty value is no value, as it is in the Gremlin CSV written from it.
#[derive(Debug, Default)]
pub struct FieldRows {
    /// Fields per row.
    width: usize,
    text: String,
    /// Where each row starts in `text`.
    starts: Vec<usize>,
    /// `lens[row * width + field]`: the field's length in bytes, 0 for no value.
    lens: Vec<u32>,
}

impl FieldRows {
    pub fn new(width: usize) -> FieldRows {
        FieldRows {
            width,
            ..FieldRows::default()
        }
    }

    /// Appends a row of `width` fields (missing ones are no value). A field must be shorter
    /// than 4 GiB (`map_chunk` rejects fields over `MAX_FIELD_BYTES`).
    pub fn push_row<'v>(&mut self, fields: impl IntoIterator<Item = Option<&'v str>>) {
        if self.width == 0 {
            // Most edge labels have no properties: nothing to record, not even where a row starts.
            return;
        }
        self.starts.push(self.text.len());
        let mut n = 0;
        for field in fields.into_iter().take(self.width) {
            let field = field.unwrap_or_default();
            self.text.push_str(field);
            self.lens.push(u32::try_from(field.len()).unwrap_or(0));
            n += 1;
        }
        self.lens.resize(self.lens.len() + (self.width - n), 0);
    }

    pub fn has_value(&self, row: usize, field: usize) -> bool {
        self.lens[row * self.width + field] > 0
    }

    /// The fields of `row`, in order.
    pub fn row(&self, row: usize) -> impl Iterator<Item = Option<&str>> {
        let mut at = self.starts.get(row).copied().unwrap_or_default();
        let lens = self
            .lens
            .get(row * self.width..(row + 1) * self.width)
            .unwrap_or_default();
        lens.iter().map(move |&len| {
            let start = at;
            at += len as usize;
            (len > 0).then(|| &self.text[start..at])
        })
    }

    /// One field of `row`.
    pub fn field(&self, row: usize, field: usize) -> Option<&str> {
        self.row(row).nth(field).flatten()
    }
}

/// Vertex rows of one label.
#[derive(Debug, Default)]
pub struct VertexRows {
    pub ids: Vec<u128>,
    /// Per row, the normalised key and then the label's properties in order.
    pub fields: FieldRows,
}

/// Edge rows of one label.
#[derive(Debug, Default)]
pub struct EdgeRows {
    pub ids: Vec<u128>,
    pub from: Vec<u128>,
    pub to: Vec<u128>,
    /// Per row, the label's properties in order.
    pub fields: FieldRows,
}

impl VertexRows {
    fn with_properties(n: usize) -> VertexRows {
        VertexRows {
            ids: Vec::new(),
            fields: FieldRows::new(1 + n),
        }
    }
}

impl EdgeRows {
    fn with_properties(n: usize) -> EdgeRows {
        EdgeRows {
            ids: Vec::new(),
            from: Vec::new(),
            to: Vec::new(),
            fields: FieldRows::new(n),
        }
    }
}

/// The longest field taken (1 GiB): with normalisation (which can lengthen Unicode text up to
/// three times) a value stays under the 4 GiB that `FieldRows` records.
const MAX_FIELD_BYTES: usize = 1 << 30;

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
    pub text: &'a str,
    pub first_line: u64,
    /// The file was not valid UTF-8; rows holding a replacement character are rejected.
    pub lossy: bool,
}

/// A row's values for the properties of a label, in the label's order: the value of the column
/// that fills each, or none.
fn property_values<'v>(
    count: usize,
    sources: &'v [PropertySource],
    values: &'v [Option<Cow<'_, str>>],
) -> impl Iterator<Item = Option<&'v str>> {
    (0..count).map(move |p| {
        sources
            .iter()
            .find(|s| s.property == p)
            .and_then(|s| values[s.column].as_deref())
    })
}

/// A row's key for one vertex label: normalised, and its id.
struct ResolvedKey<'a> {
    label: usize,
    column: usize,
    key: Cow<'a, str>,
    id: u128,
}

/// The position in `resolved` of the row's key for `label` from `column`, computed on first
/// use; `None` when the key is empty after normalisation (no vertex, no edge).
fn resolve<'a>(
    resolved: &mut Vec<ResolvedKey<'a>>,
    mapping: &Mapping,
    label: usize,
    column: usize,
    raw: &'a str,
) -> Option<usize> {
    let at = match resolved
        .iter()
        .position(|k| k.label == label && k.column == column)
    {
        Some(at) => at,
        None => {
            let vertex = &mapping.vertices[label];
            let key = vertex.normalise.apply(raw);
            let id = if key.is_empty() {
                0
            } else {
                vertex_id(&vertex.name, &key)
            };
            resolved.push(ResolvedKey {
                label,
                column,
                key,
                id,
            });
            resolved.len() - 1
        }
    };
    (!resolved[at].key.is_empty()).then_some(at)
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
    // Sized for the datagen datasets (measured: 25 to 100 bytes of source text per entry), so
    // that the sets rarely grow while filling.
    let expected = chunk.text.len() / 32;
    let mut plain_vertices = IdSet::with_capacity_and_hasher(expected, Default::default());
    let mut plain_edges = IdSet::with_capacity_and_hasher(expected, Default::default());
    let width = chunk.schema.columns.len();

    for record in Records::starting_at(chunk.text, chunk.first_line) {
        out.rows += 1;
        let reject =
            |line: u64, column: Option<String>, rule: &'static str, reason: String| Reject {
                dataset: chunk.dataset,
                file: chunk.file.to_owned(),
                line,
                column,
                rule,
                reason,
            };
        let record: Record<'_> = match record {
            Ok(record) => record,
            Err(e) => {
                out.rejects
                    .push(reject(e.line(), None, rule::MALFORMED, e.to_string()));
                continue;
            }
        };
        let line = record.line;
        if record.fields.len() != width {
            out.rejects.push(reject(
                line,
                None,
                rule::FIELD_COUNT,
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
                    FieldProblem {
                        rule: rule::NOT_UTF8,
                        reason: format!("column {} is not valid UTF-8", column.name),
                    },
                ));
                break;
            }
            if field.text.len() > MAX_FIELD_BYTES {
                problem = Some((
                    column.name.clone(),
                    FieldProblem {
                        rule: rule::TOO_LONG,
                        reason: format!(
                            "column {}: a value of {} bytes; at most {MAX_FIELD_BYTES} are taken",
                            column.name,
                            field.text.len()
                        ),
                    },
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
        if let Some((column, problem)) = problem {
            out.rejects
                .push(reject(line, Some(column), problem.rule, problem.reason));
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

        // Each (label, column) key of the row is normalised and hashed once, however many
        // rules use it (a profile's user name feeds seven).
        let mut resolved: Vec<ResolvedKey<'_>> = Vec::with_capacity(8);
        for rule in &rules.vertices {
            let raw = value(rule.key_column);
            let Some(k) = resolve(&mut resolved, mapping, rule.label, rule.key_column, raw) else {
                continue;
            };
            // The vertex is in this chunk now: its use as an endpoint adds no row.
            plain_vertices.insert(resolved[k].id);
            let rows = &mut out.vertices[rule.label];
            rows.ids.push(resolved[k].id);
            let properties = rows.fields.width - 1;
            rows.fields.push_row(
                std::iter::once(Some(resolved[k].key.as_ref())).chain(property_values(
                    properties,
                    &rule.properties,
                    &values,
                )),
            );
        }

        for rule in &rules.edges {
            let from_raw = value(rule.from.column);
            if let Some(condition) = rule.from.when
                && !condition.holds(from_raw)
            {
                continue;
            }
            let to_raw = value(rule.to.column);
            let Some(f) = resolve(
                &mut resolved,
                mapping,
                rule.from.label,
                rule.from.column,
                from_raw,
            ) else {
                continue;
            };
            let Some(t) = resolve(
                &mut resolved,
                mapping,
                rule.to.label,
                rule.to.column,
                to_raw,
            ) else {
                continue;
            };
            let (from, to) = (resolved[f].id, resolved[t].id);
            // Both endpoints belong to this batch, so every batch is closed.
            for (label_index, k) in [(rule.from.label, f), (rule.to.label, t)] {
                if plain_vertices.insert(resolved[k].id) {
                    let rows = &mut out.vertices[label_index];
                    rows.ids.push(resolved[k].id);
                    rows.fields.push_row([Some(resolved[k].key.as_ref())]);
                }
            }
            let edge_label = &mapping.edges[rule.label];
            let relation: Vec<&str> = rule.key_columns.iter().map(|&c| value(c)).collect();
            let id = edge_id(&edge_label.name, from, to, &relation);
            if rule.properties.is_empty() && !plain_edges.insert(id) {
                continue;
            }
            let rows = &mut out.edges[rule.label];
            rows.ids.push(id);
            rows.from.push(from);
            rows.to.push(to);
            let properties = rows.fields.width;
            rows.fields
                .push_row(property_values(properties, &rule.properties, &values));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_rows_keep_each_rows_values_and_empties() {
        let mut rows = FieldRows::new(3);
        rows.push_row([Some("key"), None, Some("été")]);
        rows.push_row([Some("k2"), Some(""), Some("x")]);
        // A short row is padded with no values.
        rows.push_row([Some("k3")]);
        fn all(rows: &FieldRows, r: usize) -> Vec<Option<&str>> {
            rows.row(r).collect()
        }
        assert_eq!(all(&rows, 0), vec![Some("key"), None, Some("été")]);
        assert_eq!(all(&rows, 1), vec![Some("k2"), None, Some("x")]);
        assert_eq!(all(&rows, 2), vec![Some("k3"), None, None]);
        assert_eq!(rows.field(0, 2), Some("été"));
        assert!(rows.has_value(1, 2) && !rows.has_value(1, 1));
    }

    mod arbitrary_rows {
        use super::*;
        use idgraph_core::SourceSchemas;
        use proptest::prelude::*;
        use testkit::rows::{RowPlan, row_plans, source_file};

        fn plans() -> impl Strategy<Value = (Dataset, Vec<RowPlan>)> {
            (0..Dataset::ALL.len()).prop_flat_map(|d| {
                let dataset = Dataset::ALL[d];
                row_plans(SourceSchemas::embedded().get(dataset), 16)
                    .prop_map(move |plans| (dataset, plans))
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 10_000, .. ProptestConfig::default() })]

            /// Rows of the right shape for every dataset, with arbitrary contents: no panic, every
            /// bad row rejected on its own line, and reads = used + duplicates + rejects as the
            /// rows were made.
            #[test]
            fn every_row_of_every_dataset_is_used_repeated_or_rejected((dataset, plans) in plans()) {
                static MAPPING: std::sync::OnceLock<Mapping> = std::sync::OnceLock::new();
                let mapping = MAPPING.get_or_init(|| Mapping::default_mapping().unwrap_or_else(|e| panic!("{e}")));
                let schema = SourceSchemas::embedded().get(dataset);
                let file = source_file(schema, &plans);
                let body = file.text.find('\n').map_or(file.text.len(), |i| i + 1);
                let out = map_chunk(mapping, Chunk {
                    dataset,
                    schema,
                    file: "f.csv",
                    text: &file.text[body..],
                    first_line: 2,
                    lossy: false,
                });
                prop_assert_eq!(out.rows, file.rows);
                let lines: Vec<u64> = out.rejects.iter().map(|r| r.line).collect();
                prop_assert_eq!(&lines, &file.reject_lines, "{:?}", out.rejects);
                let distinct: std::collections::HashSet<u128> = out.row_hashes.iter().copied().collect();
                prop_assert_eq!(distinct.len() as u64, file.used);
                prop_assert_eq!(out.row_hashes.len() as u64 - distinct.len() as u64, file.duplicates);
            }
        }
    }

    #[test]
    fn record_errors_name_the_files_line_not_the_chunks() {
        let mapping = Mapping::default_mapping().unwrap_or_else(|e| panic!("{e}"));
        let schema = idgraph_core::SourceSchemas::embedded().get(Dataset::Cookie);
        // A chunk that starts on line 40 of its file; its second record opens a quote that
        // never closes.
        let text = "c1,s1,,,,\nc2,\"s2,,,,\nc3,s3,,,,\n";
        let out = map_chunk(
            &mapping,
            Chunk {
                dataset: Dataset::Cookie,
                schema,
                file: "f.csv",
                text,
                first_line: 40,
                lossy: false,
            },
        );
        let unclosed: Vec<(u64, &str)> = out
            .rejects
            .iter()
            .map(|r| (r.line, r.reason.as_str()))
            .collect();
        assert_eq!(
            unclosed,
            vec![(41, "a quoted field that starts on line 41 is never closed")]
        );
    }

    #[test]
    fn rows_without_fields_record_nothing() {
        let mut rows = FieldRows::new(0);
        rows.push_row([Some("ignored")]);
        assert_eq!(rows.row(0).count(), 0);
        assert!(rows.text.is_empty() && rows.starts.is_empty());
    }
}
