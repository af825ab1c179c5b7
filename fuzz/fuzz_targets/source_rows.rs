//! Any bytes as a source file of any dataset: the transform's decoding, header check, chunking,
//! row parsing and mapping end in counts or an error, never a panic. The first byte picks the
//! dataset, gzip and the chunk size; a valid header is put in front half of the time, so that
//! the rows themselves get fuzzed.
#![no_main]

use std::sync::OnceLock;

use idgraph_core::{Dataset, SourceSchemas};
use libfuzzer_sys::fuzz_target;
use transform::Mapping;

fuzz_target!(|data: &[u8]| {
    static MAPPING: OnceLock<Mapping> = OnceLock::new();
    let mapping = MAPPING.get_or_init(|| Mapping::default_mapping().expect("the built-in mapping"));
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let dataset = Dataset::ALL[usize::from(selector) % Dataset::ALL.len()];
    let mut bytes = Vec::with_capacity(rest.len() + 200);
    if selector & 0x10 != 0 {
        bytes.extend_from_slice(SourceSchemas::embedded().get(dataset).header_line().as_bytes());
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(rest);
    let name = if selector & 0x20 != 0 { "f.csv.gz" } else { "f.csv" };
    let chunk_bytes = 1 + usize::from(selector >> 6) * 40;
    let _ = transform::fuzzing::source_file(mapping, dataset, name, bytes, chunk_bytes);
});
