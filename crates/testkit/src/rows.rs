//! Source rows of the right shape for any dataset of `schemas/sources.toml`, with arbitrary field
//! contents, and what a transform must make of them: which rows are rejected (and on which
//! line), which repeat an earlier row, which are used. The expectations come from how each row
//! was made, not from the transform's own arithmetic, so a property test can check its counts.

use idgraph_core::{ColumnType, DatasetSchema};
use proptest::prelude::*;

/// How one generated row was made.
#[derive(Debug, Clone)]
pub enum RowPlan {
    /// Every field valid for its column; `fields` are the values as written.
    Good(Vec<String>),
    /// A repeat of the `n`th row (a good one), byte for byte.
    Repeat(usize),
    /// Valid fields but one made bad in a way the transform must reject.
    Bad(Vec<String>, Badness),
}

/// The ways a row is made bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Badness {
    /// One field too few.
    MissingField,
    /// One field too many.
    ExtraField,
    /// Text in an int column.
    NotANumber,
    /// A date or timestamp that does not exist or is cut inside a multi-byte character.
    NotADate,
    /// A column that is not nullable left empty.
    EmptyRequired,
}

/// A generated source file and what the transform must make of it.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The CSV text, header included.
    pub text: String,
    /// Data records written.
    pub rows: u64,
    /// Rows that are bad, each with the line it starts on (the header is line 1).
    pub reject_lines: Vec<u64>,
    /// Rows that repeat an earlier good row.
    pub duplicates: u64,
    /// Rows that are good and new.
    pub used: u64,
}

/// Arbitrary text: non-ASCII, quotes, separators, line breaks, numeric-looking, `null`, long.
fn arbitrary_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9@._ -]{0,24}",
        2 => "[\"',;\\\\\t\r\n ]{0,6}[a-z]{0,4}",
        2 => "\\PC{0,12}",
        1 => "[+-]?[0-9]{1,12}(\\.[0-9]{1,3})?",
        1 => Just("null".to_owned()),
        1 => Just("NULL".to_owned()),
        1 => Just(String::new()),
        1 => Just("2021-08-12 10:40:€".to_owned()),
        1 => Just("€uro ünïcödé 😀 \u{200b}".to_owned()),
        1 => (1usize..20_000).prop_map(|n| "x".repeat(n)),
    ]
}

fn int_value() -> impl Strategy<Value = String> {
    prop_oneof![
        (-1_000_000i64..1_000_000).prop_map(|n| n.to_string()),
        (0i64..1000).prop_map(|n| format!(" {n:04} ")),
        (0i64..1000).prop_map(|n| format!("+{n}")),
    ]
}

fn date_value() -> impl Strategy<Value = String> {
    (1900u32..2100, 1u32..13, 1u32..29).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}"))
}

fn timestamp_value() -> impl Strategy<Value = String> {
    (
        date_value(),
        0u32..24,
        0u32..60,
        0u32..60,
        proptest::option::of(0u32..1_000_000),
    )
        .prop_map(|(date, h, m, s, fraction)| match fraction {
            Some(f) => format!("{date} {h:02}:{m:02}:{s:02}.{f:06}"),
            None => format!("{date} {h:02}:{m:02}:{s:02}"),
        })
}

/// A valid value of one column, or (for a nullable one, now and then) no value.
fn valid_field(ty: ColumnType, nullable: bool) -> BoxedStrategy<String> {
    let value: BoxedStrategy<String> = match ty {
        ColumnType::String => arbitrary_text()
            .prop_map(|t| if t.trim().is_empty() { t + "v" } else { t })
            .boxed(),
        ColumnType::Int => int_value().boxed(),
        ColumnType::Date => date_value().boxed(),
        ColumnType::Timestamp => timestamp_value().boxed(),
    };
    if nullable {
        prop_oneof![
            6 => value,
            1 => Just(String::new()),
            1 => Just("null".to_owned()),
        ]
        .boxed()
    } else {
        value
    }
}

fn valid_row(schema: &DatasetSchema) -> BoxedStrategy<Vec<String>> {
    schema
        .columns
        .iter()
        .map(|c| valid_field(c.ty, c.nullable))
        .collect::<Vec<_>>()
        .boxed()
}

/// Makes a valid row bad, in a way that fits the dataset's columns.
fn spoil(schema: &DatasetSchema, mut fields: Vec<String>, choice: usize) -> (Vec<String>, Badness) {
    let mut options = vec![Badness::MissingField, Badness::ExtraField];
    let find = |want: &dyn Fn(&idgraph_core::Column) -> bool| schema.columns.iter().position(want);
    let int = find(&|c| c.ty == ColumnType::Int);
    let date = find(&|c| matches!(c.ty, ColumnType::Date | ColumnType::Timestamp));
    let required = find(&|c| !c.nullable);
    if int.is_some() {
        options.push(Badness::NotANumber);
    }
    if date.is_some() {
        options.push(Badness::NotADate);
    }
    if required.is_some() {
        options.push(Badness::EmptyRequired);
    }
    let badness = options[choice % options.len()];
    match badness {
        Badness::MissingField => {
            fields.pop();
        }
        Badness::ExtraField => fields.push("extra".into()),
        Badness::NotANumber => {
            if let Some(i) = int {
                fields[i] = "12a€".into();
            }
        }
        Badness::NotADate => {
            if let Some(i) = date {
                fields[i] = match (schema.columns[i].ty, choice.is_multiple_of(2)) {
                    (ColumnType::Date, _) => "2021-02-30",
                    (_, true) => "2021-02-30 10:40:17",
                    // Cut inside a multi-byte character at its 20th byte.
                    (_, false) => "2021-08-12 10:40:€",
                }
                .into();
            }
        }
        Badness::EmptyRequired => {
            if let Some(i) = required {
                fields[i] = " ".into();
            }
        }
    }
    (fields, badness)
}

/// Plans of up to `max_rows` rows: mostly good, some bad, some repeats of good ones.
pub fn row_plans(schema: &DatasetSchema, max_rows: usize) -> BoxedStrategy<Vec<RowPlan>> {
    let schema = schema.clone();
    let one = (0u8..10, valid_row(&schema), any::<usize>());
    proptest::collection::vec(one, 0..=max_rows)
        .prop_map(move |picks| {
            let mut plans = Vec::with_capacity(picks.len());
            let mut good = Vec::new();
            for (n, (kind, fields, choice)) in picks.into_iter().enumerate() {
                let plan = match kind {
                    0 | 1 => {
                        let (fields, badness) = spoil(&schema, fields, choice);
                        RowPlan::Bad(fields, badness)
                    }
                    2 if !good.is_empty() => RowPlan::Repeat(good[choice % good.len()]),
                    _ => RowPlan::Good(unique(&schema, fields, n)),
                };
                if matches!(plan, RowPlan::Good(_)) {
                    good.push(n);
                }
                plans.push(plan);
            }
            plans
        })
        .boxed()
}

/// Marks a good row with its number in its first string column, so that no two good rows are
/// equal by chance: only planned repeats are duplicates.
fn unique(schema: &DatasetSchema, mut fields: Vec<String>, n: usize) -> Vec<String> {
    if let Some(i) = schema
        .columns
        .iter()
        .position(|c| c.ty == ColumnType::String)
    {
        fields[i] = format!("{}#{n}", fields[i]);
    }
    fields
}

/// Writes the planned rows as a CSV file (RFC 4180 quoting, `\n` line ends) and counts what the
/// transform must make of them.
pub fn source_file(schema: &DatasetSchema, plans: &[RowPlan]) -> SourceFile {
    let mut text = schema.header_line();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let mut written: Vec<String> = Vec::with_capacity(plans.len());
    let mut file = SourceFile {
        text: String::new(),
        rows: plans.len() as u64,
        reject_lines: Vec::new(),
        duplicates: 0,
        used: 0,
    };
    let mut line = 2u64;
    for plan in plans {
        let record = match plan {
            RowPlan::Good(fields) => {
                file.used += 1;
                csv_record(fields)
            }
            RowPlan::Repeat(n) => {
                file.duplicates += 1;
                written[*n].clone()
            }
            RowPlan::Bad(fields, _) => {
                file.reject_lines.push(line);
                csv_record(fields)
            }
        };
        line += record.matches('\n').count() as u64;
        text.push_str(&record);
        written.push(record);
    }
    file.text = text;
    file
}

/// One CSV record, quoted where needed, ending in `\n`.
fn csv_record(fields: &[String]) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    // A single empty field would be written as an empty line, which is no record at all.
    let quote_all = fields.len() == 1 && fields[0].is_empty();
    if quote_all {
        return "\"\"\n".into();
    }
    let _ = writer.write_record(fields);
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}
