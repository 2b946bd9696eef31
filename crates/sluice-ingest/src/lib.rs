//! Ingest: turns an uploaded file (CSV, JSON, XML, XLSX, Parquet) into an
//! Arrow batch that matches the declared schema, replaces identifiers by
//! keyed pseudonyms, computes the quality report (art. 16), and writes a
//! content-addressed Parquet version.
//!
//! It runs only inside the sandbox process. It must never keep a raw
//! identifier (they exist only in the input buffer and while being hashed)
//! and never put a cell value into an error or a report: problems are named
//! by column, row number and count.
//!
//! Row numbers are 1-based data records: the first record after a CSV or
//! XLSX header (or the first JSON object, or the first XML record) is row 1.

mod convert;
mod quality;
mod read;
mod store;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use sluice_crypto::Pseudonymizer;
use sluice_types::schema::{ColumnType, DatasetSchema};
use sluice_types::{DataFormat, QualityReport};

pub use store::{StoredVersion, preview, write_version};

/// Largest upload ingest accepts.
pub const MAX_INPUT_BYTES: usize = 512 * 1024 * 1024;
/// How many row numbers an error lists per problem.
const MAX_ROWS_LISTED: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("file is empty or has no data rows")]
    Empty,
    #[error("file is larger than {MAX_INPUT_BYTES} bytes")]
    TooLarge,
    #[error("{format} file is malformed: {detail}")]
    Malformed {
        format: &'static str,
        detail: String,
    },
    #[error("row {row} has {found} fields but the header has {expected}")]
    Ragged {
        row: u64,
        expected: usize,
        found: usize,
    },
    #[error("column \"{0}\" is not in the schema")]
    UnknownColumn(String),
    #[error("column \"{0}\" is declared in the schema but missing from the file")]
    MissingColumn(String),
    #[error("column \"{0}\" appears twice in the file")]
    DuplicateColumn(String),
    #[error("values of the wrong type: {}", describe(.0))]
    TypeErrors(Vec<ColumnProblem>),
    #[error("empty values in columns declared not nullable: {}", describe(.0))]
    NullsNotAllowed(Vec<ColumnProblem>),
    #[error("writing the version: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("building Arrow data: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// A problem in one column: how many rows, and the first row numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnProblem {
    pub column: String,
    pub expected: &'static str,
    pub count: u64,
    pub rows: Vec<u64>,
}

fn describe(problems: &[ColumnProblem]) -> String {
    problems
        .iter()
        .map(|p| {
            let rows: Vec<String> = p.rows.iter().map(u64::to_string).collect();
            format!(
                "column \"{}\" ({}): {} row(s), first at row {}",
                p.column,
                p.expected,
                p.count,
                rows.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub struct Ingested {
    pub batch: RecordBatch,
    pub report: QualityReport,
}

/// The Arrow schema of stored versions: declared types, pseudonymised
/// columns as text, every column nullable.
pub fn arrow_schema(schema: &DatasetSchema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .columns
        .iter()
        .map(|c| {
            let ty = match c.stored_type() {
                ColumnType::Int => DataType::Int64,
                ColumnType::Float => DataType::Float64,
                ColumnType::Text => DataType::Utf8,
                ColumnType::Bool => DataType::Boolean,
            };
            Field::new(&c.name, ty, true)
        })
        .collect();
    std::sync::Arc::new(Schema::new(fields))
}

/// Parses, checks and pseudonymises an upload. Either the whole file is
/// accepted or an error says what is wrong; nothing partial comes out.
pub fn ingest(
    input: &[u8],
    format: DataFormat,
    schema: &DatasetSchema,
    pseudonymizer: &Pseudonymizer,
) -> Result<Ingested, IngestError> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(IngestError::TooLarge);
    }
    if input.iter().all(u8::is_ascii_whitespace) {
        return Err(IngestError::Empty);
    }
    let table = read::read(input, format)?;
    if table.rows.is_empty() {
        return Err(IngestError::Empty);
    }
    let columns = read::match_columns(&table.header, schema)?;
    let typed = convert::typed_columns(&table, &columns, schema)?;
    let report = quality::report(&typed, schema);
    let batch = convert::to_batch(typed, schema, pseudonymizer)?;
    Ok(Ingested { batch, report })
}

#[cfg(test)]
mod tests {
    #[test]
    fn errors_describe_rows_without_values() {
        let e = super::IngestError::TypeErrors(vec![super::ColumnProblem {
            column: "age".into(),
            expected: "int",
            count: 3,
            rows: vec![2, 5, 9],
        }]);
        assert_eq!(
            e.to_string(),
            "values of the wrong type: column \"age\" (int): 3 row(s), first at row 2, 5, 9"
        );
    }
}
