//! What a run produced: printed for people, serialised as JSON for machines.

use std::fmt::{self, Write as _};
use std::path::PathBuf;

use serde::Serialize;

use crate::dirt::DirtCounts;
use crate::output::{FileStats, FragmentCounts};

/// One dataset file of a run.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetReport {
    pub dataset: String,
    pub path: PathBuf,
    /// Bytes on disk (compressed when gzip).
    pub bytes: u64,
    /// Bytes of CSV text.
    pub uncompressed_bytes: u64,
    #[serde(flatten)]
    pub stats: FileStats,
    /// The ground-truth file, with `--truth`.
    pub truth: Option<PathBuf>,
}

/// The result of one `datagen` run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `initial` or `incremental`.
    pub kind: String,
    pub batch: Option<String>,
    pub root: PathBuf,
    pub seed: u64,
    /// First-party profiles asked for.
    pub records: u64,
    pub threads: usize,
    pub gzip: bool,
    pub dirty_rate: f64,
    /// Distinct client IPs and device ids available to the sessions of this run.
    pub ip_pool: u64,
    pub device_pool: u64,
    pub datasets: Vec<DatasetReport>,
    pub rows: u64,
    pub bytes: u64,
    pub dirt: DirtCounts,
    pub fragmentation: f64,
    /// Rows that `--fragmentation` scattered, by kind.
    pub fragments: FragmentCounts,
    /// Rows that refer to a person who existed before this batch.
    pub existing_person_rows: u64,
    /// `existing_person_rows / rows`: the share of the batch that touches existing people.
    pub existing_share: f64,
    pub elapsed_seconds: f64,
    pub rows_per_second: f64,
    pub records_per_second: f64,
    pub megabytes_per_second: f64,
    /// The process's peak resident memory, where the platform tells it.
    pub peak_rss_bytes: Option<u64>,
    pub warnings: Vec<String>,
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.batch {
            Some(batch) => format!(
                "incremental batch {batch} of {} profiles",
                grouped(self.records)
            ),
            None => format!("initial population of {} people", grouped(self.records)),
        };
        writeln!(
            f,
            "datagen: {what} (seed {}, {} threads) under {}",
            self.seed,
            self.threads,
            self.root.display()
        )?;
        writeln!(
            f,
            "  {:<14} {:>12} {:>12} {:>8}  file",
            "dataset", "rows", "bytes", "dirty"
        )?;
        for d in &self.datasets {
            writeln!(
                f,
                "  {:<14} {:>12} {:>12} {:>8}  {}",
                d.dataset,
                grouped(d.stats.rows),
                grouped(d.bytes),
                grouped(d.stats.dirt.total()),
                d.path.display()
            )?;
        }
        writeln!(
            f,
            "  {:<14} {:>12} {:>12} {:>8}",
            "total",
            grouped(self.rows),
            grouped(self.bytes),
            grouped(self.dirt.total())
        )?;
        if self.dirty_rate > 0.0 {
            writeln!(
                f,
                "  dirt (rate {}): {} duplicate, {} variant, {} empty, {} malformed",
                self.dirty_rate,
                grouped(self.dirt.duplicate),
                grouped(self.dirt.variant),
                grouped(self.dirt.empty),
                grouped(self.dirt.malformed)
            )?;
        }
        if self.fragmentation > 0.0 {
            writeln!(
                f,
                "  fragmentation {}: {} second profiles, {} purchases by a variant email, {} anonymous session rows, {} household session rows",
                self.fragmentation,
                grouped(self.fragments.second_profiles),
                grouped(self.fragments.email_purchases),
                grouped(self.fragments.anonymous_sessions),
                grouped(self.fragments.household_sessions)
            )?;
        }
        if self.batch.is_some() {
            writeln!(
                f,
                "  rows touching existing people: {} of {} ({:.1}%)",
                grouped(self.existing_person_rows),
                grouped(self.rows),
                100.0 * self.existing_share
            )?;
        }
        if let Some(truth) = self.datasets.iter().find_map(|d| d.truth.as_ref()) {
            let dir = truth
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            writeln!(f, "  ground truth: {dir}/")?;
        }
        let mut done = format!(
            "done in {:.2} s: {} rows/s, {} profiles/s, {}/s",
            self.elapsed_seconds,
            grouped(self.rows_per_second as u64),
            grouped(self.records_per_second as u64),
            megabytes((self.megabytes_per_second * 1e6) as u64)
        );
        if let Some(rss) = self.peak_rss_bytes {
            let _ = write!(done, ", peak RSS {}", megabytes(rss));
        }
        writeln!(f, "{done}")?;
        for warning in &self.warnings {
            writeln!(f, "warning: {warning}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::grouped;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }
}
