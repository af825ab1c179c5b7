//! Reading what resolution needs from one graph batch (the transform's output): identifier
//! vertices with their keys, strong edges, and weak edges that touch an identifier.

use std::io::Read;

use gremlin_csv::Records;
use idgraph_storage::{Location, Store};
use rayon::prelude::*;
use serde::Deserialize;
use transform::{IdentityRules, Mapping};

use crate::Error;

#[derive(Debug, Deserialize)]
struct ManifestFile {
    path: String,
    kind: String,
    label: String,
    #[serde(default)]
    bytes: u64,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    files: Vec<ManifestFile>,
}

/// A vertex with its key: (id, vertex label index, key).
pub(crate) type Keyed = (u128, u16, String);

/// Many short strings in one buffer: key `i` is `text[ends[i - 1]..ends[i]]`. Millions of
/// identifier keys cost two allocations, not millions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    text: String,
    ends: Vec<usize>,
}

impl Keys {
    pub(crate) fn push(&mut self, key: &str) {
        self.text.push_str(key);
        self.ends.push(self.text.len());
    }

    pub(crate) fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text.get(start..end)
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

/// Identifier vertices: ids, labels, and their keys (in `keys`, at the same positions).
#[derive(Debug, Default)]
pub(crate) struct Identifiers {
    pub(crate) ids: Vec<u128>,
    pub(crate) labels: Vec<u16>,
    pub(crate) keys: Keys,
}

/// A weak edge with an identifier at one end: (identifier id, edge label index, other end).
pub(crate) type Link = (u128, u16, u128);

/// What one batch contributes, a list per file it was read from (never copied into one: at a
/// million records that copy alone took a third of the reading).
#[derive(Debug, Default)]
pub(crate) struct BatchGraph {
    pub(crate) identifiers: Vec<Identifiers>,
    /// Both ends of every strong edge.
    pub(crate) strong: Vec<Vec<(u128, u128)>>,
    pub(crate) links: Vec<Vec<Link>>,
    /// Keys of the vertices at the far end of `links`.
    pub(crate) far: Vec<Vec<Keyed>>,
    /// Rows that are not graph rows (`file:line: reason`): the loader rejects them too, and a
    /// run that tolerates load errors (`--max-error-rate`) should not stop here either.
    pub(crate) skipped: Vec<String>,
}

/// What one file contributes.
#[derive(Debug, Default)]
struct FilePart {
    identifiers: Identifiers,
    strong: Vec<(u128, u128)>,
    links: Vec<Link>,
    far: Vec<Keyed>,
    skipped: Vec<String>,
}

/// Which end of a weak edge label is the identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    From,
    To,
}

/// How each label is read, from the mapping's identity rules.
struct Reading {
    /// Per vertex label: an identifier, a far end of a weak link, or neither.
    identifier: Vec<bool>,
    far: Vec<bool>,
    /// Per edge label: strong, or tracked with its identifier side, or ignored.
    strong: Vec<bool>,
    weak_side: Vec<Option<Side>>,
}

impl Reading {
    fn new(mapping: &Mapping, rules: &IdentityRules) -> Reading {
        let identifier: Vec<bool> = (0..mapping.vertices.len())
            .map(|l| rules.is_identifier(l))
            .collect();
        let mut far = vec![false; mapping.vertices.len()];
        let mut weak_side = vec![None; mapping.edges.len()];
        for &label in &rules.track {
            let edge_rules: Vec<_> = mapping
                .datasets
                .iter()
                .flat_map(|d| &d.edges)
                .filter(|r| r.label == label)
                .collect();
            // A side counts only when every rule of the label agrees on it.
            let side = if edge_rules
                .iter()
                .all(|r| identifier[r.from.label] && !identifier[r.to.label])
            {
                Some(Side::From)
            } else if edge_rules
                .iter()
                .all(|r| identifier[r.to.label] && !identifier[r.from.label])
            {
                Some(Side::To)
            } else {
                None
            };
            if let Some(side) = side {
                for r in &edge_rules {
                    far[if side == Side::From {
                        r.to.label
                    } else {
                        r.from.label
                    }] = true;
                }
            }
            weak_side[label] = side;
        }
        Reading {
            identifier,
            far,
            strong: (0..mapping.edges.len())
                .map(|l| rules.is_strong(l))
                .collect(),
            weak_side,
        }
    }
}

fn bad(location: &Location, line: u64, message: impl std::fmt::Display) -> Error {
    Error::BadGraphFile {
        file: location.to_string(),
        line,
        message: message.to_string(),
    }
}

/// The text of a graph file, gunzipped when its name says so.
pub(crate) fn read_text(store: &Store, location: &Location) -> Result<String, Error> {
    read_text_into(store, location, &mut Vec::new()).map(str::to_owned)
}

/// Reads a file (plain or gzip) into `buf`, reusing its memory, and returns it as text.
fn read_text_into<'a>(
    store: &Store,
    location: &Location,
    buf: &'a mut Vec<u8>,
) -> Result<&'a str, Error> {
    store
        .read_into(location, buf)
        .map_err(|e| Error::Storage(e.to_string()))?;
    if location.to_string().ends_with(".gz") {
        let mut out = Vec::with_capacity(buf.len() * 4);
        flate2::read::MultiGzDecoder::new(&buf[..])
            .read_to_end(&mut out)
            .map_err(|e| bad(location, 0, format!("not gzip: {e}")))?;
        *buf = out;
    }
    std::str::from_utf8(buf).map_err(|e| bad(location, 0, format!("not UTF-8: {e}")))
}

/// Calls `each` with the line and the first three fields of every record after the header
/// (missing fields are empty). The usual record (no quote) is split where it lies; a quoted one
/// is read by `gremlin_csv::Records`, exactly as the validator reads it. A record that cannot be
/// read is returned as `file:line: reason`.
fn for_each_record(
    location: &Location,
    text: &str,
    mut each: impl FnMut(u64, [&str; 3]) -> Result<(), Error>,
) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut skipped = Vec::new();
    let Some(header_end) = memchr::memchr(b'\n', bytes) else {
        return skipped;
    };
    let (mut pos, mut line) = (header_end + 1, 2u64);
    while pos < bytes.len() {
        // The record ends at the first newline outside quotes.
        let (start, mut at, mut quotes) = (pos, pos, 0u32);
        let end = loop {
            match memchr::memchr2(b'\n', b'"', &bytes[at..]) {
                Some(i) if bytes[at + i] == b'"' => {
                    quotes += 1;
                    at += i + 1;
                }
                Some(i) if quotes % 2 == 1 => at += i + 1,
                Some(i) => break at + i,
                None => break bytes.len(),
            }
        };
        pos = end + 1;
        let record = &text[start..end];
        let record = record.strip_suffix('\r').unwrap_or(record);
        let this_line = line;
        line += 1;
        let outcome = if quotes == 0 {
            // The first three fields, cut at commas found with memchr (a `str::splitn` here
            // cost more than the rest of the loop).
            let mut rest = record;
            let mut next = || match memchr::memchr(b',', rest.as_bytes()) {
                Some(i) => {
                    let field = &rest[..i];
                    rest = &rest[i + 1..];
                    field
                }
                None => std::mem::take(&mut rest),
            };
            each(this_line, [next(), next(), next()])
        } else {
            line += memchr::memchr_iter(b'\n', record.as_bytes()).count() as u64;
            match Records::starting_at(record, this_line).next() {
                Some(Ok(r)) => {
                    let field = |i: usize| r.fields.get(i).map_or("", |f| f.text.as_ref());
                    each(this_line, [field(0), field(1), field(2)])
                }
                Some(Err(e)) => Err(bad(location, e.line(), e)),
                None => Ok(()),
            }
        };
        if let Err(e) = outcome {
            skipped.push(e.to_string());
        }
    }
    skipped
}

/// A String value as read back: `\\;` is an escaped `;`.
fn unescape(value: &str) -> String {
    if value.contains('\\') {
        value.replace("\\;", ";")
    } else {
        value.to_owned()
    }
}

/// Hex digit values; 0xFF marks a byte that is not one.
const HEX: [u8; 256] = {
    let mut table = [0xFF; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// An element id as the transform writes it (a hyphenated UUID, lower or upper case), read
/// without the general parser: every row has one to three, and this is the resolver's
/// hottest loop. Two 64-bit halves, table lookups, one check at the end.
fn parse_id(location: &Location, line: u64, text: &str) -> Result<u128, Error> {
    let b = text.as_bytes();
    if b.len() != 36 || b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return Err(bad(
            location,
            line,
            format!("`{text}` is not an element id"),
        ));
    }
    let mut invalid = 0u8;
    let mut half = |ranges: [std::ops::Range<usize>; 3]| {
        let mut v = 0u64;
        for range in ranges {
            for &c in &b[range] {
                let d = HEX[c as usize];
                invalid |= d;
                v = v << 4 | u64::from(d & 0x0F);
            }
        }
        v
    };
    let high = half([0..8, 9..13, 14..18]);
    let low = half([19..23, 24..36, 36..36]);
    if invalid & 0xF0 != 0 {
        return Err(bad(
            location,
            line,
            format!("`{text}` is not an element id"),
        ));
    }
    Ok(u128::from(high) << 64 | u128::from(low))
}

fn read_manifest(store: &Store, dir: &Location) -> Result<Manifest, Error> {
    let location = dir.join("manifest.json");
    let bytes = store.read(&location).map_err(|_| Error::NotTransformed {
        manifest: location.to_string(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| bad(&location, e.line() as u64, e))
}

/// Reads the batch under `dir` (a transform's graph folder).
pub(crate) fn read_batch(
    store: &Store,
    dir: &Location,
    mapping: &Mapping,
    rules: &IdentityRules,
) -> Result<BatchGraph, Error> {
    let manifest = read_manifest(store, dir)?;
    let reading = Reading::new(mapping, rules);
    // Read buffers, reused from file to file (each new one costs its size in page faults), and
    // dropped once every file is read. The largest files first, so a buffer rarely grows.
    let mut files: Vec<(usize, &ManifestFile)> = manifest.files.iter().enumerate().collect();
    files.sort_by_key(|(_, f)| std::cmp::Reverse(f.bytes));
    let buffers = std::sync::Mutex::new(Vec::<Vec<u8>>::new());
    let take = || buffers.lock().map(|mut b| b.pop()).ok().flatten();
    let mut parts: Vec<(usize, FilePart)> = files
        .par_iter()
        .map(|&(at, file)| {
            let mut buf = take().unwrap_or_default();
            let part = read_file(store, dir, file, mapping, &reading, &mut buf);
            if let Ok(mut free) = buffers.lock() {
                free.push(buf);
            }
            part.map(|p| (at, p))
        })
        .collect::<Result<_, _>>()?;
    // In the manifest's order, whatever order they were read in.
    parts.sort_by_key(|(at, _)| *at);
    let mut graph = BatchGraph::default();
    for (_, part) in parts {
        if !part.identifiers.ids.is_empty() {
            graph.identifiers.push(part.identifiers);
        }
        if !part.strong.is_empty() {
            graph.strong.push(part.strong);
        }
        if !part.links.is_empty() {
            graph.links.push(part.links);
        }
        if !part.far.is_empty() {
            graph.far.push(part.far);
        }
        graph.skipped.extend(part.skipped);
    }
    Ok(graph)
}

fn read_file(
    store: &Store,
    dir: &Location,
    file: &ManifestFile,
    mapping: &Mapping,
    reading: &Reading,
    buf: &mut Vec<u8>,
) -> Result<FilePart, Error> {
    let mut out = FilePart::default();
    let location = dir.join(&file.path);
    match file.kind.as_str() {
        "vertex" => {
            let Some(label) = mapping.vertex_label(&file.label) else {
                return Err(bad(
                    &location,
                    0,
                    format!("vertex label `{}` is not in the mapping", file.label),
                ));
            };
            let (identifier, far) = (reading.identifier[label], reading.far[label]);
            if !identifier && !far {
                return Ok(out);
            }
            let text = read_text_into(store, &location, buf)?;
            let (identifiers, far) = (&mut out.identifiers, &mut out.far);
            let label = label as u16;
            out.skipped = for_each_record(&location, text, |line, [id, _, key]| {
                let id = parse_id(&location, line, id)?;
                if identifier {
                    identifiers.ids.push(id);
                    identifiers.labels.push(label);
                    // Keys are String values: `;` escaped.
                    if key.contains('\\') {
                        identifiers.keys.push(&unescape(key));
                    } else {
                        identifiers.keys.push(key);
                    }
                } else {
                    far.push((id, label, unescape(key)));
                }
                Ok(())
            });
        }
        "edge" => {
            let Some(label) = mapping.edge_label(&file.label) else {
                return Err(bad(
                    &location,
                    0,
                    format!("edge label `{}` is not in the mapping", file.label),
                ));
            };
            let strong = reading.strong[label];
            let side = reading.weak_side[label];
            if !strong && side.is_none() {
                return Ok(out);
            }
            let text = read_text_into(store, &location, buf)?;
            let label = label as u16;
            let (strong_out, links) = (&mut out.strong, &mut out.links);
            out.skipped = for_each_record(&location, text, |line, [_, from, to]| {
                let (from, to) = (
                    parse_id(&location, line, from)?,
                    parse_id(&location, line, to)?,
                );
                match side {
                    _ if strong => strong_out.push((from, to)),
                    Some(Side::From) => links.push((from, label, to)),
                    Some(Side::To) => links.push((to, label, from)),
                    None => {}
                }
                Ok(())
            });
        }
        other => {
            return Err(bad(
                &location,
                0,
                format!("unknown file kind `{other}` in the manifest"),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_back_as_written_and_bad_ones_are_named() {
        let at: Location = "/tmp/x.csv"
            .parse()
            .unwrap_or_else(|e: String| panic!("{e}"));
        for seed in 0..1_000u128 {
            let id = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) ^ (seed << 7);
            let mut text = String::new();
            transform::push_id(&mut text, id);
            assert_eq!(parse_id(&at, 1, &text).ok(), Some(id), "{text}");
            assert_eq!(parse_id(&at, 1, &text.to_uppercase()).ok(), Some(id));
            assert_eq!(
                uuid::Uuid::try_parse(&text).map(|u| u.as_u128()).ok(),
                Some(id)
            );
        }
        for bad_id in [
            "",
            "broken",
            "0123456789abcdef0123456789abcdef",
            "0123456-789a-bcde-f012-3456789abcdef",
            "g1234567-89ab-cdef-0123-456789abcdef",
        ] {
            let err = parse_id(&at, 7, bad_id)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.contains("x.csv:7") && err.contains("not an element id"),
                "{bad_id}: {err}"
            );
        }
    }
}
