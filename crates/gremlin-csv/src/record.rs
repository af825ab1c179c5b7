//! A strict RFC 4180 record reader (§1.6).
//!
//! General CSV readers are lenient on purpose: they accept a quote inside an unquoted field or an
//! unbalanced quote at the end of the file. The loader does not, so the validator reads records
//! itself. It also tells a quoted empty field (`""`, a real empty value) from a blank one
//! (nothing between the commas, no value), which the loader treats differently (§1.2, §1.10).

use std::borrow::Cow;

/// One field of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<'a> {
    /// The field's text with quoting removed and `""` unescaped.
    pub text: Cow<'a, str>,
    pub quoted: bool,
}

impl Field<'_> {
    /// Nothing between the delimiters: the loader reads no value.
    pub fn is_blank(&self) -> bool {
        !self.quoted && self.text.is_empty()
    }
}

/// One record, with the line it starts on (line 1 is the file's first line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub line: u64,
    pub fields: Vec<Field<'a>>,
}

/// A record the loader cannot parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("a quoted field that starts on line {line} is never closed")]
    UnterminatedQuote { line: u64 },
    #[error("field {field} holds a double quote but is not quoted")]
    QuoteInUnquotedField { line: u64, field: usize },
    #[error("field {field} has text after its closing quote")]
    TextAfterClosingQuote { line: u64, field: usize },
    #[error("field {field} holds a carriage return but is not quoted")]
    BareCarriageReturn { line: u64, field: usize },
}

impl RecordError {
    pub fn line(&self) -> u64 {
        match self {
            RecordError::UnterminatedQuote { line }
            | RecordError::QuoteInUnquotedField { line, .. }
            | RecordError::TextAfterClosingQuote { line, .. }
            | RecordError::BareCarriageReturn { line, .. } => *line,
        }
    }
}

/// The records of a text, in order. After a bad record, reading resumes at the next line.
#[derive(Debug)]
pub struct Records<'a> {
    text: &'a str,
    pos: usize,
    line: u64,
}

impl<'a> Records<'a> {
    pub fn new(text: &'a str) -> Records<'a> {
        Records::starting_at(text, 1)
    }

    /// Records of `text` whose first line is line `line` of a larger file (a chunk of it), so
    /// that every line number, in records and in error messages, is the file's.
    pub fn starting_at(text: &'a str, line: u64) -> Records<'a> {
        Records {
            text,
            pos: 0,
            line: line.max(1),
        }
    }

    /// Skips the rest of the current line after an error.
    fn recover(&mut self) {
        let bytes = self.text.as_bytes();
        while self.pos < bytes.len() {
            let b = bytes[self.pos];
            self.pos += 1;
            if b == b'\n' {
                self.line += 1;
                return;
            }
        }
    }

    fn fail(&mut self, error: RecordError) -> Option<Result<Record<'a>, RecordError>> {
        self.recover();
        Some(Err(error))
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        let text = self.text;
        let bytes = text.as_bytes();
        if self.pos >= bytes.len() {
            return None;
        }
        let start_line = self.line;
        let mut fields = Vec::new();
        loop {
            let field_no = fields.len() + 1;
            if bytes.get(self.pos) == Some(&b'"') {
                // Quoted field: runs to a quote that is not doubled.
                let open_line = self.line;
                let mut i = self.pos + 1;
                let mut owned: Option<String> = None;
                let mut segment_start = i;
                loop {
                    match bytes.get(i) {
                        None => {
                            // Reading resumes on the line after the quote: the lines counted
                            // while looking for its end are read again.
                            self.line = open_line;
                            return self.fail(RecordError::UnterminatedQuote { line: open_line });
                        }
                        Some(b'"') if bytes.get(i + 1) == Some(&b'"') => {
                            let s = owned.get_or_insert_with(String::new);
                            s.push_str(&text[segment_start..=i]);
                            i += 2;
                            segment_start = i;
                        }
                        Some(b'"') => break,
                        Some(b'\n') => {
                            self.line += 1;
                            i += 1;
                        }
                        Some(_) => i += 1,
                    }
                }
                let value = match owned {
                    Some(mut s) => {
                        s.push_str(&text[segment_start..i]);
                        Cow::Owned(s)
                    }
                    None => Cow::Borrowed(&text[segment_start..i]),
                };
                fields.push(Field {
                    text: value,
                    quoted: true,
                });
                self.pos = i + 1;
                match bytes.get(self.pos) {
                    Some(b',') => self.pos += 1,
                    None => break,
                    Some(b'\n') => {
                        self.pos += 1;
                        self.line += 1;
                        break;
                    }
                    Some(b'\r') if bytes.get(self.pos + 1) == Some(&b'\n') => {
                        self.pos += 2;
                        self.line += 1;
                        break;
                    }
                    Some(_) => {
                        return self.fail(RecordError::TextAfterClosingQuote {
                            line: start_line,
                            field: field_no,
                        });
                    }
                }
            } else {
                let start = self.pos;
                let mut i = start;
                let end_of_record;
                loop {
                    match bytes.get(i) {
                        None => {
                            end_of_record = true;
                            break;
                        }
                        Some(b',') => {
                            end_of_record = false;
                            break;
                        }
                        Some(b'\n') => {
                            end_of_record = true;
                            break;
                        }
                        Some(b'\r') if bytes.get(i + 1) == Some(&b'\n') => {
                            end_of_record = true;
                            break;
                        }
                        Some(b'\r') => {
                            self.pos = i;
                            return self.fail(RecordError::BareCarriageReturn {
                                line: start_line,
                                field: field_no,
                            });
                        }
                        Some(b'"') => {
                            self.pos = i;
                            return self.fail(RecordError::QuoteInUnquotedField {
                                line: start_line,
                                field: field_no,
                            });
                        }
                        Some(_) => i += 1,
                    }
                }
                fields.push(Field {
                    text: Cow::Borrowed(&text[start..i]),
                    quoted: false,
                });
                if !end_of_record {
                    self.pos = i + 1;
                    continue;
                }
                self.pos = match bytes.get(i) {
                    None => i,
                    Some(b'\r') => i + 2,
                    Some(_) => i + 1,
                };
                if i < bytes.len() {
                    self.line += 1;
                }
                break;
            }
        }
        Some(Ok(Record {
            line: start_line,
            fields,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Vec<Result<Vec<(String, bool)>, RecordError>> {
        Records::new(text)
            .map(|r| {
                r.map(|rec| {
                    rec.fields
                        .into_iter()
                        .map(|f| (f.text.into_owned(), f.quoted))
                        .collect()
                })
            })
            .collect()
    }

    fn s(x: &str, q: bool) -> (String, bool) {
        (x.to_owned(), q)
    }

    #[test]
    fn reads_rfc4180_records() {
        assert_eq!(
            read("a,\"b,c\",\"say \"\"hi\"\"\"\r\n,\"\",x\n"),
            vec![
                Ok(vec![s("a", false), s("b,c", true), s("say \"hi\"", true)]),
                Ok(vec![s("", false), s("", true), s("x", false)]),
            ]
        );
        assert_eq!(
            read("a\nb"),
            vec![Ok(vec![s("a", false)]), Ok(vec![s("b", false)])]
        );
        assert_eq!(read("\"multi\nline\",z\nnext\n").len(), 2);
    }

    #[test]
    fn line_numbers_count_newlines_inside_quotes() {
        let lines: Vec<u64> = Records::new("h\n\"a\nb\"\nc\n")
            .filter_map(|r| r.ok().map(|r| r.line))
            .collect();
        assert_eq!(lines, vec![1, 2, 4]);
    }

    #[test]
    fn lines_after_an_unclosed_quote_keep_their_numbers() {
        let lines: Vec<Result<u64, u64>> = Records::new("h\nx,\"open\ny,1\nz,2\n")
            .map(|r| r.map(|r| r.line).map_err(|e| e.line()))
            .collect();
        assert_eq!(lines, vec![Ok(1), Err(2), Ok(3), Ok(4)]);
    }

    #[test]
    fn quoting_errors_are_reported_and_reading_resumes() {
        let out = read("ok\na\"b,c\nfine\n\"x\"y\n\"open\n");
        assert_eq!(out[0], Ok(vec![s("ok", false)]));
        assert_eq!(
            out[1],
            Err(RecordError::QuoteInUnquotedField { line: 2, field: 1 })
        );
        assert_eq!(out[2], Ok(vec![s("fine", false)]));
        assert_eq!(
            out[3],
            Err(RecordError::TextAfterClosingQuote { line: 4, field: 1 })
        );
        assert_eq!(out[4], Err(RecordError::UnterminatedQuote { line: 5 }));
        assert_eq!(
            read("a\rb\n")[0],
            Err(RecordError::BareCarriageReturn { line: 1, field: 1 })
        );
    }
}
