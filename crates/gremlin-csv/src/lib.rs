//! The Amazon Neptune bulk loader's Gremlin CSV format (neptune-reference.md §1): header and
//! value rules, a writer that produces fields the loader reads back unchanged, and a validator
//! that checks a folder of load files with file and line for every violation.
//!
//! Shared by `transform` (which writes the format and validates what it wrote) and the local
//! loader endpoint (which must reject what Neptune rejects).

mod command;
mod header;
mod record;
mod validate;
mod value;
mod write;

pub use command::{ValidateArgs, run_validate};
pub use header::{Cardinality, Column, FileKind, Header, HeaderError, PropertyColumn, ValueType};
pub use record::{Field, Record, RecordError, Records};
pub use validate::{
    FileSummary, Options, ValidateError, ValidationReport, Violation, validate_dir, validate_files,
};
pub use value::{MAX_VALUE_BYTES, ValueProblem, check_value, is_valid_date, split_values};
pub use write::{push_array, push_field, push_string_value};
