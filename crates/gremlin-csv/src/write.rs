//! Writing fields the way the loader reads them back (the checklist of §1.15).

/// Whether the loader needs this field quoted: a comma, quote, CR or LF inside, or spaces at
/// either end (which the loader drops from unquoted fields, §1.6).
fn needs_quotes(value: &str) -> bool {
    value.contains([',', '"', '\r', '\n'])
        || value.starts_with([' ', '\t'])
        || value.ends_with([' ', '\t'])
}

/// Bytes that make a field more than a plain copy: NUL (removed), the quoting characters, and
/// `;` (escaped in String values).
fn is_special(b: u8) -> bool {
    matches!(b, 0 | b',' | b'"' | b'\r' | b'\n' | b';')
}

/// Whether `value` is written exactly as it is, both as a field and as a String value: the
/// common case, decided in one pass over the bytes (writing the graph is dominated by it).
fn is_plain(value: &str) -> bool {
    let bytes = value.as_bytes();
    let padded = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    !padded(bytes.first()) && !padded(bytes.last()) && !bytes.iter().copied().any(is_special)
}

/// Appends one field: quoted when needed, inner quotes doubled, NUL characters (which the
/// loader rejects) removed. An empty `value` is written blank: no value.
pub fn push_field(out: &mut String, value: &str) {
    if is_plain(value) {
        out.push_str(value);
        return;
    }
    let value: std::borrow::Cow<'_, str> = if value.contains('\0') {
        value.replace('\0', "").into()
    } else {
        value.into()
    };
    if needs_quotes(&value) {
        out.push('"');
        for c in value.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
    } else {
        out.push_str(&value);
    }
}

/// Appends a String property value. `;` is escaped as `\;`: whether the loader splits a
/// single-valued String at `;` is not documented (§1.7), so a value is never left to chance.
pub fn push_string_value(out: &mut String, value: &str) {
    if is_plain(value) {
        out.push_str(value);
    } else if value.contains(';') {
        push_field(out, &value.replace(';', "\\;"));
    } else {
        push_field(out, value);
    }
}

/// Appends a multi-valued field: each value's `;` escaped, joined with `;`, quoted once.
pub fn push_array(out: &mut String, values: &[&str]) {
    let joined = values
        .iter()
        .map(|v| v.replace(';', "\\;"))
        .collect::<Vec<_>>()
        .join(";");
    push_field(out, &joined);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Records;

    fn written(f: impl FnOnce(&mut String)) -> String {
        let mut out = String::new();
        f(&mut out);
        out
    }

    #[test]
    fn fields_survive_the_loader_reading_them_back() {
        for value in [
            "plain",
            "a,b",
            "say \"hi\"",
            "two\nlines",
            " padded ",
            "Mozilla/5.0 (X11; Linux x86_64)",
            "",
        ] {
            let line = written(|o| push_field(o, value));
            let record = Records::new(&line).next();
            let read = record
                .and_then(Result::ok)
                .map(|r| r.fields[0].text.to_string())
                .unwrap_or_default();
            assert_eq!(read, value, "{line}");
        }
        assert_eq!(written(|o| push_field(o, "a\0b")), "ab");
        assert_eq!(written(|o| push_field(o, "a;b")), "a;b");
        assert_eq!(written(|o| push_field(o, "\tx")), "\"\tx\"");
        assert_eq!(written(|o| push_string_value(o, "plain")), "plain");
        assert_eq!(written(|o| push_string_value(o, "a,b;c")), "\"a,b\\;c\"");
        assert_eq!(written(|o| push_string_value(o, "a;b")), "a\\;b");
        assert_eq!(
            written(|o| push_array(o, &["x;y", "z w", "q"])),
            "x\\;y;z w;q"
        );
        assert_eq!(written(|o| push_array(o, &["a,b", "c"])), "\"a,b;c\"");
    }
}
