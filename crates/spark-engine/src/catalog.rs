//! The Glue Data Catalog written from `schemas/sources.toml`, instead of crawled: one database,
//! one table per source dataset (its columns in file order, all `string`, OpenCSVSerde, header
//! skipped), partitioned by `batch`: `initial` and one partition per incremental batch.
//!
//! Idempotent: what already matches is left alone (a second sync changes nothing); a table
//! whose definition differs is updated, unless the catalog has a column the schema lacks,
//! which is reported and never dropped silently.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_glue::types::{
    Column as GlueColumn, DatabaseInput, PartitionInput, SerDeInfo, StorageDescriptor, Table,
    TableInput,
};
use idgraph_core::{Dataset, DatasetSchema, Layout, SourceKind, SourceSchemas};
use idgraph_storage::{Location, Store};
use serde::Serialize;

use crate::EngineError;
use crate::glue::{GlueClient, aws_error};

/// The partition column of every table.
pub const PARTITION_KEY: &str = "batch";
/// The partition of the initial sources.
pub const INITIAL: &str = "initial";
const SERDE: &str = "org.apache.hadoop.hive.serde2.OpenCSVSerde";
const INPUT_FORMAT: &str = "org.apache.hadoop.mapred.TextInputFormat";
const OUTPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat";
/// `BatchCreatePartition` takes at most this many partitions per call.
const PARTITIONS_PER_CALL: usize = 100;

/// What to sync.
#[derive(Debug, Clone)]
pub struct CatalogPlan {
    pub database: String,
    /// The data root (`s3://bucket/prefix`) holding `datasets/sources/`.
    pub root: String,
    /// Update a table even when that drops columns the catalog has and the schema lacks.
    pub drop_extra_columns: bool,
}

/// What one table's sync did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableSync {
    pub table: String,
    /// `created`, `updated`, `unchanged` or `refused`.
    pub action: &'static str,
    /// Columns the catalog has and the schema lacks.
    pub extra_columns: Vec<String>,
    pub partitions_created: Vec<String>,
    pub partitions_existing: usize,
    /// Partitions the catalog would not create, with its reason.
    pub partition_errors: Vec<(String, String)>,
}

/// What a sync did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub database: String,
    pub database_created: bool,
    pub tables: Vec<TableSync>,
}

impl SyncReport {
    /// Whether the sync changed anything in the catalog.
    pub fn changed(&self) -> bool {
        self.database_created
            || self
                .tables
                .iter()
                .any(|t| t.action != "unchanged" || !t.partitions_created.is_empty())
    }

    /// Whether everything the schemas say is in the catalog.
    pub fn complete(&self) -> bool {
        self.tables
            .iter()
            .all(|t| t.action != "refused" && t.partition_errors.is_empty())
    }
}

fn column(name: &str) -> Result<GlueColumn, EngineError> {
    GlueColumn::builder()
        .name(name)
        .r#type("string")
        .build()
        .map_err(|e| EngineError::Catalog(format!("column {name}: {e}")))
}

fn storage(schema: &DatasetSchema, location: &str) -> Result<StorageDescriptor, EngineError> {
    let columns = schema
        .column_names()
        .map(column)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(StorageDescriptor::builder()
        .set_columns(Some(columns))
        .location(location)
        .input_format(INPUT_FORMAT)
        .output_format(OUTPUT_FORMAT)
        .serde_info(
            SerDeInfo::builder()
                .serialization_library(SERDE)
                .parameters("separatorChar", ",")
                .parameters("quoteChar", "\"")
                .parameters("escapeChar", "\\")
                .build(),
        )
        .build())
}

fn folder(root: &str, kind: &SourceKind, dataset: Dataset) -> String {
    format!(
        "{}/{}/",
        root.trim_end_matches('/'),
        Layout::source_dir(kind, dataset)
    )
}

/// The table of one dataset as the schema says it.
fn table_input(root: &str, schema: &DatasetSchema) -> Result<TableInput, EngineError> {
    let location = format!(
        "{}/{}/incremental/{}/",
        root.trim_end_matches('/'),
        Layout::SOURCES,
        schema.dataset.name()
    );
    TableInput::builder()
        .name(schema.dataset.name())
        .description(&schema.description)
        .table_type("EXTERNAL_TABLE")
        .parameters("classification", "csv")
        .parameters("skip.header.line.count", "1")
        .parameters("idgraph.source", "schemas/sources.toml")
        .partition_keys(column(PARTITION_KEY)?)
        .storage_descriptor(storage(schema, &location)?)
        .build()
        .map_err(|e| EngineError::Catalog(format!("table {}: {e}", schema.dataset.name())))
}

/// Whether the catalog's table already says what `wanted` says (fields the catalog adds of its
/// own, such as creation times, are not compared).
fn same_table(table: &Table, wanted: &TableInput) -> bool {
    let (Some(have), Some(want)) = (table.storage_descriptor(), wanted.storage_descriptor()) else {
        return false;
    };
    let columns = |c: &[GlueColumn]| -> Vec<(String, String)> {
        c.iter()
            .map(|c| (c.name().to_owned(), c.r#type().unwrap_or("").to_owned()))
            .collect()
    };
    let serde = |s: Option<&SerDeInfo>| {
        s.map(|s| {
            (
                s.serialization_library().map(str::to_owned),
                s.parameters().cloned().unwrap_or_default(),
            )
        })
    };
    let wanted_parameters = wanted.parameters().cloned().unwrap_or_default();
    let have_parameters = table.parameters().cloned().unwrap_or_default();
    columns(have.columns()) == columns(want.columns())
        && columns(table.partition_keys()) == columns(wanted.partition_keys())
        && have.location() == want.location()
        && have.input_format() == want.input_format()
        && have.output_format() == want.output_format()
        && serde(have.serde_info()) == serde(want.serde_info())
        && wanted_parameters
            .iter()
            .all(|(k, v)| have_parameters.get(k) == Some(v))
}

/// The batches under the root: `initial` when it has sources, then every incremental batch.
fn batches(store: &Store, root: &str, dataset: Dataset) -> Result<Vec<String>, EngineError> {
    let parse = |uri: &str| -> Result<Location, EngineError> {
        uri.parse()
            .map_err(|e| EngineError::Settings(format!("{uri}: {e}")))
    };
    let mut found = Vec::new();
    if !store
        .list(&parse(&folder(root, &SourceKind::Initial, dataset))?)?
        .is_empty()
    {
        found.push(INITIAL.to_owned());
    }
    let incremental = format!(
        "{}/{}/incremental/{}",
        root.trim_end_matches('/'),
        Layout::SOURCES,
        dataset.name()
    );
    let set: BTreeSet<String> = store
        .list(&parse(&incremental)?)?
        .into_iter()
        .filter_map(|o| {
            o.relative
                .split('/')
                .next()
                .filter(|b| b.parse::<idgraph_core::BatchId>().is_ok())
                .map(str::to_owned)
        })
        .collect();
    found.extend(set);
    Ok(found)
}

impl GlueClient {
    /// Creates or updates the database, the tables and their partitions.
    pub fn sync_catalog(
        &self,
        plan: &CatalogPlan,
        schemas: &SourceSchemas,
        store: &Store,
    ) -> Result<SyncReport, EngineError> {
        let glue = self.sdk();
        let database_created = match self.block_on(glue.get_database().name(&plan.database).send())
        {
            Ok(_) => false,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                let input = DatabaseInput::builder()
                    .name(&plan.database)
                    .description("idgraph source datasets (written from schemas/sources.toml)")
                    .build()
                    .map_err(|e| EngineError::Catalog(format!("database: {e}")))?;
                self.block_on(glue.create_database().database_input(input).send())
                    .map_err(|e| aws_error(&format!("CreateDatabase {}", plan.database), e))?;
                true
            }
            Err(e) => return Err(aws_error(&format!("GetDatabase {}", plan.database), e)),
        };
        let existing = self.tables(&plan.database)?;
        let mut tables = Vec::new();
        for schema in schemas.iter() {
            let name = schema.dataset.name();
            let wanted = table_input(&plan.root, schema)?;
            let mut sync = TableSync {
                table: name.to_owned(),
                action: "unchanged",
                extra_columns: Vec::new(),
                partitions_created: Vec::new(),
                partitions_existing: 0,
                partition_errors: Vec::new(),
            };
            match existing.get(name) {
                None => {
                    self.block_on(
                        glue.create_table()
                            .database_name(&plan.database)
                            .table_input(wanted)
                            .send(),
                    )
                    .map_err(|e| aws_error(&format!("CreateTable {name}"), e))?;
                    sync.action = "created";
                }
                Some(table) if same_table(table, &wanted) => {}
                Some(table) => {
                    let wanted_names: BTreeSet<&str> = schema.column_names().collect();
                    sync.extra_columns = table
                        .storage_descriptor()
                        .map(|s| s.columns())
                        .unwrap_or_default()
                        .iter()
                        .map(|c| c.name().to_owned())
                        .filter(|c| !wanted_names.contains(c.as_str()))
                        .collect();
                    if !sync.extra_columns.is_empty() && !plan.drop_extra_columns {
                        sync.action = "refused";
                    } else {
                        let mut update = glue
                            .update_table()
                            .database_name(&plan.database)
                            .table_input(wanted)
                            .skip_archive(true);
                        if let Some(version) = table.version_id() {
                            update = update.version_id(version);
                        }
                        self.block_on(update.send())
                            .map_err(|e| aws_error(&format!("UpdateTable {name}"), e))?;
                        sync.action = "updated";
                    }
                }
            }
            if sync.action != "refused" {
                self.sync_partitions(plan, schema, store, &mut sync)?;
            }
            tables.push(sync);
        }
        Ok(SyncReport {
            database: plan.database.clone(),
            database_created,
            tables,
        })
    }

    /// Every table of the database, by name (paginated).
    fn tables(&self, database: &str) -> Result<BTreeMap<String, Table>, EngineError> {
        let pages = self
            .block_on(
                self.sdk()
                    .get_tables()
                    .database_name(database)
                    .into_paginator()
                    .send()
                    .collect::<Result<Vec<_>, _>>(),
            )
            .map_err(|e| aws_error(&format!("GetTables {database}"), e))?;
        Ok(pages
            .iter()
            .flat_map(|page| page.table_list())
            .map(|table| (table.name().to_owned(), table.clone()))
            .collect())
    }

    /// The values of every partition of a table (paginated).
    fn partition_values(
        &self,
        database: &str,
        table: &str,
    ) -> Result<BTreeSet<String>, EngineError> {
        let pages = self
            .block_on(
                self.sdk()
                    .get_partitions()
                    .database_name(database)
                    .table_name(table)
                    .into_paginator()
                    .send()
                    .collect::<Result<Vec<_>, _>>(),
            )
            .map_err(|e| aws_error(&format!("GetPartitions {table}"), e))?;
        Ok(pages
            .iter()
            .flat_map(|page| page.partitions())
            .filter_map(|partition| partition.values().first().cloned())
            .collect())
    }

    fn sync_partitions(
        &self,
        plan: &CatalogPlan,
        schema: &DatasetSchema,
        store: &Store,
        sync: &mut TableSync,
    ) -> Result<(), EngineError> {
        let name = schema.dataset.name();
        let have = self.partition_values(&plan.database, name)?;
        let mut missing = Vec::new();
        for batch in batches(store, &plan.root, schema.dataset)? {
            if have.contains(&batch) {
                sync.partitions_existing += 1;
                continue;
            }
            let kind = if batch == INITIAL {
                SourceKind::Initial
            } else {
                SourceKind::Incremental(
                    batch
                        .parse()
                        .map_err(|e| EngineError::Catalog(format!("batch {batch}: {e}")))?,
                )
            };
            let input = PartitionInput::builder()
                .values(batch.clone())
                .storage_descriptor(storage(schema, &folder(&plan.root, &kind, schema.dataset))?)
                .build();
            missing.push((batch, input));
        }
        for group in missing.chunks(PARTITIONS_PER_CALL) {
            let out = self
                .block_on(
                    self.sdk()
                        .batch_create_partition()
                        .database_name(&plan.database)
                        .table_name(name)
                        .set_partition_input_list(Some(
                            group.iter().map(|(_, input)| input.clone()).collect(),
                        ))
                        .send(),
                )
                .map_err(|e| aws_error(&format!("BatchCreatePartition {name}"), e))?;
            let mut failed = BTreeSet::new();
            for error in out.errors() {
                let value = error
                    .partition_values()
                    .first()
                    .cloned()
                    .unwrap_or_default();
                let detail = error.error_detail();
                let code = detail.and_then(|d| d.error_code()).unwrap_or("error");
                if code == "AlreadyExistsException" {
                    // Made by a concurrent sync since we listed: it is there, as wanted.
                    sync.partitions_existing += 1;
                } else {
                    sync.partition_errors.push((
                        value.clone(),
                        format!(
                            "{code}: {}",
                            detail.and_then(|d| d.error_message()).unwrap_or("")
                        ),
                    ));
                }
                failed.insert(value);
            }
            sync.partitions_created.extend(
                group
                    .iter()
                    .map(|(batch, _)| batch.clone())
                    .filter(|b| !failed.contains(b)),
            );
        }
        Ok(())
    }

    /// The source root and batches a catalog database describes, after checking that every
    /// table's columns are the schema's (in order). For `transform --glue-database`.
    pub fn sources_from_catalog(
        &self,
        database: &str,
        schemas: &SourceSchemas,
    ) -> Result<CatalogSources, EngineError> {
        let tables = self.tables(database)?;
        let mut root: Option<String> = None;
        let mut batches = BTreeSet::new();
        for schema in schemas.iter() {
            let name = schema.dataset.name();
            let table = tables.get(name).ok_or_else(|| {
                EngineError::Catalog(format!(
                    "database {database} has no table {name}; run `transform catalog sync` first"
                ))
            })?;
            let storage = table.storage_descriptor();
            let found: Vec<&str> = storage
                .map(|s| s.columns())
                .unwrap_or_default()
                .iter()
                .map(GlueColumn::name)
                .collect();
            let wanted: Vec<&str> = schema.column_names().collect();
            for (i, want) in wanted.iter().enumerate() {
                match found.get(i) {
                    Some(got) if got == want => {}
                    Some(got) => {
                        return Err(EngineError::Catalog(format!(
                            "table {database}.{name}: column {} is `{got}` where schemas/sources.toml has `{want}`",
                            i + 1
                        )));
                    }
                    None => {
                        return Err(EngineError::Catalog(format!(
                            "table {database}.{name}: column `{want}` of schemas/sources.toml is missing"
                        )));
                    }
                }
            }
            if let Some(extra) = found.get(wanted.len()) {
                return Err(EngineError::Catalog(format!(
                    "table {database}.{name}: column `{extra}` is not in schemas/sources.toml"
                )));
            }
            let location = storage.and_then(|s| s.location()).unwrap_or_default();
            let suffix = format!("/{}/incremental/{name}/", Layout::SOURCES);
            let table_root = location
                .strip_suffix(&suffix)
                .or_else(|| {
                    location
                        .trim_end_matches('/')
                        .strip_suffix(suffix.trim_end_matches('/'))
                })
                .ok_or_else(|| {
                    EngineError::Catalog(format!(
                        "table {database}.{name}: location `{location}` is not <root>{suffix}"
                    ))
                })?;
            match &root {
                Some(r) if r != table_root => {
                    return Err(EngineError::Catalog(format!(
                        "table {database}.{name}: its root {table_root} differs from the other tables' {r}"
                    )));
                }
                _ => root = Some(table_root.to_owned()),
            }
            batches.extend(
                self.partition_values(database, name)?
                    .into_iter()
                    .filter(|b| b != INITIAL),
            );
        }
        Ok(CatalogSources {
            root: root.unwrap_or_default(),
            batches: batches.into_iter().collect(),
        })
    }
}

/// What the catalog says of the sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogSources {
    /// The data root holding `datasets/sources/`.
    pub root: String,
    /// Incremental batches with a partition in any table, oldest first.
    pub batches: Vec<String>,
}
