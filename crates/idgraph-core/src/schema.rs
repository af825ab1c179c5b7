//! Source dataset schemas, read from `schemas/sources.toml`.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::Deserialize;

/// The schemas file as it is in the repository, compiled in so that every binary carries the
/// schemas it was built and tested with.
pub const SOURCES_TOML: &str = include_str!("../../../schemas/sources.toml");

/// The four kinds of source dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dataset {
    FirstParty,
    Cookie,
    Clickstream,
    Transactional,
}

impl Dataset {
    /// Every dataset, in the order they are written and reported.
    pub const ALL: [Dataset; 4] = [
        Dataset::FirstParty,
        Dataset::Cookie,
        Dataset::Clickstream,
        Dataset::Transactional,
    ];

    /// The dataset's name in paths, schemas and reports (`first_party`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Dataset::FirstParty => "first_party",
            Dataset::Cookie => "cookie",
            Dataset::Clickstream => "clickstream",
            Dataset::Transactional => "transactional",
        }
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dataset {
    type Err = SchemaError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dataset::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| SchemaError::UnknownDataset(s.to_owned()))
    }
}

/// The type of a source column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    String,
    /// A whole number (64-bit).
    Int,
    /// `yyyy-MM-dd`.
    Date,
    /// `yyyy-MM-dd HH:mm:ss`, optionally with a fraction of a second.
    Timestamp,
}

/// One column of a source dataset.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// An empty field is a legitimate absence of a value.
    #[serde(default)]
    pub nullable: bool,
    /// The column names something the identity graph links on.
    #[serde(default)]
    pub identity: bool,
}

/// The schema of one source dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetSchema {
    pub dataset: Dataset,
    pub description: String,
    pub columns: Vec<Column>,
}

impl DatasetSchema {
    /// The column names in file order.
    pub fn column_names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }

    /// The position of a column, by name.
    pub fn position(&self, column: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == column)
    }

    /// The CSV header line (without a line terminator). No column name needs quoting.
    pub fn header_line(&self) -> String {
        self.column_names().collect::<Vec<_>>().join(",")
    }
}

/// The schemas of all four source datasets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSchemas {
    datasets: Vec<DatasetSchema>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemasFile {
    dataset: Vec<DatasetEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatasetEntry {
    name: String,
    #[serde(default)]
    description: String,
    columns: Vec<Column>,
}

/// What is wrong with a schemas file.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("schemas file is not valid TOML for a schema: {0}")]
    Parse(#[from] toml::de::Error),
    #[error(
        "unknown dataset `{0}` (expected one of first_party, cookie, clickstream, transactional)"
    )]
    UnknownDataset(String),
    #[error("dataset `{0}` is described more than once")]
    DuplicateDataset(String),
    #[error("dataset `{0}` is missing from the schemas file")]
    MissingDataset(String),
    #[error("dataset `{dataset}` has column `{column}` more than once")]
    DuplicateColumn { dataset: String, column: String },
    #[error(
        "dataset `{dataset}` has a column name `{column}` that is empty or holds a comma, quote or line break"
    )]
    BadColumnName { dataset: String, column: String },
}

impl SourceSchemas {
    /// The schemas compiled in from `schemas/sources.toml`.
    pub fn embedded() -> &'static SourceSchemas {
        static SCHEMAS: OnceLock<SourceSchemas> = OnceLock::new();
        SCHEMAS.get_or_init(|| {
            // The file is part of the build and a unit test parses it, so a failure here is a
            // broken build, not bad user input.
            #[allow(clippy::expect_used)]
            SourceSchemas::from_toml(SOURCES_TOML)
                .expect("schemas/sources.toml compiled into idgraph-core is valid")
        })
    }

    /// Parses and checks a schemas file: every dataset exactly once, unique column names that
    /// can stand unquoted in a CSV header.
    pub fn from_toml(text: &str) -> Result<SourceSchemas, SchemaError> {
        let file: SchemasFile = toml::from_str(text)?;
        let mut datasets: Vec<DatasetSchema> = Vec::with_capacity(file.dataset.len());
        for entry in file.dataset {
            let dataset: Dataset = entry.name.parse()?;
            if datasets.iter().any(|d| d.dataset == dataset) {
                return Err(SchemaError::DuplicateDataset(entry.name));
            }
            for (i, column) in entry.columns.iter().enumerate() {
                if column.name.is_empty() || column.name.contains([',', '"', '\r', '\n']) {
                    return Err(SchemaError::BadColumnName {
                        dataset: entry.name.clone(),
                        column: column.name.clone(),
                    });
                }
                if entry.columns[..i].iter().any(|c| c.name == column.name) {
                    return Err(SchemaError::DuplicateColumn {
                        dataset: entry.name.clone(),
                        column: column.name.clone(),
                    });
                }
            }
            datasets.push(DatasetSchema {
                dataset,
                description: entry.description,
                columns: entry.columns,
            });
        }
        for dataset in Dataset::ALL {
            if !datasets.iter().any(|d| d.dataset == dataset) {
                return Err(SchemaError::MissingDataset(dataset.name().to_owned()));
            }
        }
        datasets.sort_by_key(|d| d.dataset);
        Ok(SourceSchemas { datasets })
    }

    /// The schema of one dataset.
    pub fn get(&self, dataset: Dataset) -> &DatasetSchema {
        // `from_toml` guarantees that every dataset is present and the list is sorted by it.
        &self.datasets[dataset as usize]
    }

    /// All schemas, in `Dataset::ALL` order.
    pub fn iter(&self) -> impl Iterator<Item = &DatasetSchema> {
        self.datasets.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_schemas_match_the_design_columns() {
        let schemas = SourceSchemas::embedded();
        let names = |d| schemas.get(d).column_names().collect::<Vec<_>>().join(",");
        assert_eq!(
            names(Dataset::FirstParty),
            "user_name,email,phone_number,external_id,street_address,postcode,city,country,\
             birthday,loyalty_points,loyalty_level"
        );
        assert_eq!(
            names(Dataset::Cookie),
            "cookie_id,session_id,last_action,user_name,conversion_id,session_duration_sec"
        );
        assert_eq!(
            names(Dataset::Clickstream),
            "session_id,client_ip,client_platform,canonical_url,domain_name,app_id,device_id,\
             user_name,events,start_timestamp,start_event,end_timestamp,end_event,\
             session_duration_sec,user-agent"
        );
        assert_eq!(
            names(Dataset::Transactional),
            "purchase_id,product_name,purchased_date,product_category,customer_id,reward_points"
        );
        let fp = schemas.get(Dataset::FirstParty);
        assert_eq!(
            fp.columns[fp.position("postcode").unwrap_or(99)].ty,
            ColumnType::Int
        );
        assert_eq!(
            fp.columns[fp.position("birthday").unwrap_or(99)].ty,
            ColumnType::Date
        );
        let cs = schemas.get(Dataset::Clickstream);
        assert!(cs.columns[cs.position("user_name").unwrap_or(99)].nullable);
        assert!(!cs.columns[cs.position("session_id").unwrap_or(99)].nullable);
    }

    #[test]
    fn dataset_names_round_trip() {
        for d in Dataset::ALL {
            assert_eq!(d.name().parse::<Dataset>().ok(), Some(d));
        }
        assert!(matches!(
            "cookies".parse::<Dataset>(),
            Err(SchemaError::UnknownDataset(name)) if name == "cookies"
        ));
    }

    #[test]
    fn bad_schema_files_are_rejected_with_the_reason() {
        let missing = r#"[[dataset]]
name = "cookie"
columns = [{ name = "cookie_id", type = "string" }]"#;
        assert!(matches!(
            SourceSchemas::from_toml(missing),
            Err(SchemaError::MissingDataset(d)) if d == "first_party"
        ));
        let duplicate_column = r#"[[dataset]]
name = "cookie"
columns = [{ name = "a", type = "string" }, { name = "a", type = "int" }]"#;
        assert!(matches!(
            SourceSchemas::from_toml(duplicate_column),
            Err(SchemaError::DuplicateColumn { column, .. }) if column == "a"
        ));
        let bad_type = r#"[[dataset]]
name = "cookie"
columns = [{ name = "a", type = "float" }]"#;
        assert!(matches!(
            SourceSchemas::from_toml(bad_type),
            Err(SchemaError::Parse(_))
        ));
        let bad_name = r#"[[dataset]]
name = "cookie"
columns = [{ name = "a,b", type = "string" }]"#;
        assert!(matches!(
            SourceSchemas::from_toml(bad_name),
            Err(SchemaError::BadColumnName { .. })
        ));
    }
}
