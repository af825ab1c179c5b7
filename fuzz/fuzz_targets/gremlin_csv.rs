//! Any bytes as a Gremlin CSV vertex or edge file: the reader and the validator report
//! violations, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let name = match selector % 4 {
        0 => "vertices/V-00000.csv",
        1 => "edges/e-00000.csv",
        2 => "vertices/V-00000.csv.gz",
        _ => "x.csv",
    };
    let report = gremlin_csv::validate_files(
        &[(name.to_owned(), rest.to_vec())],
        gremlin_csv::Options::default(),
    );
    let _ = report.is_valid();
    if let Ok(text) = std::str::from_utf8(rest) {
        for record in gremlin_csv::Records::new(text) {
            let _ = record.map(|r| r.fields.len());
        }
    }
});
