//! Writing generated chunks to disk.
//!
//! Rows are generated in fixed-size chunks on many threads; each chunk becomes a buffer (CSV
//! bytes, optionally deflated on the same thread) and is appended to its file in chunk order.
//! Files are written under a temporary name in their final folder and renamed only when every
//! file of the run is complete, so a failed or interrupted run leaves no partial file where a
//! good one is expected.
//!
//! Gzip output is one gzip member whose deflate stream is the concatenation of independently
//! compressed chunks (each ends with a sync flush, the last with an empty final block): the
//! pigz approach, so compression runs in parallel and the file is still plain `.gz`.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::{Compress, Compression, FlushCompress};
use idgraph_core::Dataset;
use serde::Serialize;
use tempfile::NamedTempFile;

use crate::Error;
use crate::dirt::{Damage, DirtCounts, DirtKind};

/// What a file holds, beyond its bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FileStats {
    /// Data rows (the header not counted).
    pub rows: u64,
    /// Rows that refer to a person (a profile, a logged-in session or cookie, a purchase).
    pub person_rows: u64,
    /// Rows that refer to a person who existed before this batch (always 0 for the initial run).
    pub existing_person_rows: u64,
    pub dirt: DirtCounts,
    /// Rows that `--fragmentation` scattered.
    pub fragments: FragmentCounts,
}

impl FileStats {
    fn add(&mut self, other: &FileStats) {
        self.rows += other.rows;
        self.person_rows += other.person_rows;
        self.existing_person_rows += other.existing_person_rows;
        self.dirt.add(&other.dirt);
        self.fragments.add(&other.fragments);
    }
}

/// Rows of each kind that `--fragmentation` makes (see `people::Fragment`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FragmentCounts {
    /// Second CRM profiles (another user name and email, one identifier shared).
    pub second_profiles: u64,
    /// Purchases by an email written in another case or with spaces.
    pub email_purchases: u64,
    /// Rows of anonymous sessions of known people (their cookie is later seen logged in).
    pub anonymous_sessions: u64,
    /// Rows of sessions from a household's shared IP or device.
    pub household_sessions: u64,
}

impl FragmentCounts {
    pub(crate) fn add(&mut self, other: &FragmentCounts) {
        self.second_profiles += other.second_profiles;
        self.email_purchases += other.email_purchases;
        self.anonymous_sessions += other.anonymous_sessions;
        self.household_sessions += other.household_sessions;
    }

    pub fn total(&self) -> u64 {
        self.second_profiles
            + self.email_purchases
            + self.anonymous_sessions
            + self.household_sessions
    }
}

/// Who a row is about.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RowPerson {
    pub(crate) person: Option<u64>,
    pub(crate) existing: bool,
    /// An anonymous visit by nobody the data names: the batch's scope and the visit's index,
    /// which the truth writes as `anon-SCOPE-VISIT`.
    pub(crate) visitor: Option<(u64, u64)>,
}

/// Who made a row, as the truth file says it.
#[derive(Debug, Clone, Copy)]
enum Maker {
    Person(u64),
    Visitor(u64, u64),
}

/// One row under construction: its fields in one string, with field boundaries.
#[derive(Debug, Default)]
pub(crate) struct RowBuf {
    text: String,
    ends: Vec<usize>,
}

impl RowBuf {
    pub(crate) fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }

    /// Appends a field built by `f` on the row's text.
    pub(crate) fn field_with(&mut self, f: impl FnOnce(&mut String)) {
        f(&mut self.text);
        self.ends.push(self.text.len());
    }

    pub(crate) fn field(&mut self, value: &str) {
        self.text.push_str(value);
        self.ends.push(self.text.len());
    }

    pub(crate) fn field_u64(&mut self, value: u64) {
        self.field(itoa::Buffer::new().format(value));
    }

    pub(crate) fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }

    fn len(&self) -> usize {
        self.ends.len()
    }
}

/// The part of one output file that one chunk produced.
#[derive(Debug)]
pub(crate) struct FileChunk {
    csv: csv::Writer<Vec<u8>>,
    /// Row index within the chunk and who made the row, for the truth file.
    truth: Vec<(u32, Maker)>,
    stats: FileStats,
    keep_truth: bool,
}

impl FileChunk {
    pub(crate) fn new(keep_truth: bool) -> FileChunk {
        FileChunk {
            csv: csv::WriterBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_writer(Vec::with_capacity(1 << 20)),
            truth: Vec::new(),
            stats: FileStats::default(),
            keep_truth,
        }
    }

    fn record<'a>(
        &mut self,
        fields: impl IntoIterator<Item = &'a str>,
        who: RowPerson,
    ) -> Result<(), Error> {
        self.csv
            .write_record(fields.into_iter().map(str::as_bytes))?;
        if let (true, None, Some((scope, visit))) = (self.keep_truth, who.person, who.visitor) {
            self.truth
                .push((self.stats.rows as u32, Maker::Visitor(scope, visit)));
        }
        if let Some(person) = who.person {
            if self.keep_truth {
                self.truth
                    .push((self.stats.rows as u32, Maker::Person(person)));
            }
            self.stats.person_rows += 1;
            if who.existing {
                self.stats.existing_person_rows += 1;
            }
        }
        self.stats.rows += 1;
        Ok(())
    }

    /// The chunk's counts of fragmented rows, for the generator to add to.
    pub(crate) fn fragments(&mut self) -> &mut FragmentCounts {
        &mut self.stats.fragments
    }

    /// Writes a row with its damage (see `dirt`).
    pub(crate) fn write(
        &mut self,
        row: &RowBuf,
        who: RowPerson,
        damage: Damage,
    ) -> Result<(), Error> {
        let n = row.len();
        let all = || (0..n).map(|i| row.get(i));
        match &damage {
            Damage::Clean => self.record(all(), who)?,
            Damage::Duplicate => {
                self.record(all(), who)?;
                self.record(all(), who)?;
            }
            Damage::Replace { column, text, .. } => self.record(
                (0..n).map(|i| {
                    if i == *column {
                        text.as_str()
                    } else {
                        row.get(i)
                    }
                }),
                who,
            )?,
            Damage::DropLast => self.record((0..n.saturating_sub(1)).map(|i| row.get(i)), who)?,
            Damage::Extra(extra) => self.record(all().chain(std::iter::once(*extra)), who)?,
        }
        match damage.kind() {
            None => {}
            Some(DirtKind::Duplicate) => self.stats.dirt.duplicate += 1,
            Some(DirtKind::Variant) => self.stats.dirt.variant += 1,
            Some(DirtKind::Empty) => self.stats.dirt.empty += 1,
            Some(DirtKind::Malformed) => self.stats.dirt.malformed += 1,
        }
        Ok(())
    }

    /// Finishes the chunk: CSV bytes, deflated when the file is gzip.
    pub(crate) fn seal(self, gzip: bool) -> Result<SealedChunk, Error> {
        let raw = self
            .csv
            .into_inner()
            .map_err(|e| Error::Internal(e.to_string()))?;
        SealedChunk::new(raw, gzip, self.truth, self.stats)
    }
}

/// A chunk ready to append: bytes as they go to disk, and what they hold.
#[derive(Debug)]
pub(crate) struct SealedChunk {
    bytes: Vec<u8>,
    crc: Option<crc32fast::Hasher>,
    raw_len: u64,
    truth: Vec<(u32, Maker)>,
    stats: FileStats,
}

impl SealedChunk {
    fn new(
        raw: Vec<u8>,
        gzip: bool,
        truth: Vec<(u32, Maker)>,
        stats: FileStats,
    ) -> Result<SealedChunk, Error> {
        let raw_len = raw.len() as u64;
        let (bytes, crc) = if gzip {
            let mut crc = crc32fast::Hasher::new();
            crc.update(&raw);
            (deflate_sync(&raw)?, Some(crc))
        } else {
            (raw, None)
        };
        Ok(SealedChunk {
            bytes,
            crc,
            raw_len,
            truth,
            stats,
        })
    }
}

/// Raw deflate of `data`, ending in a sync flush so that another stream can follow it.
fn deflate_sync(data: &[u8]) -> Result<Vec<u8>, Error> {
    let mut compress = Compress::new(Compression::new(6), false);
    let mut out = Vec::with_capacity(data.len() / 3 + 64);
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(4096));
        }
        let consumed = compress.total_in() as usize;
        compress
            .compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
            .map_err(|e| Error::Internal(format!("deflate: {e}")))?;
        // With the flush done, zlib leaves room in the output buffer.
        if compress.total_in() as usize == data.len() && out.len() < out.capacity() {
            return Ok(out);
        }
    }
}

/// The fixed gzip header: deflate, no name, mtime 0 (so output does not depend on the clock).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// An empty, final, fixed-Huffman deflate block: ends the stream after the last sync flush.
const DEFLATE_FINAL_EMPTY_BLOCK: [u8; 2] = [0x03, 0x00];

/// One file being written under a temporary name.
#[derive(Debug)]
struct Pending {
    path: PathBuf,
    temp: NamedTempFile,
}

impl Pending {
    fn create(path: PathBuf) -> Result<Pending, Error> {
        let temp = idgraph_core::process::temp_file_beside(&path).map_err(|source| {
            let dir = path.parent().unwrap_or(Path::new("."));
            if dir.is_dir() {
                Error::Write {
                    path: path.clone(),
                    source,
                }
            } else {
                Error::CreateDir {
                    path: dir.to_path_buf(),
                    source,
                }
            }
        })?;
        Ok(Pending { path, temp })
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.temp
            .as_file_mut()
            .write_all(bytes)
            .map_err(|source| Error::Write {
                path: self.path.clone(),
                source,
            })
    }

    fn sync(&mut self) -> Result<(), Error> {
        self.temp
            .as_file_mut()
            .sync_all()
            .map_err(|source| Error::Write {
                path: self.path.clone(),
                source,
            })
    }

    fn commit(self) -> Result<PathBuf, Error> {
        let Pending { path, temp } = self;
        temp.persist(&path).map_err(|e| Error::Write {
            path: path.clone(),
            source: e.error,
        })?;
        Ok(path)
    }
}

/// One dataset file (and, with `--truth`, its ground-truth file) being written.
#[derive(Debug)]
pub(crate) struct OutputFile {
    pub(crate) dataset: Dataset,
    data: Pending,
    gzip: Option<(crc32fast::Hasher, u64)>,
    bytes: u64,
    raw_bytes: u64,
    stats: FileStats,
    truth: Option<(Pending, BufWriter<File>)>,
}

/// A written file, as reported.
#[derive(Debug, Clone)]
pub(crate) struct Written {
    pub(crate) dataset: Dataset,
    pub(crate) path: PathBuf,
    pub(crate) bytes: u64,
    pub(crate) raw_bytes: u64,
    pub(crate) stats: FileStats,
    pub(crate) truth_path: Option<PathBuf>,
}

impl OutputFile {
    pub(crate) fn create(
        dataset: Dataset,
        path: PathBuf,
        header: &str,
        gzip: bool,
        truth_path: Option<PathBuf>,
    ) -> Result<OutputFile, Error> {
        let data = Pending::create(path)?;
        let truth = match truth_path {
            Some(path) => {
                let pending = Pending::create(path)?;
                let file = pending.temp.reopen().map_err(|source| Error::Write {
                    path: pending.path.clone(),
                    source,
                })?;
                let mut writer = BufWriter::with_capacity(1 << 20, file);
                writer
                    .write_all(b"line,person_id\n")
                    .map_err(|source| Error::Write {
                        path: pending.path.clone(),
                        source,
                    })?;
                Some((pending, writer))
            }
            None => None,
        };
        let mut file = OutputFile {
            dataset,
            data,
            gzip: gzip.then(|| (crc32fast::Hasher::new(), 0)),
            bytes: 0,
            raw_bytes: 0,
            stats: FileStats::default(),
            truth,
        };
        if gzip {
            file.data.write_all(&GZIP_HEADER)?;
            file.bytes += GZIP_HEADER.len() as u64;
        }
        let header = format!("{header}\n").into_bytes();
        file.append(SealedChunk::new(
            header,
            gzip,
            Vec::new(),
            FileStats::default(),
        )?)?;
        Ok(file)
    }

    pub(crate) fn append(&mut self, chunk: SealedChunk) -> Result<(), Error> {
        self.data.write_all(&chunk.bytes)?;
        self.bytes += chunk.bytes.len() as u64;
        self.raw_bytes += chunk.raw_len;
        if let (Some((crc, len)), Some(chunk_crc)) = (&mut self.gzip, &chunk.crc) {
            crc.combine(chunk_crc);
            *len += chunk.raw_len;
        }
        if let Some((pending, writer)) = &mut self.truth {
            // Line 1 is the header; the first data row is line 2.
            let first_line = self.stats.rows + 2;
            let mut line = itoa::Buffer::new();
            let mut person = itoa::Buffer::new();
            for (row, who) in &chunk.truth {
                let result = writer
                    .write_all(line.format(first_line + u64::from(*row)).as_bytes())
                    .and_then(|()| writer.write_all(b","))
                    .and_then(|()| match who {
                        Maker::Person(p) => writer.write_all(person.format(*p).as_bytes()),
                        Maker::Visitor(scope, visit) => write!(writer, "anon-{scope}-{visit}"),
                    })
                    .and_then(|()| writer.write_all(b"\n"));
                result.map_err(|source| Error::Write {
                    path: pending.path.clone(),
                    source,
                })?;
            }
        }
        self.stats.add(&chunk.stats);
        Ok(())
    }

    /// Completes the file on disk under its temporary name.
    pub(crate) fn finish(mut self) -> Result<FinishedFile, Error> {
        if let Some((crc, len)) = self.gzip.take() {
            self.data.write_all(&DEFLATE_FINAL_EMPTY_BLOCK)?;
            self.data.write_all(&crc.finalize().to_le_bytes())?;
            // ISIZE is the length modulo 2^32 (RFC 1952).
            self.data.write_all(&(len as u32).to_le_bytes())?;
            self.bytes += (DEFLATE_FINAL_EMPTY_BLOCK.len() + 8) as u64;
        }
        self.data.sync()?;
        let truth = match self.truth {
            Some((mut pending, writer)) => {
                let path = pending.path.clone();
                writer
                    .into_inner()
                    .map_err(|e| Error::Write {
                        path: path.clone(),
                        source: e.into_error(),
                    })?
                    .sync_all()
                    .map_err(|source| Error::Write { path, source })?;
                pending.sync()?;
                Some(pending)
            }
            None => None,
        };
        Ok(FinishedFile {
            dataset: self.dataset,
            data: self.data,
            truth,
            bytes: self.bytes,
            raw_bytes: self.raw_bytes,
            stats: self.stats,
        })
    }
}

/// A complete file, still under its temporary name.
#[derive(Debug)]
pub(crate) struct FinishedFile {
    dataset: Dataset,
    data: Pending,
    truth: Option<Pending>,
    bytes: u64,
    raw_bytes: u64,
    stats: FileStats,
}

impl FinishedFile {
    /// Renames the file (and its truth file) into place.
    pub(crate) fn commit(self) -> Result<Written, Error> {
        let path = self.data.commit()?;
        let truth_path = self.truth.map(Pending::commit).transpose()?;
        Ok(Written {
            dataset: self.dataset,
            path,
            bytes: self.bytes,
            raw_bytes: self.raw_bytes,
            stats: self.stats,
            truth_path,
        })
    }
}

/// Writes `contents` to `path` through a temporary file and a rename.
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let mut pending = Pending::create(path.to_path_buf())?;
    pending.write_all(contents)?;
    pending.sync()?;
    pending.commit().map(|_| ())
}

/// Removes a file if it is there.
pub(crate) fn remove_if_present(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Write {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn chunked_gzip_is_one_valid_member() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("x.csv.gz");
        let mut file = OutputFile::create(Dataset::Cookie, path.clone(), "a,b", true, None)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut expected = b"a,b\n".to_vec();
        for chunk in 0..5u32 {
            let mut raw = Vec::new();
            for i in 0..1000 * chunk {
                raw.extend_from_slice(format!("{chunk},{i}\n").as_bytes());
            }
            expected.extend_from_slice(&raw);
            SealedChunk::new(raw, true, Vec::new(), FileStats::default())
                .and_then(|c| file.append(c))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        file.finish()
            .and_then(FinishedFile::commit)
            .unwrap_or_else(|e| panic!("{e}"));
        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        // A single-member decoder must read it all: readers that stop after the first gzip
        // member would otherwise lose data silently.
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut decoded)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decoded, expected);
    }

    #[test]
    fn nothing_is_left_behind_when_a_file_is_abandoned() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("y.csv");
        let file = OutputFile::create(
            Dataset::Cookie,
            path.clone(),
            "a",
            false,
            Some(dir.path().join("t.csv")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        drop(file);
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
