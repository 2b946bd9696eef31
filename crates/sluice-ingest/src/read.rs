//! Readers: every format becomes a header and rows of raw cells.

mod csv;
mod json;
mod parquet;
mod xlsx;
mod xml;

use std::collections::HashSet;

use sluice_types::DataFormat;
use sluice_types::schema::DatasetSchema;

use crate::IngestError;

/// A cell as the source format gave it, before typing.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    Null,
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A value the format cannot give as a scalar (nested JSON, an Excel error).
    Invalid,
}

pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<Raw>>,
}

pub fn read(input: &[u8], format: DataFormat) -> Result<Table, IngestError> {
    match format {
        DataFormat::Csv => csv::read(input),
        DataFormat::Json => json::read(input),
        DataFormat::Xml => xml::read(input),
        DataFormat::Xlsx => xlsx::read(input),
        DataFormat::Parquet => parquet::read(input),
    }
}

/// For each schema column, its index in the source. Unknown, missing and
/// repeated source columns are errors.
pub fn match_columns(header: &[String], schema: &DatasetSchema) -> Result<Vec<usize>, IngestError> {
    let mut seen = HashSet::new();
    for name in header {
        if !seen.insert(name.as_str()) {
            return Err(IngestError::DuplicateColumn(name.clone()));
        }
        if schema.column(name).is_none() {
            return Err(IngestError::UnknownColumn(name.clone()));
        }
    }
    schema
        .columns
        .iter()
        .map(|c| {
            header
                .iter()
                .position(|h| h == &c.name)
                .ok_or_else(|| IngestError::MissingColumn(c.name.clone()))
        })
        .collect()
}

fn malformed(format: &'static str, detail: impl std::fmt::Display) -> IngestError {
    IngestError::Malformed {
        format,
        detail: detail.to_string(),
    }
}
