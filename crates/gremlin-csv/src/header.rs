//! Header rows of Gremlin load files (neptune-reference.md §1.2, §1.3, §1.8).

use std::fmt;

/// The value types the loader accepts (§1.4). Type names are case-insensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    Bool,
    Byte,
    Short,
    Int,
    Long,
    Float,
    Double,
    String,
    Date,
}

impl ValueType {
    /// Parses a type name as the loader does (case-insensitively; `Boolean` and `Datetime` are
    /// synonyms of `Bool` and `Date`).
    pub fn parse(name: &str) -> Option<ValueType> {
        Some(match name.to_ascii_lowercase().as_str() {
            "bool" | "boolean" => ValueType::Bool,
            "byte" => ValueType::Byte,
            "short" => ValueType::Short,
            "int" => ValueType::Int,
            "long" => ValueType::Long,
            "float" => ValueType::Float,
            "double" => ValueType::Double,
            "string" => ValueType::String,
            "date" | "datetime" => ValueType::Date,
            _ => return None,
        })
    }

    /// The canonical spelling, as writers should use it.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Bool => "Bool",
            ValueType::Byte => "Byte",
            ValueType::Short => "Short",
            ValueType::Int => "Int",
            ValueType::Long => "Long",
            ValueType::Float => "Float",
            ValueType::Double => "Double",
            ValueType::String => "String",
            ValueType::Date => "Date",
        }
    }
}

/// `(single)` or `(set)` on a property column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cardinality {
    Single,
    Set,
}

/// A column of a header row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    Id,
    Label,
    From,
    To,
    Property(PropertyColumn),
}

/// A property column: `name:Type(cardinality)[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyColumn {
    /// The property name, with `\:` unescaped to `:`.
    pub name: String,
    pub ty: ValueType,
    /// `None` when the header gives none (vertex properties then default to set).
    pub cardinality: Option<Cardinality>,
    pub array: bool,
}

impl PropertyColumn {
    pub fn new(name: impl Into<String>, ty: ValueType, cardinality: Option<Cardinality>) -> Self {
        PropertyColumn {
            name: name.into(),
            ty,
            cardinality,
            array: false,
        }
    }
}

impl fmt::Display for PropertyColumn {
    /// The header spelling of the column (`name:Type(single)`, with `:` in the name escaped).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name.replace(':', "\\:"), self.ty.name())?;
        match self.cardinality {
            Some(Cardinality::Single) => f.write_str("(single)")?,
            Some(Cardinality::Set) => f.write_str("(set)")?,
            None => {}
        }
        if self.array {
            f.write_str("[]")?;
        }
        Ok(())
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Column::Id => f.write_str("~id"),
            Column::Label => f.write_str("~label"),
            Column::From => f.write_str("~from"),
            Column::To => f.write_str("~to"),
            Column::Property(p) => p.fmt(f),
        }
    }
}

/// Whether a file holds vertices or edges, as decided by its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    Vertex,
    Edge,
}

/// A parsed, checked header row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub kind: FileKind,
    pub columns: Vec<Column>,
}

/// Why a header row is not one the loader accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("the header is empty")]
    Empty,
    #[error("system column {0} appears more than once")]
    RepeatedSystemColumn(&'static str),
    #[error("unknown system column `{0}` (the loader knows ~id, ~label, ~from and ~to)")]
    UnknownSystemColumn(String),
    #[error("there is no ~id column")]
    MissingId,
    #[error("an edge file needs both ~from and ~to; this one has only {0}")]
    HalfAnEdge(&'static str),
    #[error("column name `{0}` holds a space, comma, CR or LF")]
    BadName(String),
    #[error("column `{0}` has no property name")]
    EmptyName(String),
    #[error("column `{column}` has an unknown type `{ty}`")]
    UnknownType { column: String, ty: String },
    #[error("column `{0}` has a malformed type suffix")]
    BadSuffix(String),
    #[error("column `{0}`: (single) cardinality cannot be an array")]
    SingleArray(String),
    #[error("edge property column `{0}` is an array; edge properties hold one value")]
    EdgeArray(String),
    #[error("edge property column `{0}` has set cardinality; edge properties are single")]
    EdgeSet(String),
    #[error("property `{0}` appears more than once")]
    RepeatedProperty(String),
}

impl Header {
    /// Parses the fields of a header row.
    pub fn parse<S: AsRef<str>>(fields: &[S]) -> Result<Header, HeaderError> {
        if fields.is_empty() || (fields.len() == 1 && fields[0].as_ref().is_empty()) {
            return Err(HeaderError::Empty);
        }
        let mut columns = Vec::with_capacity(fields.len());
        for field in fields {
            columns.push(parse_column(field.as_ref())?);
        }
        let count = |c: &Column| columns.iter().filter(|x| *x == c).count();
        for (column, name) in [
            (Column::Id, "~id"),
            (Column::Label, "~label"),
            (Column::From, "~from"),
            (Column::To, "~to"),
        ] {
            if count(&column) > 1 {
                return Err(HeaderError::RepeatedSystemColumn(name));
            }
        }
        if count(&Column::Id) == 0 {
            return Err(HeaderError::MissingId);
        }
        let kind = match (count(&Column::From), count(&Column::To)) {
            (0, 0) => FileKind::Vertex,
            (1, 1) => FileKind::Edge,
            (1, 0) => return Err(HeaderError::HalfAnEdge("~from")),
            _ => return Err(HeaderError::HalfAnEdge("~to")),
        };
        let mut seen: Vec<&str> = Vec::new();
        for column in &columns {
            if let Column::Property(p) = column {
                if seen.contains(&p.name.as_str()) {
                    return Err(HeaderError::RepeatedProperty(p.name.clone()));
                }
                seen.push(&p.name);
                if kind == FileKind::Edge {
                    if p.array {
                        return Err(HeaderError::EdgeArray(p.to_string()));
                    }
                    if p.cardinality == Some(Cardinality::Set) {
                        return Err(HeaderError::EdgeSet(p.to_string()));
                    }
                }
            }
        }
        Ok(Header { kind, columns })
    }

    /// The position of a system column.
    pub fn position(&self, column: &Column) -> Option<usize> {
        self.columns.iter().position(|c| c == column)
    }

    /// The header row as it is written (no line terminator; no name needs quoting).
    pub fn to_line(&self) -> String {
        self.columns
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn parse_column(raw: &str) -> Result<Column, HeaderError> {
    if raw.contains([' ', ',', '\r', '\n']) {
        return Err(HeaderError::BadName(raw.to_owned()));
    }
    match raw {
        "~id" => return Ok(Column::Id),
        "~label" => return Ok(Column::Label),
        "~from" => return Ok(Column::From),
        "~to" => return Ok(Column::To),
        _ if raw.starts_with('~') => return Err(HeaderError::UnknownSystemColumn(raw.to_owned())),
        _ => {}
    }
    // The name ends at the first colon that is not escaped as `\:`.
    let bytes = raw.as_bytes();
    let mut name = String::new();
    let mut i = 0;
    let mut type_part = None;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if bytes.get(i + 1) == Some(&b':') => {
                name.push(':');
                i += 2;
            }
            b':' => {
                type_part = Some(&raw[i + 1..]);
                break;
            }
            _ => {
                let c = raw[i..].chars().next().unwrap_or_default();
                name.push(c);
                i += c.len_utf8();
            }
        }
    }
    if name.is_empty() {
        return Err(HeaderError::EmptyName(raw.to_owned()));
    }
    let Some(mut rest) = type_part else {
        // No type: the loader reads it as a String.
        return Ok(Column::Property(PropertyColumn::new(
            name,
            ValueType::String,
            None,
        )));
    };
    let mut array = false;
    if let Some(stripped) = rest.strip_suffix("[]") {
        array = true;
        rest = stripped;
    }
    let mut cardinality = None;
    if let Some(open) = rest.find('(') {
        let suffix = &rest[open..];
        cardinality = Some(match suffix.to_ascii_lowercase().as_str() {
            "(single)" => Cardinality::Single,
            "(set)" => Cardinality::Set,
            _ => return Err(HeaderError::BadSuffix(raw.to_owned())),
        });
        rest = &rest[..open];
    }
    let ty = ValueType::parse(rest).ok_or_else(|| HeaderError::UnknownType {
        column: raw.to_owned(),
        ty: rest.to_owned(),
    })?;
    if array && cardinality == Some(Cardinality::Single) {
        return Err(HeaderError::SingleArray(raw.to_owned()));
    }
    Ok(Column::Property(PropertyColumn {
        name,
        ty,
        cardinality,
        array,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop(raw: &str) -> PropertyColumn {
        match parse_column(raw) {
            Ok(Column::Property(p)) => p,
            other => panic!("{raw}: {other:?}"),
        }
    }

    #[test]
    fn property_columns_parse_every_documented_form() {
        assert_eq!(
            prop("age:Int"),
            PropertyColumn::new("age", ValueType::Int, None)
        );
        assert_eq!(
            prop("name"),
            PropertyColumn::new("name", ValueType::String, None)
        );
        assert_eq!(
            prop("n:STRING(single)").cardinality,
            Some(Cardinality::Single)
        );
        let set_array = prop("tags:String(set)[]");
        assert!(set_array.array && set_array.cardinality == Some(Cardinality::Set));
        assert_eq!(prop("a\\:b:Datetime").name, "a:b");
        assert_eq!(prop("a\\:b:Date").to_string(), "a\\:b:Date");
        assert_eq!(prop("ok:boolean").ty, ValueType::Bool);
    }

    #[test]
    fn bad_headers_are_refused_with_the_reason() {
        let err = |fields: &[&str]| Header::parse(fields).err();
        assert_eq!(
            err(&["~id", "~id"]),
            Some(HeaderError::RepeatedSystemColumn("~id"))
        );
        assert_eq!(err(&["name:String"]), Some(HeaderError::MissingId));
        assert_eq!(
            err(&["~id", "~from", "~label"]),
            Some(HeaderError::HalfAnEdge("~from"))
        );
        assert!(matches!(
            err(&["~id", "first name"]),
            Some(HeaderError::BadName(_))
        ));
        assert!(matches!(
            err(&["~id", "x:Integer"]),
            Some(HeaderError::UnknownType { .. })
        ));
        assert!(matches!(
            err(&["~id", "x:Int(single)[]"]),
            Some(HeaderError::SingleArray(_))
        ));
        assert!(matches!(
            err(&["~id", "x:Int(many)"]),
            Some(HeaderError::BadSuffix(_))
        ));
        assert!(matches!(
            err(&["~id", "~from", "~to", "w:Int[]"]),
            Some(HeaderError::EdgeArray(_))
        ));
        assert!(matches!(
            err(&["~id", "~from", "~to", "w:Int(set)"]),
            Some(HeaderError::EdgeSet(_))
        ));
        assert!(matches!(
            err(&["~id", "~kind"]),
            Some(HeaderError::UnknownSystemColumn(_))
        ));
        assert!(matches!(
            err(&["~id", "a:Int", "a:Long"]),
            Some(HeaderError::RepeatedProperty(_))
        ));
        assert!(matches!(
            err(&["~id", ":Int"]),
            Some(HeaderError::EmptyName(_))
        ));
        assert_eq!(err(&[""]), Some(HeaderError::Empty));
    }

    #[test]
    fn headers_round_trip_through_their_written_form() {
        let header = Header::parse(&["~id", "~from", "~to", "~label", "w:Double"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(header.kind, FileKind::Edge);
        assert_eq!(header.to_line(), "~id,~from,~to,~label,w:Double");
        let vertex = Header::parse(&["~id", "~label", "name:String(single)", "tags:String[]"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(vertex.kind, FileKind::Vertex);
        assert_eq!(
            Header::parse(&vertex.to_line().split(',').collect::<Vec<_>>()),
            Ok(vertex)
        );
    }
}
