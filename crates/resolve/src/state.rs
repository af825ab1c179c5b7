//! The identity state under `datasets/identity/state/` (local or S3).
//!
//! Resolving a batch adds one segment: the identifiers first seen in it (`members-*.bin`: ids
//! sorted, labels, person numbers) and what `who` and the report need about it
//! (`details-*.bin`: keys, weak links, keys of their far ends). Old segments are never
//! rewritten: a merge is a pointer in the person table (`persons-*.bin`: person ids, the person
//! each was merged into, the segment that created it, member counts), which is small and
//! rewritten whole. `state.json` names the files with their sizes and CRC-32s; it is written
//! last, so a run killed at any point leaves the previous state whole, and the files it names
//! are checked when read.

use std::io::{self, Write};

use idgraph_storage::{Location, Store};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::graph::{Keyed, Keys, Link};

pub(crate) const INDEX: &str = "state.json";
const FORMAT: u32 = 1;

/// One file of the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative to the state folder.
    pub path: String,
    pub bytes: u64,
    pub crc32: u32,
}

/// Two people found to be one: the older id survives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeRecord {
    pub absorbed: String,
    pub survivor: String,
}

/// What resolving one batch added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEntry {
    pub seq: u32,
    pub batch: String,
    pub members: FileEntry,
    pub details: FileEntry,
    /// Identifiers first seen in the batch.
    pub new_identifiers: u64,
    /// People first seen in the batch.
    pub new_people: u64,
    /// Identifiers whose person id the batch's graph output sets (new or changed).
    pub changed_identifiers: u64,
    pub merges: Vec<MergeRecord>,
}

/// `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub format: u32,
    /// The identity rules resolution ran with (see `rules_fingerprint`): they decide every
    /// segment.
    pub rules_sha256: String,
    pub segments: Vec<SegmentEntry>,
    pub persons: FileEntry,
    /// People now (merged ones not counted).
    pub people: u64,
    pub identifiers: u64,
}

/// Where each prefix of a sorted list of ids starts. Ids are uniform hashes, so with a prefix
/// per few ids a lookup reads two or three cache lines, where a binary search over millions
/// misses the cache twenty-odd times.
#[derive(Debug, Default)]
pub(crate) struct IdIndex {
    shift: u32,
    starts: Vec<u32>,
}

impl IdIndex {
    pub(crate) fn new(sorted: &[u128]) -> IdIndex {
        // About four ids per prefix: a smaller table (more of it cached), and the four share a
        // cache line.
        let bits = (usize::BITS - sorted.len().leading_zeros())
            .saturating_sub(2)
            .clamp(1, 24);
        let shift = 128 - bits;
        let mut starts = vec![0u32; (1 << bits) + 1];
        for &id in sorted {
            starts[(id >> shift) as usize + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        IdIndex { shift, starts }
    }

    /// The positions of `ids` in `sorted` (the list this index was made from), `None` where
    /// absent. Lanes of ids are looked up together: their buckets are fetched in one go, so the
    /// cache misses of a random lookup overlap rather than queue one behind another.
    pub(crate) fn find_all(&self, sorted: &[u128], ids: &[u128]) -> Vec<Option<usize>> {
        const LANES: usize = 16;
        let mut out = Vec::with_capacity(ids.len());
        for lane in ids.chunks(LANES) {
            let mut bounds = [(0usize, 0usize); LANES];
            for (bound, &id) in bounds.iter_mut().zip(lane) {
                let bucket = (id >> self.shift) as usize;
                *bound = (
                    self.starts[bucket] as usize,
                    self.starts[bucket + 1] as usize,
                );
            }
            let mut first = [0u128; LANES];
            for (first, &(low, high)) in first.iter_mut().zip(&bounds) {
                if low < high {
                    *first = sorted[low];
                }
            }
            for ((&id, &(low, high)), &first) in lane.iter().zip(&bounds).zip(&first) {
                out.push(if low < high && first == id {
                    Some(low)
                } else {
                    sorted[low..high]
                        .iter()
                        .position(|&x| x == id)
                        .map(|i| low + i)
                });
            }
        }
        out
    }

    /// The position of `id` in `sorted` (the list this index was made from).
    pub(crate) fn find(&self, sorted: &[u128], id: u128) -> Option<usize> {
        let bucket = (id >> self.shift) as usize;
        let (low, high) = (
            self.starts[bucket] as usize,
            self.starts[bucket + 1] as usize,
        );
        sorted[low..high]
            .iter()
            .position(|&x| x == id)
            .map(|i| low + i)
    }
}

/// Identifiers first seen in one batch, sorted by id.
#[derive(Debug, Default)]
pub(crate) struct Members {
    pub(crate) ids: Vec<u128>,
    pub(crate) labels: Vec<u16>,
    pub(crate) persons: Vec<u32>,
    index: IdIndex,
}

impl Members {
    pub(crate) fn new(ids: Vec<u128>, labels: Vec<u16>, persons: Vec<u32>) -> Members {
        Members {
            index: IdIndex::new(&ids),
            ids,
            labels,
            persons,
        }
    }

    pub(crate) fn find(&self, id: u128) -> Option<usize> {
        self.index.find(&self.ids, id)
    }
}

/// Every person ever made, merged ones included, numbered in the order they were made (so a
/// lower number is an older person).
#[derive(Debug, Default, Clone)]
pub(crate) struct Persons {
    pub(crate) ids: Vec<u128>,
    /// The person each was merged into; itself while it stands.
    pub(crate) parent: Vec<u32>,
    /// The segment that made it.
    pub(crate) created: Vec<u32>,
    pub(crate) members: Vec<u32>,
}

impl Persons {
    /// The person that `p` is now (after every merge).
    pub(crate) fn root(&self, mut p: u32) -> u32 {
        while self.parent[p as usize] != p {
            p = self.parent[p as usize];
        }
        p
    }

    pub(crate) fn push(&mut self, id: u128, created: u32) -> u32 {
        let p = self.ids.len() as u32;
        self.ids.push(id);
        self.parent.push(p);
        self.created.push(created);
        self.members.push(0);
        p
    }
}

/// What `who` and the report read about a segment.
#[derive(Debug, Default)]
pub(crate) struct Details {
    /// Keys of the segment's members, in the members' order.
    pub(crate) keys: Keys,
    pub(crate) links: Vec<Link>,
    pub(crate) far: Vec<Keyed>,
}

/// A batch's details as resolution gathers them: links and far keys in a list per file.
#[derive(Debug, Default)]
pub(crate) struct DetailParts {
    pub(crate) keys: Keys,
    pub(crate) links: Vec<Vec<Link>>,
    pub(crate) far: Vec<Vec<Keyed>>,
}

/// The state as resolution works on it.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) index: Option<Index>,
    pub(crate) segments: Vec<Members>,
    pub(crate) persons: Persons,
}

impl State {
    /// The person an identifier belongs to now, if it was seen before.
    pub(crate) fn person_of(&self, id: u128) -> Option<u32> {
        self.segments
            .iter()
            .find_map(|s| s.find(id).map(|i| self.persons.root(s.persons[i])))
    }
}

pub(crate) fn state_dir(root: &Location) -> Location {
    root.join(idgraph_core::Layout::IDENTITY).join("state")
}

fn storage(e: impl std::fmt::Display) -> Error {
    Error::Storage(e.to_string())
}

/// Reads `state.json`, if resolution ever ran under `root`.
pub(crate) fn load_index(store: &Store, root: &Location) -> Result<Option<Index>, Error> {
    let location = state_dir(root).join(INDEX);
    if !store.exists(&location).map_err(storage)? {
        return Ok(None);
    }
    let bytes = store.read(&location).map_err(storage)?;
    let index: Index = serde_json::from_slice(&bytes).map_err(|e| Error::CorruptState {
        file: location.to_string(),
        message: e.to_string(),
    })?;
    if index.format != FORMAT {
        return Err(Error::CorruptState {
            file: location.to_string(),
            message: format!("format {} (this build reads {FORMAT})", index.format),
        });
    }
    Ok(Some(index))
}

/// Reads a state file and checks it is the one the index names.
fn read_checked(store: &Store, root: &Location, entry: &FileEntry) -> Result<Vec<u8>, Error> {
    let location = state_dir(root).join(&entry.path);
    let bytes = store.read(&location).map_err(storage)?;
    if bytes.len() as u64 != entry.bytes || crc32fast::hash(&bytes) != entry.crc32 {
        return Err(Error::CorruptState {
            file: location.to_string(),
            message: format!(
                "{} bytes with CRC-32 {:08x}; state.json expects {} bytes with {:08x}",
                bytes.len(),
                crc32fast::hash(&bytes),
                entry.bytes,
                entry.crc32
            ),
        });
    }
    Ok(bytes)
}

/// Loads what resolution needs: every segment's members and the person table.
pub(crate) fn load(store: &Store, root: &Location) -> Result<State, Error> {
    let Some(index) = load_index(store, root)? else {
        return Ok(State {
            index: None,
            segments: Vec::new(),
            persons: Persons::default(),
        });
    };
    let segments = index
        .segments
        .iter()
        .map(|s| {
            let bytes = read_checked(store, root, &s.members)?;
            decode_members(&bytes).map_err(|m| corrupt(root, &s.members, m))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bytes = read_checked(store, root, &index.persons)?;
    let persons = decode_persons(&bytes).map_err(|m| corrupt(root, &index.persons, m))?;
    Ok(State {
        index: Some(index),
        segments,
        persons,
    })
}

pub(crate) fn load_details(
    store: &Store,
    root: &Location,
    entry: &SegmentEntry,
) -> Result<Details, Error> {
    let bytes = read_checked(store, root, &entry.details)?;
    decode_details(&bytes).map_err(|m| corrupt(root, &entry.details, m))
}

fn corrupt(root: &Location, entry: &FileEntry, message: String) -> Error {
    Error::CorruptState {
        file: state_dir(root).join(&entry.path).to_string(),
        message,
    }
}

/// Counts and checksums what passes through it.
struct Tally<'a> {
    sink: &'a mut dyn Write,
    crc: crc32fast::Hasher,
    bytes: u64,
}

impl Write for Tally<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.sink.write(buf)?;
        self.crc.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()
    }
}

/// Writes one state file whole from what `encode` writes (streamed: a state file is never
/// whole in memory) and returns its entry.
pub(crate) fn write_file(
    store: &Store,
    root: &Location,
    name: String,
    encode: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<FileEntry, Error> {
    let mut written = (0, 0);
    store
        .write_streamed(&state_dir(root).join(&name), |sink| {
            let mut tally = Tally {
                sink,
                crc: crc32fast::Hasher::new(),
                bytes: 0,
            };
            encode(&mut tally)?;
            written = (tally.bytes, tally.crc.finalize());
            Ok(())
        })
        .map_err(storage)?;
    Ok(FileEntry {
        path: name,
        bytes: written.0,
        crc32: written.1,
    })
}

/// Writes `state.json`: the commit point of a resolution.
pub(crate) fn write_index(store: &Store, root: &Location, index: &Index) -> Result<(), Error> {
    let mut bytes = serde_json::to_vec_pretty(index).map_err(storage)?;
    bytes.push(b'\n');
    store
        .write(&state_dir(root).join(INDEX), bytes)
        .map_err(storage)
}

pub(crate) fn new_index(rules_sha256: &str) -> Index {
    Index {
        format: FORMAT,
        rules_sha256: rules_sha256.to_owned(),
        segments: Vec::new(),
        persons: FileEntry {
            path: String::new(),
            bytes: 0,
            crc32: 0,
        },
        people: 0,
        identifiers: 0,
    }
}

// Binary files: a 4-byte magic, then little-endian counts and columns.

/// Encodes into a writer a chunk at a time. Methods do not fail: the first error is kept, and
/// `finish` returns it.
struct Out<'a> {
    buf: Vec<u8>,
    sink: &'a mut dyn Write,
    error: Option<io::Error>,
}

/// Bytes of a file gathered (encoded or formatted) before they are checksummed and handed on.
pub(crate) const CHUNK: usize = 1 << 18;

impl<'a> Out<'a> {
    fn new(magic: &[u8; 4], sink: &'a mut dyn Write) -> Out<'a> {
        let mut buf = Vec::with_capacity(CHUNK + 64);
        buf.extend_from_slice(magic);
        Out {
            buf,
            sink,
            error: None,
        }
    }
    fn bytes(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= CHUNK {
            self.spill();
        }
    }
    fn spill(&mut self) {
        if self.error.is_none()
            && let Err(e) = self.sink.write_all(&self.buf)
        {
            self.error = Some(e);
        }
        self.buf.clear();
    }
    fn finish(mut self) -> io::Result<()> {
        self.spill();
        self.error.map_or(Ok(()), Err)
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
    fn u128(&mut self, v: u128) {
        self.bytes(&v.to_le_bytes());
    }
    fn text(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.bytes(s.as_bytes());
    }
}

struct In<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> In<'a> {
    fn new(bytes: &'a [u8], magic: &[u8; 4]) -> Result<In<'a>, String> {
        if bytes.get(..4) != Some(&magic[..]) {
            return Err(format!(
                "does not start with {}",
                String::from_utf8_lossy(magic)
            ));
        }
        Ok(In { bytes, pos: 4 })
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(format!("ends early (at byte {})", self.bytes.len()));
        };
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u64(&mut self) -> Result<u64, String> {
        self.array().map(u64::from_le_bytes)
    }
    fn count(&mut self, width: usize) -> Result<usize, String> {
        let n = self.u64()? as usize;
        // A count the rest of the file cannot hold is corruption, not an allocation to try.
        if n.saturating_mul(width) > self.bytes.len() - self.pos {
            return Err(format!("claims {n} entries, more than it holds"));
        }
        Ok(n)
    }
    /// `n` values of `N` little-endian bytes each, made by `from`.
    fn column<const N: usize, T>(
        &mut self,
        n: usize,
        from: fn([u8; N]) -> T,
    ) -> Result<Vec<T>, String> {
        Ok(self
            .take(n * N)?
            .chunks_exact(N)
            .map(|c| from(c.try_into().unwrap_or([0; N])))
            .collect())
    }
    fn text(&mut self) -> Result<String, String> {
        let n = u32::from_le_bytes(self.array()?) as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|e| e.to_string())
    }
    fn end(&self) -> Result<(), String> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(format!(
                "has {} bytes too many",
                self.bytes.len() - self.pos
            ))
        }
    }
}

pub(crate) fn encode_members(m: &Members, sink: &mut dyn Write) -> io::Result<()> {
    let mut out = Out::new(b"IDGM", sink);
    out.u64(m.ids.len() as u64);
    m.ids.iter().for_each(|&v| out.u128(v));
    m.labels.iter().for_each(|&v| out.u16(v));
    m.persons.iter().for_each(|&v| out.u32(v));
    out.finish()
}

fn decode_members(bytes: &[u8]) -> Result<Members, String> {
    let mut r = In::new(bytes, b"IDGM")?;
    let n = r.count(22)?;
    let (ids, labels, persons) = (
        r.column(n, u128::from_le_bytes)?,
        r.column(n, u16::from_le_bytes)?,
        r.column(n, u32::from_le_bytes)?,
    );
    r.end()?;
    if !ids.is_sorted() {
        return Err("ids are not sorted".into());
    }
    Ok(Members::new(ids, labels, persons))
}

pub(crate) fn encode_persons(p: &Persons, sink: &mut dyn Write) -> io::Result<()> {
    let mut out = Out::new(b"IDGP", sink);
    out.u64(p.ids.len() as u64);
    p.ids.iter().for_each(|&v| out.u128(v));
    p.parent.iter().for_each(|&v| out.u32(v));
    p.created.iter().for_each(|&v| out.u32(v));
    p.members.iter().for_each(|&v| out.u32(v));
    out.finish()
}

fn decode_persons(bytes: &[u8]) -> Result<Persons, String> {
    let mut r = In::new(bytes, b"IDGP")?;
    let n = r.count(28)?;
    let p = Persons {
        ids: r.column(n, u128::from_le_bytes)?,
        parent: r.column(n, u32::from_le_bytes)?,
        created: r.column(n, u32::from_le_bytes)?,
        members: r.column(n, u32::from_le_bytes)?,
    };
    r.end()?;
    if p.parent.iter().any(|&q| q as usize >= n) {
        return Err("a person is merged into one that does not exist".into());
    }
    Ok(p)
}

/// Written as one list of links and one of far keys, whatever the parts.
pub(crate) fn encode_details(d: &DetailParts, sink: &mut dyn Write) -> io::Result<()> {
    let mut out = Out::new(b"IDGD", sink);
    out.u64(d.keys.len() as u64);
    d.keys.iter().for_each(|k| out.text(k));
    out.u64(d.far.iter().map(Vec::len).sum::<usize>() as u64);
    for (id, label, key) in d.far.iter().flatten() {
        out.u128(*id);
        out.u16(*label);
        out.text(key);
    }
    let links = || d.links.iter().flatten();
    out.u64(links().count() as u64);
    links().for_each(|l| out.u128(l.0));
    links().for_each(|l| out.u16(l.1));
    links().for_each(|l| out.u128(l.2));
    out.finish()
}

fn decode_details(bytes: &[u8]) -> Result<Details, String> {
    let mut r = In::new(bytes, b"IDGD")?;
    let n = r.count(4)?;
    let mut keys = Keys::default();
    for _ in 0..n {
        keys.push(&r.text()?);
    }
    let n = r.count(22)?;
    let mut far = Vec::with_capacity(n);
    for _ in 0..n {
        let id = u128::from_le_bytes(r.array()?);
        let label = u16::from_le_bytes(r.array()?);
        far.push((id, label, r.text()?));
    }
    let n = r.count(34)?;
    let (from, labels, to) = (
        r.column(n, u128::from_le_bytes)?,
        r.column(n, u16::from_le_bytes)?,
        r.column(n, u128::from_le_bytes)?,
    );
    r.end()?;
    let links = from
        .into_iter()
        .zip(labels)
        .zip(to)
        .map(|((a, l), b)| (a, l, b))
        .collect();
    Ok(Details { keys, links, far })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_vec(encode: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode(&mut bytes).unwrap_or_else(|e| panic!("{e}"));
        bytes
    }

    #[test]
    fn files_round_trip_and_damage_is_caught() {
        let members = Members::new(vec![1, 5, u128::MAX], vec![0, 3, 2], vec![0, 0, 1]);
        assert_eq!(members.find(5), Some(1));
        assert_eq!(members.find(u128::MAX), Some(2));
        assert_eq!(members.find(4), None);
        let many: Vec<u128> = (0..10_000u128)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835))
            .collect();
        let mut sorted = many.clone();
        sorted.sort_unstable();
        let index = IdIndex::new(&sorted);
        for id in &many {
            assert_eq!(index.find(&sorted, *id).map(|i| sorted[i]), Some(*id));
        }
        assert_eq!(
            index.find(&sorted, 12345),
            sorted.binary_search(&12345).ok()
        );
        // Many at once, present and absent (odd multiples are not in the list), in lanes that
        // do not divide the count.
        let asked: Vec<u128> = (0..1_003u128)
            .flat_map(|i| [many[i as usize], i * 2 + 1])
            .collect();
        let expected: Vec<Option<usize>> = asked
            .iter()
            .map(|&id| sorted.binary_search(&id).ok())
            .collect();
        assert_eq!(index.find_all(&sorted, &asked), expected);
        let bytes = to_vec(|w| encode_members(&members, w));
        let back = decode_members(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (back.ids, back.labels, back.persons),
            (members.ids, members.labels, members.persons)
        );
        assert!(decode_members(&bytes[..bytes.len() - 1]).is_err());
        let mut unsorted = bytes.clone();
        unsorted.swap(12, 28);
        assert!(decode_members(&unsorted).is_err());

        let details = DetailParts {
            keys: ["a@b.c", "", "ünï;code"]
                .into_iter()
                .fold(Keys::default(), |mut k, s| {
                    k.push(s);
                    k
                }),
            links: vec![vec![(1, 2, 3), (4, 5, 6)], vec![], vec![(7, 8, 9)]],
            far: vec![vec![(9, 1, "10.0.0.1".into())], vec![(10, 2, "d".into())]],
        };
        let back = decode_details(&to_vec(|w| encode_details(&details, w)))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (back.keys, back.links, back.far),
            (details.keys, details.links.concat(), details.far.concat())
        );

        let mut persons = Persons::default();
        let a = persons.push(7, 0);
        let b = persons.push(8, 1);
        persons.parent[b as usize] = a;
        let back = decode_persons(&to_vec(|w| encode_persons(&persons, w)))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.root(b), a);
        assert_eq!(back.ids, vec![7, 8]);
        let mut bad = to_vec(|w| encode_persons(&persons, w));
        let at = 4 + 8 + 32 + 4; // the second person's parent
        bad[at] = 9;
        assert!(decode_persons(&bad).is_err());
    }
}
