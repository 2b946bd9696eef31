//! The quality report (art. 16): counts and row numbers, never values.

use std::collections::{HashMap, HashSet};

use sluice_types::quality::{ColumnQuality, MAX_EXAMPLE_ROWS, QualityReport};
use sluice_types::schema::{ColumnRole, DatasetSchema, DomainValue};

use crate::convert::{Column, Value};

fn push_row(rows: &mut Vec<u64>, row: u64) {
    if rows.len() < MAX_EXAMPLE_ROWS && rows.last() != Some(&row) {
        rows.push(row);
    }
}

/// A hashable form of a cell (floats by their bits).
fn key(v: &Option<Value>) -> String {
    match v {
        None => "\u{0}".into(),
        Some(Value::Int(i)) => format!("i{i}"),
        Some(Value::Float(f)) => format!("f{}", f.to_bits()),
        Some(Value::Text(s)) => format!("t{s}"),
        Some(Value::Bool(b)) => format!("b{b}"),
    }
}

fn in_domain(v: &Value, domain: &[DomainValue]) -> bool {
    domain.iter().any(|d| match (d, v) {
        (DomainValue::Int(a), Value::Int(b)) => a == b,
        (DomainValue::Text(a), Value::Text(b)) => a == b,
        (DomainValue::Bool(a), Value::Bool(b)) => a == b,
        _ => false,
    })
}

/// Computed on typed values before pseudonymisation (which is injective per
/// id space, so duplicate counts are the same either way).
pub fn report(columns: &[Column], schema: &DatasetSchema) -> QualityReport {
    let rows = columns.first().map_or(0, Vec::len);
    let mut out = QualityReport {
        rows: rows as u64,
        ..Default::default()
    };
    for (spec, col) in schema.columns.iter().zip(columns) {
        let mut q = ColumnQuality {
            name: spec.name.clone(),
            ..Default::default()
        };
        let check_dupes = spec.unique || spec.role == ColumnRole::Identifier;
        let mut seen = HashSet::new();
        for (i, cell) in col.iter().enumerate() {
            let row = i as u64 + 1;
            let Some(v) = cell else {
                q.nulls += 1;
                push_row(&mut q.first_offending_rows, row);
                continue;
            };
            if let (Some((lo, hi)), Some(x)) = (spec.bounds(), v.as_f64())
                && !(lo..=hi).contains(&x)
            {
                q.out_of_bounds += 1;
                push_row(&mut q.first_offending_rows, row);
            }
            if let Some(domain) = &spec.domain
                && !in_domain(v, domain)
            {
                q.out_of_domain += 1;
                push_row(&mut q.first_offending_rows, row);
            }
            if check_dupes && !seen.insert(key(cell)) {
                q.duplicate_values += 1;
                push_row(&mut q.first_offending_rows, row);
            }
        }
        out.columns.push(q);
    }
    let mut seen_rows = HashSet::new();
    for i in 0..rows {
        let row_key: Vec<String> = columns.iter().map(|c| key(&c[i])).collect();
        if !seen_rows.insert(row_key) {
            out.duplicate_rows += 1;
            push_row(&mut out.first_duplicate_rows, i as u64 + 1);
        }
    }
    if let Some(unit) = schema
        .columns
        .iter()
        .position(|c| c.role == ColumnRole::PrivacyUnit)
    {
        let mut per_unit: HashMap<String, u32> = HashMap::new();
        for cell in columns[unit].iter().filter(|c| c.is_some()) {
            *per_unit.entry(key(cell)).or_default() += 1;
        }
        out.units_over_max_rows = per_unit
            .values()
            .filter(|n| **n > schema.max_rows_per_unit)
            .count() as u64;
    }
    out
}
