//! Source files: decoding, the header check, splitting into chunks that can be parsed in
//! parallel, and typed conversion of each field.

use std::borrow::Cow;
use std::io::Read;
use std::ops::Range;

use gremlin_csv::{Field, is_valid_date};
use idgraph_core::{Column, ColumnType, DatasetSchema};

use crate::Error;

/// A source file's text, ready to parse.
#[derive(Debug)]
pub(crate) struct SourceText {
    pub(crate) text: String,
    /// The file was not valid UTF-8: rows holding undecodable bytes are rejected.
    pub(crate) lossy: bool,
    /// Things worth telling about the file that lose no data (a byte-order mark was skipped).
    pub(crate) notes: Vec<String>,
}

/// Decodes a source file: gunzip (`.gz`), skip a UTF-8 byte-order mark, check UTF-8.
pub(crate) fn decode(name: &str, bytes: Vec<u8>) -> Result<SourceText, Error> {
    let bytes = if name.ends_with(".gz") {
        let mut out = Vec::with_capacity(bytes.len() * 4);
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::Input(format!("{name}: not a complete gzip file ({e})")))?;
        out
    } else {
        bytes
    };
    let mut notes = Vec::new();
    let body = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => {
            notes.push(format!("{name}: skipped a UTF-8 byte-order mark"));
            rest.to_vec()
        }
        None => bytes,
    };
    match String::from_utf8(body) {
        Ok(text) => Ok(SourceText {
            text,
            lossy: false,
            notes,
        }),
        Err(e) => Ok(SourceText {
            text: String::from_utf8_lossy(e.as_bytes()).into_owned(),
            lossy: true,
            notes,
        }),
    }
}

/// Checks a header record against the dataset's schema: same columns, same order.
pub(crate) fn check_header(
    name: &str,
    schema: &DatasetSchema,
    header: &[Field<'_>],
) -> Result<(), Error> {
    let found: Vec<&str> = header.iter().map(|f| f.text.as_ref()).collect();
    let expected: Vec<&str> = schema.column_names().collect();
    if found == expected {
        return Ok(());
    }
    if found.len() == 1 {
        for (delimiter, shown) in [(';', ";"), ('\t', "tab"), ('|', "|")] {
            if found[0].contains(delimiter) {
                return Err(Error::Input(format!(
                    "{name}: the header is one column; is the delimiter `{shown}`? Fields must be separated by commas"
                )));
            }
        }
    }
    for (i, want) in expected.iter().enumerate() {
        match found.get(i) {
            Some(got) if got == want => {}
            Some(got) if !expected.contains(got) => {
                return Err(Error::Input(format!(
                    "{name}: column {} is `{got}` where the {} schema has `{want}`",
                    i + 1,
                    schema.dataset
                )));
            }
            Some(got) => {
                return Err(Error::Input(format!(
                    "{name}: column {} is `{got}` where the {} schema has `{want}` (columns are out of order)",
                    i + 1,
                    schema.dataset
                )));
            }
            None => {
                return Err(Error::Input(format!(
                    "{name}: column `{want}` of the {} schema is missing",
                    schema.dataset
                )));
            }
        }
    }
    Err(Error::Input(format!(
        "{name}: column {} `{}` is not in the {} schema",
        expected.len() + 1,
        found.get(expected.len()).copied().unwrap_or_default(),
        schema.dataset
    )))
}

/// Splits `text` (after its header, which starts at `start`) into chunks of about `target`
/// bytes that end at record boundaries: a newline outside quotes, which is a newline after an
/// even number of quote characters. Returns each chunk with the line it starts on.
pub(crate) fn split_chunks(
    text: &str,
    start: usize,
    start_line: u64,
    target: usize,
) -> Vec<(Range<usize>, u64)> {
    let bytes = text.as_bytes();
    let mut chunks = Vec::new();
    let (mut chunk_start, mut chunk_line) = (start, start_line);
    let (mut quotes, mut line) = (0u64, start_line);
    let mut next_cut = start + target;
    for (i, &b) in bytes.iter().enumerate().skip(start) {
        match b {
            b'"' => quotes += 1,
            b'\n' => {
                line += 1;
                if i + 1 >= next_cut && quotes.is_multiple_of(2) && i + 1 < bytes.len() {
                    chunks.push((chunk_start..i + 1, chunk_line));
                    chunk_start = i + 1;
                    chunk_line = line;
                    next_cut = chunk_start + target;
                }
            }
            _ => {}
        }
    }
    if chunk_start < bytes.len() {
        chunks.push((chunk_start..bytes.len(), chunk_line));
    }
    chunks
}

/// Why one field makes its row unusable: the rule it breaks (no value in it, for messages and
/// logs) and the reason with the value quoted (for `rejects.csv`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldProblem {
    pub rule: &'static str,
    pub reason: String,
}

fn problem(rule: &'static str, reason: String) -> FieldProblem {
    FieldProblem { rule, reason }
}

/// Converts one field to the form written to the graph: whole numbers in canonical decimal,
/// dates as `yyyy-MM-dd`, timestamps as `yyyy-MM-ddTHH:mm:ssZ` (UTC; a fraction of a second is
/// dropped). `None`: no value. `int32`: the number feeds an Int property.
pub(crate) fn convert<'a>(
    column: &Column,
    field: &'a Field<'a>,
    int32: bool,
) -> Result<Option<Cow<'a, str>>, FieldProblem> {
    let raw = field.text.as_ref();
    let trimmed = raw.trim();
    // The reference exporter writes the string `null` for a missing value.
    let absent = trimmed.is_empty() || (column.nullable && trimmed.eq_ignore_ascii_case("null"));
    if absent {
        return if column.nullable {
            Ok(None)
        } else {
            Err(problem(
                rule::EMPTY,
                format!("column {} is empty", column.name),
            ))
        };
    }
    match column.ty {
        ColumnType::String => Ok(Some(Cow::Borrowed(raw))),
        ColumnType::Int => {
            let n: i64 = trimmed.parse().map_err(|_| {
                problem(
                    rule::NOT_WHOLE,
                    format!(
                        "column {}: `{}` is not a whole number",
                        column.name,
                        shorten(raw)
                    ),
                )
            })?;
            if int32 && i32::try_from(n).is_err() {
                return Err(problem(
                    rule::INT_RANGE,
                    format!(
                        "column {}: {n} does not fit an Int (32 bits) property",
                        column.name
                    ),
                ));
            }
            // Borrow the text when it is already in canonical form (no sign, no leading zero).
            let canonical = !(trimmed.starts_with('+')
                || trimmed.starts_with("-0")
                || (trimmed.len() > 1 && trimmed.starts_with('0')));
            if canonical {
                Ok(Some(Cow::Borrowed(trimmed)))
            } else {
                Ok(Some(Cow::Owned(n.to_string())))
            }
        }
        ColumnType::Date => {
            if trimmed.len() == 10 && is_valid_date(trimmed) {
                Ok(Some(Cow::Borrowed(trimmed)))
            } else {
                Err(problem(
                    rule::NOT_DATE,
                    format!(
                        "column {}: `{}` is not a date (yyyy-MM-dd)",
                        column.name,
                        shorten(raw)
                    ),
                ))
            }
        }
        ColumnType::Timestamp => timestamp(trimmed)
            .map(|t| Some(Cow::Owned(t)))
            .ok_or_else(|| {
                problem(
                    rule::NOT_TIMESTAMP,
                    format!(
                        "column {}: `{}` is not a timestamp (yyyy-MM-dd HH:mm:ss[.ffffff])",
                        column.name,
                        shorten(raw)
                    ),
                )
            }),
    }
}

/// `2021-08-12 10:40:17`, `2022-09-28 14:15:31.650787`, `2021-08-12T10:40:17Z` ->
/// `2021-08-12T10:40:17Z`.
fn timestamp(value: &str) -> Option<String> {
    let b = value.as_bytes();
    // The first 19 bytes must be ASCII for the slices below to fall on character boundaries.
    if b.len() < 19 || !b[..19].is_ascii() || !(b[10] == b' ' || b[10] == b'T') {
        return None;
    }
    let rest = &value[19..];
    let rest = rest.strip_suffix('Z').unwrap_or(rest);
    if let Some(fraction) = rest.strip_prefix('.') {
        if fraction.is_empty() || !fraction.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
    } else if !rest.is_empty() {
        return None;
    }
    let out = format!("{}T{}Z", &value[..10], &value[11..19]);
    is_valid_date(&out).then_some(out)
}

/// The rules a source row can break, as messages and logs name them (never with the value).
pub mod rule {
    pub const MALFORMED: &str = "malformed record";
    pub const FIELD_COUNT: &str = "wrong number of fields";
    pub const NOT_UTF8: &str = "not valid UTF-8";
    pub const TOO_LONG: &str = "value too long";
    pub const EMPTY: &str = "required value missing";
    pub const NOT_WHOLE: &str = "not a whole number";
    pub const INT_RANGE: &str = "outside the Int (32 bits) range";
    pub const NOT_DATE: &str = "not a date (yyyy-MM-dd)";
    pub const NOT_TIMESTAMP: &str = "not a timestamp (yyyy-MM-dd HH:mm:ss[.ffffff])";
}

/// A value as quoted in a reject reason: at most 80 characters.
pub(crate) fn shorten(value: &str) -> Cow<'_, str> {
    if value.chars().count() <= 80 {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(format!("{}...", value.chars().take(80).collect::<String>()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gremlin_csv::Records;
    use idgraph_core::{Dataset, SourceSchemas};

    fn field(text: &str) -> Field<'_> {
        Field {
            text: Cow::Borrowed(text),
            quoted: false,
        }
    }

    #[test]
    fn fields_convert_to_their_graph_form() {
        let schema = SourceSchemas::embedded().get(Dataset::Clickstream);
        let col = |n: &str| &schema.columns[schema.position(n).unwrap_or(0)];
        let ts = col("start_timestamp");
        assert_eq!(
            convert(ts, &field("2021-08-12 10:40:17"), false),
            Ok(Some("2021-08-12T10:40:17Z".into()))
        );
        assert_eq!(
            convert(ts, &field("2022-09-28 14:15:31.650787"), false),
            Ok(Some("2022-09-28T14:15:31Z".into()))
        );
        assert!(convert(ts, &field("2021-02-30 10:00:00"), false).is_err());
        assert!(convert(ts, &field("2021-08-12 10:40"), false).is_err());
        // The 20th byte inside a multi-byte character: a reject, not a panic.
        assert!(convert(ts, &field("2021-08-12 10:40:€"), false).is_err());
        assert!(convert(ts, &field("2021-08-12 10:4€0"), false).is_err());
        let events = col("events");
        assert_eq!(convert(events, &field("+5"), false), Ok(Some("5".into())));
        assert_eq!(convert(events, &field("-0"), false), Ok(Some("0".into())));
        assert_eq!(
            convert(events, &field("-12"), false),
            Ok(Some("-12".into()))
        );
        assert_eq!(
            convert(events, &field(" 007 "), false),
            Ok(Some("7".into()))
        );
        assert!(convert(events, &field("12a"), false).is_err());
        assert!(convert(events, &field("3000000000"), true).is_err());
        assert_eq!(convert(col("user_name"), &field("null"), false), Ok(None));
        assert!(convert(col("session_id"), &field(""), false).is_err());
        let fp = SourceSchemas::embedded().get(Dataset::FirstParty);
        let birthday = &fp.columns[fp.position("birthday").unwrap_or(0)];
        assert_eq!(
            convert(birthday, &field("1990-01-05"), false),
            Ok(Some("1990-01-05".into()))
        );
        assert!(convert(birthday, &field("1990-13-05"), false).is_err());
    }

    #[test]
    fn chunks_end_at_record_boundaries_only() {
        let text = "h\n\"a\nb\",1\nc,2\n\"d\",3\ne,4\n";
        let chunks = split_chunks(text, 2, 2, 1);
        let joined: String = chunks.iter().map(|(r, _)| &text[r.clone()]).collect();
        assert_eq!(joined, &text[2..]);
        for (range, line) in &chunks {
            let first = Records::new(&text[range.clone()])
                .next()
                .and_then(Result::ok);
            assert!(
                first.is_some(),
                "chunk at line {line} does not start a record"
            );
        }
        assert_eq!(
            chunks.iter().map(|c| c.1).collect::<Vec<_>>(),
            vec![2, 4, 5, 6]
        );
    }

    #[test]
    fn headers_are_checked_by_name_and_order() {
        let schema = SourceSchemas::embedded().get(Dataset::Cookie);
        let header = |line: &'static str| -> Vec<Field<'static>> {
            Records::new(line)
                .next()
                .and_then(Result::ok)
                .map(|r| r.fields)
                .unwrap_or_default()
        };
        let ok =
            header("cookie_id,session_id,last_action,user_name,conversion_id,session_duration_sec");
        assert!(check_header("f.csv", schema, &ok).is_ok());
        let renamed =
            header("cookie_id,session,last_action,user_name,conversion_id,session_duration_sec");
        let e = check_header("f.csv", schema, &renamed)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("f.csv") && e.contains("`session`") && e.contains("session_id"),
            "{e}"
        );
        let missing = header("cookie_id,session_id,last_action,user_name,conversion_id");
        let e = check_header("f.csv", schema, &missing)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("session_duration_sec") && e.contains("missing"),
            "{e}"
        );
        let semicolons =
            header("cookie_id;session_id;last_action;user_name;conversion_id;session_duration_sec");
        let e = check_header("f.csv", schema, &semicolons)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("delimiter"), "{e}");
    }
}
