//! Dirty rows, the way real exports are dirty.
//!
//! Each row is dirty with probability `--dirty-rate`. A dirty row gets exactly one kind of
//! dirt, chosen with these weights among the kinds that fit the row:
//!
//! | kind | weight | what it does |
//! | --- | --- | --- |
//! | duplicate | 3 | the row is written twice, identically |
//! | variant | 3 | a referring email or user name gets another case or stray spaces (only rows that refer to a person by email or user name) |
//! | empty | 3 | one optional descriptive field that is always filled is left empty |
//! | malformed | 1 | one field too few or too many, text in a numeric column, or a date that does not exist |
//!
//! The decision is drawn from the row's own random stream after the row is built, at every
//! rate, so the clean rows of a dirty run are exactly the rows of a clean run.

use idgraph_core::{ColumnType, Dataset, DatasetSchema};
use rand::RngExt;
use serde::Serialize;

use crate::catalog::pick;
use crate::rng::RowRng;

/// Rows made dirty, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DirtCounts {
    /// Extra, identical copies of a row.
    pub duplicate: u64,
    /// Case or whitespace variants of a referring email or user name.
    pub variant: u64,
    /// Rows with one optional field left empty.
    pub empty: u64,
    /// Rows with a wrong field count, text in a numeric column or an impossible date.
    pub malformed: u64,
}

impl DirtCounts {
    pub fn total(&self) -> u64 {
        self.duplicate + self.variant + self.empty + self.malformed
    }

    pub(crate) fn add(&mut self, other: &DirtCounts) {
        self.duplicate += other.duplicate;
        self.variant += other.variant;
        self.empty += other.empty;
        self.malformed += other.malformed;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DirtKind {
    Duplicate,
    Variant,
    Empty,
    Malformed,
}

/// The columns of one dataset that each kind of dirt may touch.
#[derive(Debug)]
pub(crate) struct DirtTargets {
    width: usize,
    /// Optional descriptive columns that clean rows always fill.
    empty: Vec<usize>,
    int: Vec<usize>,
    date: Vec<usize>,
    timestamp: Vec<usize>,
}

/// Optional descriptive columns that clean rows always fill, per dataset (checked against the
/// schema in `DirtTargets::new`: each must be nullable and not an identity column).
fn emptiable_columns(dataset: Dataset) -> &'static [&'static str] {
    match dataset {
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
    }
}

impl DirtTargets {
    pub(crate) fn new(schema: &DatasetSchema) -> Result<DirtTargets, String> {
        let of_type = |ty| {
            schema
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.ty == ty)
                .map(|(i, _)| i)
                .collect::<Vec<_>>()
        };
        let mut empty = Vec::new();
        for name in emptiable_columns(schema.dataset) {
            let i = schema.position(name).ok_or_else(|| {
                format!(
                    "schemas/sources.toml: {} has no column {name}",
                    schema.dataset
                )
            })?;
            let column = &schema.columns[i];
            if !column.nullable || column.identity {
                return Err(format!(
                    "schemas/sources.toml: {}.{name} must be nullable and not an identity column \
                     for datagen to leave it empty",
                    schema.dataset
                ));
            }
            empty.push(i);
        }
        Ok(DirtTargets {
            width: schema.columns.len(),
            empty,
            int: of_type(ColumnType::Int),
            date: of_type(ColumnType::Date),
            timestamp: of_type(ColumnType::Timestamp),
        })
    }
}

/// What happens to one row: written clean, or how it is dirtied.
#[derive(Debug)]
pub(crate) enum Damage {
    Clean,
    Duplicate,
    /// Replace one field with this text.
    Replace {
        kind: DirtKind,
        column: usize,
        text: String,
    },
    /// Drop the last field.
    DropLast,
    /// Append one field.
    Extra(&'static str),
}

impl Damage {
    pub(crate) fn kind(&self) -> Option<DirtKind> {
        match self {
            Damage::Clean => None,
            Damage::Duplicate => Some(DirtKind::Duplicate),
            Damage::Replace { kind, .. } => Some(*kind),
            Damage::DropLast | Damage::Extra(_) => Some(DirtKind::Malformed),
        }
    }
}

const NOT_A_NUMBER: [&str; 5] = ["unknown", "twelve", "12a", "N/A", "#VALUE!"];
const IMPOSSIBLE_DATES: [&str; 4] = ["2021-02-30", "2019-13-01", "2020-04-31", "0000-00-00"];
const IMPOSSIBLE_TIMESTAMPS: [&str; 3] = [
    "2021-02-30 10:00:00",
    "2020-06-15 25:61:00",
    "2019-13-01 00:00:00",
];

/// Decides what happens to a row. `variant_of`: the referring email or user name in the row,
/// with its column, when the row has one.
pub(crate) fn decide(
    rng: &mut RowRng,
    rate: f64,
    targets: &DirtTargets,
    variant_of: Option<(usize, &str)>,
) -> Damage {
    // Drawn at every rate so that clean rows do not depend on the rate.
    let draw: f64 = rng.random();
    if draw >= rate {
        return Damage::Clean;
    }
    let variant_weight = if variant_of.is_some() { 3 } else { 0 };
    let mut roll = rng.random_range(0..7 + variant_weight);
    if roll < 3 {
        return Damage::Duplicate;
    }
    roll -= 3;
    if roll < variant_weight
        && let Some((column, value)) = variant_of
    {
        return Damage::Replace {
            kind: DirtKind::Variant,
            column,
            text: variant(rng, value),
        };
    }
    roll -= variant_weight;
    if roll < 3 {
        return Damage::Replace {
            kind: DirtKind::Empty,
            column: pick(rng, &targets.empty),
            text: String::new(),
        };
    }
    malformed(rng, targets)
}

fn malformed(rng: &mut RowRng, targets: &DirtTargets) -> Damage {
    let dates = targets.date.len() + targets.timestamp.len();
    match rng.random_range(0..4) {
        0 => Damage::DropLast,
        1 => Damage::Extra("extra"),
        2 if !targets.int.is_empty() => Damage::Replace {
            kind: DirtKind::Malformed,
            column: pick(rng, &targets.int),
            text: (pick(rng, &NOT_A_NUMBER)).to_owned(),
        },
        _ if dates > 0 => {
            let i = rng.random_range(0..dates);
            let (column, text) = if i < targets.date.len() {
                (targets.date[i], pick(rng, &IMPOSSIBLE_DATES))
            } else {
                (
                    targets.timestamp[i - targets.date.len()],
                    pick(rng, &IMPOSSIBLE_TIMESTAMPS),
                )
            };
            Damage::Replace {
                kind: DirtKind::Malformed,
                column,
                text: text.to_owned(),
            }
        }
        _ if targets.width > 1 => Damage::DropLast,
        _ => Damage::Extra("extra"),
    }
}

/// Another spelling of an email or user name that means the same identity: other case, or
/// stray spaces around it. Always differs from `value` (which is lower-case and trimmed).
fn variant(rng: &mut RowRng, value: &str) -> String {
    let capitalised = || {
        let mut out = String::with_capacity(value.len());
        let mut done = false;
        for c in value.chars() {
            if !done && c.is_ascii_lowercase() {
                out.push(c.to_ascii_uppercase());
                done = true;
            } else {
                out.push(c);
            }
        }
        out
    };
    match rng.random_range(0..5) {
        0 if value.bytes().any(|b| b.is_ascii_lowercase()) => value.to_ascii_uppercase(),
        1 if value.bytes().any(|b| b.is_ascii_lowercase()) => capitalised(),
        2 => format!(" {value}"),
        3 => format!("{value}  "),
        _ => format!(" {} ", capitalised()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Stream, item_rng};
    use idgraph_core::SourceSchemas;

    #[test]
    fn every_dataset_has_valid_targets() {
        for schema in SourceSchemas::embedded().iter() {
            let targets = DirtTargets::new(schema).unwrap_or_else(|e| panic!("{e}"));
            assert!(!targets.empty.is_empty());
            assert!(!targets.int.is_empty());
            assert!(!(targets.date.is_empty() && targets.timestamp.is_empty()));
        }
    }

    #[test]
    fn variants_always_differ_but_normalise_back() {
        for i in 0..2_000 {
            let mut rng = item_rng(1, Stream::Visit, 0, i);
            for value in ["jane.doe0042", "jdoe123@example.com"] {
                let v = variant(&mut rng, value);
                assert_ne!(v, value);
                assert_eq!(v.trim().to_ascii_lowercase(), value);
            }
        }
    }

    #[test]
    fn rate_zero_is_always_clean_and_rate_one_never() {
        let schema = SourceSchemas::embedded().get(Dataset::Transactional);
        let targets = DirtTargets::new(schema).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..1_000 {
            let mut rng = item_rng(5, Stream::Transaction, 0, i);
            assert!(matches!(
                decide(&mut rng, 0.0, &targets, None),
                Damage::Clean
            ));
            let mut rng = item_rng(5, Stream::Transaction, 0, i);
            assert!(
                decide(&mut rng, 1.0, &targets, Some((4, "a@example.com")))
                    .kind()
                    .is_some()
            );
        }
    }
}
