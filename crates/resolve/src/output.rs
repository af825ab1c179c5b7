//! The graph batch a resolution makes: `personId` on every identifier whose person is new or
//! changed, and the `Person` vertices whose member count or standing changed. An ordinary
//! closed batch (files, then `manifest.json` with their checksums), loaded like any other.

use std::collections::BTreeMap;

use gremlin_csv::push_field;
use idgraph_storage::{Location, Store};
use rayon::prelude::*;
use serde::Serialize;
use sha2::Digest;
use transform::Mapping;

use crate::state::{CHUNK, State};
use crate::{Error, Outcome, PERSON_ID_PROPERTY, PERSON_LABEL};

/// Rows per file: about 90 MB of `personId` rows, well below the loader's limits.
const ROWS_PER_FILE: usize = 1_000_000;

#[derive(Debug, Serialize)]
struct ManifestFile {
    path: String,
    kind: &'static str,
    label: String,
    rows: u64,
    bytes: u64,
    sha256: String,
}

#[derive(Debug, Serialize)]
struct Manifest<'a> {
    format: u32,
    batch: &'a str,
    /// What made the batch: identity resolution, not the transform.
    made_by: &'static str,
    mapping_sha256: &'a str,
    files: Vec<ManifestFile>,
    vertices: BTreeMap<String, u64>,
    edges: BTreeMap<String, u64>,
}

fn storage(e: impl std::fmt::Display) -> Error {
    Error::Storage(e.to_string())
}

/// Writes the batch under `dir` and returns how many identifiers it gives a `personId`.
pub(crate) fn write_batch(
    store: &Store,
    dir: &Location,
    batch: &str,
    mapping: &Mapping,
    state: &State,
    outcome: &Outcome,
) -> Result<u64, Error> {
    let persons = &outcome.persons;
    // (identifier, label, person): the new identifiers, and the old ones whose person merged
    // into another.
    // The person's id is looked up here, where consecutive lookups overlap their cache misses,
    // rather than while formatting.
    let mut rows: Vec<(u128, u16, u128)> = outcome
        .members
        .ids
        .par_iter()
        .zip(&outcome.members.labels)
        .zip(&outcome.members.persons)
        .map(|((&id, &label), &p)| (id, label, persons.ids[persons.root(p) as usize]))
        .collect();
    if !outcome.merges.is_empty() {
        let before = |mut p: u32| {
            while outcome.parents_before[p as usize] != p {
                p = outcome.parents_before[p as usize];
            }
            p
        };
        for segment in &state.segments {
            for (i, &p) in segment.persons.iter().enumerate() {
                let now = persons.root(p);
                if before(p) != now {
                    rows.push((segment.ids[i], segment.labels[i], persons.ids[now as usize]));
                }
            }
        }
        rows.sort_unstable_by_key(|r| r.0);
    }

    // Whatever an earlier, uncommitted run left here goes: the loader loads whole folders.
    store.remove_all(dir).map_err(storage)?;
    let mut per_label = vec![0u64; mapping.vertices.len()];
    for row in &rows {
        per_label[row.1 as usize] += 1;
    }
    let mut vertices: BTreeMap<String, u64> = per_label
        .iter()
        .enumerate()
        .filter(|&(_, &n)| n > 0)
        .map(|(label, &n)| (mapping.vertices[label].name.clone(), n))
        .collect();
    let vertex_names: Vec<&str> = mapping.vertices.iter().map(|v| v.name.as_str()).collect();
    let person_id_header = format!("~id,~label,{PERSON_ID_PROPERTY}:String(single)\n");
    let person_id_row = |text: &mut String, &(id, label, person): &(u128, u16, u128)| {
        transform::push_id(text, id);
        text.push(',');
        push_field(text, vertex_names[label as usize]);
        text.push(',');
        transform::push_id(text, person);
        text.push('\n');
    };
    let person_row = |text: &mut String, &p: &u32| {
        transform::push_id(text, persons.ids[p as usize]);
        text.push(',');
        text.push_str(PERSON_LABEL);
        text.push(',');
        text.push_str(&persons.members[p as usize].to_string());
        text.push(',');
        let root = persons.root(p);
        if root != p {
            transform::push_id(text, persons.ids[root as usize]);
        }
        text.push('\n');
    };
    // Every file is formatted, hashed and written in parallel, a chunk at a time.
    let (person_id_files, person_files) = rayon::join(
        || {
            rows.par_chunks(ROWS_PER_FILE)
                .enumerate()
                .map(|(part, chunk)| {
                    write_file(
                        store,
                        dir,
                        format!("vertices/{PERSON_ID_PROPERTY}-{part:05}.csv"),
                        PERSON_ID_PROPERTY,
                        &person_id_header,
                        chunk,
                        person_id_row,
                    )
                })
                .collect::<Result<Vec<_>, _>>()
        },
        || {
            outcome
                .touched
                .par_chunks(ROWS_PER_FILE)
                .enumerate()
                .map(|(part, chunk)| {
                    write_file(
                        store,
                        dir,
                        format!("vertices/{PERSON_LABEL}-{part:05}.csv"),
                        PERSON_LABEL,
                        "~id,~label,members:Int(single),mergedInto:String(single)\n",
                        chunk,
                        person_row,
                    )
                })
                .collect::<Result<Vec<_>, _>>()
        },
    );
    let mut files = person_id_files?;
    files.extend(person_files?);
    if !outcome.touched.is_empty() {
        vertices.insert(PERSON_LABEL.to_owned(), outcome.touched.len() as u64);
    }

    let manifest = Manifest {
        format: 1,
        batch,
        made_by: "resolve",
        mapping_sha256: &mapping.text_sha256,
        files,
        vertices,
        edges: BTreeMap::new(),
    };
    let mut bytes = serde_json::to_vec_pretty(&manifest).map_err(storage)?;
    bytes.push(b'\n');
    // Last: a folder with a manifest is complete.
    store
        .write(&dir.join("manifest.json"), bytes)
        .map_err(storage)?;
    Ok(rows.len() as u64)
}

/// Writes one CSV file: `header`, then `push_row` for each row, streamed a chunk at a time
/// (a file is never whole in memory) and hashed on the way.
fn write_file<T>(
    store: &Store,
    dir: &Location,
    path: String,
    label: &str,
    header: &str,
    rows: &[T],
    push_row: impl Fn(&mut String, &T),
) -> Result<ManifestFile, Error> {
    let mut hash = sha2::Sha256::new();
    let mut bytes = 0u64;
    store
        .write_streamed(&dir.join(&path), |sink| {
            let mut text = String::with_capacity(CHUNK + 256);
            text.push_str(header);
            let mut hand_on = |text: &mut String| {
                hash.update(text.as_bytes());
                bytes += text.len() as u64;
                let written = sink.write_all(text.as_bytes());
                text.clear();
                written
            };
            for row in rows {
                push_row(&mut text, row);
                if text.len() >= CHUNK {
                    hand_on(&mut text)?;
                }
            }
            hand_on(&mut text)
        })
        .map_err(storage)?;
    Ok(ManifestFile {
        sha256: format!("{:x}", hash.finalize()),
        bytes,
        path,
        kind: "vertex",
        label: label.to_owned(),
        rows: rows.len() as u64,
    })
}
