//! The quality report (art. 16): counts and row numbers, never values.
//!
//! Computed on the stored values in source order. Pseudonymised columns are
//! compared by pseudonym, which is injective per id space, so duplicate
//! counts are the same as on the raw values.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use sluice_types::quality::{ColumnQuality, MAX_EXAMPLE_ROWS, QualityReport};
use sluice_types::schema::{ColumnRole, ColumnSpec, DatasetSchema, DomainValue};

use crate::convert::{ColumnData, Key};

fn note_row(rows: &mut Vec<u64>, row: u64) {
    if rows.len() < MAX_EXAMPLE_ROWS && rows.last() != Some(&row) {
        rows.push(row);
    }
}

fn domain_key(v: &DomainValue) -> Key<'_> {
    match v {
        DomainValue::Int(i) => Key::Int(*i),
        DomainValue::Text(s) => Key::Text(s),
        DomainValue::Bool(b) => Key::Bool(*b),
    }
}

fn column_quality(spec: &ColumnSpec, col: &ColumnData, rows: usize) -> ColumnQuality {
    let mut q = ColumnQuality {
        name: spec.name.clone(),
        ..Default::default()
    };
    let domain: Option<HashSet<Key<'_>>> = spec
        .domain
        .as_ref()
        .map(|d| d.iter().map(domain_key).collect());
    let check_duplicates = spec.unique || spec.role == ColumnRole::Identifier;
    let mut seen = HashSet::new();
    for r in 0..rows {
        let row = r as u64 + 1;
        let Some(v) = col.key(r) else {
            q.nulls += 1;
            note_row(&mut q.first_offending_rows, row);
            continue;
        };
        if let (Some((lower, upper)), Some(x)) = (spec.bounds(), v.as_f64())
            && !(lower..=upper).contains(&x)
        {
            q.out_of_bounds += 1;
            note_row(&mut q.first_offending_rows, row);
        }
        if let Some(domain) = &domain
            && !domain.contains(&v)
        {
            q.out_of_domain += 1;
            note_row(&mut q.first_offending_rows, row);
        }
        if check_duplicates && !seen.insert(v) {
            q.duplicate_values += 1;
            note_row(&mut q.first_offending_rows, row);
        }
    }
    q
}

fn row_hash(columns: &[ColumnData], r: usize) -> u64 {
    let mut h = DefaultHasher::new();
    for c in columns {
        c.key(r).hash(&mut h);
    }
    h.finish()
}

fn rows_equal(columns: &[ColumnData], a: usize, b: usize) -> bool {
    columns.iter().all(|c| c.key(a) == c.key(b))
}

/// 0-based indices, ascending, of rows equal in every column to an earlier
/// row (nulls equal nulls). Rows are grouped by hash and compared exactly, so
/// a hash collision cannot make distinct rows count as duplicates.
pub fn duplicate_rows(columns: &[ColumnData], rows: usize) -> Vec<usize> {
    let mut hashed: Vec<(u64, usize)> = (0..rows).map(|r| (row_hash(columns, r), r)).collect();
    hashed.sort_unstable();
    let mut duplicates = Vec::new();
    let mut distinct: Vec<usize> = Vec::new();
    for group in hashed.chunk_by(|a, b| a.0 == b.0) {
        distinct.clear();
        // Within a group rows are ascending, so the first copy is kept.
        for &(_, r) in group {
            if distinct.iter().any(|&d| rows_equal(columns, d, r)) {
                duplicates.push(r);
            } else {
                distinct.push(r);
            }
        }
    }
    duplicates.sort_unstable();
    duplicates
}

pub fn report(columns: &[ColumnData], schema: &DatasetSchema) -> QualityReport {
    let rows = columns.first().map_or(0, ColumnData::len);
    let duplicates = duplicate_rows(columns, rows);
    let units_over_max_rows = match schema
        .columns
        .iter()
        .position(|c| c.role == ColumnRole::PrivacyUnit)
    {
        Some(unit) => {
            let mut per_unit: HashMap<Key<'_>, u64> = HashMap::new();
            for r in 0..rows {
                if let Some(k) = columns[unit].key(r) {
                    *per_unit.entry(k).or_default() += 1;
                }
            }
            per_unit
                .values()
                .filter(|&&n| n > u64::from(schema.max_rows_per_unit))
                .count() as u64
        }
        None => 0,
    };
    QualityReport {
        rows: rows as u64,
        duplicate_rows: duplicates.len() as u64,
        first_duplicate_rows: duplicates
            .iter()
            .take(MAX_EXAMPLE_ROWS)
            .map(|&r| r as u64 + 1)
            .collect(),
        units_over_max_rows,
        columns: schema
            .columns
            .iter()
            .zip(columns)
            .map(|(spec, col)| column_quality(spec, col, rows))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_rows_are_extra_copies_in_file_order() {
        let columns = vec![
            ColumnData::Int(vec![Some(1), Some(2), Some(1), None, None, Some(1)]),
            ColumnData::Text(vec![
                Some("a".into()),
                Some("b".into()),
                Some("a".into()),
                None,
                None,
                Some("b".into()),
            ]),
        ];
        assert_eq!(duplicate_rows(&columns, 6), vec![2, 4]);
    }
}
