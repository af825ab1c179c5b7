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
}

#[derive(Debug, Deserialize)]
struct Manifest {
    files: Vec<ManifestFile>,
}

/// A vertex with its key: (id, vertex label index, key).
pub(crate) type Keyed = (u128, u16, String);

/// A weak edge with an identifier at one end: (identifier id, edge label index, other end).
pub(crate) type Link = (u128, u16, u128);

/// What one batch contributes.
#[derive(Debug, Default)]
pub(crate) struct BatchGraph {
    pub(crate) identifiers: Vec<Keyed>,
    /// Both ends of every strong edge.
    pub(crate) strong: Vec<(u128, u128)>,
    pub(crate) links: Vec<Link>,
    /// Keys of the vertices at the far end of `links`.
    pub(crate) far: Vec<Keyed>,
    /// Rows that are not graph rows (`file:line: reason`): the loader rejects them too, and a
    /// run that tolerates load errors (`--max-error-rate`) should not stop here either.
    pub(crate) skipped: Vec<String>,
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
    /// Per edge label: strong, or weak with its identifier side, or ignored.
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
        for &label in &rules.weak {
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
    let bytes = store
        .read(location)
        .map_err(|e| Error::Storage(e.to_string()))?;
    let bytes = if location.to_string().ends_with(".gz") {
        let mut out = Vec::with_capacity(bytes.len() * 4);
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|e| bad(location, 0, format!("not gzip: {e}")))?;
        out
    } else {
        bytes
    };
    String::from_utf8(bytes).map_err(|e| bad(location, 0, format!("not UTF-8: {e}")))
}

/// The fields at `at` of a record, with its line; an error names the file and line.
fn fields_at<const N: usize>(
    location: &Location,
    record: Result<gremlin_csv::Record<'_>, gremlin_csv::RecordError>,
    at: [usize; N],
) -> Result<(u64, [String; N]), Error> {
    let record = record.map_err(|e| bad(location, e.line(), e))?;
    let mut out: [String; N] = std::array::from_fn(|_| String::new());
    for (slot, &i) in out.iter_mut().zip(&at) {
        *slot = record
            .fields
            .get(i)
            .map(|f| f.text.to_string())
            .ok_or_else(|| {
                bad(
                    location,
                    record.line,
                    format!("the row has no field {}", i + 1),
                )
            })?;
    }
    Ok((record.line, out))
}

fn parse_id(location: &Location, line: u64, text: &str) -> Result<u128, Error> {
    uuid::Uuid::try_parse(text)
        .map(|u| u.as_u128())
        .map_err(|_| bad(location, line, format!("`{text}` is not an element id")))
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
    let parts: Vec<BatchGraph> = manifest
        .files
        .par_iter()
        .map(|file| read_file(store, dir, file, mapping, &reading))
        .collect::<Result<_, _>>()?;
    let mut graph = BatchGraph::default();
    for part in parts {
        graph.identifiers.extend(part.identifiers);
        graph.strong.extend(part.strong);
        graph.links.extend(part.links);
        graph.far.extend(part.far);
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
) -> Result<BatchGraph, Error> {
    let mut out = BatchGraph::default();
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
            let text = read_text(store, &location)?;
            let target = if identifier {
                &mut out.identifiers
            } else {
                &mut out.far
            };
            let mut skipped = Vec::new();
            for record in Records::new(&text).skip(1) {
                // The id and the third field, the key (a String value: `;` escaped).
                let row = fields_at(&location, record, [0, 2]).and_then(|(line, [id, key])| {
                    Ok((parse_id(&location, line, &id)?, key.replace("\\;", ";")))
                });
                match row {
                    Ok((id, key)) => target.push((id, label as u16, key)),
                    Err(e) => skipped.push(e.to_string()),
                }
            }
            out.skipped = skipped;
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
            let text = read_text(store, &location)?;
            for record in Records::new(&text).skip(1) {
                let ends = fields_at(&location, record, [1, 2]).and_then(|(line, [from, to])| {
                    Ok((
                        parse_id(&location, line, &from)?,
                        parse_id(&location, line, &to)?,
                    ))
                });
                let (from, to) = match ends {
                    Ok(ends) => ends,
                    Err(e) => {
                        out.skipped.push(e.to_string());
                        continue;
                    }
                };
                match side {
                    _ if strong => out.strong.push((from, to)),
                    Some(Side::From) => out.links.push((from, label as u16, to)),
                    Some(Side::To) => out.links.push((to, label as u16, from)),
                    None => {}
                }
            }
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
