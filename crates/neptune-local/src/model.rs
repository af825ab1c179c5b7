//! Load requests and load records as the loader API spells them (neptune-reference.md §2).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Jobs that may wait in the queue behind the running one (§2.5).
pub(crate) const QUEUE_LIMIT: usize = 64;
/// Jobs whose records are kept (§1.13).
pub(crate) const HISTORY_LIMIT: usize = 1024;
/// Error details kept per job (§1.13).
pub(crate) const ERROR_LIMIT: usize = 10_000;

/// The documented status codes (§2.7).
pub(crate) mod status {
    pub const NOT_STARTED: &str = "LOAD_NOT_STARTED";
    pub const IN_QUEUE: &str = "LOAD_IN_QUEUE";
    pub const IN_PROGRESS: &str = "LOAD_IN_PROGRESS";
    pub const COMPLETED: &str = "LOAD_COMPLETED";
    pub const CANCELLED_BY_USER: &str = "LOAD_CANCELLED_BY_USER";
    pub const UNEXPECTED_ERROR: &str = "LOAD_UNEXPECTED_ERROR";
    pub const FAILED: &str = "LOAD_FAILED";
    pub const S3_READ_ERROR: &str = "LOAD_S3_READ_ERROR";
    pub const S3_ACCESS_DENIED: &str = "LOAD_S3_ACCESS_DENIED_ERROR";
    pub const FEED_MODIFIED_OR_DELETED: &str = "LOAD_DATA_FAILED_DUE_TO_FEED_MODIFIED_OR_DELETED";
    pub const DEPENDENCY_NOT_SATISFIED: &str = "LOAD_FAILED_BECAUSE_DEPENDENCY_NOT_SATISFIED";
    pub const INVALID_REQUEST: &str = "LOAD_FAILED_INVALID_REQUEST";

    /// Every code a load or feed can end in, for fault injection.
    pub const TERMINAL: [&str; 11] = [
        COMPLETED,
        "LOAD_COMMITTED_W_WRITE_CONFLICTS",
        CANCELLED_BY_USER,
        "LOAD_CANCELLED_DUE_TO_ERRORS",
        UNEXPECTED_ERROR,
        FAILED,
        S3_READ_ERROR,
        S3_ACCESS_DENIED,
        "LOAD_DATA_DEADLOCK",
        FEED_MODIFIED_OR_DELETED,
        INVALID_REQUEST,
    ];

    pub fn is_waiting(s: &str) -> bool {
        s == NOT_STARTED || s == IN_QUEUE
    }
}

/// A checked `POST /loader` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoadRequest {
    pub source: String,
    pub format: String,
    pub iam_role_arn: String,
    pub region: String,
    pub mode: String,
    pub fail_on_error: bool,
    pub parallelism: String,
    pub parser_configuration: BTreeMap<String, String>,
    pub update_single_cardinality_properties: bool,
    pub queue_request: bool,
    pub dependencies: Vec<String>,
    pub user_provided_edge_ids: Option<bool>,
    pub edge_only_load: bool,
}

impl LoadRequest {
    pub fn allow_empty_strings(&self) -> bool {
        self.parser_configuration
            .get("allowEmptyStrings")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// Reads the parameters from a JSON body or from query parameters (all strings there).
    /// `Err` is the message of a 400 answer.
    pub fn parse(params: &Map<String, Value>) -> Result<LoadRequest, String> {
        const KNOWN: [&str; 13] = [
            "source",
            "format",
            "iamRoleArn",
            "region",
            "mode",
            "failOnError",
            "parallelism",
            "parserConfiguration",
            "updateSingleCardinalityProperties",
            "queueRequest",
            "dependencies",
            "userProvidedEdgeIds",
            "edgeOnlyLoad",
        ];
        if let Some(unknown) = params.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(if unknown == "accessKey" || unknown == "secretKey" {
                format!("Parameter {unknown} is deprecated and not supported; use iamRoleArn")
            } else {
                format!("Unknown parameter: {unknown}")
            });
        }
        let text = |key: &str| -> Result<Option<String>, String> {
            match params.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(format!("Parameter {key} must be a string, not {other}")),
            }
        };
        let required = |key: &str| -> Result<String, String> {
            match text(key)? {
                Some(s) if !s.trim().is_empty() => Ok(s),
                _ => Err(format!("Required parameter {key} is missing")),
            }
        };
        let flag = |key: &str, default: bool| -> Result<bool, String> {
            match params.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Bool(b)) => Ok(*b),
                Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
                Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
                Some(other) => Err(format!(
                    "Parameter {key} must be TRUE or FALSE, not {other}"
                )),
            }
        };
        let one_of = |key: &str, default: &str, allowed: &[&str]| -> Result<String, String> {
            let value = text(key)?.unwrap_or_else(|| default.to_owned());
            let upper = value.to_ascii_uppercase();
            if allowed.contains(&upper.as_str()) {
                Ok(upper)
            } else {
                Err(format!(
                    "Parameter {key} has an invalid value {value}; expected one of {}",
                    allowed.join(", ")
                ))
            }
        };
        let source = required("source")?;
        let format = required("format")?;
        if !format.eq_ignore_ascii_case("csv") {
            let known = ["opencypher", "ntriples", "nquads", "rdfxml", "turtle"];
            return Err(if known.contains(&format.to_ascii_lowercase().as_str()) {
                format!(
                    "Format {format} is not supported by neptune-local, which loads Gremlin CSV (format csv) only"
                )
            } else {
                format!("Invalid format {format}")
            });
        }
        let iam_role_arn = required("iamRoleArn")?;
        if !iam_role_arn
            .split(',')
            .all(|arn| arn.trim().starts_with("arn:") && arn.contains(":iam::"))
        {
            return Err(format!(
                "Couldn't find the AWS credential for iam_role_arn: {iam_role_arn} is not an IAM role ARN"
            ));
        }
        let region = required("region")?;
        let parser_configuration = match params.get("parserConfiguration") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    Value::Bool(b) => Ok((k.clone(), b.to_string())),
                    other => Err(format!(
                        "parserConfiguration.{k} must be a string, not {other}"
                    )),
                })
                .collect::<Result<_, _>>()?,
            // The query-parameter form carries it as JSON text.
            Some(Value::String(s)) => serde_json::from_str::<BTreeMap<String, String>>(s)
                .map_err(|e| format!("parserConfiguration is not a map of strings: {e}"))?,
            Some(other) => {
                return Err(format!(
                    "parserConfiguration must be an object, not {other}"
                ));
            }
        };
        if let Some(key) = parser_configuration
            .keys()
            .find(|k| !["allowEmptyStrings", "namedGraphUri", "baseUri"].contains(&k.as_str()))
        {
            return Err(format!("Unknown parserConfiguration parameter: {key}"));
        }
        let dependencies = match params.get("dependencies") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(format!("dependencies must hold load ids, not {other}")),
                })
                .collect::<Result<_, _>>()?,
            Some(Value::String(s)) => s
                .split(',')
                .map(|s| s.trim().trim_matches(['[', ']', '"']).to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            Some(other) => return Err(format!("dependencies must be a list, not {other}")),
        };
        Ok(LoadRequest {
            source,
            format: format.to_ascii_lowercase(),
            iam_role_arn,
            region,
            mode: one_of("mode", "AUTO", &["AUTO", "NEW", "RESUME"])?,
            fail_on_error: flag("failOnError", true)?,
            parallelism: one_of(
                "parallelism",
                "HIGH",
                &["LOW", "MEDIUM", "HIGH", "OVERSUBSCRIBE"],
            )?,
            parser_configuration,
            update_single_cardinality_properties: flag("updateSingleCardinalityProperties", false)?,
            queue_request: flag("queueRequest", false)?,
            dependencies,
            user_provided_edge_ids: match params.get("userProvidedEdgeIds") {
                None | Some(Value::Null) => None,
                Some(_) => Some(flag("userProvidedEdgeIds", false)?),
            },
            edge_only_load: flag("edgeOnlyLoad", false)?,
        })
    }
}

/// The counters of a load or a feed.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Counters {
    pub total_records: u64,
    pub total_duplicates: u64,
    pub parsing_errors: u64,
    pub datatype_mismatch_errors: u64,
    pub insert_errors: u64,
}

impl Counters {
    pub fn add(&mut self, other: &Counters) {
        self.total_records += other.total_records;
        self.total_duplicates += other.total_duplicates;
        self.parsing_errors += other.parsing_errors;
        self.datatype_mismatch_errors += other.datatype_mismatch_errors;
        self.insert_errors += other.insert_errors;
    }
}

/// One file of a load.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Feed {
    pub full_uri: String,
    pub status: String,
    pub start_time: u64,
    pub time_spent: f64,
    pub counters: Counters,
}

/// One entry of a load's error log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorLog {
    pub error_code: String,
    pub error_message: String,
    pub file_name: String,
    pub record_num: u64,
}

/// A load job and everything reported about it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Load {
    pub id: String,
    /// Submission order.
    pub seq: u64,
    pub request: LoadRequest,
    pub status: String,
    pub run_number: u64,
    pub retry_number: u64,
    pub start_time: Option<u64>,
    pub time_spent: f64,
    pub counters: Counters,
    pub feeds: Vec<Feed>,
    pub errors: Vec<ErrorLog>,
    /// Errors beyond the kept ones.
    pub errors_dropped: u64,
    /// Files a resumed load skips: those the load it resumes completed.
    pub skip_files: Vec<String>,
}

impl Load {
    pub fn push_error(&mut self, code: &str, message: String, file: &str, record: u64) {
        if self.errors.len() < ERROR_LIMIT {
            self.errors.push(ErrorLog {
                error_code: code.to_owned(),
                error_message: message,
                file_name: file.to_owned(),
                record_num: record,
            });
        } else {
            self.errors_dropped += 1;
        }
    }

    /// Records that the server stopped while this load ran (at a shutdown, or found so at the
    /// next start after a crash).
    pub fn mark_interrupted(&mut self) {
        self.status = status::UNEXPECTED_ERROR.to_owned();
        let source = self.request.source.clone();
        self.push_error(
            "INTERNAL_ERROR",
            "neptune-local stopped while this load ran; what was committed stays. Resubmit the \
             same source with mode AUTO or RESUME to load the rest."
                .to_owned(),
            &source,
            0,
        );
    }

    fn status_object(
        &self,
        uri: &str,
        status: &str,
        start: Option<u64>,
        spent: f64,
        c: &Counters,
    ) -> Value {
        let mut object = json!({
            "fullUri": uri,
            "runNumber": self.run_number,
            "retryNumber": self.retry_number,
            "status": status,
            "totalTimeSpent": spent,
            "totalRecords": c.total_records,
            "totalDuplicates": c.total_duplicates,
            "parsingErrors": c.parsing_errors,
            "datatypeMismatchErrors": c.datatype_mismatch_errors,
            "insertErrors": c.insert_errors,
        });
        if let (Some(start), Some(map)) = (start, object.as_object_mut()) {
            map.insert("startTime".into(), json!(start));
        }
        object
    }

    /// The `payload` of `GET /loader/{loadId}` (§2.6).
    pub fn status_payload(&self, details: bool, errors: Option<(u64, u64)>) -> Value {
        let mut feed_count: BTreeMap<&str, u64> = BTreeMap::new();
        for feed in &self.feeds {
            *feed_count.entry(&feed.status).or_insert(0) += 1;
        }
        let mut payload = Map::new();
        payload.insert(
            "feedCount".into(),
            Value::Array(
                feed_count
                    .into_iter()
                    .map(|(s, n)| json!({ s: n }))
                    .collect(),
            ),
        );
        payload.insert(
            "overallStatus".into(),
            self.status_object(
                &self.request.source,
                &self.status,
                self.start_time,
                self.time_spent,
                &self.counters,
            ),
        );
        if details {
            let failed: Vec<Value> = self
                .feeds
                .iter()
                .filter(|f| f.status != status::COMPLETED)
                .map(|f| {
                    self.status_object(
                        &f.full_uri,
                        &f.status,
                        Some(f.start_time),
                        f.time_spent,
                        &f.counters,
                    )
                })
                .collect();
            payload.insert("failedFeeds".into(), Value::Array(failed));
        }
        if let Some((page, per_page)) = errors {
            let total = self.errors.len() as u64;
            let start = (page - 1).saturating_mul(per_page);
            let end = start.saturating_add(per_page).min(total);
            let logs: Vec<&ErrorLog> = if start < total {
                self.errors[start as usize..end as usize].iter().collect()
            } else {
                Vec::new()
            };
            payload.insert(
                "errors".into(),
                json!({
                    "startIndex": start + 1,
                    "endIndex": end.max(start),
                    "loadId": self.id,
                    "errorLogs": logs,
                }),
            );
        }
        Value::Object(payload)
    }
}
