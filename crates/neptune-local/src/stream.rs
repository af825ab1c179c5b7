//! Reading the change stream as `GET /propertygraph/stream` serves it (neptune-reference.md §4,
//! aws-reference.md §1): the four iterator types, `limit`, the 10 MB cap, numbers where Neptune
//! sends numbers, and Neptune's errors.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde_json::{Value, json};

/// A response stops after the record that crosses this many bytes (Neptune's cap).
const RESPONSE_CAP: usize = 10 * 1024 * 1024;
const MAX_LIMIT: u64 = 100_000;
const DEFAULT_LIMIT: u64 = 10;

/// Why a stream request has no records to give.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StreamError {
    /// A parameter is missing, malformed or out of range (HTTP 400).
    InvalidParameter(String),
    /// Nothing at or after the position: past the head, or an empty stream (HTTP 404).
    NotFound(String),
    /// The position was trimmed by retention (HTTP 400).
    Expired(String),
    /// The store could not be read (HTTP 500).
    Internal(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Iterator {
    At(i64, i64),
    After(i64, i64),
    TrimHorizon,
    Latest,
}

/// A parsed request.
#[derive(Debug)]
pub(crate) struct StreamRequest {
    iterator: Iterator,
    limit: u64,
}

fn number(query: &HashMap<String, String>, name: &str) -> Result<Option<i64>, StreamError> {
    query
        .get(name)
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                StreamError::InvalidParameter(format!(
                    "Parameter {name} must be a whole number, not '{v}'"
                ))
            })
        })
        .transpose()
}

impl StreamRequest {
    pub(crate) fn parse(query: &HashMap<String, String>) -> Result<StreamRequest, StreamError> {
        let limit = match number(query, "limit")? {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=MAX_LIMIT as i64).contains(&n) => n as u64,
            Some(n) => {
                return Err(StreamError::InvalidParameter(format!(
                    "Parameter limit must be between 1 and {MAX_LIMIT}, not {n}"
                )));
            }
        };
        let commit = number(query, "commitNum")?;
        let op = number(query, "opNum")?.unwrap_or(1);
        if commit.is_some_and(|c| c < 1) || op < 1 {
            return Err(StreamError::InvalidParameter(
                "Parameters commitNum and opNum must be positive".into(),
            ));
        }
        let kind = query
            .get("iteratorType")
            .map(String::as_str)
            .unwrap_or("AT_SEQUENCE_NUMBER");
        let needs_commit = || {
            commit.ok_or_else(|| {
                StreamError::InvalidParameter(format!(
                    "Parameter commitNum is required with iteratorType {kind}"
                ))
            })
        };
        let iterator = match kind {
            "AT_SEQUENCE_NUMBER" => Iterator::At(needs_commit()?, op),
            "AFTER_SEQUENCE_NUMBER" => Iterator::After(needs_commit()?, op),
            "TRIM_HORIZON" => Iterator::TrimHorizon,
            "LATEST" => Iterator::Latest,
            other => {
                return Err(StreamError::InvalidParameter(format!(
                    "Parameter iteratorType must be AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER, \
                     TRIM_HORIZON or LATEST, not '{other}'"
                )));
            }
        };
        Ok(StreamRequest { iterator, limit })
    }
}

fn internal(e: rusqlite::Error) -> StreamError {
    StreamError::Internal(e.to_string())
}

/// A stored value as JSON: numbers and booleans as Neptune sends them, the rest as strings.
fn json_value(value: &str, type_name: &str) -> Value {
    let number = match type_name {
        "Byte" | "Short" | "Int" | "Long" => value.parse::<i64>().ok().map(Value::from),
        "Float" | "Double" => value.parse::<f64>().ok().map(Value::from),
        "Bool" | "Boolean" => value.parse::<bool>().ok().map(Value::from),
        _ => None,
    };
    number.unwrap_or_else(|| Value::from(value))
}

/// Answers one request from the graph store at `path` (opened read-only).
pub(crate) fn read(path: &Path, request: &StreamRequest) -> Result<Value, StreamError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| StreamError::Internal(e.to_string()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(internal)?;
    // One read transaction: the head and the records agree.
    conn.execute_batch("BEGIN").map_err(internal)?;
    let head: Option<(i64, i64)> = conn
        .query_row("SELECT commit_num, trimmed FROM stream_head", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(internal)?;
    let first: Option<(i64, i64)> = conn
        .query_row(
            "SELECT commit_num, op_num FROM stream ORDER BY commit_num, op_num LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(internal)?;
    let Some((head, trimmed)) = head else {
        return Err(StreamError::NotFound(
            "The stream has no records yet.".into(),
        ));
    };
    let future = || StreamError::NotFound("Requested startEventId is from the future.".into());
    // The first event to give: (commit, op), strictly greater when `after`.
    let (start, after) = match request.iterator {
        Iterator::At(c, o) => ((c, o), false),
        Iterator::After(c, o) => ((c, o), true),
        Iterator::TrimHorizon => (first.ok_or_else(future)?, false),
        Iterator::Latest => {
            let last: (i64, i64) = conn
                .query_row(
                    "SELECT commit_num, op_num FROM stream \
                     ORDER BY commit_num DESC, op_num DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(internal)?
                .ok_or_else(future)?;
            (last, false)
        }
    };
    if start.0 > head {
        return Err(future());
    }
    // Reading at a trimmed commit, or after one before the last trimmed, would skip records.
    // (After the last trimmed commit itself is whole: positions are kept at commit ends.)
    if start.0 < trimmed || (start.0 == trimmed && !after) {
        return Err(StreamError::Expired(format!(
            "Requested startEventId {{commitNum: {}, opNum: {}}} has expired: the stream keeps \
             no records up to commit {trimmed}.",
            start.0, start.1
        )));
    }
    let limit = if request.iterator == Iterator::Latest {
        1
    } else {
        request.limit
    };
    let mut statement = conn
        .prepare_cached(if after {
            "SELECT commit_num, op_num, ts, op, kind, id, key, value, type, from_id, to_id, last \
             FROM stream WHERE (commit_num, op_num) > (?1, ?2) \
             ORDER BY commit_num, op_num LIMIT ?3"
        } else {
            "SELECT commit_num, op_num, ts, op, kind, id, key, value, type, from_id, to_id, last \
             FROM stream WHERE (commit_num, op_num) >= (?1, ?2) \
             ORDER BY commit_num, op_num LIMIT ?3"
        })
        .map_err(internal)?;
    let mut rows = statement
        .query(params![start.0, start.1, limit as i64])
        .map_err(internal)?;
    let mut records = Vec::new();
    let mut bytes = 0usize;
    let mut last_event = None;
    let mut last_ts = 0i64;
    while let Some(row) = rows.next().map_err(internal)? {
        let get = |i| -> Result<String, StreamError> { row.get(i).map_err(internal) };
        let (commit, op_num, ts): (i64, i64, i64) = (
            row.get(0).map_err(internal)?,
            row.get(1).map_err(internal)?,
            row.get(2).map_err(internal)?,
        );
        let type_name = get(8)?;
        let mut data = json!({
            "id": get(5)?,
            "type": get(4)?,
            "key": get(6)?,
            "value": { "value": json_value(&get(7)?, &type_name), "dataType": type_name },
        });
        let from: Option<String> = row.get(9).map_err(internal)?;
        let to: Option<String> = row.get(10).map_err(internal)?;
        if let (Some(from), Some(to)) = (from, to) {
            data["from"] = Value::from(from);
            data["to"] = Value::from(to);
        }
        let mut record = json!({
            "commitTimestamp": ts,
            "eventId": { "commitNum": commit, "opNum": op_num },
            "data": data,
            "op": get(3)?,
        });
        if row.get::<_, bool>(11).map_err(internal)? {
            record["isLastOp"] = Value::Bool(true);
        }
        bytes += record.to_string().len();
        records.push(record);
        last_event = Some((commit, op_num));
        last_ts = ts;
        // The record that crosses the cap is still given.
        if bytes >= RESPONSE_CAP {
            break;
        }
    }
    let Some((commit, op_num)) = last_event else {
        // Asked after the very last record: nothing yet.
        return Err(future());
    };
    Ok(json!({
        "lastEventId": { "commitNum": commit, "opNum": op_num },
        "lastTrxTimestamp": last_ts,
        "format": "PG_JSON",
        "records": records,
        "totalRecords": records.len(),
    }))
}
