//! The quality report computed for every ingested version (art. 16). It names
//! rows by number and never carries values. Row numbers count data records
//! from 1: the first record after a CSV or XLSX header, the first JSON
//! object or XML record is row 1.

use serde::{Deserialize, Serialize};

/// How many offending row numbers a report keeps per problem.
pub const MAX_EXAMPLE_ROWS: usize = 10;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ColumnQuality {
    pub name: String,
    pub nulls: u64,
    pub type_errors: u64,
    pub out_of_bounds: u64,
    pub out_of_domain: u64,
    /// For `unique` and pseudonymised columns: values seen more than once
    /// (each extra occurrence counts once).
    pub duplicate_values: u64,
    /// Row numbers of the first offending rows, any problem, in file order.
    pub first_offending_rows: Vec<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QualityReport {
    pub rows: u64,
    /// Rows equal to an earlier row in every column (each extra copy counts once).
    pub duplicate_rows: u64,
    pub first_duplicate_rows: Vec<u64>,
    /// Privacy units with more rows than the schema's `max_rows_per_unit`
    /// (queries keep only that many rows of each unit).
    pub units_over_max_rows: u64,
    pub columns: Vec<ColumnQuality>,
}

impl QualityReport {
    pub fn column(&self, name: &str) -> Option<&ColumnQuality> {
        self.columns.iter().find(|c| c.name == name)
    }
    pub fn total_nulls(&self) -> u64 {
        self.columns.iter().map(|c| c.nulls).sum()
    }
}
