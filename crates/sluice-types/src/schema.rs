//! Declared dataset schemas: every column's role, type, numeric bounds and
//! optional public domain. The schema is written by the provider as TOML and
//! is the only source of sensitivity: bounds and domains are declared, never
//! read from the data.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// What a column is, for privacy purposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ColumnRole {
    /// A direct identifier: replaced at ingest by a keyed pseudonym (HMAC);
    /// the raw value is never stored.
    Identifier,
    /// The entity whose privacy is protected. Also pseudonymised at ingest, so
    /// datasets of different providers join on it inside the sandbox.
    PrivacyUnit,
    /// An indirect identifier (age, zip code, ...). Stored; only DP outputs leave.
    QuasiIdentifier,
    /// Any other attribute.
    Attribute,
}

impl ColumnRole {
    pub fn is_pseudonymised(self) -> bool {
        matches!(self, ColumnRole::Identifier | ColumnRole::PrivacyUnit)
    }
}

/// Declared column type. Pseudonymised columns are stored as text whatever
/// their raw type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Int,
    Float,
    Text,
    Bool,
}

impl ColumnType {
    pub fn is_numeric(self) -> bool {
        matches!(self, ColumnType::Int | ColumnType::Float)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Int => "int",
            ColumnType::Float => "float",
            ColumnType::Text => "text",
            ColumnType::Bool => "bool",
        }
    }
}

/// One value of a declared public domain.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(untagged)]
pub enum DomainValue {
    Bool(bool),
    Int(i64),
    Text(String),
}

impl fmt::Display for DomainValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainValue::Bool(b) => write!(f, "{b}"),
            DomainValue::Int(i) => write!(f, "{i}"),
            DomainValue::Text(s) => write!(f, "{s}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    pub name: String,
    #[serde(default = "default_role")]
    pub role: ColumnRole,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Declared lower bound (numeric columns); values are clamped to it in DP aggregates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper: Option<f64>,
    /// Public domain of a categorical column: every key is released, empty ones too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<Vec<DomainValue>>,
    /// Whether each value is expected to be unique (duplicates are reported).
    #[serde(default)]
    pub unique: bool,
    #[serde(default = "default_true")]
    pub nullable: bool,
    /// Inside the sandbox only: ingest found every stored value of this
    /// column within its declared bounds and domain, so clamping it is a
    /// no-op. Never read from or written to JSON: it comes from the
    /// platform's own quality report (`SandboxTable::in_bounds`).
    #[serde(skip)]
    pub verified: bool,
}

impl ColumnSpec {
    /// A nullable column with no bounds, domain or description.
    pub fn new(name: &str, role: ColumnRole, ty: ColumnType) -> Self {
        ColumnSpec {
            name: name.to_owned(),
            role,
            ty,
            description: None,
            lower: None,
            upper: None,
            domain: None,
            unique: false,
            nullable: true,
            verified: false,
        }
    }
}

fn default_role() -> ColumnRole {
    ColumnRole::Attribute
}
fn default_true() -> bool {
    true
}

impl ColumnSpec {
    /// Stored type: pseudonymised columns become text.
    pub fn stored_type(&self) -> ColumnType {
        if self.role.is_pseudonymised() {
            ColumnType::Text
        } else {
            self.ty
        }
    }
    pub fn bounds(&self) -> Option<(f64, f64)> {
        match (self.lower, self.upper) {
            (Some(l), Some(u)) => Some((l, u)),
            _ => None,
        }
    }
}

/// A dataset's declared schema (the provider's TOML file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetSchema {
    /// Most rows any one privacy unit has in this dataset. Every DP query
    /// enforces it inside the plan; it scales the sensitivity.
    #[serde(default = "default_max_rows")]
    pub max_rows_per_unit: u32,
    /// Namespace of the pseudonyms: datasets with the same id space (and the
    /// same platform key) get equal pseudonyms for equal raw identifiers.
    #[serde(default = "default_id_space")]
    pub id_space: String,
    pub columns: Vec<ColumnSpec>,
}

fn default_max_rows() -> u32 {
    1
}
fn default_id_space() -> String {
    "default".to_owned()
}

/// Most rows per unit a schema may declare; beyond this, sensitivities grow
/// so large that answers are useless.
pub const MAX_ROWS_PER_UNIT_LIMIT: u32 = 10_000;
pub const MAX_COLUMNS: usize = 1_000;
pub const MAX_DOMAIN_SIZE: usize = 100_000;
/// Longest text cell a stored version holds, in bytes: ingest refuses a
/// longer one, and row expressions bound the text they build from it.
pub const MAX_CELL_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError(pub Vec<String>);

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "schema invalid: {}", self.0.join("; "))
    }
}

impl std::error::Error for SchemaError {}

/// Column names are SQL identifiers: lowercase ASCII letters, digits and `_`,
/// not starting with a digit. This keeps names unambiguous in SQL without quoting.
/// Stored next to the declared columns of a dataset with a privacy unit:
/// each row's 1-based position among its unit's rows, in a secret order
/// fixed at ingest (NULL for rows without a unit). Keeping a unit's first k
/// rows is then a filter on this column, a streaming pass, instead of a
/// window over all rows. Names starting with `__` are reserved, so no
/// declared column can collide with it.
pub const UNIT_ROW_COLUMN: &str = "__sluice_unit_row";

pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    !name.starts_with("__") // reserved for names Sluice generates in plans
        && matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && name.len() <= 63
}

impl DatasetSchema {
    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Why each of `columns` cannot be given to a WASM guest: it must be a
    /// numeric attribute of this dataset (identifiers never are).
    pub fn guest_column_problems(&self, dataset: &str, columns: &[String]) -> Vec<String> {
        columns
            .iter()
            .filter_map(|c| match self.column(c) {
                Some(spec) if spec.ty.is_numeric() && !spec.role.is_pseudonymised() => None,
                Some(_) => Some(format!(
                    "column {c} is not a numeric attribute (identifiers are never given to a guest)"
                )),
                None => Some(format!("column {c} is not in dataset {dataset}")),
            })
            .collect()
    }

    pub fn privacy_unit(&self) -> Option<&ColumnSpec> {
        self.columns
            .iter()
            .find(|c| c.role == ColumnRole::PrivacyUnit)
    }

    /// Checks the schema and lists every problem at once.
    pub fn validate(&self) -> Result<(), SchemaError> {
        let mut problems = Vec::new();
        if self.columns.is_empty() {
            problems.push("no columns declared".to_owned());
        }
        if self.columns.len() > MAX_COLUMNS {
            problems.push(format!("more than {MAX_COLUMNS} columns"));
        }
        if self.max_rows_per_unit == 0 || self.max_rows_per_unit > MAX_ROWS_PER_UNIT_LIMIT {
            problems.push(format!(
                "max_rows_per_unit must be between 1 and {MAX_ROWS_PER_UNIT_LIMIT}"
            ));
        }
        if !is_valid_name(&self.id_space) {
            problems.push(format!(
                "id_space \"{}\" must be lowercase letters, digits and _",
                self.id_space
            ));
        }
        let units = self
            .columns
            .iter()
            .filter(|c| c.role == ColumnRole::PrivacyUnit)
            .count();
        if units > 1 {
            problems.push("more than one column has role privacy_unit".to_owned());
        }
        if units == 0 && self.max_rows_per_unit != 1 {
            problems.push(
                "max_rows_per_unit > 1 needs a privacy_unit column (without one, each row is its own unit)"
                    .to_owned(),
            );
        }
        let mut seen = HashSet::new();
        for c in &self.columns {
            let n = &c.name;
            if !is_valid_name(n) {
                problems.push(format!(
                    "column \"{n}\": names must be lowercase letters, digits and _, not starting with a digit or __, at most 63 characters"
                ));
            }
            if !seen.insert(n.as_str()) {
                problems.push(format!("column \"{n}\" declared twice"));
            }
            if c.role.is_pseudonymised() {
                if !matches!(c.ty, ColumnType::Text | ColumnType::Int) {
                    problems.push(format!(
                        "column \"{n}\": identifiers must be text or int, not {}",
                        c.ty.as_str()
                    ));
                }
                if c.lower.is_some() || c.upper.is_some() || c.domain.is_some() {
                    problems.push(format!(
                        "column \"{n}\": a pseudonymised column cannot declare bounds or a domain"
                    ));
                }
            }
            match (c.lower, c.upper) {
                (None, None) => {}
                (Some(l), Some(u)) => {
                    if !c.ty.is_numeric() {
                        problems.push(format!(
                            "column \"{n}\": bounds are only for int or float columns"
                        ));
                    }
                    if !l.is_finite() || !u.is_finite() || l > u {
                        problems.push(format!(
                            "column \"{n}\": bounds must be finite with lower <= upper"
                        ));
                    }
                    if l.abs() > 1e15 || u.abs() > 1e15 {
                        problems.push(format!(
                            "column \"{n}\": bounds beyond 1e15 in magnitude are not supported"
                        ));
                    }
                }
                _ => problems.push(format!(
                    "column \"{n}\": declare both lower and upper, or neither"
                )),
            }
            if let Some(domain) = &c.domain {
                if domain.is_empty() || domain.len() > MAX_DOMAIN_SIZE {
                    problems.push(format!(
                        "column \"{n}\": a domain needs between 1 and {MAX_DOMAIN_SIZE} values"
                    ));
                }
                let fits = domain.iter().all(|v| {
                    matches!(
                        (c.ty, v),
                        (ColumnType::Int, DomainValue::Int(_))
                            | (ColumnType::Text, DomainValue::Text(_))
                            | (ColumnType::Bool, DomainValue::Bool(_))
                    )
                });
                if !fits {
                    problems.push(format!(
                        "column \"{n}\": every domain value must be of the column's type {} (float columns cannot have a domain)",
                        c.ty.as_str()
                    ));
                }
                let distinct: HashSet<_> = domain.iter().collect();
                if distinct.len() != domain.len() {
                    problems.push(format!("column \"{n}\": domain has repeated values"));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SchemaError(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: ColumnType) -> ColumnSpec {
        ColumnSpec::new(name, ColumnRole::Attribute, ty)
    }

    fn check(schema: DatasetSchema, expected: &[&str]) {
        let got = match schema.validate() {
            Ok(()) => vec![],
            Err(SchemaError(p)) => p,
        };
        assert_eq!(got.len(), expected.len(), "{got:?}");
        for (g, e) in got.iter().zip(expected) {
            assert!(g.contains(e), "{g:?} should mention {e:?}");
        }
    }

    fn schema(columns: Vec<ColumnSpec>) -> DatasetSchema {
        DatasetSchema {
            max_rows_per_unit: 1,
            id_space: "default".into(),
            columns,
        }
    }

    #[test]
    fn lists_every_problem_at_once() {
        let mut a = col("Bad Name", ColumnType::Int);
        a.lower = Some(5.0);
        let mut b = col("x", ColumnType::Text);
        b.lower = Some(0.0);
        b.upper = Some(1.0);
        let mut c = col("x", ColumnType::Int);
        c.domain = Some(vec![DomainValue::Text("a".into())]);
        check(
            schema(vec![a, b, c]),
            &[
                "names must be",
                "declare both",
                "only for int or float",
                "declared twice",
                "every domain value",
            ],
        );
    }

    #[test]
    fn accepts_a_good_schema() {
        let mut unit = col("pid", ColumnType::Int);
        unit.role = ColumnRole::PrivacyUnit;
        let mut age = col("age", ColumnType::Int);
        age.lower = Some(0.0);
        age.upper = Some(100.0);
        check(schema(vec![unit, age]), &[]);
    }

    #[test]
    fn parses_toml_shape() {
        let s: DatasetSchema = serde_json::from_value(serde_json::json!({
            "max_rows_per_unit": 2,
            "columns": [{"name": "pid", "role": "privacy_unit", "type": "int"},
                        {"name": "sex", "type": "int", "domain": [0, 1]}]
        }))
        .unwrap();
        assert_eq!(s.id_space, "default");
        assert_eq!(s.column("sex").unwrap().domain.as_ref().unwrap().len(), 2);
        assert!(s.validate().is_ok());
    }
}
