//! Identity resolution over the transform's graph batches: every identifier of one person (user
//! name, email, phone, customer id, sessions, cookies) gets one stable person id.
//!
//! People are the connected components of the mapping's strong edges (`[identity]` in
//! `schemas/graph.toml`); weak edges (a shared IP, device, city or product) never join anyone.
//! Resolution is incremental: the identity state under `datasets/identity/state/` keeps every
//! identifier's person, so a batch costs only its own rows. A person keeps its id across
//! batches; when a batch links two people, the older id survives and the merge is recorded.
//!
//! Each resolved batch becomes an ordinary graph batch under `datasets/identity/graph/`: the
//! `personId` (single) property of every identifier whose person is new or changed, and
//! `Person` vertices with member counts, for the loader to load like any other batch.
//!
//! ```no_run
//! use idgraph_core::SourceKind;
//! let store = idgraph_storage::Store::default();
//! let plan = resolve::ResolvePlan::new("data".parse().map_err(anyhow::Error::msg)?, transform::Mapping::default_mapping()?)?;
//! let report = resolve::resolve_batch(&plan, &store, &SourceKind::Initial)?;
//! println!("{} people", report.people);
//! # Ok::<(), anyhow::Error>(())
//! ```

mod graph;
mod output;
mod report;
mod score;
mod state;
mod who;

use std::collections::HashMap;
use std::time::Instant;

use idgraph_core::{Layout, SourceKind};
use idgraph_storage::{Location, Store};
use rayon::prelude::*;
use serde::Serialize;
use transform::Mapping;

pub use score::{ClusterSizes, Score, score};
pub use state::MergeRecord;
pub use who::{Answer, Identifier, Person, Shared, who};

/// The vertex label of people in the graph output.
pub const PERSON_LABEL: &str = "Person";
/// The property that holds an identifier's person id.
pub const PERSON_ID_PROPERTY: &str = "personId";

/// Why resolution failed. Every message names the file, batch or setting concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the mapping has no [identity] table: add one (see schemas/graph.toml) to resolve identities"
    )]
    NoIdentityRules,
    #[error("the mapping declares a vertex label `{0}`, which resolution writes itself")]
    ReservedLabel(String),
    #[error("{manifest}: no transformed graph batch here (run transform first)")]
    NotTransformed { manifest: String },
    #[error("{file}:{line}: {message}")]
    BadGraphFile {
        file: String,
        line: u64,
        message: String,
    },
    #[error(
        "batch {batch}: a strong edge ends at {id}, which has no vertex row in the batch and was never seen before"
    )]
    UnknownEndpoint { batch: String, id: String },
    #[error(
        "{file}: the identity state is damaged: {message} (remove {} and resolve every batch again)",
        Layout::IDENTITY
    )]
    CorruptState { file: String, message: String },
    #[error(
        "batch {batch} comes before {last}, the latest batch resolved: batches are resolved in order"
    )]
    OutOfOrder { batch: String, last: String },
    #[error(
        "the identity state was made with other identity rules (strong edges, identifier labels \
         or their normalisation: {state}, now {given}); they decide every person, so remove {} \
         and resolve every batch again",
        Layout::IDENTITY
    )]
    RulesChanged { state: String, given: String },
    #[error("nothing resolved under {0} yet: run `resolve run` (or the loader) first")]
    NotResolved(String),
    #[error("{file}:{line}: {message}")]
    BadTruth {
        file: String,
        line: u64,
        message: String,
    },
    #[error("no identifier matches `{0}` (tried every identifier kind after normalising)")]
    NotFound(String),
    #[error(
        "batch {batch}: {count} identifiers and people to link at once; at most 4,294,967,294 \
         are (split the batch)"
    )]
    TooLarge { batch: String, count: usize },
    #[error("{0}")]
    Report(String),
    #[error("{0}")]
    Storage(String),
}

/// A checked request: where the data is and which mapping (with its identity rules) applies.
#[derive(Debug)]
pub struct ResolvePlan {
    pub root: Location,
    pub mapping: Mapping,
    /// Also write the HTML report beside each batch's graph output.
    pub html_report: bool,
}

impl ResolvePlan {
    pub fn new(root: Location, mapping: Mapping) -> Result<ResolvePlan, Error> {
        if mapping.identity.is_none() {
            return Err(Error::NoIdentityRules);
        }
        if mapping.vertex_label(PERSON_LABEL).is_some() {
            return Err(Error::ReservedLabel(PERSON_LABEL.to_owned()));
        }
        Ok(ResolvePlan {
            root,
            mapping,
            html_report: true,
        })
    }

    /// The folder of the graph batch that resolving `kind` makes.
    pub fn graph_dir(&self, kind: &SourceKind) -> Location {
        self.root.join(&Layout::identity_graph_dir(kind))
    }
}

/// Seconds spent in each step of a resolution.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub load_state: f64,
    pub read_graph: f64,
    pub link: f64,
    /// The graph batch and the state files (written at once).
    pub write: f64,
    /// `state.json`, which commits them.
    pub commit: f64,
    pub report: f64,
}

/// What resolving one batch did.
#[derive(Debug, Clone, Serialize)]
pub struct ResolveReport {
    pub batch: String,
    /// Resolved by an earlier run: nothing was done.
    pub already_resolved: bool,
    /// The graph batch to load (`personId` and `Person` vertices).
    pub graph_dir: String,
    pub new_identifiers: u64,
    pub new_people: u64,
    /// Identifiers whose `personId` the batch sets: new ones and those of merged people.
    pub changed_identifiers: u64,
    pub merges: Vec<MergeRecord>,
    /// People and identifiers after the batch.
    pub people: u64,
    pub identifiers: u64,
    pub html_report: Option<String>,
    /// Rows of the batch's graph files that are not graph rows, skipped (the loader rejects
    /// them too): how many, and the first ten as `file:line: reason`.
    pub skipped_rows: u64,
    pub skipped: Vec<String>,
    pub timings: Timings,
    pub seconds: f64,
    pub peak_rss_bytes: Option<u64>,
}

fn batch_name(kind: &SourceKind) -> String {
    match kind {
        SourceKind::Initial => "initial".to_owned(),
        SourceKind::Incremental(b) => b.to_string(),
    }
}

/// Whether `batch` may follow `last` ("initial" first, then timestamps in order).
fn comes_after(batch: &str, last: &str) -> bool {
    match (batch, last) {
        ("initial", _) => false,
        (_, "initial") => true,
        (b, l) => b > l,
    }
}

/// The state's summary: how many batches, people and identifiers, and which batches.
#[derive(Debug, Clone, Serialize)]
pub struct StateSummary {
    pub batches: Vec<String>,
    pub people: u64,
    pub identifiers: u64,
    pub merges: u64,
}

/// What the identity state under `root` holds, if resolution ever ran there.
pub fn summary(store: &Store, root: &Location) -> Result<Option<StateSummary>, Error> {
    Ok(state::load_index(store, root)?.map(|index| StateSummary {
        batches: index.segments.iter().map(|s| s.batch.clone()).collect(),
        people: index.people,
        identifiers: index.identifiers,
        merges: index.segments.iter().map(|s| s.merges.len() as u64).sum(),
    }))
}

/// The transformed batches not resolved yet, in the order they must be resolved (initial
/// first, then incremental batches by time).
pub fn pending(plan: &ResolvePlan, store: &Store) -> Result<Vec<SourceKind>, Error> {
    let storage = |e: idgraph_storage::StorageError| Error::Storage(e.to_string());
    let done: Vec<String> = state::load_index(store, &plan.root)?
        .map(|i| i.segments.into_iter().map(|s| s.batch).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    let initial = plan
        .root
        .join(&Layout::graph_dir(&SourceKind::Initial))
        .join("manifest.json");
    if store.exists(&initial).map_err(storage)? && !done.iter().any(|b| b == "initial") {
        out.push(SourceKind::Initial);
    }
    let incremental = plan
        .root
        .join(&format!("{}/graph/incremental", Layout::DATASETS));
    let mut batches: Vec<idgraph_core::BatchId> = store
        .list(&incremental)
        .map_err(storage)?
        .iter()
        .filter_map(|o| {
            let (batch, rest) = o.relative.split_once('/')?;
            (rest == "manifest.json").then(|| batch.parse().ok())?
        })
        .filter(|b: &idgraph_core::BatchId| !done.iter().any(|d| d == b.as_str()))
        .collect();
    batches.sort();
    out.extend(batches.into_iter().map(SourceKind::Incremental));
    Ok(out)
}

/// Resolves one transformed batch on top of every batch resolved before it, and writes its
/// graph batch. A batch resolved already is not resolved again (the run is idempotent); one
/// older than the latest resolved is refused.
pub fn resolve_batch(
    plan: &ResolvePlan,
    store: &Store,
    kind: &SourceKind,
) -> Result<ResolveReport, Error> {
    let started = Instant::now();
    let rules = plan
        .mapping
        .identity
        .as_ref()
        .ok_or(Error::NoIdentityRules)?;
    let name = batch_name(kind);
    let out_dir = plan.graph_dir(kind);
    let mut timings = Timings::default();
    let mut mark = Instant::now();
    let mut lap = |slot: &mut f64| {
        *slot = mark.elapsed().as_secs_f64();
        mark = Instant::now();
    };
    let mut state = state::load(store, &plan.root)?;
    lap(&mut timings.load_state);
    let fingerprint = rules_fingerprint(&plan.mapping, rules);
    let mut index = state
        .index
        .take()
        .unwrap_or_else(|| state::new_index(&fingerprint));
    if index.rules_sha256 != fingerprint {
        return Err(Error::RulesChanged {
            state: index.rules_sha256.clone(),
            given: fingerprint,
        });
    }
    let report =
        |segment: &state::SegmentEntry, index: &state::Index, already: bool| ResolveReport {
            batch: segment.batch.clone(),
            already_resolved: already,
            graph_dir: out_dir.to_string(),
            new_identifiers: segment.new_identifiers,
            new_people: segment.new_people,
            changed_identifiers: segment.changed_identifiers,
            merges: segment.merges.clone(),
            people: index.people,
            identifiers: index.identifiers,
            html_report: None,
            skipped_rows: 0,
            skipped: Vec::new(),
            timings: Timings::default(),
            seconds: started.elapsed().as_secs_f64(),
            peak_rss_bytes: idgraph_core::process::peak_rss_bytes(),
        };
    if let Some(done) = index.segments.iter().find(|s| s.batch == name) {
        return Ok(report(done, &index, true));
    }
    if let Some(last) = index.segments.last()
        && !comes_after(&name, &last.batch)
    {
        return Err(Error::OutOfOrder {
            batch: name,
            last: last.batch.clone(),
        });
    }

    let mut graph = graph::read_batch(
        store,
        &plan.root.join(&Layout::graph_dir(kind)),
        &plan.mapping,
        rules,
    )?;
    lap(&mut timings.read_graph);
    let seq = index.segments.len() as u32;
    let mut skipped = std::mem::take(&mut graph.skipped);
    let skipped_rows = skipped.len() as u64;
    skipped.truncate(10);
    // The batch's details (keys and tracked links) do not depend on who is whom: they are
    // written while the components are worked out.
    let save_details = |details: state::DetailParts| {
        state::write_file(
            store,
            &plan.root,
            format!("details-{seq:05}-{name}.bin"),
            |w| state::encode_details(&details, w),
        )
    };
    let (outcome, details) = link(&state, graph, seq, &name, save_details)?;
    lap(&mut timings.link);
    let merges: Vec<MergeRecord> = outcome
        .merges
        .iter()
        .map(|&(absorbed, survivor)| MergeRecord {
            absorbed: uuid_text(outcome.persons.ids[absorbed as usize]),
            survivor: uuid_text(outcome.persons.ids[survivor as usize]),
        })
        .collect();

    // The graph batch and the state files, at once; `state.json`, written after them, commits
    // them. A run killed before that makes the same bytes again (everything is sorted), and the
    // loader then finds the graph batch unchanged.
    let write = |name: String, encode: &dyn Fn(&mut dyn std::io::Write) -> std::io::Result<()>| {
        state::write_file(store, &plan.root, name, encode)
    };
    let (changed, (members, persons)) = rayon::join(
        || output::write_batch(store, &out_dir, &name, &plan.mapping, &state, &outcome),
        || {
            rayon::join(
                || {
                    write(format!("members-{seq:05}-{name}.bin"), &|w| {
                        state::encode_members(&outcome.members, w)
                    })
                },
                || {
                    write(format!("persons-{seq:05}.bin"), &|w| {
                        state::encode_persons(&outcome.persons, w)
                    })
                },
            )
        },
    );
    lap(&mut timings.write);
    let changed = changed?;
    let (members, persons) = (members?, persons?);
    let previous_persons = std::mem::replace(&mut index.persons, persons);
    index.people = outcome
        .persons
        .parent
        .iter()
        .enumerate()
        .filter(|&(p, &parent)| p as u32 == parent)
        .count() as u64;
    index.identifiers += outcome.members.ids.len() as u64;
    index.segments.push(state::SegmentEntry {
        seq,
        batch: name.clone(),
        members,
        details,
        new_identifiers: outcome.members.ids.len() as u64,
        new_people: outcome.new_people,
        changed_identifiers: changed,
        merges,
    });
    state::write_index(store, &plan.root, &index)?;
    if !previous_persons.path.is_empty() {
        // Only the committed index names a person table; the older one is garbage now.
        let _ = store.remove(&state::state_dir(&plan.root).join(&previous_persons.path));
    }
    lap(&mut timings.commit);
    let mut done = report(
        index.segments.last().unwrap_or_else(|| unreachable!()),
        &index,
        false,
    );
    if plan.html_report {
        // The state as committed, without reading it back.
        let Outcome {
            members, persons, ..
        } = outcome;
        state.segments.push(members);
        state.persons = persons;
        state.index = Some(index);
        done.html_report = Some(report::render(plan, store, &out_dir, &state)?.to_string());
    }
    lap(&mut timings.report);
    done.timings = timings;
    done.skipped_rows = skipped_rows;
    done.skipped = skipped;
    done.seconds = started.elapsed().as_secs_f64();
    done.peak_rss_bytes = idgraph_core::process::peak_rss_bytes();
    Ok(done)
}

/// What decides people in a mapping: the strong edge labels, the identifier labels and how
/// their keys are normalised. Other edits (a weak edge, a property) leave the state valid.
fn rules_fingerprint(mapping: &Mapping, rules: &transform::IdentityRules) -> String {
    use sha2::Digest;
    let mut strong: Vec<&str> = rules
        .strong
        .iter()
        .map(|&l| mapping.edges[l].name.as_str())
        .collect();
    strong.sort_unstable();
    let mut identifiers: Vec<String> = rules
        .identifiers
        .iter()
        .map(|&l| {
            format!(
                "{}:{:?}",
                mapping.vertices[l].name, mapping.vertices[l].normalise
            )
        })
        .collect();
    identifiers.sort_unstable();
    let text = format!(
        "strong={}\nidentifiers={}\n",
        strong.join(","),
        identifiers.join(",")
    );
    format!("{:x}", sha2::Sha256::digest(text.as_bytes()))
}

/// An id as the graph writes it.
pub(crate) fn uuid_text(id: u128) -> String {
    let mut s = String::with_capacity(36);
    transform::push_id(&mut s, id);
    s
}

/// What linking a batch decided.
pub(crate) struct Outcome {
    /// The batch's new identifiers with their persons (sorted by id).
    pub(crate) members: state::Members,
    /// The person table after the batch.
    pub(crate) persons: state::Persons,
    /// The person table before it (to tell whose person changed).
    pub(crate) parents_before: Vec<u32>,
    pub(crate) new_people: u64,
    /// (absorbed, survivor) person numbers.
    pub(crate) merges: Vec<(u32, u32)>,
    /// People whose member count or standing changed: their `Person` vertex is written.
    pub(crate) touched: Vec<u32>,
}

/// At most this many sorted runs are merged rather than sorted afresh.
const RUNS_TO_MERGE: usize = 64;

/// Sorts (id, position) pairs in about linear time: ids are uniform hashes, so one counting
/// pass on their top bits leaves buckets of one or two, which are then sorted where they lie.
///
/// The transform writes each file's rows sorted by id, so the list is often a few sorted runs
/// (one per file): then the standard merge sort, which finds runs and merges them, is faster.
fn sort_by_id(mut pairs: Vec<(u128, u32)>) -> Vec<(u128, u32)> {
    let descents = pairs.windows(2).filter(|w| w[1].0 < w[0].0).count();
    if descents <= RUNS_TO_MERGE {
        // Stable: equal ids stay in position order, as the counting sort leaves them.
        pairs.par_sort_by_key(|p| p.0);
        return pairs;
    }
    let bits = (usize::BITS - pairs.len().leading_zeros()).clamp(1, 24);
    let shift = 128 - bits;
    let mut next = vec![0usize; (1 << bits) + 1];
    for &(id, _) in &pairs {
        next[(id >> shift) as usize + 1] += 1;
    }
    for i in 1..next.len() {
        next[i] += next[i - 1];
    }
    let starts = next.clone();
    let mut out = vec![(0u128, 0u32); pairs.len()];
    for pair in pairs {
        let bucket = (pair.0 >> shift) as usize;
        out[next[bucket]] = pair;
        next[bucket] += 1;
    }
    for bucket in starts.windows(2) {
        if bucket[1] - bucket[0] > 1 {
            out[bucket[0]..bucket[1]].sort_unstable();
        }
    }
    out
}

/// A union-find over the batch's new identifiers and the existing people its strong edges
/// reach.
struct Components {
    /// u32 rather than usize: half the memory, so more of it stays in the cache.
    parent: Vec<u32>,
}

impl Components {
    fn new(n: usize) -> Components {
        Components {
            parent: (0..n as u32).collect(),
        }
    }

    fn find(&mut self, x: usize) -> usize {
        let mut x = x as u32;
        while self.parent[x as usize] != x {
            let grandparent = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grandparent;
            x = grandparent;
        }
        x as usize
    }

    /// The root of `x`, without shortening the path (so it can run on many threads at once).
    fn root(&self, x: usize) -> u32 {
        let mut x = x as u32;
        while self.parent[x as usize] != x {
            x = self.parent[x as usize];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            // The smaller index leads, so that the outcome does not depend on edge order.
            let (lead, other) = if a < b { (a, b) } else { (b, a) };
            self.parent[other] = lead as u32;
        }
    }
}

/// Links a batch; `save_details` gets the batch's details (in the members' order) and runs
/// meanwhile on another thread. Returns what linking decided and what saving returned.
fn link<T: Send>(
    state: &state::State,
    graph: graph::BatchGraph,
    seq: u32,
    batch: &str,
    save_details: impl FnOnce(state::DetailParts) -> Result<T, Error> + Send,
) -> Result<(Outcome, T), Error> {
    let graph::BatchGraph {
        identifiers,
        strong,
        links,
        far,
        skipped: _,
    } = graph;
    // New identifiers, sorted and distinct: sorted through (id, position) pairs, positions
    // running on from file to file, then taken once in that order.
    let starts: Vec<usize> = identifiers
        .iter()
        .scan(0, |next, part| {
            let start = *next;
            *next += part.ids.len();
            Some(start)
        })
        .collect();
    let order: Vec<(u128, u32)> = identifiers
        .iter()
        .zip(&starts)
        .flat_map(|(part, &start)| {
            part.ids
                .iter()
                .enumerate()
                .map(move |(i, &id)| (id, (start + i) as u32))
        })
        .filter(|&(id, _)| state.segments.is_empty() || state.person_of(id).is_none())
        .collect();
    let mut order = sort_by_id(order);
    order.dedup_by_key(|o| o.0);
    let fresh_ids: Vec<u128> = order.par_iter().map(|o| o.0).collect();
    // Which file's list, and where in it.
    let locate = |at: u32| {
        let part = starts.partition_point(|&s| s <= at as usize) - 1;
        (part, at as usize - starts[part])
    };
    let labels: Vec<u16> = order
        .par_iter()
        .map(|&(_, at)| {
            let (part, i) = locate(at);
            identifiers[part].labels[i]
        })
        .collect();
    let keys_of: Vec<graph::Keys> = identifiers.into_iter().map(|part| part.keys).collect();
    let details = || {
        let mut keys = graph::Keys::default();
        for &(_, at) in &order {
            let (part, i) = locate(at);
            keys.push(keys_of[part].get(i).unwrap_or_default());
        }
        save_details(state::DetailParts { keys, links, far })
    };
    let (outcome, saved) = rayon::join(
        || decide(state, strong, fresh_ids, labels, seq, batch),
        details,
    );
    Ok((outcome?, saved?))
}

/// Who is whom: the components of the strong edges over the batch's new identifiers
/// (`fresh_ids`, sorted, with their `labels`) and the people they reach.
fn decide(
    state: &state::State,
    strong: Vec<Vec<(u128, u128)>>,
    fresh_ids: Vec<u128>,
    labels: Vec<u16>,
    seq: u32,
    batch: &str,
) -> Result<Outcome, Error> {
    let n = fresh_ids.len();
    let fresh_index = state::IdIndex::new(&fresh_ids);
    // Each end of each strong edge: a new identifier (its position) or an existing person, in
    // parallel; then nodes 0..n are the new identifiers and n.. the existing people reached.
    #[derive(Clone, Copy)]
    enum End {
        New(u32),
        Known(u32),
    }
    let end = |id: u128, fresh: Option<usize>| -> Result<End, Error> {
        if let Some(i) = fresh {
            return Ok(End::New(i as u32));
        }
        state
            .person_of(id)
            .map(End::Known)
            .ok_or_else(|| Error::UnknownEndpoint {
                batch: batch.to_owned(),
                id: uuid_text(id),
            })
    };
    // Filled in place: one allocation, however the work is split.
    let mut ends = vec![(End::New(0), End::New(0)); strong.iter().map(Vec::len).sum()];
    let mut rest = &mut ends[..];
    for part in &strong {
        let (these, more) = std::mem::take(&mut rest).split_at_mut(part.len());
        rest = more;
        these
            .par_chunks_mut(4096)
            .zip(part.par_chunks(4096))
            .try_for_each(|(out, chunk)| {
                let ids: Vec<u128> = chunk.iter().flat_map(|&(a, b)| [a, b]).collect();
                let found = fresh_index.find_all(&fresh_ids, &ids);
                for ((slot, id), at) in out
                    .iter_mut()
                    .zip(ids.chunks_exact(2))
                    .zip(found.chunks_exact(2))
                {
                    *slot = (end(id[0], at[0])?, end(id[1], at[1])?);
                }
                Ok::<_, Error>(())
            })?;
    }
    drop(strong);
    // Existing people reached, numbered in the order first reached.
    let mut person_node: HashMap<u32, usize> = HashMap::new();
    let mut node_person: Vec<u32> = Vec::new();
    for &(a, b) in &ends {
        for e in [a, b] {
            if let End::Known(p) = e {
                person_node.entry(p).or_insert_with(|| {
                    node_person.push(p);
                    n + node_person.len() - 1
                });
            }
        }
    }
    let total = n + node_person.len();
    if total >= u32::MAX as usize {
        return Err(Error::TooLarge {
            batch: batch.to_owned(),
            count: total,
        });
    }
    let node = |e: End| match e {
        End::New(i) => i as usize,
        End::Known(p) => person_node[&p],
    };
    let mut components = Components::new(total);
    for (a, b) in ends {
        components.union(node(a), node(b));
    }

    // Per component: the existing people in it, oldest (lowest number) first.
    let mut people_in: HashMap<usize, Vec<u32>> = HashMap::new();
    for (k, &p) in node_person.iter().enumerate() {
        let root = components.find(n + k);
        people_in.entry(root).or_default().push(p);
    }
    let mut persons = state.persons.clone();
    let parents_before = persons.parent.clone();
    let mut merges = Vec::new();
    let mut touched = Vec::new();
    // Existing people joined by the batch: the oldest survives, in order of survivor.
    let mut joined: Vec<Vec<u32>> = people_in.values().cloned().collect();
    for group in &mut joined {
        group.sort_unstable();
    }
    joined.sort_unstable();
    for group in &joined {
        let survivor = group[0];
        for &absorbed in &group[1..] {
            persons.parent[absorbed as usize] = survivor;
            let moved = std::mem::take(&mut persons.members[absorbed as usize]);
            persons.members[survivor as usize] += moved;
            merges.push((absorbed, survivor));
            touched.push(absorbed);
        }
        if group.len() > 1 {
            touched.push(survivor);
        }
    }
    // New identifiers: their component's oldest person, or a new person per component,
    // numbered in the order of the component's smallest identifier, its founder (the person's
    // id is derived from the founder's). A union leaves the smaller root leading, so a
    // component's root is its smallest node: the founder, when the component has one.
    // Only new identifiers' roots are needed: people's components were found above.
    let roots: Vec<u32> = (0..n).into_par_iter().map(|x| components.root(x)).collect();
    let mut person_of_root: Vec<u32> = vec![u32::MAX; total];
    for (&root, group) in &people_in {
        if let Some(&oldest) = group.iter().min() {
            person_of_root[root] = oldest;
        }
    }
    let founders: Vec<usize> = (0..n)
        .filter(|&i| roots[i] == i as u32 && person_of_root[i] == u32::MAX)
        .collect();
    let founder_person_ids: Vec<u128> = founders
        .par_iter()
        .map(|&i| {
            let mut founder = String::with_capacity(36);
            transform::push_id(&mut founder, fresh_ids[i]);
            transform::vertex_id(PERSON_LABEL, &founder)
        })
        .collect();
    for (&i, &id) in founders.iter().zip(&founder_person_ids) {
        person_of_root[i] = persons.push(id, seq);
    }
    let new_people = founders.len() as u64;
    let member_persons: Vec<u32> = roots
        .par_iter()
        .map(|&root| person_of_root[root as usize])
        .collect();
    for &p in &member_persons {
        persons.members[p as usize] += 1;
    }
    // Every person a new identifier joined, once each, in order.
    let mut joined_by_new = vec![false; persons.ids.len()];
    for &p in &member_persons {
        joined_by_new[p as usize] = true;
    }
    touched.extend((0..persons.ids.len() as u32).filter(|&p| joined_by_new[p as usize]));
    touched.sort_unstable();
    touched.dedup();

    Ok(Outcome {
        members: state::Members::new(fresh_ids, labels, member_persons),
        persons,
        parents_before,
        new_people,
        merges,
        touched,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_like_a_comparison_sort() {
        for n in [0u128, 1, 2, 3, 1_000, 70_000] {
            let pairs: Vec<(u128, u32)> = (0..n)
                .map(|i| {
                    (
                        ((i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) % (n / 2 + 1))
                            << 100)
                            | (i % 7),
                        i as u32,
                    )
                })
                .collect();
            let mut expected = pairs.clone();
            expected.sort_unstable();
            assert_eq!(sort_by_id(pairs.clone()), expected, "{n}");
            // Sorted runs, as the transform's files give them, with equal ids across runs.
            let mut runs = pairs;
            for run in runs.chunks_mut(n as usize / 5 + 1) {
                run.sort_unstable();
            }
            assert_eq!(sort_by_id(runs), expected, "{n} in runs");
        }
    }

    #[test]
    fn batches_come_in_order() {
        assert!(comes_after("20260101_000000", "initial"));
        assert!(comes_after("20260102_000000", "20260101_000000"));
        assert!(!comes_after("20260101_000000", "20260101_000000"));
        assert!(!comes_after("initial", "20260101_000000"));
        assert!(!comes_after("20251231_000000", "20260101_000000"));
    }
}
