//! The embedded graph store: vertices, their labels and properties, edges and theirs, in one
//! SQLite file, with the bulk loader's merge rules (neptune-reference.md §1.8, §1.11).

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// The store could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
#[error("graph store {path}: {source}")]
pub struct StoreError {
    path: String,
    source: rusqlite::Error,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vertex (vk INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS vertex_label (
    vk INTEGER NOT NULL, label TEXT NOT NULL, PRIMARY KEY (vk, label)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vertex_prop (
    vk INTEGER NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, type TEXT NOT NULL,
    PRIMARY KEY (vk, name, value)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS edge (
    ek INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, label TEXT NOT NULL,
    from_vk INTEGER NOT NULL, to_vk INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS edge_from ON edge (from_vk);
CREATE INDEX IF NOT EXISTS edge_to ON edge (to_vk);
CREATE TABLE IF NOT EXISTS edge_prop (
    ek INTEGER NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, type TEXT NOT NULL,
    PRIMARY KEY (ek, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stream (
    commit_num INTEGER NOT NULL, op_num INTEGER NOT NULL, ts INTEGER NOT NULL,
    op TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL, key TEXT NOT NULL,
    value TEXT NOT NULL, type TEXT NOT NULL, from_id TEXT, to_id TEXT, last INTEGER NOT NULL,
    PRIMARY KEY (commit_num, op_num)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stream_commit (
    commit_num INTEGER PRIMARY KEY, ts INTEGER NOT NULL, records INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS stream_head (
    one INTEGER PRIMARY KEY CHECK (one = 1), commit_num INTEGER NOT NULL,
    trimmed INTEGER NOT NULL DEFAULT 0);
";

/// How long the change stream keeps its records (Neptune's `neptune_streams_expiry_days`, and
/// a record count for tests and small disks). Older commits are trimmed as new ones arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub days: u32,
    /// Keep at most about this many records (whole commits are trimmed); `None`: no limit.
    pub records: Option<u64>,
}

impl Default for Retention {
    /// Neptune's default: seven days.
    fn default() -> Retention {
        Retention {
            days: 7,
            records: None,
        }
    }
}

/// One change a commit made, as the stream presents it.
#[derive(Debug, Clone)]
struct Change {
    op: &'static str,
    kind: &'static str,
    id: String,
    key: String,
    value: String,
    type_name: String,
    ends: Option<(String, String)>,
}

/// One property field of a row, already checked and converted to its stored text.
#[derive(Debug, Clone)]
pub(crate) struct PropertyValues {
    pub name: String,
    pub type_name: &'static str,
    pub single: bool,
    pub values: Vec<String>,
}

/// What applying one record (the id and labels, or one property) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Applied {
    New,
    Duplicate,
    /// An insert error: the error code and message.
    Failed(&'static str, String),
}

/// Vertices and edges per label.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    pub vertices: u64,
    pub edges: u64,
    /// Vertices per label (a vertex with two labels counts for each).
    pub vertex_labels: BTreeMap<String, u64>,
    pub edge_labels: BTreeMap<String, u64>,
}

/// The whole graph, every element with everything it holds: what tests compare when they
/// claim two runs made the same graph (counts alone miss a stale or lost property value).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct GraphDump {
    /// By `~id`: labels (sorted) and properties (sorted by name, then value).
    pub vertices: BTreeMap<String, (Vec<String>, Vec<Property>)>,
    /// By `~id`.
    pub edges: BTreeMap<String, EdgeDump>,
}

/// An edge as [`GraphDump`] holds it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EdgeDump {
    pub label: String,
    pub from: String,
    pub to: String,
    pub properties: Vec<Property>,
}

/// A property as stored.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Property {
    pub name: String,
    pub value: String,
    #[serde(rename = "type")]
    pub type_name: String,
}

/// An edge seen from one of its vertices.
#[derive(Debug, Clone, Serialize)]
pub struct Neighbour {
    pub edge_id: String,
    pub edge_label: String,
    /// `out` when the shown vertex is the edge's `~from`.
    pub direction: &'static str,
    pub vertex_id: String,
    pub vertex_labels: Vec<String>,
    pub edge_properties: Vec<Property>,
    /// The neighbour's properties, so a person sees what the id stands for.
    pub vertex_properties: Vec<Property>,
}

/// A vertex with its properties and neighbours.
#[derive(Debug, Clone, Serialize)]
pub struct VertexView {
    pub id: String,
    pub labels: Vec<String>,
    pub properties: Vec<Property>,
    pub neighbours: Vec<Neighbour>,
    /// Edges beyond the shown neighbours.
    pub more_neighbours: u64,
}

/// The graph store.
#[derive(Debug)]
pub struct GraphStore {
    conn: Connection,
    path: String,
    /// Recording changes as a stream, and for how long; `None`: streams are off.
    stream: Option<Retention>,
    /// The open transaction's changes, written to the stream when it commits.
    pending: Vec<Change>,
}

impl GraphStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<GraphStore, StoreError> {
        let name = path.display().to_string();
        let fail = |source| StoreError {
            path: name.clone(),
            source,
        };
        let conn = Connection::open(path).map_err(fail)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA temp_store = MEMORY; PRAGMA cache_size = -262144; PRAGMA busy_timeout = 10000;",
        )
        .map_err(fail)?;
        conn.execute_batch(SCHEMA).map_err(fail)?;
        Ok(GraphStore {
            conn,
            path: name,
            stream: None,
            pending: Vec::new(),
        })
    }

    /// Records every committed change in the stream, kept as `retention` says.
    pub fn with_stream(mut self, retention: Retention) -> GraphStore {
        self.stream = Some(retention);
        self
    }

    fn record(
        &mut self,
        op: &'static str,
        kind: &'static str,
        id: &str,
        key: &str,
        value: &str,
        type_name: &str,
    ) {
        self.record_change(op, kind, id, key, value, type_name, None);
    }

    #[allow(clippy::too_many_arguments)]
    fn record_change(
        &mut self,
        op: &'static str,
        kind: &'static str,
        id: &str,
        key: &str,
        value: &str,
        type_name: &str,
        ends: Option<(&str, &str)>,
    ) {
        if self.stream.is_some() {
            self.pending.push(Change {
                op,
                kind,
                id: id.to_owned(),
                key: key.to_owned(),
                value: value.to_owned(),
                type_name: type_name.to_owned(),
                ends: ends.map(|(f, t)| (f.to_owned(), t.to_owned())),
            });
        }
    }

    fn fail(&self, source: rusqlite::Error) -> StoreError {
        StoreError {
            path: self.path.clone(),
            source,
        }
    }

    pub(crate) fn begin(&mut self) -> Result<(), StoreError> {
        self.pending.clear();
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.fail(e))
    }

    /// Ends a transaction an earlier load left open (it stopped on an error): what it had not
    /// committed is dropped, as the loader keeps only committed work.
    pub(crate) fn roll_back_open_transaction(&mut self) -> Result<(), StoreError> {
        self.pending.clear();
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.conn
            .execute_batch("ROLLBACK")
            .map_err(|e| self.fail(e))
    }

    /// Commits the open transaction; its changes become one stream commit, in the same SQLite
    /// transaction, so the stream never shows what the graph did not keep, nor misses what it
    /// did.
    pub(crate) fn commit(&mut self) -> Result<(), StoreError> {
        self.write_stream().map_err(|e| self.fail(e))?;
        self.conn.execute_batch("COMMIT").map_err(|e| self.fail(e))
    }

    fn write_stream(&mut self) -> Result<(), rusqlite::Error> {
        let Some(retention) = self.stream else {
            return Ok(());
        };
        if self.pending.is_empty() {
            return Ok(());
        }
        let head: i64 = self
            .conn
            .query_row("SELECT commit_num FROM stream_head", [], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        let commit_num = head + 1;
        let now = chrono::Utc::now().timestamp_millis();
        let changes = std::mem::take(&mut self.pending);
        let last = changes.len();
        {
            let mut insert = self.conn.prepare_cached(
                "INSERT INTO stream (commit_num, op_num, ts, op, kind, id, key, value, type, \
                 from_id, to_id, last) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            for (i, c) in changes.iter().enumerate() {
                let (from, to) = match &c.ends {
                    Some((f, t)) => (Some(f.as_str()), Some(t.as_str())),
                    None => (None, None),
                };
                insert.execute(params![
                    commit_num,
                    i as i64 + 1,
                    now,
                    c.op,
                    c.kind,
                    c.id,
                    c.key,
                    c.value,
                    c.type_name,
                    from,
                    to,
                    i + 1 == last
                ])?;
            }
        }
        self.conn.execute(
            "INSERT INTO stream_head (one, commit_num) VALUES (1, ?1) \
             ON CONFLICT (one) DO UPDATE SET commit_num = excluded.commit_num",
            [commit_num],
        )?;
        self.conn
            .prepare_cached(
                "INSERT INTO stream_commit (commit_num, ts, records) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![commit_num, now, last as i64])?;
        // Retention, decided on the commit table (a row per commit, not per change): whole
        // commits older than the days, and those whose every change is beyond the newest
        // `records`. The last commit trimmed is kept, so a position at or before it reads as
        // expired.
        let oldest = now - i64::from(retention.days) * 86_400_000;
        let by_age: Option<i64> = self
            .conn
            .prepare_cached("SELECT max(commit_num) FROM stream_commit WHERE ts < ?1")?
            .query_row([oldest], |r| r.get(0))?;
        let by_count: Option<i64> = match retention.records {
            Some(keep) => self
                .conn
                .prepare_cached(
                    "SELECT max(commit_num) FROM (SELECT commit_num, sum(records) OVER \
                     (ORDER BY commit_num DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) \
                     AS newer FROM stream_commit) WHERE newer >= ?1",
                )?
                .query_row([keep.max(1) as i64], |r| r.get(0))?,
            None => None,
        };
        if let Some(cut) = by_age.max(by_count).filter(|&cut| cut > 0) {
            self.conn
                .prepare_cached("DELETE FROM stream WHERE commit_num <= ?1")?
                .execute([cut])?;
            self.conn
                .prepare_cached("DELETE FROM stream_commit WHERE commit_num <= ?1")?
                .execute([cut])?;
            self.conn
                .prepare_cached("UPDATE stream_head SET trimmed = max(trimmed, ?1)")?
                .execute([cut])?;
        }
        Ok(())
    }

    fn vertex_key(&self, id: &str) -> Result<Option<i64>, rusqlite::Error> {
        self.conn
            .prepare_cached("SELECT vk FROM vertex WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()
    }

    /// Applies one vertex row: the id and labels are one record, each property one more.
    pub(crate) fn apply_vertex(
        &mut self,
        id: &str,
        labels: &[String],
        properties: &[PropertyValues],
        update_single: bool,
    ) -> Result<Vec<Applied>, StoreError> {
        self.apply_vertex_inner(id, labels, properties, update_single)
            .map_err(|e| self.fail(e))
    }

    fn apply_vertex_inner(
        &mut self,
        id: &str,
        labels: &[String],
        properties: &[PropertyValues],
        update_single: bool,
    ) -> Result<Vec<Applied>, rusqlite::Error> {
        let mut out = Vec::with_capacity(1 + properties.len());
        let (vk, created) = match self.vertex_key(id)? {
            Some(vk) => (vk, false),
            None => {
                self.conn
                    .prepare_cached("INSERT INTO vertex (id) VALUES (?1)")?
                    .execute([id])?;
                (self.conn.last_insert_rowid(), true)
            }
        };
        let mut added_label = false;
        let mut new_labels = Vec::new();
        {
            let mut insert = self
                .conn
                .prepare_cached("INSERT OR IGNORE INTO vertex_label (vk, label) VALUES (?1, ?2)")?;
            for label in labels {
                if insert.execute(params![vk, label])? > 0 {
                    added_label = true;
                    new_labels.push(label);
                }
            }
        }
        for label in new_labels {
            self.record("ADD", "vl", id, "label", label, "String");
        }
        out.push(if created || added_label {
            Applied::New
        } else {
            Applied::Duplicate
        });
        for property in properties {
            out.push(self.apply_vertex_property(vk, id, property, update_single)?);
        }
        Ok(out)
    }

    fn apply_vertex_property(
        &mut self,
        vk: i64,
        id: &str,
        property: &PropertyValues,
        update_single: bool,
    ) -> Result<Applied, rusqlite::Error> {
        let insert = |conn: &Connection, value: &str| -> Result<bool, rusqlite::Error> {
            Ok(conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO vertex_prop (vk, name, value, type) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![vk, property.name, value, property.type_name])?
                > 0)
        };
        if property.single {
            let value = &property.values[0];
            let existing: Vec<String> = self
                .conn
                .prepare_cached("SELECT value FROM vertex_prop WHERE vk = ?1 AND name = ?2")?
                .query_map(params![vk, property.name], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            if existing.is_empty() {
                insert(&self.conn, value)?;
                self.record("ADD", "vp", id, &property.name, value, property.type_name);
                return Ok(Applied::New);
            }
            if existing.len() == 1 && &existing[0] == value {
                return Ok(Applied::Duplicate);
            }
            if !update_single {
                return Ok(Applied::Failed(
                    "SINGLE_CARDINALITY_VIOLATION",
                    format!(
                        "Vertex '{id}' already has a value for single-cardinality property '{}' \
                         ({}); the new value '{value}' is refused (updateSingleCardinalityProperties \
                         is FALSE)",
                        property.name,
                        existing.join(", ")
                    ),
                ));
            }
            self.conn
                .prepare_cached("DELETE FROM vertex_prop WHERE vk = ?1 AND name = ?2")?
                .execute(params![vk, property.name])?;
            // An update is a REMOVE of the old value, then an ADD of the new.
            for old in &existing {
                self.record("REMOVE", "vp", id, &property.name, old, property.type_name);
            }
            insert(&self.conn, value)?;
            self.record("ADD", "vp", id, &property.name, value, property.type_name);
            return Ok(Applied::New);
        }
        let mut added = false;
        for value in &property.values {
            if insert(&self.conn, value)? {
                added = true;
                self.record("ADD", "vp", id, &property.name, value, property.type_name);
            }
        }
        Ok(if added {
            Applied::New
        } else {
            Applied::Duplicate
        })
    }

    /// Applies one edge row: the id, label and endpoints are one record, each property one more.
    pub(crate) fn apply_edge(
        &mut self,
        id: &str,
        label: &str,
        from: &str,
        to: &str,
        properties: &[PropertyValues],
        update_single: bool,
    ) -> Result<Vec<Applied>, StoreError> {
        self.apply_edge_inner(id, label, from, to, properties, update_single)
            .map_err(|e| self.fail(e))
    }

    fn apply_edge_inner(
        &mut self,
        id: &str,
        label: &str,
        from: &str,
        to: &str,
        properties: &[PropertyValues],
        update_single: bool,
    ) -> Result<Vec<Applied>, rusqlite::Error> {
        let (Some(from_vk), Some(to_vk)) = (self.vertex_key(from)?, self.vertex_key(to)?) else {
            return Ok(vec![Applied::Failed(
                "FROM_OR_TO_VERTEX_ARE_MISSING",
                format!("Either from vertex, '{from}', or to vertex, '{to}', is not present."),
            )]);
        };
        let existing: Option<(i64, String, i64, i64)> = self
            .conn
            .prepare_cached("SELECT ek, label, from_vk, to_vk FROM edge WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .optional()?;
        let mut out = Vec::with_capacity(1 + properties.len());
        let ek = match existing {
            Some((ek, l, f, t)) if l == label && f == from_vk && t == to_vk => {
                out.push(Applied::Duplicate);
                ek
            }
            Some(_) => {
                return Ok(vec![Applied::Failed(
                    "ID_ASSIGNED_TO_MULTIPLE_EDGES",
                    format!(
                        "Edge id '{id}' is already assigned to an edge with another label or other \
                         endpoints"
                    ),
                )]);
            }
            None => {
                self.conn
                    .prepare_cached(
                        "INSERT INTO edge (id, label, from_vk, to_vk) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![id, label, from_vk, to_vk])?;
                self.record_change("ADD", "e", id, "label", label, "String", Some((from, to)));
                out.push(Applied::New);
                self.conn.last_insert_rowid()
            }
        };
        for property in properties {
            let value = &property.values[0];
            let current: Option<String> = self
                .conn
                .prepare_cached("SELECT value FROM edge_prop WHERE ek = ?1 AND name = ?2")?
                .query_row(params![ek, property.name], |r| r.get(0))
                .optional()?;
            out.push(match current {
                Some(current) if &current == value => Applied::Duplicate,
                Some(current) if !update_single => Applied::Failed(
                    "SINGLE_CARDINALITY_VIOLATION",
                    format!(
                        "Edge '{id}' already has property '{}' = '{current}'; the new value \
                         '{value}' is refused (updateSingleCardinalityProperties is FALSE)",
                        property.name
                    ),
                ),
                _ => {
                    self.conn
                        .prepare_cached(
                            "INSERT OR REPLACE INTO edge_prop (ek, name, value, type) \
                             VALUES (?1, ?2, ?3, ?4)",
                        )?
                        .execute(params![ek, property.name, value, property.type_name])?;
                    if let Some(old) = &current {
                        self.record("REMOVE", "ep", id, &property.name, old, property.type_name);
                    }
                    self.record("ADD", "ep", id, &property.name, value, property.type_name);
                    Applied::New
                }
            });
        }
        Ok(out)
    }

    /// Counts per label.
    pub fn stats(&self) -> Result<Stats, StoreError> {
        self.stats_inner().map_err(|e| self.fail(e))
    }

    fn stats_inner(&self) -> Result<Stats, rusqlite::Error> {
        let count = |sql: &str| -> Result<u64, rusqlite::Error> {
            self.conn
                .query_row(sql, [], |r| r.get::<_, i64>(0).map(|n| n as u64))
        };
        let per_label = |sql: &str| -> Result<BTreeMap<String, u64>, rusqlite::Error> {
            self.conn
                .prepare(sql)?
                .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
                .collect()
        };
        Ok(Stats {
            vertices: count("SELECT count(*) FROM vertex")?,
            edges: count("SELECT count(*) FROM edge")?,
            vertex_labels: per_label(
                "SELECT label, count(*) FROM vertex_label GROUP BY label ORDER BY label",
            )?,
            edge_labels: per_label(
                "SELECT label, count(*) FROM edge GROUP BY label ORDER BY label",
            )?,
        })
    }

    /// Every vertex and edge with its labels, ends and property values.
    pub fn dump(&self) -> Result<GraphDump, StoreError> {
        self.dump_inner().map_err(|e| self.fail(e))
    }

    fn dump_inner(&self) -> Result<GraphDump, rusqlite::Error> {
        let mut dump = GraphDump::default();
        let mut by_key: BTreeMap<i64, String> = BTreeMap::new();
        for row in self
            .conn
            .prepare("SELECT vk, id FROM vertex")?
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
        {
            let (vk, id) = row?;
            dump.vertices.insert(id.clone(), (Vec::new(), Vec::new()));
            by_key.insert(vk, id);
        }
        for row in self
            .conn
            .prepare("SELECT vk, label FROM vertex_label ORDER BY vk, label")?
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
        {
            let (vk, label) = row?;
            if let Some(v) = by_key.get(&vk).and_then(|id| dump.vertices.get_mut(id)) {
                v.0.push(label);
            }
        }
        for (vk, property) in self.keyed_properties("vertex_prop", "vk")? {
            if let Some(v) = by_key.get(&vk).and_then(|id| dump.vertices.get_mut(id)) {
                v.1.push(property);
            }
        }
        let mut edge_ids: BTreeMap<i64, String> = BTreeMap::new();
        for row in self
            .conn
            .prepare("SELECT ek, id, label, from_vk, to_vk FROM edge")?
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })?
        {
            let (ek, id, label, from, to) = row?;
            let end = |vk: i64| by_key.get(&vk).cloned().unwrap_or_default();
            dump.edges.insert(
                id.clone(),
                EdgeDump {
                    label,
                    from: end(from),
                    to: end(to),
                    properties: Vec::new(),
                },
            );
            edge_ids.insert(ek, id);
        }
        for (ek, property) in self.keyed_properties("edge_prop", "ek")? {
            if let Some(e) = edge_ids.get(&ek).and_then(|id| dump.edges.get_mut(id)) {
                e.properties.push(property);
            }
        }
        Ok(dump)
    }

    /// Every property of a property table with its element's key, ordered by key, name, value.
    fn keyed_properties(
        &self,
        table: &str,
        key: &str,
    ) -> Result<Vec<(i64, Property)>, rusqlite::Error> {
        self.conn
            .prepare(&format!(
                "SELECT {key}, name, value, type FROM {table} ORDER BY {key}, name, value"
            ))?
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    Property {
                        name: r.get(1)?,
                        value: r.get(2)?,
                        type_name: r.get(3)?,
                    },
                ))
            })?
            .collect()
    }

    /// The vertices `key` names: the vertex with that id, or else every vertex with a property
    /// whose value is `key` (found by a scan: lookups by value are for people, not for speed).
    pub fn show(&self, key: &str, max_neighbours: usize) -> Result<Vec<VertexView>, StoreError> {
        self.show_inner(key, max_neighbours)
            .map_err(|e| self.fail(e))
    }

    fn show_inner(
        &self,
        key: &str,
        max_neighbours: usize,
    ) -> Result<Vec<VertexView>, rusqlite::Error> {
        let mut keys: Vec<i64> = self.vertex_key(key)?.into_iter().collect();
        if keys.is_empty() {
            keys = self
                .conn
                .prepare(
                    "SELECT DISTINCT vk FROM vertex_prop WHERE value = ?1 ORDER BY vk LIMIT 20",
                )?
                .query_map([key], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
        }
        keys.iter()
            .map(|&vk| self.view(vk, max_neighbours))
            .collect()
    }

    fn vertex_id(&self, vk: i64) -> Result<String, rusqlite::Error> {
        self.conn
            .prepare_cached("SELECT id FROM vertex WHERE vk = ?1")?
            .query_row([vk], |r| r.get(0))
    }

    fn labels(&self, vk: i64) -> Result<Vec<String>, rusqlite::Error> {
        self.conn
            .prepare_cached("SELECT label FROM vertex_label WHERE vk = ?1 ORDER BY label")?
            .query_map([vk], |r| r.get(0))?
            .collect()
    }

    fn properties(&self, table: &str, key: &str, k: i64) -> Result<Vec<Property>, rusqlite::Error> {
        self.conn
            .prepare_cached(&format!(
                "SELECT name, value, type FROM {table} WHERE {key} = ?1 ORDER BY name, value"
            ))?
            .query_map([k], |r| {
                Ok(Property {
                    name: r.get(0)?,
                    value: r.get(1)?,
                    type_name: r.get(2)?,
                })
            })?
            .collect()
    }

    fn view(&self, vk: i64, max_neighbours: usize) -> Result<VertexView, rusqlite::Error> {
        let mut neighbours = Vec::new();
        let mut total = 0u64;
        for (direction, sql) in [
            (
                "out",
                "SELECT ek, id, label, to_vk FROM edge WHERE from_vk = ?1 ORDER BY label, id",
            ),
            (
                "in",
                "SELECT ek, id, label, from_vk FROM edge WHERE to_vk = ?1 ORDER BY label, id",
            ),
        ] {
            let rows: Vec<(i64, String, String, i64)> = self
                .conn
                .prepare_cached(sql)?
                .query_map([vk], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<Result<_, _>>()?;
            for (ek, edge_id, edge_label, other) in rows {
                total += 1;
                if neighbours.len() >= max_neighbours {
                    continue;
                }
                neighbours.push(Neighbour {
                    edge_id,
                    edge_label,
                    direction,
                    vertex_id: self.vertex_id(other)?,
                    vertex_labels: self.labels(other)?,
                    edge_properties: self.properties("edge_prop", "ek", ek)?,
                    vertex_properties: self.properties("vertex_prop", "vk", other)?,
                });
            }
        }
        Ok(VertexView {
            id: self.vertex_id(vk)?,
            labels: self.labels(vk)?,
            properties: self.properties("vertex_prop", "vk", vk)?,
            more_neighbours: total - neighbours.len() as u64,
            neighbours,
        })
    }
}
