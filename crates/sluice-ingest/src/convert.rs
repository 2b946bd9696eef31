//! Typing raw cells against the schema, and building the stored batch.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow::record_batch::RecordBatch;
use sluice_crypto::Pseudonymizer;
use sluice_types::schema::{ColumnRole, ColumnType, DatasetSchema};

use crate::read::{Raw, Table};
use crate::{ColumnProblem, IngestError, MAX_ROWS_LISTED};

/// A typed cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
}

impl Value {
    /// The canonical text of an identifier before pseudonymisation.
    fn identifier_text(&self) -> String {
        match self {
            Value::Int(i) => i.to_string(),
            Value::Text(s) => s.clone(),
            Value::Float(f) => f.to_string(),
            Value::Bool(b) => b.to_string(),
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }
}

/// One column in schema order, typed, in source row order.
pub type Column = Vec<Option<Value>>;

fn parse(raw: &Raw, ty: ColumnType) -> Result<Option<Value>, ()> {
    Ok(Some(match (raw, ty) {
        (Raw::Null, _) => return Ok(None),
        (Raw::Invalid, _) => return Err(()),
        (Raw::Int(i), ColumnType::Int) => Value::Int(*i),
        (Raw::Float(f), ColumnType::Int) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
            Value::Int(*f as i64)
        }
        (Raw::Str(s), ColumnType::Int) => Value::Int(parse_int(s.trim()).ok_or(())?),
        (Raw::Int(i), ColumnType::Float) => Value::Float(*i as f64),
        (Raw::Float(f), ColumnType::Float) if f.is_finite() => Value::Float(*f),
        (Raw::Str(s), ColumnType::Float) => {
            let f: f64 = s.trim().parse().map_err(|_| ())?;
            if !f.is_finite() {
                return Err(());
            }
            Value::Float(f)
        }
        (Raw::Bool(b), ColumnType::Bool) => Value::Bool(*b),
        (Raw::Int(0), ColumnType::Bool) => Value::Bool(false),
        (Raw::Int(1), ColumnType::Bool) => Value::Bool(true),
        (Raw::Str(s), ColumnType::Bool) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Value::Bool(true),
            "false" | "0" => Value::Bool(false),
            _ => return Err(()),
        },
        (Raw::Str(s), ColumnType::Text) => Value::Text(s.clone()),
        (Raw::Int(i), ColumnType::Text) => Value::Text(i.to_string()),
        (Raw::Float(f), ColumnType::Text) => Value::Text(f.to_string()),
        (Raw::Bool(b), ColumnType::Text) => Value::Text(b.to_string()),
        _ => return Err(()),
    }))
}

/// An integer, also written as a decimal whose fraction is all zeros ("17000.0").
fn parse_int(s: &str) -> Option<i64> {
    if let Ok(i) = s.parse() {
        return Some(i);
    }
    let (int, frac) = s.split_once('.')?;
    if !frac.is_empty() && frac.bytes().all(|b| b == b'0') {
        int.parse().ok()
    } else {
        None
    }
}

fn problem(column: &str, expected: &'static str, rows: &[u64]) -> ColumnProblem {
    ColumnProblem {
        column: column.to_owned(),
        expected,
        count: rows.len() as u64,
        rows: rows.iter().take(MAX_ROWS_LISTED).copied().collect(),
    }
}

/// Types every cell; all type errors and forbidden nulls are reported together.
pub fn typed_columns(
    table: &Table,
    columns: &[usize],
    schema: &DatasetSchema,
) -> Result<Vec<Column>, IngestError> {
    let mut out = Vec::with_capacity(columns.len());
    let mut type_problems = Vec::new();
    let mut null_problems = Vec::new();
    for (spec, &src) in schema.columns.iter().zip(columns) {
        let mut col = Vec::with_capacity(table.rows.len());
        let mut bad_rows = Vec::new();
        let mut null_rows = Vec::new();
        for (i, row) in table.rows.iter().enumerate() {
            match parse(&row[src], spec.ty) {
                Ok(v) => {
                    if v.is_none() && !spec.nullable {
                        null_rows.push(i as u64 + 1);
                    }
                    col.push(v);
                }
                Err(()) => {
                    bad_rows.push(i as u64 + 1);
                    col.push(None);
                }
            }
        }
        if !bad_rows.is_empty() {
            type_problems.push(problem(&spec.name, spec.ty.as_str(), &bad_rows));
        }
        if !null_rows.is_empty() {
            null_problems.push(problem(&spec.name, "not null", &null_rows));
        }
        out.push(col);
    }
    if !type_problems.is_empty() {
        return Err(IngestError::TypeErrors(type_problems));
    }
    if !null_problems.is_empty() {
        return Err(IngestError::NullsNotAllowed(null_problems));
    }
    Ok(out)
}

/// Pseudonymises identifier columns, clusters rows by privacy unit and
/// builds the batch. Raw identifiers are dropped as soon as they are hashed.
pub fn to_batch(
    mut columns: Vec<Column>,
    schema: &DatasetSchema,
    p: &Pseudonymizer,
) -> Result<RecordBatch, IngestError> {
    for (spec, col) in schema.columns.iter().zip(columns.iter_mut()) {
        if spec.role.is_pseudonymised() {
            for cell in col.iter_mut() {
                if let Some(v) = cell.take() {
                    *cell = Some(Value::Text(
                        p.pseudonym(&schema.id_space, &v.identifier_text()),
                    ));
                }
            }
        }
    }
    let n = columns.first().map_or(0, Vec::len);
    let mut order: Vec<usize> = (0..n).collect();
    if let Some(unit) = schema
        .columns
        .iter()
        .position(|c| c.role == ColumnRole::PrivacyUnit)
    {
        let key = |i: &usize| match &columns[unit][*i] {
            Some(Value::Text(s)) => (0, s.as_str()),
            _ => (1, ""),
        };
        order.sort_by(|a, b| key(a).cmp(&key(b)));
    }
    let arrays: Vec<ArrayRef> = schema
        .columns
        .iter()
        .zip(&columns)
        .map(|(spec, col)| -> ArrayRef {
            let cells = order.iter().map(|&i| col[i].as_ref());
            match spec.stored_type() {
                ColumnType::Int => Arc::new(Int64Array::from_iter(cells.map(|v| match v {
                    Some(Value::Int(i)) => Some(*i),
                    _ => None,
                }))),
                ColumnType::Float => Arc::new(Float64Array::from_iter(
                    cells.map(|v| v.and_then(Value::as_f64)),
                )),
                ColumnType::Bool => Arc::new(BooleanArray::from_iter(cells.map(|v| match v {
                    Some(Value::Bool(b)) => Some(*b),
                    _ => None,
                }))),
                ColumnType::Text => Arc::new(StringArray::from_iter(cells.map(|v| match v {
                    Some(Value::Text(s)) => Some(s.as_str()),
                    _ => None,
                }))),
            }
        })
        .collect();
    Ok(RecordBatch::try_new(crate::arrow_schema(schema), arrays)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cells() {
        type Case = (Raw, ColumnType, Result<Option<Value>, ()>);
        let cases: &[Case] = &[
            (
                Raw::Str("17000.0".into()),
                ColumnType::Int,
                Ok(Some(Value::Int(17000))),
            ),
            (Raw::Str("17000.5".into()), ColumnType::Int, Err(())),
            (
                Raw::Str(" 42 ".into()),
                ColumnType::Int,
                Ok(Some(Value::Int(42))),
            ),
            (Raw::Float(3.0), ColumnType::Int, Ok(Some(Value::Int(3)))),
            (Raw::Str("inf".into()), ColumnType::Float, Err(())),
            (
                Raw::Str("TRUE".into()),
                ColumnType::Bool,
                Ok(Some(Value::Bool(true))),
            ),
            (Raw::Str("yes".into()), ColumnType::Bool, Err(())),
            (
                Raw::Int(7),
                ColumnType::Text,
                Ok(Some(Value::Text("7".into()))),
            ),
            (Raw::Null, ColumnType::Int, Ok(None)),
            (Raw::Invalid, ColumnType::Text, Err(())),
        ];
        for (raw, ty, expected) in cases {
            assert_eq!(&parse(raw, *ty), expected, "{raw:?} as {ty:?}");
        }
    }
}
