//! Shared vocabulary of the identity-graph toolkit.
//!
//! Everything that more than one crate must agree on lives here and only here: the names of
//! the source datasets, their schemas (read from `schemas/sources.toml`), and the storage
//! layout that is the same under a local root and under `s3://BUCKET/`.

mod layout;
pub mod process;
pub mod publish;
mod schema;

pub use layout::{BatchId, BatchIdError, Layout, SourceKind};
pub use schema::{
    Column, ColumnType, Dataset, DatasetSchema, SOURCES_TOML, SchemaError, SourceSchemas,
};
