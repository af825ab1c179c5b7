//! Reading the change stream as `GET /propertygraph/stream` serves it (neptune-reference.md §4,
//! aws-reference.md §1): the four iterator types, `limit`, the 10 MB cap, numbers where Neptune
//! sends numbers, and Neptune's errors.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Serialize;

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

/// Answers one request from the graph store at `path` (opened read-only): the response body.
pub(crate) fn read(path: &Path, request: &StreamRequest) -> Result<Vec<u8>, StreamError> {
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
    // The oldest or the newest record kept.
    let end = |newest: bool| -> Result<Option<(i64, i64)>, StreamError> {
        conn.query_row(
            if newest {
                "SELECT commit_num, op_num FROM stream ORDER BY commit_num DESC, op_num DESC LIMIT 1"
            } else {
                "SELECT commit_num, op_num FROM stream ORDER BY commit_num, op_num LIMIT 1"
            },
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(internal)
    };
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
        Iterator::TrimHorizon => (end(false)?.ok_or_else(future)?, false),
        Iterator::Latest => (end(true)?.ok_or_else(future)?, false),
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
    // Records are serialised straight into the body as they are read (no JSON tree): the
    // stream is read in bulk, so this is the endpoint's hot loop.
    let mut body: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut count = 0usize;
    let mut last_event = None;
    let mut last_ts = 0i64;
    while let Some(row) = rows.next().map_err(internal)? {
        let text = |i| -> Result<&str, StreamError> {
            row.get_ref(i)
                .map_err(internal)?
                .as_str()
                .map_err(|e| StreamError::Internal(e.to_string()))
        };
        let (commit, op_num, ts): (i64, i64, i64) = (
            row.get(0).map_err(internal)?,
            row.get(1).map_err(internal)?,
            row.get(2).map_err(internal)?,
        );
        let type_name = text(8)?;
        let text_or_null = |i| -> Result<Option<&str>, StreamError> {
            row.get_ref(i)
                .map_err(internal)?
                .as_str_or_null()
                .map_err(|e| StreamError::Internal(e.to_string()))
        };
        let ends = text_or_null(9)?.zip(text_or_null(10)?);
        let record = OutRecord {
            commit_timestamp: ts,
            event_id: OutEventId {
                commit_num: commit,
                op_num,
            },
            data: OutData {
                id: text(5)?,
                kind: text(4)?,
                key: text(6)?,
                value: OutValue {
                    value: typed(text(7)?, type_name),
                    data_type: type_name,
                },
                from: ends.map(|e| e.0),
                to: ends.map(|e| e.1),
            },
            op: text(3)?,
            is_last_op: row.get(11).map_err(internal)?,
        };
        if count > 0 {
            body.push(b',');
        }
        serde_json::to_writer(&mut body, &record)
            .map_err(|e| StreamError::Internal(e.to_string()))?;
        count += 1;
        last_event = Some((commit, op_num));
        last_ts = ts;
        // The record that crosses the cap is still given.
        if body.len() >= RESPONSE_CAP {
            break;
        }
    }
    let Some((commit, op_num)) = last_event else {
        // Asked after the very last record: nothing yet.
        return Err(future());
    };
    let head = format!(
        "{{\"lastEventId\":{{\"commitNum\":{commit},\"opNum\":{op_num}}},\
         \"lastTrxTimestamp\":{last_ts},\"format\":\"PG_JSON\",\"records\":["
    );
    let tail = format!("],\"totalRecords\":{count}}}");
    let mut out = Vec::with_capacity(head.len() + body.len() + tail.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(tail.as_bytes());
    Ok(out)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutRecord<'a> {
    commit_timestamp: i64,
    event_id: OutEventId,
    data: OutData<'a>,
    op: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    is_last_op: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutEventId {
    commit_num: i64,
    op_num: i64,
}

#[derive(Serialize)]
struct OutData<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    key: &'a str,
    value: OutValue<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
}

#[derive(Serialize)]
struct OutValue<'a> {
    value: Typed<'a>,
    #[serde(rename = "dataType")]
    data_type: &'a str,
}

/// A stored value as JSON: numbers and booleans as Neptune sends them, the rest as strings.
#[derive(Serialize)]
#[serde(untagged)]
enum Typed<'a> {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(&'a str),
}

fn typed<'a>(value: &'a str, type_name: &str) -> Typed<'a> {
    let parsed = match type_name {
        "Byte" | "Short" | "Int" | "Long" => value.parse().ok().map(Typed::Int),
        "Float" | "Double" => value
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Typed::Float),
        "Bool" | "Boolean" => value.parse().ok().map(Typed::Bool),
        _ => None,
    };
    parsed.unwrap_or(Typed::Text(value))
}
