//! Scoring resolution against datagen's ground truth, the way Splink reports it: pairwise
//! precision, recall and F1 over every pair of rows about people, the share of people resolved
//! exactly, and clusters by size.
//!
//! A row's predicted cluster is the person of its first identifier (in the mapping's edge
//! order) that resolution knows; a row with none (a malformed row the transform rejected) is a
//! cluster of its own.

use std::collections::HashMap;

use gremlin_csv::Records;
use idgraph_core::{Dataset, Layout, SourceKind, SourceSchemas};
use idgraph_storage::{Location, Store};
use serde::Serialize;
use transform::Mapping;

use crate::state::{self, State};
use crate::{Error, ResolvePlan};

/// Predicted clusters by how many rows they hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClusterSizes {
    /// (smallest size of the bucket, clusters): 1, 2, 3, 4, 5-9, 10-49, 50+.
    pub buckets: Vec<(u64, u64)>,
    pub largest: u64,
}

const BUCKETS: [u64; 7] = [1, 2, 3, 4, 5, 10, 50];

/// How well the resolved people match the truth.
#[derive(Debug, Clone, Serialize)]
pub struct Score {
    pub batches: Vec<String>,
    /// Rows about people (every row in the truth files).
    pub rows: u64,
    /// Rows with no identifier that resolution knows (each its own cluster).
    pub unresolved_rows: u64,
    pub true_people: u64,
    pub clusters: u64,
    pub true_pairs: u64,
    pub predicted_pairs: u64,
    pub true_positive_pairs: u64,
    pub false_positive_pairs: u64,
    pub false_negative_pairs: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// True people whose rows form exactly one cluster holding no one else's.
    pub exact_people: u64,
    pub exact_share: f64,
    pub cluster_sizes: ClusterSizes,
}

fn pairs(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

fn storage(e: impl std::fmt::Display) -> Error {
    Error::Storage(e.to_string())
}

/// The row's cluster: the person of the first identifier of the row that the state knows.
fn row_person(mapping: &Mapping, state: &State, dataset: Dataset, fields: &[&str]) -> Option<u32> {
    let rules = mapping.identity.as_ref()?;
    for rule in &mapping.rules(dataset).edges {
        let from_value = fields.get(rule.from.column).copied().unwrap_or("");
        if rule.from.when.is_some_and(|w| !w.holds(from_value)) {
            continue;
        }
        for end in [&rule.from, &rule.to] {
            if !rules.is_identifier(end.label) {
                continue;
            }
            let vertex = &mapping.vertices[end.label];
            let raw = fields.get(end.column).copied().unwrap_or("");
            let key = vertex.normalise.apply(raw);
            if key.is_empty() {
                continue;
            }
            if let Some(p) = state.person_of(transform::vertex_id(&vertex.name, &key)) {
                return Some(p);
            }
        }
    }
    None
}

/// Reads a source or truth file (plain or gzip).
fn read_source(
    store: &Store,
    dir: &Location,
    names: &[String],
) -> Result<Option<(Location, String)>, Error> {
    for name in names {
        let location = dir.join(name);
        if store.exists(&location).map_err(storage)? {
            let text = crate::graph::read_text(store, &location)?;
            return Ok(Some((location, text)));
        }
    }
    Ok(None)
}

/// Scores every batch resolved under the plan's root against its truth files.
pub fn score(plan: &ResolvePlan, store: &Store) -> Result<Score, Error> {
    let state = state::load(store, &plan.root)?;
    let Some(index) = &state.index else {
        return Err(Error::NotResolved(plan.root.to_string()));
    };
    let schemas = SourceSchemas::embedded();
    // Cells of the contingency table: (true person, predicted cluster) -> rows.
    let mut truth_ids: HashMap<String, u32> = HashMap::new();
    let mut cells: HashMap<(u32, u64), u64> = HashMap::new();
    let mut rows = 0u64;
    let mut unresolved = 0u64;
    let mut batches = Vec::new();
    for segment in &index.segments {
        let kind = if segment.batch == "initial" {
            SourceKind::Initial
        } else {
            SourceKind::Incremental(segment.batch.parse().map_err(|e| Error::CorruptState {
                file: state::INDEX.to_owned(),
                message: format!("{e}"),
            })?)
        };
        batches.push(segment.batch.clone());
        for dataset in Dataset::ALL {
            let truth_dir = plan.root.join(&Layout::truth_dir(&kind));
            let Some((truth_at, truth)) =
                read_source(store, &truth_dir, &[Layout::truth_file_name(dataset)])?
            else {
                return Err(Error::BadTruth {
                    file: truth_dir
                        .join(&Layout::truth_file_name(dataset))
                        .to_string(),
                    line: 0,
                    message: "no truth file (generate the data with datagen --truth)".into(),
                });
            };
            let source_dir = plan.root.join(&Layout::source_dir(&kind, dataset));
            let names = [false, true].map(|gz| Layout::source_file_name(&kind, dataset, gz));
            let Some((_, source)) = read_source(store, &source_dir, &names)? else {
                return Err(Error::BadTruth {
                    file: source_dir.to_string(),
                    line: 0,
                    message: "no source file for this truth".into(),
                });
            };
            let width = schemas.get(dataset).columns.len();
            // Source rows by line (the first line of a record).
            let mut by_line: HashMap<u64, Option<u32>> = HashMap::new();
            for record in Records::new(&source).skip(1) {
                let Ok(record) = record else { continue };
                let fields: Vec<&str> = record.fields.iter().map(|f| f.text.as_ref()).collect();
                let person = (fields.len() == width)
                    .then(|| row_person(&plan.mapping, &state, dataset, &fields))
                    .flatten();
                by_line.insert(record.line, person);
            }
            for (n, line) in truth.lines().enumerate().skip(1) {
                let bad = |message: &str| Error::BadTruth {
                    file: truth_at.to_string(),
                    line: n as u64 + 1,
                    message: message.to_owned(),
                };
                let (row_line, who) = line
                    .split_once(',')
                    .ok_or_else(|| bad("expected line,person_id"))?;
                let row_line: u64 = row_line
                    .parse()
                    .map_err(|_| bad("the line is not a number"))?;
                let next = truth_ids.len() as u32;
                let who = *truth_ids.entry(who.to_owned()).or_insert(next);
                let cluster = match by_line.get(&row_line).copied().flatten() {
                    Some(p) => u64::from(p),
                    None => {
                        unresolved += 1;
                        // A cluster of its own, numbered beyond every person.
                        (1 << 40) + rows
                    }
                };
                *cells.entry((who, cluster)).or_default() += 1;
                rows += 1;
            }
        }
    }

    let mut per_truth: HashMap<u32, (u64, u64)> = HashMap::new(); // rows, cells
    let mut per_cluster: HashMap<u64, u64> = HashMap::new();
    let mut tp = 0;
    for (&(who, cluster), &n) in &cells {
        tp += pairs(n);
        let t = per_truth.entry(who).or_default();
        t.0 += n;
        t.1 += 1;
        *per_cluster.entry(cluster).or_default() += n;
    }
    let true_pairs: u64 = per_truth.values().map(|t| pairs(t.0)).sum();
    let predicted_pairs: u64 = per_cluster.values().map(|&n| pairs(n)).sum();
    let exact_people = cells
        .iter()
        .filter(|&(&(who, cluster), &n)| per_truth[&who] == (n, 1) && per_cluster[&cluster] == n)
        .count() as u64;
    let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    let (fp, fn_) = (predicted_pairs - tp, true_pairs - tp);
    let mut sizes = ClusterSizes {
        buckets: BUCKETS.iter().map(|&b| (b, 0)).collect(),
        largest: 0,
    };
    for &n in per_cluster.values() {
        let at = BUCKETS.iter().rposition(|&b| n >= b).unwrap_or(0);
        sizes.buckets[at].1 += 1;
        sizes.largest = sizes.largest.max(n);
    }
    Ok(Score {
        batches,
        rows,
        unresolved_rows: unresolved,
        true_people: per_truth.len() as u64,
        clusters: per_cluster.len() as u64,
        true_pairs,
        predicted_pairs,
        true_positive_pairs: tp,
        false_positive_pairs: fp,
        false_negative_pairs: fn_,
        precision: ratio(tp, predicted_pairs),
        recall: ratio(tp, true_pairs),
        f1: ratio(2 * tp, 2 * tp + fp + fn_),
        exact_people,
        exact_share: ratio(exact_people, per_truth.len() as u64),
        cluster_sizes: sizes,
    })
}

impl std::fmt::Display for Score {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "resolve score: {} rows about people ({} batches: {}), {} true people, {} clusters",
            self.rows,
            self.batches.len(),
            self.batches.join(", "),
            self.true_people,
            self.clusters
        )?;
        writeln!(
            f,
            "  pairwise: precision {:.6}  recall {:.6}  F1 {:.6}",
            self.precision, self.recall, self.f1
        )?;
        writeln!(
            f,
            "  pairs: {} true, {} predicted, {} true positive, {} false positive, {} false negative",
            self.true_pairs,
            self.predicted_pairs,
            self.true_positive_pairs,
            self.false_positive_pairs,
            self.false_negative_pairs
        )?;
        writeln!(
            f,
            "  people resolved exactly: {} of {} ({:.2}%); rows with no known identifier: {}",
            self.exact_people,
            self.true_people,
            100.0 * self.exact_share,
            self.unresolved_rows
        )?;
        let buckets: Vec<String> = self
            .cluster_sizes
            .buckets
            .iter()
            .enumerate()
            .map(|(i, (low, n))| match BUCKETS.get(i + 1) {
                Some(next) if next - low == 1 => format!("{low}: {n}"),
                Some(next) => format!("{low}-{}: {n}", next - 1),
                None => format!("{low}+: {n}"),
            })
            .collect();
        writeln!(
            f,
            "  clusters by rows: {} (largest {})",
            buckets.join(", "),
            self.cluster_sizes.largest
        )
    }
}
