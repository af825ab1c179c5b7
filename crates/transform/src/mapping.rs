//! The graph mapping (`schemas/graph.toml`): parsed, checked against the source schemas, and
//! resolved into column positions that the rest of the transform works from.

use std::collections::BTreeMap;
use std::path::Path;

use gremlin_csv::{Cardinality, PropertyColumn, ValueType};
use idgraph_core::{ColumnType, Dataset, SourceSchemas};
use serde::Deserialize;

use crate::normalise::Normaliser;

/// The mapping compiled into the binary, used when no `--mapping` is given.
pub const DEFAULT_MAPPING_TOML: &str = include_str!("../../../schemas/graph.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    vertex: BTreeMap<String, VertexEntry>,
    #[serde(default)]
    properties: Vec<PropertiesEntry>,
    #[serde(default)]
    edge: Vec<EdgeEntry>,
    #[serde(default)]
    identity: Option<IdentityEntry>,
    #[serde(default)]
    cache: Option<CacheLabels>,
}

/// The Redis identity cache's edge labels (`[cache]`, for the stream consumer): identifier
/// edges on the user (`direct`), the session-to-user edge (`session_user`), and identifier
/// edges of the sessions a user logged in (`via_session`). Checked against the edge labels.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheLabels {
    pub direct: Vec<String>,
    pub session_user: String,
    pub via_session: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityEntry {
    strong: Vec<String>,
    weak: Vec<String>,
    #[serde(default)]
    track: Vec<String>,
}

/// Identity resolution's rules (`[identity]`): the edge labels whose ends are one person
/// (strong evidence: people are the connected components of these edges), and the ones that
/// never merge people (weak: shared IPs, devices, addresses, products). Every edge label is in
/// exactly one of the two lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRules {
    /// Edge label indexes.
    pub strong: Vec<usize>,
    pub weak: Vec<usize>,
    /// Vertex label indexes at either end of a strong edge: the identifiers of people.
    pub identifiers: Vec<usize>,
    /// Weak edge labels whose far ends resolution keeps for lookups (what people share, such
    /// as a device or an IP, and what they do, such as purchases).
    pub track: Vec<usize>,
}

impl IdentityRules {
    pub fn is_strong(&self, edge_label: usize) -> bool {
        self.strong.contains(&edge_label)
    }

    pub fn is_identifier(&self, vertex_label: usize) -> bool {
        self.identifiers.contains(&vertex_label)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VertexEntry {
    normalise: Normaliser,
    key_property: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PropertiesEntry {
    vertex: String,
    dataset: String,
    key: String,
    columns: Vec<PropertyEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PropertyEntry {
    column: String,
    property: String,
    #[serde(rename = "type")]
    ty: PropertyType,
    #[serde(default)]
    cardinality: Option<CardinalityEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum CardinalityEntry {
    Single,
    Set,
}

/// The property types a mapping may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum PropertyType {
    String,
    Int,
    Long,
    Double,
    Date,
}

impl PropertyType {
    fn value_type(self) -> ValueType {
        match self {
            PropertyType::String => ValueType::String,
            PropertyType::Int => ValueType::Int,
            PropertyType::Long => ValueType::Long,
            PropertyType::Double => ValueType::Double,
            PropertyType::Date => ValueType::Date,
        }
    }

    /// Whether a source column of type `source` can fill a property of this type.
    fn accepts(self, source: ColumnType) -> bool {
        match self {
            PropertyType::String => true,
            PropertyType::Int | PropertyType::Long | PropertyType::Double => {
                source == ColumnType::Int
            }
            PropertyType::Date => matches!(source, ColumnType::Date | ColumnType::Timestamp),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointEntry {
    vertex: String,
    column: String,
    #[serde(default)]
    when: Option<Condition>,
}

/// A condition on an edge's `from` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Condition {
    /// The value looks like an email (holds `@`).
    #[serde(rename = "email")]
    Email,
    #[serde(rename = "not-email")]
    NotEmail,
}

impl Condition {
    pub fn holds(self, value: &str) -> bool {
        match self {
            Condition::Email => value.contains('@'),
            Condition::NotEmail => !value.contains('@'),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EdgeEntry {
    label: String,
    dataset: String,
    from: EndpointEntry,
    to: EndpointEntry,
    #[serde(default)]
    key: Vec<String>,
    #[serde(default)]
    properties: Vec<PropertyEntry>,
}

/// A vertex label of the resolved mapping.
#[derive(Debug, Clone)]
pub struct VertexLabel {
    pub name: String,
    pub normalise: Normaliser,
    /// Column 0 of the label's files after `~id` and `~label`: the normalised key.
    pub key_property: String,
    /// The descriptive properties, in file column order.
    pub properties: Vec<PropertyColumn>,
}

/// An edge label of the resolved mapping.
#[derive(Debug, Clone)]
pub struct EdgeLabel {
    pub name: String,
    pub properties: Vec<PropertyColumn>,
}

/// Source column -> property position in its label's property list.
#[derive(Debug, Clone, Copy)]
pub struct PropertySource {
    pub column: usize,
    pub property: usize,
}

/// One dataset's rows give properties to vertices of one label.
#[derive(Debug, Clone)]
pub struct VertexRule {
    pub label: usize,
    pub key_column: usize,
    pub properties: Vec<PropertySource>,
}

#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub label: usize,
    pub column: usize,
    pub when: Option<Condition>,
}

/// One dataset's rows give edges of one label.
#[derive(Debug, Clone)]
pub struct EdgeRule {
    pub label: usize,
    pub from: Endpoint,
    pub to: Endpoint,
    pub key_columns: Vec<usize>,
    pub properties: Vec<PropertySource>,
}

/// What one dataset's rows produce.
#[derive(Debug, Clone, Default)]
pub struct DatasetRules {
    pub vertices: Vec<VertexRule>,
    pub edges: Vec<EdgeRule>,
    /// Columns whose whole numbers must fit an Int (32 bits), because an Int property uses them.
    pub int32_columns: Vec<usize>,
}

/// The resolved mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// SHA-256 of the mapping file's text, recorded in every manifest.
    pub text_sha256: String,
    /// The mapping file's text, for engines that read the mapping themselves (the Spark job).
    pub text: String,
    pub vertices: Vec<VertexLabel>,
    pub edges: Vec<EdgeLabel>,
    /// Indexed by `Dataset as usize`.
    pub datasets: Vec<DatasetRules>,
    /// `None` when the mapping has no `[identity]` table.
    pub identity: Option<IdentityRules>,
    /// `None` when the mapping has no `[cache]` table.
    pub cache: Option<CacheLabels>,
}

/// Why a mapping file is refused. Every message names what it refers to.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("{path}: cannot read the mapping: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Toml { path: String, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.contains([' ', ',', ';', '"', '\r', '\n', '\t'])
        || name.starts_with('~')
    {
        return Err(format!(
            "{what} `{name}` must be non-empty, not start with `~`, and hold no space, comma, semicolon or quote"
        ));
    }
    Ok(())
}

impl Mapping {
    /// The default mapping of the reference identity-graph model.
    pub fn default_mapping() -> Result<Mapping, MappingError> {
        Mapping::from_toml(DEFAULT_MAPPING_TOML, "schemas/graph.toml (built in)")
    }

    pub fn from_file(path: &Path) -> Result<Mapping, MappingError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| MappingError::Read {
            path: shown.clone(),
            source,
        })?;
        Mapping::from_toml(&text, &shown)
    }

    /// Parses and resolves a mapping; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Mapping, MappingError> {
        let file: MappingFile = toml::from_str(text).map_err(|e| MappingError::Toml {
            path: origin.to_owned(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        let mut mapping =
            resolve(file, SourceSchemas::embedded()).map_err(|message| MappingError::Invalid {
                path: origin.to_owned(),
                message,
            })?;
        mapping.text = text.to_owned();
        mapping.text_sha256 = format!(
            "{:x}",
            <sha2::Sha256 as sha2::Digest>::digest(text.as_bytes())
        );
        Ok(mapping)
    }

    pub fn vertex_label(&self, name: &str) -> Option<usize> {
        self.vertices.iter().position(|v| v.name == name)
    }

    pub fn edge_label(&self, name: &str) -> Option<usize> {
        self.edges.iter().position(|e| e.name == name)
    }

    pub fn rules(&self, dataset: Dataset) -> &DatasetRules {
        &self.datasets[dataset as usize]
    }
}

/// Adds `entries` to a label's property list, checking names and types.
fn add_properties(
    owner: &str,
    list: &mut Vec<PropertyColumn>,
    reserved: &str,
    dataset: Dataset,
    schemas: &SourceSchemas,
    entries: &[PropertyEntry],
    is_edge: bool,
) -> Result<Vec<PropertySource>, String> {
    let schema = schemas.get(dataset);
    let mut sources = Vec::new();
    for entry in entries {
        check_name("property", &entry.property)?;
        if entry.property == reserved {
            return Err(format!(
                "{owner}: property `{}` is the label's key property",
                entry.property
            ));
        }
        let column = schema.position(&entry.column).ok_or_else(|| {
            format!(
                "{owner}: dataset {dataset} has no column `{}`",
                entry.column
            )
        })?;
        let source_type = schema.columns[column].ty;
        if !entry.ty.accepts(source_type) {
            return Err(format!(
                "{owner}: property `{}` of type {:?} cannot take column {dataset}.{} of type {source_type:?}",
                entry.property, entry.ty, entry.column
            ));
        }
        let cardinality = match (entry.cardinality, is_edge) {
            (Some(CardinalityEntry::Set), true) => {
                return Err(format!(
                    "{owner}: edge property `{}` cannot have set cardinality",
                    entry.property
                ));
            }
            (_, true) => None,
            (Some(CardinalityEntry::Set), false) => Some(Cardinality::Set),
            (_, false) => Some(Cardinality::Single),
        };
        let wanted =
            PropertyColumn::new(entry.property.clone(), entry.ty.value_type(), cardinality);
        let property = match list.iter().position(|p| p.name == entry.property) {
            Some(i) if list[i] == wanted => i,
            Some(_) => {
                return Err(format!(
                    "{owner}: property `{}` is declared twice with different types or cardinality",
                    entry.property
                ));
            }
            None => {
                list.push(wanted);
                list.len() - 1
            }
        };
        sources.push(PropertySource { column, property });
    }
    Ok(sources)
}

fn resolve(file: MappingFile, schemas: &SourceSchemas) -> Result<Mapping, String> {
    let mut vertices: Vec<VertexLabel> = Vec::new();
    for (name, entry) in &file.vertex {
        check_name("vertex label", name)?;
        check_name("key property", &entry.key_property)?;
        vertices.push(VertexLabel {
            name: name.clone(),
            normalise: entry.normalise,
            key_property: entry.key_property.clone(),
            properties: Vec::new(),
        });
    }
    if vertices.is_empty() {
        return Err("the mapping declares no vertex label".to_owned());
    }
    let dataset = |name: &str, owner: &str| -> Result<Dataset, String> {
        name.parse::<Dataset>()
            .map_err(|_| format!("{owner}: unknown dataset `{name}` (expected first_party, cookie, clickstream or transactional)"))
    };
    let label_of = |name: &str, owner: &str, vertices: &[VertexLabel]| -> Result<usize, String> {
        vertices.iter().position(|v| v.name == name).ok_or_else(|| {
            format!("{owner}: unknown vertex label `{name}` (declare it as [vertex.{name}])")
        })
    };
    let column = |d: Dataset, name: &str, owner: &str| -> Result<usize, String> {
        schemas
            .get(d)
            .position(name)
            .ok_or_else(|| format!("{owner}: dataset {d} has no column `{name}`"))
    };

    let mut datasets = vec![DatasetRules::default(); Dataset::ALL.len()];
    for entry in &file.properties {
        let owner = format!("[[properties]] of {} from {}", entry.vertex, entry.dataset);
        let d = dataset(&entry.dataset, &owner)?;
        let label = label_of(&entry.vertex, &owner, &vertices)?;
        let key_column = column(d, &entry.key, &owner)?;
        let reserved = vertices[label].key_property.clone();
        let mut list = std::mem::take(&mut vertices[label].properties);
        let properties = add_properties(
            &owner,
            &mut list,
            &reserved,
            d,
            schemas,
            &entry.columns,
            false,
        );
        vertices[label].properties = list;
        datasets[d as usize].vertices.push(VertexRule {
            label,
            key_column,
            properties: properties?,
        });
    }

    let mut edges: Vec<EdgeLabel> = Vec::new();
    for entry in &file.edge {
        let owner = format!("[[edge]] {} from {}", entry.label, entry.dataset);
        check_name("edge label", &entry.label)?;
        let d = dataset(&entry.dataset, &owner)?;
        let endpoint = |e: &EndpointEntry| -> Result<Endpoint, String> {
            Ok(Endpoint {
                label: label_of(&e.vertex, &owner, &vertices)?,
                column: column(d, &e.column, &owner)?,
                when: e.when,
            })
        };
        let (from, to) = (endpoint(&entry.from)?, endpoint(&entry.to)?);
        if entry.to.when.is_some() {
            return Err(format!("{owner}: `when` applies to `from` only"));
        }
        let key_columns = entry
            .key
            .iter()
            .map(|k| column(d, k, &owner))
            .collect::<Result<Vec<_>, _>>()?;
        let mut list = Vec::new();
        let properties =
            add_properties(&owner, &mut list, "", d, schemas, &entry.properties, true)?;
        let label = match edges.iter().position(|e| e.name == entry.label) {
            // One label is one file header: every definition must declare the same properties.
            Some(i) if edges[i].properties == list => i,
            Some(_) => {
                return Err(format!(
                    "{owner}: every [[edge]] with label {} must declare the same properties",
                    entry.label
                ));
            }
            None => {
                edges.push(EdgeLabel {
                    name: entry.label.clone(),
                    properties: list,
                });
                edges.len() - 1
            }
        };
        datasets[d as usize].edges.push(EdgeRule {
            label,
            from,
            to,
            key_columns,
            properties,
        });
    }

    // Whole numbers that go to Int properties must fit 32 bits; the row is rejected otherwise.
    for rules in &mut datasets {
        let mut int32 = Vec::new();
        for rule in &rules.vertices {
            for p in &rule.properties {
                if vertices[rule.label].properties[p.property].ty == ValueType::Int {
                    int32.push(p.column);
                }
            }
        }
        for rule in &rules.edges {
            for p in &rule.properties {
                if edges[rule.label].properties[p.property].ty == ValueType::Int {
                    int32.push(p.column);
                }
            }
        }
        int32.sort_unstable();
        int32.dedup();
        rules.int32_columns = int32;
    }
    let identity = match &file.identity {
        Some(entry) => Some(identity_rules(entry, &edges, &datasets)?),
        None => None,
    };
    if let Some(cache) = &file.cache {
        let known = |name: &String| edges.iter().any(|e| &e.name == name);
        if let Some(unknown) = cache
            .direct
            .iter()
            .chain(&cache.via_session)
            .chain(std::iter::once(&cache.session_user))
            .find(|name| !known(name))
        {
            return Err(format!(
                "[cache]: unknown edge label `{unknown}` (no [[edge]] has it)"
            ));
        }
    }
    Ok(Mapping {
        text_sha256: String::new(),
        text: String::new(),
        vertices,
        edges,
        datasets,
        identity,
        cache: file.cache.clone(),
    })
}

fn identity_rules(
    entry: &IdentityEntry,
    edges: &[EdgeLabel],
    datasets: &[DatasetRules],
) -> Result<IdentityRules, String> {
    let index = |name: &String, list: &str| -> Result<usize, String> {
        edges.iter().position(|e| &e.name == name).ok_or_else(|| {
            format!("[identity] {list}: unknown edge label `{name}` (no [[edge]] has it)")
        })
    };
    let strong = entry
        .strong
        .iter()
        .map(|n| index(n, "strong"))
        .collect::<Result<Vec<_>, _>>()?;
    let weak = entry
        .weak
        .iter()
        .map(|n| index(n, "weak"))
        .collect::<Result<Vec<_>, _>>()?;
    let track = entry
        .track
        .iter()
        .map(|n| index(n, "track"))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(untracked) = track.iter().find(|l| !weak.contains(l)) {
        return Err(format!(
            "[identity] track: `{}` is not a weak edge label (only weak links are tracked)",
            edges[*untracked].name
        ));
    }
    if let Some(both) = strong.iter().find(|l| weak.contains(l)) {
        return Err(format!(
            "[identity]: edge label `{}` is both strong and weak",
            edges[*both].name
        ));
    }
    // Every label is classified, so that an edge added to the mapping later cannot start
    // merging people (or stop) without anyone deciding so.
    if let Some(unlisted) = (0..edges.len()).find(|l| !strong.contains(l) && !weak.contains(l)) {
        return Err(format!(
            "[identity]: edge label `{}` is neither strong nor weak; add it to one of the lists",
            edges[unlisted].name
        ));
    }
    let mut identifiers: Vec<usize> = datasets
        .iter()
        .flat_map(|d| &d.edges)
        .filter(|rule| strong.contains(&rule.label))
        .flat_map(|rule| [rule.from.label, rule.to.label])
        .collect();
    identifiers.sort_unstable();
    identifiers.dedup();
    Ok(IdentityRules {
        strong,
        weak,
        identifiers,
        track,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_rules_name_known_labels_once_each() {
        let m = Mapping::default_mapping().unwrap_or_else(|e| panic!("{e}"));
        let rules = m
            .identity
            .clone()
            .unwrap_or_else(|| panic!("no [identity]"));
        let names = |labels: &[usize], all: &dyn Fn(usize) -> String| -> Vec<String> {
            labels.iter().map(|&l| all(l)).collect()
        };
        let edge = |l: usize| m.edges[l].name.clone();
        let vertex = |l: usize| m.vertices[l].name.clone();
        assert_eq!(
            names(&rules.strong, &edge),
            [
                "hasEmail",
                "hasPhone",
                "hasExternalId",
                "loggedAs",
                "hasCookie"
            ]
        );
        let mut identifiers = names(&rules.identifiers, &vertex);
        identifiers.sort();
        assert_eq!(
            identifiers,
            [
                "Cookie",
                "CustomerID",
                "Email",
                "PhoneNumber",
                "SessionID",
                "User"
            ]
        );
        let with_identity = |identity: &str| {
            let text = DEFAULT_MAPPING_TOML
                .split("[identity]")
                .next()
                .unwrap_or_default()
                .to_owned()
                + identity;
            Mapping::from_toml(&text, "m.toml")
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        let all_weak = r#"[identity]
strong = ["hasEmail", "hasPhone", "hasExternalId", "loggedAs", "hasCookie"]
weak = ["hasCityAddress", "hasPostCodeAddress", "hasLoyaltyLevel", "inCountry", "usedDevice",
  "lastSeenAtIP", "lastSeenAtDomain", "usedUserAgent", "hasPurchased", "inCategory"]
"#;
        assert_eq!(with_identity(all_weak), Ok(()));
        let unknown = all_weak.replace("\"hasPhone\"", "\"hasFax\"");
        let err = with_identity(&unknown).err().unwrap_or_default();
        assert!(err.contains("unknown edge label `hasFax`"), "{err}");
        let both = all_weak.replace("\"inCategory\"", "\"inCategory\", \"hasEmail\"");
        let err = with_identity(&both).err().unwrap_or_default();
        assert!(err.contains("`hasEmail` is both strong and weak"), "{err}");
        let tracked_strong = format!("{all_weak}track = [\"hasEmail\"]\n");
        let err = with_identity(&tracked_strong).err().unwrap_or_default();
        assert!(
            err.contains("track: `hasEmail` is not a weak edge label"),
            "{err}"
        );
        let unlisted = all_weak.replace(", \"inCategory\"", "");
        let err = with_identity(&unlisted).err().unwrap_or_default();
        assert!(
            err.contains("`inCategory` is neither strong nor weak"),
            "{err}"
        );
        assert!(with_identity("").is_ok_and(|()| true));
    }

    #[test]
    fn the_default_mapping_is_the_reference_model() {
        let m = Mapping::default_mapping().unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<_> = m.vertices.iter().map(|v| v.name.as_str()).collect();
        for label in [
            "User",
            "Email",
            "PhoneNumber",
            "CustomerID",
            "City",
            "PostCode",
            "LoyaltyLevel",
            "Country",
            "SessionID",
            "Cookie",
            "DeviceID",
            "ClientIP",
            "DomainName",
            "UserAgent",
            "Product",
            "ProductCategory",
        ] {
            assert!(names.contains(&label), "{label}");
        }
        let edge = |name: &str| m.edge_label(name).unwrap_or_else(|| panic!("{name}"));
        for label in [
            "hasEmail",
            "hasPhone",
            "hasExternalId",
            "hasCityAddress",
            "hasPostCodeAddress",
            "hasLoyaltyLevel",
            "inCountry",
            "loggedAs",
            "hasCookie",
            "usedDevice",
            "lastSeenAtIP",
            "lastSeenAtDomain",
            "usedUserAgent",
            "hasPurchased",
            "inCategory",
        ] {
            edge(label);
        }
        let purchased = &m.edges[edge("hasPurchased")];
        assert_eq!(purchased.properties.len(), 3);
        let tx = m.rules(Dataset::Transactional);
        assert_eq!(
            tx.edges
                .iter()
                .filter(|e| e.label == edge("hasPurchased"))
                .count(),
            2
        );
        let user = &m.vertices[m.vertex_label("User").unwrap_or(0)];
        assert!(
            user.properties
                .iter()
                .all(|p| p.cardinality == Some(Cardinality::Single))
        );
    }

    fn refused(toml: &str) -> String {
        match Mapping::from_toml(toml, "test.toml") {
            Ok(_) => panic!("accepted: {toml}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn unknown_names_are_refused_by_name() {
        let head = "[vertex.User]\nnormalise = \"lower\"\nkey_property = \"userName\"\n";
        let e = refused(&format!(
            "{head}[[properties]]\nvertex = \"User\"\ndataset = \"first_party\"\nkey = \"user_name\"\ncolumns = [{{ column = \"shoe_size\", property = \"shoe\", type = \"Int\" }}]\n"
        ));
        assert!(
            e.contains("shoe_size") && e.contains("first_party") && e.contains("test.toml"),
            "{e}"
        );
        let e = refused(&format!(
            "{head}[[edge]]\nlabel = \"x\"\ndataset = \"first_party\"\nfrom = {{ vertex = \"User\", column = \"user_name\" }}\nto = {{ vertex = \"Mail\", column = \"email\" }}\n"
        ));
        assert!(e.contains("unknown vertex label `Mail`"), "{e}");
        let e = refused(&format!(
            "{head}[[edge]]\nlabel = \"x\"\ndataset = \"crm\"\nfrom = {{ vertex = \"User\", column = \"user_name\" }}\nto = {{ vertex = \"User\", column = \"email\" }}\n"
        ));
        assert!(e.contains("unknown dataset `crm`"), "{e}");
        let e = refused("[vertex.User]\nnormalise = \"shout\"\nkey_property = \"userName\"\n");
        assert!(e.contains("shout"), "{e}");
        let e = refused(&format!(
            "{head}[[properties]]\nvertex = \"User\"\ndataset = \"first_party\"\nkey = \"user_name\"\ncolumns = [{{ column = \"email\", property = \"mail\", type = \"Int\" }}]\n"
        ));
        assert!(e.contains("cannot take column first_party.email"), "{e}");
        let e = refused("[vertex.\"Bad Label\"]\nnormalise = \"lower\"\nkey_property = \"k\"\n");
        assert!(e.contains("Bad Label"), "{e}");
    }
}
