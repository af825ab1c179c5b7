//! `resolve who KEY`: the person behind an identifier, answered from the identity state alone.

use std::collections::{BTreeMap, HashMap, HashSet};

use idgraph_storage::Store;
use serde::Serialize;

use crate::state::{self, Details};
use crate::{Error, ResolvePlan, uuid_text};

/// One identifier of a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identifier {
    /// The vertex label: User, Email, SessionID...
    pub kind: String,
    pub key: String,
    /// The batch it was first seen in.
    pub first_seen: String,
}

/// Something identifiers link to weakly, which several people can share (a household's IP or
/// device, a product). As part of a person: `others` are the other people; asked for itself:
/// every person linked to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shared {
    pub kind: String,
    pub key: String,
    /// How many people it links to.
    pub people: u64,
    /// People's ids (the first ten, sorted).
    pub others: Vec<String>,
}

/// A person as the identity state knows it.
#[derive(Debug, Clone, Serialize)]
pub struct Person {
    pub person_id: String,
    /// The identifier the key matched.
    pub matched: Identifier,
    /// Every identifier, by kind then key.
    pub identifiers: Vec<Identifier>,
    /// Identifiers per kind.
    pub counts: BTreeMap<String, u64>,
    /// Weak links per edge label (hasPurchased: purchases, usedDevice: sessions on a device).
    pub links: BTreeMap<String, u64>,
    /// Shared things, fewest people first (the first ten).
    pub shared: Vec<Shared>,
    /// Ids of people merged into this one.
    pub merged: Vec<String>,
}

/// What `who` found.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "found", rename_all = "snake_case")]
pub enum Answer {
    /// The key is an identifier (or a person id): its person.
    Person(Person),
    /// The key is something people share (a device, an IP, a product): who links to it.
    Shared(Shared),
}

/// Finds who is behind `key`: the person of an identifier (in any case or format its
/// normalisation accepts) or of a person id; or, for a shared thing such as a device or an IP,
/// the people linked to it.
pub fn who(plan: &ResolvePlan, store: &Store, key: &str) -> Result<Answer, Error> {
    let rules = plan
        .mapping
        .identity
        .as_ref()
        .ok_or(Error::NoIdentityRules)?;
    let state = state::load(store, &plan.root)?;
    let Some(index) = &state.index else {
        return Err(Error::NotResolved(plan.root.to_string()));
    };
    let found = find_person(plan, rules, &state, key);
    // Keys and links are read once, for whichever answer it is.
    let details: Vec<Details> = index
        .segments
        .iter()
        .map(|s| state::load_details(store, &plan.root, s))
        .collect::<Result<_, _>>()?;
    match found {
        Some((person, matched_id)) => Ok(Answer::Person(describe(
            plan, &state, index, &details, person, matched_id,
        ))),
        None => shared(plan, &state, &details, key).map(Answer::Shared),
    }
}

/// The person `key` names (an identifier, or a person id), with the identifier it matched.
fn find_person(
    plan: &ResolvePlan,
    rules: &transform::IdentityRules,
    state: &state::State,
    key: &str,
) -> Option<(u32, Option<u128>)> {
    let mapping = &plan.mapping;
    let found = rules.identifiers.iter().find_map(|&label| {
        let vertex = &mapping.vertices[label];
        let normalised = vertex.normalise.apply(key);
        if normalised.is_empty() {
            return None;
        }
        let id = transform::vertex_id(&vertex.name, &normalised);
        state.person_of(id).map(|p| (p, id))
    });
    match found {
        Some((p, id)) => Some((p, Some(id))),
        None => {
            let id = uuid::Uuid::try_parse(key.trim()).ok()?.as_u128();
            let p = state.persons.ids.iter().position(|&p| p == id)?;
            Some((state.persons.root(p as u32), None))
        }
    }
}

/// The people linked to a shared thing (the far end of a weak link).
fn shared(
    plan: &ResolvePlan,
    state: &state::State,
    details: &[Details],
    key: &str,
) -> Result<Shared, Error> {
    let mapping = &plan.mapping;
    let mut far: HashMap<u128, u16> = HashMap::new();
    for (label, vertex) in mapping.vertices.iter().enumerate() {
        let normalised = vertex.normalise.apply(key);
        if !normalised.is_empty() {
            far.insert(
                transform::vertex_id(&vertex.name, &normalised),
                label as u16,
            );
        }
    }
    let mut found: Option<(u128, String)> = None;
    let mut people: HashSet<u32> = HashSet::new();
    for detail in details {
        if found.is_none() {
            found = detail
                .far
                .iter()
                .find(|(id, label, _)| far.get(id) == Some(label))
                .map(|(id, _, k)| (*id, k.clone()));
        }
        for &(member, _, other) in &detail.links {
            if far.contains_key(&other)
                && let Some(p) = state.person_of(member)
            {
                people.insert(p);
            }
        }
    }
    let Some((id, key_text)) = found else {
        return Err(Error::NotFound(key.to_owned()));
    };
    let mut others: Vec<String> = people
        .iter()
        .map(|&p| uuid_text(state.persons.ids[p as usize]))
        .collect();
    others.sort();
    let total = others.len() as u64;
    others.truncate(10);
    Ok(Shared {
        kind: mapping.vertices[far[&id] as usize].name.clone(),
        key: key_text,
        people: total,
        others,
    })
}

/// Everything the state says of `person`.
fn describe(
    plan: &ResolvePlan,
    state: &state::State,
    index: &state::Index,
    details: &[Details],
    person: u32,
    matched_id: Option<u128>,
) -> Person {
    let mapping = &plan.mapping;
    let mut identifiers = Vec::new();
    let mut members: HashSet<u128> = HashSet::new();
    let mut matched = None;
    for ((segment, entry), detail) in state.segments.iter().zip(&index.segments).zip(details) {
        for (i, &p) in segment.persons.iter().enumerate() {
            if state.persons.root(p) != person {
                continue;
            }
            let identifier = Identifier {
                kind: mapping.vertices[segment.labels[i] as usize].name.clone(),
                key: detail.keys.get(i).unwrap_or_default().to_owned(),
                first_seen: entry.batch.clone(),
            };
            if Some(segment.ids[i]) == matched_id {
                matched = Some(identifier.clone());
            }
            members.insert(segment.ids[i]);
            identifiers.push(identifier);
        }
    }
    identifiers.sort_by(|a, b| (&a.kind, &a.key).cmp(&(&b.kind, &b.key)));
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for identifier in &identifiers {
        *counts.entry(identifier.kind.clone()).or_default() += 1;
    }

    // Weak links of the person's identifiers, then who else links to the same things.
    let mut links: BTreeMap<String, u64> = BTreeMap::new();
    let mut far: HashSet<u128> = HashSet::new();
    for detail in details {
        for &(member, label, other) in &detail.links {
            if members.contains(&member) {
                *links
                    .entry(mapping.edges[label as usize].name.clone())
                    .or_default() += 1;
                far.insert(other);
            }
        }
    }
    let mut sharers: HashMap<u128, HashSet<u32>> = HashMap::new();
    for detail in details {
        for &(member, _, other) in &detail.links {
            if far.contains(&other)
                && let Some(p) = state.person_of(member)
            {
                sharers.entry(other).or_default().insert(p);
            }
        }
    }
    let far_keys: HashMap<u128, (u16, &str)> = details
        .iter()
        .flat_map(|d| &d.far)
        .map(|(id, label, key)| (*id, (*label, key.as_str())))
        .collect();
    let mut shared: Vec<Shared> = sharers
        .into_iter()
        .filter(|(_, people)| people.len() > 1)
        .map(|(id, people)| {
            let (label, key) = far_keys.get(&id).copied().unwrap_or((0, ""));
            let mut others: Vec<String> = people
                .iter()
                .filter(|&&p| p != person)
                .map(|&p| uuid_text(state.persons.ids[p as usize]))
                .collect();
            others.sort();
            others.truncate(10);
            Shared {
                kind: mapping.vertices[label as usize].name.clone(),
                key: key.to_owned(),
                people: people.len() as u64,
                others,
            }
        })
        .collect();
    shared.sort_by(|a, b| (a.people, &a.kind, &a.key).cmp(&(b.people, &b.kind, &b.key)));
    shared.truncate(10);

    let mut merged: Vec<String> = (0..state.persons.ids.len() as u32)
        .filter(|&p| p != person && state.persons.root(p) == person)
        .map(|p| uuid_text(state.persons.ids[p as usize]))
        .collect();
    merged.sort();
    let person_id = uuid_text(state.persons.ids[person as usize]);
    Person {
        matched: matched.unwrap_or_else(|| Identifier {
            kind: crate::PERSON_LABEL.to_owned(),
            key: person_id.clone(),
            first_seen: String::new(),
        }),
        person_id,
        identifiers,
        counts,
        links,
        shared,
        merged,
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Person(p) => p.fmt(f),
            Answer::Shared(s) => {
                writeln!(f, "{} {} is linked to {} people", s.kind, s.key, s.people)?;
                for p in &s.others {
                    writeln!(f, "  {p}")?;
                }
                if s.people > s.others.len() as u64 {
                    writeln!(f, "  ... and {} more", s.people - s.others.len() as u64)?;
                }
                Ok(())
            }
        }
    }
}

impl std::fmt::Display for Person {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "person {} (matched {} {})",
            self.person_id, self.matched.kind, self.matched.key
        )?;
        let counts: Vec<String> = self
            .counts
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        writeln!(f, "  identifiers: {}", counts.join(", "))?;
        for identifier in &self.identifiers {
            writeln!(
                f,
                "    {:<12} {}  (first seen {})",
                identifier.kind, identifier.key, identifier.first_seen
            )?;
        }
        if !self.links.is_empty() {
            let links: Vec<String> = self.links.iter().map(|(k, n)| format!("{k} {n}")).collect();
            writeln!(f, "  links: {}", links.join(", "))?;
        }
        for s in &self.shared {
            let others = s.people - 1;
            if others as usize <= s.others.len() {
                writeln!(
                    f,
                    "  shared {} {} with {}",
                    s.kind,
                    s.key,
                    s.others.join(", ")
                )?;
            } else {
                writeln!(
                    f,
                    "  shared {} {} with {others} other people",
                    s.kind, s.key
                )?;
            }
        }
        if !self.merged.is_empty() {
            writeln!(f, "  merged into it: {}", self.merged.join(", "))?;
        }
        Ok(())
    }
}
