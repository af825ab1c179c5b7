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

use crate::state::State;
use crate::{Error, Outcome, PERSON_ID_PROPERTY, PERSON_LABEL, uuid_text};

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
    let mut rows: Vec<(u128, u16, u32)> = outcome
        .members
        .ids
        .iter()
        .zip(&outcome.members.labels)
        .zip(&outcome.members.persons)
        .map(|((&id, &label), &p)| (id, label, persons.root(p)))
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
                    rows.push((segment.ids[i], segment.labels[i], now));
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
    let header = format!("~id,~label,{PERSON_ID_PROPERTY}:String(single)\n");
    // Files are formatted, hashed and written in parallel.
    let mut files: Vec<ManifestFile> = rows
        .par_chunks(ROWS_PER_FILE)
        .enumerate()
        .map(|(part, chunk)| {
            let mut text = String::with_capacity(header.len() + chunk.len() * 100);
            text.push_str(&header);
            for &(id, label, person) in chunk {
                transform::push_id(&mut text, id);
                text.push(',');
                push_field(&mut text, &mapping.vertices[label as usize].name);
                text.push(',');
                transform::push_id(&mut text, persons.ids[person as usize]);
                text.push('\n');
            }
            write_file(
                store,
                dir,
                format!("vertices/{PERSON_ID_PROPERTY}-{part:05}.csv"),
                PERSON_ID_PROPERTY,
                chunk.len(),
                text,
            )
        })
        .collect::<Result<_, _>>()?;

    let header = "~id,~label,members:Int(single),mergedInto:String(single)\n";
    for (part, chunk) in outcome.touched.chunks(ROWS_PER_FILE).enumerate() {
        let mut text = String::with_capacity(header.len() + chunk.len() * 90);
        text.push_str(header);
        for &p in chunk {
            transform::push_id(&mut text, persons.ids[p as usize]);
            text.push(',');
            text.push_str(PERSON_LABEL);
            text.push(',');
            text.push_str(&persons.members[p as usize].to_string());
            text.push(',');
            let root = persons.root(p);
            if root != p {
                text.push_str(&uuid_text(persons.ids[root as usize]));
            }
            text.push('\n');
        }
        *vertices.entry(PERSON_LABEL.to_owned()).or_default() += chunk.len() as u64;
        files.push(write_file(
            store,
            dir,
            format!("vertices/{PERSON_LABEL}-{part:05}.csv"),
            PERSON_LABEL,
            chunk.len(),
            text,
        )?);
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

fn write_file(
    store: &Store,
    dir: &Location,
    path: String,
    label: &str,
    rows: usize,
    text: String,
) -> Result<ManifestFile, Error> {
    let bytes = text.into_bytes();
    let entry = ManifestFile {
        sha256: format!("{:x}", sha2::Sha256::digest(&bytes)),
        bytes: bytes.len() as u64,
        path,
        kind: "vertex",
        label: label.to_owned(),
        rows: rows as u64,
    };
    store
        .write(&dir.join(&entry.path), bytes)
        .map_err(storage)?;
    Ok(entry)
}
