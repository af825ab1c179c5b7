//! The storage layout, identical under a local root (default `data/`) and under `s3://BUCKET/`:
//!
//! ```text
//! datasets/sources/initial/<dataset>/<dataset>_data_full.csv[.gz]
//! datasets/sources/incremental/<dataset>/<YYYYMMDD_HHMMSS>/<dataset>_data_inc.csv[.gz]
//! datasets/graph/initial/{vertices,edges}/...
//! datasets/graph/incremental/<YYYYMMDD_HHMMSS>/{vertices,edges}/...
//! datasets/truth/initial/<dataset>_truth.csv
//! datasets/truth/incremental/<YYYYMMDD_HHMMSS>/<dataset>_truth.csv
//! datasets/identity/state/...                       (resolve's identity state)
//! datasets/identity/graph/<initial|YYYYMMDD_HHMMSS>/{vertices,edges}/...
//! ```
//!
//! Paths are returned as relative keys with `/` separators so that they can be joined to a
//! local folder or to an S3 prefix alike.

use std::fmt;
use std::str::FromStr;

use crate::Dataset;

/// The identifier of an incremental batch: its UTC timestamp as `YYYYMMDD_HHMMSS`. Ordering
/// batch ids orders them in time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchId(String);

/// Why a string is not a batch id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{given}` is not a batch timestamp: {reason} (expected YYYYMMDD_HHMMSS in UTC, e.g. 20260131_235959)"
)]
pub struct BatchIdError {
    given: String,
    reason: &'static str,
}

impl BatchId {
    /// Builds a batch id from calendar fields, checking that they name a real instant.
    pub fn from_parts(
        year: u32,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: u32,
    ) -> Result<BatchId, BatchIdError> {
        format!("{year:04}{month:02}{day:02}_{hour:02}{minute:02}{second:02}").parse()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Calendar fields: (year, month, day, hour, minute, second).
    pub fn parts(&self) -> (u32, u32, u32, u32, u32, u32) {
        let num = |range: std::ops::Range<usize>| -> u32 {
            // Validated on construction: every one of these characters is an ASCII digit.
            self.0.as_bytes()[range]
                .iter()
                .fold(0, |acc, b| acc * 10 + u32::from(b - b'0'))
        };
        (
            num(0..4),
            num(4..6),
            num(6..8),
            num(9..11),
            num(11..13),
            num(13..15),
        )
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for BatchId {
    type Err = BatchIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |reason| BatchIdError {
            given: s.to_owned(),
            reason,
        };
        let bytes = s.as_bytes();
        if bytes.len() != 15 || bytes[8] != b'_' {
            return Err(fail("wrong shape"));
        }
        if !bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 8 || b.is_ascii_digit())
        {
            return Err(fail("only digits may stand around the underscore"));
        }
        let candidate = BatchId(s.to_owned());
        let (year, month, day, hour, minute, second) = candidate.parts();
        if year < 1970 {
            return Err(fail("the year is before 1970"));
        }
        if !(1..=12).contains(&month) {
            return Err(fail("the month is not 01 to 12"));
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(fail("the day does not exist in that month"));
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(fail("the time of day is out of range"));
        }
        Ok(candidate)
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Whether a set of source files is the initial load or one incremental batch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SourceKind {
    Initial,
    Incremental(BatchId),
}

/// Relative keys of the storage layout.
#[derive(Debug, Clone, Copy, Default)]
pub struct Layout;

impl Layout {
    /// Everything the toolkit writes lives below this folder of the root.
    pub const DATASETS: &'static str = "datasets";
    /// Source datasets of every kind.
    pub const SOURCES: &'static str = "datasets/sources";

    /// The folder that holds one dataset's source files of one kind.
    pub fn source_dir(kind: &SourceKind, dataset: Dataset) -> String {
        match kind {
            SourceKind::Initial => format!("{}/initial/{}", Self::SOURCES, dataset.name()),
            SourceKind::Incremental(batch) => {
                format!("{}/incremental/{}/{}", Self::SOURCES, dataset.name(), batch)
            }
        }
    }

    /// The name of the single file `datagen` writes into `source_dir`.
    pub fn source_file_name(kind: &SourceKind, dataset: Dataset, gzip: bool) -> String {
        let suffix = match kind {
            SourceKind::Initial => "full",
            SourceKind::Incremental(_) => "inc",
        };
        let ext = if gzip { "csv.gz" } else { "csv" };
        format!("{}_data_{suffix}.{ext}", dataset.name())
    }

    /// A source batch being written: `datagen` puts this marker down before the first of the
    /// batch's files moves into place and removes it after the last, so a run killed midway
    /// leaves a batch that says it is incomplete. The transform refuses such a batch and the
    /// loader goes no further than it (its watermark must not pass a batch it never loaded).
    pub fn source_batch_in_progress(kind: &SourceKind) -> String {
        match kind {
            SourceKind::Initial => format!("{}/.in-progress-initial", Self::SOURCES),
            SourceKind::Incremental(batch) => format!("{}/.in-progress-{batch}", Self::SOURCES),
        }
    }

    /// The folder of the Gremlin CSV graph files made from one kind of source.
    pub fn graph_dir(kind: &SourceKind) -> String {
        match kind {
            SourceKind::Initial => format!("{}/graph/initial", Self::DATASETS),
            SourceKind::Incremental(batch) => {
                format!("{}/graph/incremental/{batch}", Self::DATASETS)
            }
        }
    }

    /// Identity resolution's folder: its state (`state/`) and the graph batches it makes
    /// (`graph/<initial|YYYYMMDD_HHMMSS>/`), each loaded like any transform batch.
    pub const IDENTITY: &'static str = "datasets/identity";
    /// The run lock of a root: every command that writes its graph state (the loader's runs,
    /// `resolve run`) holds it, so two never overlap.
    pub const RUN_LOCK: &'static str = "datasets/loader/lock";

    /// The folder of the `personId` graph batch that resolving one batch makes.
    pub fn identity_graph_dir(kind: &SourceKind) -> String {
        match kind {
            SourceKind::Initial => format!("{}/graph/initial", Self::IDENTITY),
            SourceKind::Incremental(batch) => format!("{}/graph/{batch}", Self::IDENTITY),
        }
    }

    /// The folder of the ground-truth files that `datagen --truth` writes for one kind.
    pub fn truth_dir(kind: &SourceKind) -> String {
        match kind {
            SourceKind::Initial => format!("{}/truth/initial", Self::DATASETS),
            SourceKind::Incremental(batch) => {
                format!("{}/truth/incremental/{batch}", Self::DATASETS)
            }
        }
    }

    /// The name of one dataset's ground-truth file in `truth_dir`.
    pub fn truth_file_name(dataset: Dataset) -> String {
        format!("{}_truth.csv", dataset.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_ids_are_validated_and_ordered() {
        let a: BatchId = "20240229_235959".parse().unwrap_or_else(|e| panic!("{e}"));
        let b: BatchId = "20240301_000000".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(a < b);
        assert_eq!(a.parts(), (2024, 2, 29, 23, 59, 59));
        for bad in [
            "20230229_000000",
            "20241301_000000",
            "20240101-000000",
            "2024010_1000000",
            "20240101_240000",
            "2024o101_000000",
            "",
        ] {
            let err = bad.parse::<BatchId>().err();
            assert!(err.is_some(), "{bad} was accepted");
            assert!(err.map(|e| e.to_string()).unwrap_or_default().contains(bad));
        }
        assert_eq!(
            BatchId::from_parts(2026, 1, 2, 3, 4, 5).map(|b| b.to_string()),
            Ok("20260102_030405".to_owned())
        );
    }

    #[test]
    fn layout_keys_follow_the_documented_tree() {
        let batch: BatchId = "20260101_120000".parse().unwrap_or_else(|e| panic!("{e}"));
        let inc = SourceKind::Incremental(batch);
        assert_eq!(
            Layout::source_dir(&SourceKind::Initial, Dataset::FirstParty),
            "datasets/sources/initial/first_party"
        );
        assert_eq!(
            Layout::source_dir(&inc, Dataset::Cookie),
            "datasets/sources/incremental/cookie/20260101_120000"
        );
        assert_eq!(
            Layout::source_file_name(&SourceKind::Initial, Dataset::Transactional, false),
            "transactional_data_full.csv"
        );
        assert_eq!(
            Layout::source_file_name(&inc, Dataset::Clickstream, true),
            "clickstream_data_inc.csv.gz"
        );
        assert_eq!(
            Layout::graph_dir(&inc),
            "datasets/graph/incremental/20260101_120000"
        );
        assert_eq!(
            Layout::truth_dir(&SourceKind::Initial),
            "datasets/truth/initial"
        );
    }
}
