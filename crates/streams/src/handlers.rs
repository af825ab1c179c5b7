//! What the consumer does with each batch of changes. Every handler is idempotent: a batch
//! given again after a crash (delivery is at-least-once) leaves the same result.

use std::collections::BTreeSet;
use std::io::Write;

use idgraph_storage::{Location, Store};

use crate::StreamError;
use crate::client::Record;

/// Change files: NDJSON, one line per change, under `date=YYYY-MM-DD/hour=HH/` of the commit
/// time (UTC), one file per batch and hour named by its first and last event, written whole.
#[derive(Debug)]
pub(crate) struct ChangeFiles {
    pub(crate) root: Location,
    pub(crate) gzip: bool,
}

impl ChangeFiles {
    /// The files a batch makes, with their records: a batch is in commit order, so each hour's
    /// records lie together.
    pub(crate) fn plan<'a>(&self, batch: &'a [Record]) -> Vec<(Location, &'a [Record])> {
        let mut out = Vec::new();
        let mut start = 0;
        while start < batch.len() {
            // Compared as hour numbers; the folder name is formatted once per file.
            let hour_of = |r: &Record| r.commit_timestamp.div_euclid(3_600_000);
            let number = hour_of(&batch[start]);
            let len = batch[start..]
                .iter()
                .take_while(|r| hour_of(r) == number)
                .count();
            let hour = partition(&batch[start]);
            let part = &batch[start..start + len];
            let (first, last) = (part[0].event_id, part[len - 1].event_id);
            let name = format!(
                "{hour}/{:020}-{:06}_{:020}-{:06}.ndjson{}",
                first.commit_num,
                first.op_num,
                last.commit_num,
                last.op_num,
                if self.gzip { ".gz" } else { "" }
            );
            out.push((self.root.join(&name), part));
            start += len;
        }
        out
    }

    pub(crate) fn write(
        &self,
        store: &Store,
        location: &Location,
        records: &[Record],
    ) -> Result<(), StreamError> {
        let mut text = Vec::with_capacity(records.len() * 256);
        for record in records {
            serde_json::to_writer(&mut text, record)
                .map_err(|e| StreamError::Output(e.to_string()))?;
            text.push(b'\n');
        }
        let bytes = if self.gzip {
            // No name and no time in the header: the same records give the same bytes.
            let mut encoder = flate2::GzBuilder::new()
                .mtime(0)
                .write(Vec::new(), flate2::Compression::fast());
            encoder
                .write_all(&text)
                .and_then(|()| encoder.finish())
                .map_err(|e| StreamError::Output(e.to_string()))?
        } else {
            text
        };
        store
            .write(location, bytes)
            .map_err(|e| StreamError::Output(e.to_string()))
    }
}

fn partition(record: &Record) -> String {
    chrono::DateTime::from_timestamp_millis(record.commit_timestamp)
        .map(|t| t.format("date=%Y-%m-%d/hour=%H").to_string())
        .unwrap_or_else(|| "date=unknown/hour=unknown".into())
}

/// Which edges make the identity cache (from the graph mapping's labels): identifiers a user
/// has directly, the session-to-user edge, and identifiers a session used.
#[derive(Debug, Clone)]
pub struct CacheRules {
    pub direct: Vec<String>,
    pub session_user: String,
    pub via_session: Vec<String>,
}

impl CacheRules {
    /// The labels of the mapping's `[cache]` table (checked against its edge labels when the
    /// mapping was read); refused when it has none, rather than a cache that silently stays
    /// empty under labels the graph does not have.
    pub fn from_mapping(mapping: &transform::Mapping) -> Result<CacheRules, StreamError> {
        let cache = mapping.cache.as_ref().ok_or_else(|| {
            StreamError::Redis(
                "the graph mapping has no [cache] table naming the identity cache's edge labels \
                 (direct, session_user, via_session)"
                    .to_owned(),
            )
        })?;
        Ok(CacheRules {
            direct: cache.direct.clone(),
            session_user: cache.session_user.clone(),
            via_session: cache.via_session.clone(),
        })
    }
}

/// The identity cache in Redis. Keys (under `prefix`):
/// - `users:<identifier vertex id>`: the set of user vertex ids the identifier belongs to;
/// - `session-users:<session>`, `session-ids:<session>`, `id-sessions:<identifier>`: the
///   session edges the cache is derived from.
///
/// Set additions and removals are idempotent; identifiers reached through sessions are
/// recomputed from the session sets after each batch.
pub(crate) struct IdentityCache {
    pub(crate) connection: redis::Connection,
    pub(crate) prefix: String,
    pub(crate) rules: CacheRules,
}

impl std::fmt::Debug for IdentityCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityCache")
            .field("prefix", &self.prefix)
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

fn redis_error(e: redis::RedisError) -> StreamError {
    StreamError::Redis(e.to_string())
}

impl IdentityCache {
    pub(crate) fn users_key(prefix: &str, identifier: &str) -> String {
        format!("{prefix}:users:{identifier}")
    }

    pub(crate) fn apply(&mut self, batch: &[Record]) -> Result<(), StreamError> {
        let p = &self.prefix;
        let mut pipe = redis::pipe();
        // Identifiers reached through sessions whose set must be recomputed, and sessions whose
        // user changed (all their identifiers are recomputed).
        let mut touched_ids = BTreeSet::new();
        let mut touched_sessions = BTreeSet::new();
        for record in batch.iter().filter(|r| r.data.kind == "e") {
            let (Some(from), Some(to)) = (&record.data.from, &record.data.to) else {
                continue;
            };
            let label = record.data.value.text();
            let add = record.op == "ADD";
            let command = if add { "SADD" } else { "SREM" };
            if self.rules.direct.contains(&label) {
                pipe.cmd(command)
                    .arg(Self::users_key(p, to))
                    .arg(from)
                    .ignore();
            } else if label == self.rules.session_user {
                pipe.cmd(command)
                    .arg(format!("{p}:session-users:{from}"))
                    .arg(to)
                    .ignore();
                touched_sessions.insert(from.clone());
            } else if self.rules.via_session.contains(&label) {
                pipe.cmd(command)
                    .arg(format!("{p}:session-ids:{from}"))
                    .arg(to)
                    .ignore();
                pipe.cmd(command)
                    .arg(format!("{p}:id-sessions:{to}"))
                    .arg(from)
                    .ignore();
                touched_ids.insert(to.clone());
            }
        }
        pipe.query::<()>(&mut self.connection)
            .map_err(redis_error)?;
        if !touched_sessions.is_empty() {
            let mut read = redis::pipe();
            for session in &touched_sessions {
                read.cmd("SMEMBERS")
                    .arg(format!("{p}:session-ids:{session}"));
            }
            let ids: Vec<Vec<String>> = read.query(&mut self.connection).map_err(redis_error)?;
            touched_ids.extend(ids.into_iter().flatten());
        }
        if touched_ids.is_empty() {
            return Ok(());
        }
        let touched: Vec<String> = touched_ids.into_iter().collect();
        let mut read = redis::pipe();
        for id in &touched {
            read.cmd("SMEMBERS").arg(format!("{p}:id-sessions:{id}"));
        }
        let sessions: Vec<Vec<String>> = read.query(&mut self.connection).map_err(redis_error)?;
        let mut write = redis::pipe();
        write.atomic();
        for (id, sessions) in touched.iter().zip(sessions) {
            let key = Self::users_key(p, id);
            if sessions.is_empty() {
                write.cmd("DEL").arg(&key).ignore();
            } else {
                let sources: BTreeSet<String> = sessions
                    .iter()
                    .map(|s| format!("{p}:session-users:{s}"))
                    .collect();
                write
                    .cmd("SUNIONSTORE")
                    .arg(&key)
                    .arg(sources.into_iter().collect::<Vec<_>>())
                    .ignore();
            }
        }
        write.query::<()>(&mut self.connection).map_err(redis_error)
    }
}
