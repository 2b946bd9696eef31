//! Ingest: turns an uploaded file (CSV, JSON, XML, XLSX, Parquet) into an
//! Arrow batch that matches the declared schema, replaces identifiers by
//! keyed pseudonyms, computes the quality report (art. 16), and writes
//! content-addressed Parquet versions. It must never keep a raw identifier
//! (raw values exist only in the input buffer and while being hashed: they
//! are in no batch, file, report or error) and never put a cell value into an
//! error or a report: problems are named by column, row number and count.
//!
//! Row numbers, everywhere in this crate (errors and quality reports), are
//! 1-based data records in source order: the first record after the header of
//! a CSV or XLSX file, the first object of a JSON file and the first record
//! element of an XML file are all row 1. Blank CSV lines and blank XLSX rows
//! are not records and are not counted. Row numbers refer to the source, not
//! to positions in the stored batch (which is re-ordered by privacy unit).
//!
//! A file is accepted whole or not at all: every type error is collected and
//! reported together, and nothing partial comes out.
//!
//! Every reader works within [`IngestLimits`] and checks them while it
//! streams or decompresses, so that a small file cannot make ingest expand,
//! allocate or parse without bound; a reader that panics on corrupt input
//! gives [`IngestError::Malformed`].

mod convert;
mod export;
mod limits;
mod quality;
mod read;
mod store;

use std::fmt;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use sluice_crypto::Pseudonymizer;
use sluice_types::schema::{ColumnType, DatasetSchema, SchemaError};
use sluice_types::{DataFormat, QualityReport};

pub use export::{ExportError, export_csv};
pub use limits::{IngestLimits, Limit};
pub use store::{StoredVersion, preview, write_version};

/// Largest upload ingest accepts by default ([`IngestLimits::input_bytes`]):
/// the platform's one upload limit.
pub const MAX_INPUT_BYTES: usize = sluice_types::catalog::MAX_UPLOAD_BYTES;
/// How many row numbers an error lists per problem.
pub const MAX_ROWS_LISTED: usize = 10;

/// Why an upload (or a stored version) was refused. Messages name columns,
/// row numbers and counts, never cell values.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("invalid schema: {0}")]
    Schema(#[from] SchemaError),
    #[error("file has no data rows")]
    Empty,
    /// The upload is over one of the [`IngestLimits`]; `what` names the
    /// part of the file and the bound, never a value.
    #[error("{what} (limit: {limit})")]
    Limit { what: String, limit: Limit },
    /// The file cannot be parsed as the format it was declared as.
    #[error("{format} file is malformed: {detail}")]
    Malformed {
        format: &'static str,
        detail: String,
    },
    /// A CSV or XLSX row with a different number of fields than the header.
    #[error("row {row} has {found} fields but the header has {expected}")]
    Ragged {
        row: u64,
        expected: usize,
        found: usize,
    },
    /// A source column not declared in the schema, given by its position
    /// (see [`column_label`]).
    #[error("column {0} is not in the schema")]
    UnknownColumn(String),
    #[error("column \"{0}\" is declared in the schema but missing from the file")]
    MissingColumn(String),
    #[error("column {0} appears more than once in the file")]
    DuplicateColumn(String),
    #[error("values of the wrong type: {}", describe(.0))]
    TypeErrors(Vec<ColumnProblem>),
    #[error("empty values in columns declared not nullable: {}", describe(.0))]
    NullsNotAllowed(Vec<ColumnProblem>),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("building Arrow data: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// One column's problem: what was expected, how many rows, the first rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnProblem {
    pub column: String,
    /// The declared type ("int", ...) for type errors, "a value" for nulls.
    pub expected: &'static str,
    pub count: u64,
    /// The first (at most [`MAX_ROWS_LISTED`]) row numbers, ascending.
    pub rows: Vec<u64>,
}

impl fmt::Display for ColumnProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<String> = self.rows.iter().map(u64::to_string).collect();
        write!(
            f,
            "column \"{}\" (expected {}): {} row(s), first at row {}",
            self.column,
            self.expected,
            self.count,
            rows.join(", ")
        )
    }
}

fn describe(problems: &[ColumnProblem]) -> String {
    let parts: Vec<String> = problems.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

/// How a source column's name appears in an error: quoted if the schema
/// declares it, otherwise by its 1-based position. A file's header can hold
/// values (a file without a header row, or a header run into its first
/// record: the fuzzer found `score830017`), and no test of the name's shape
/// tells a value from a name, so only the schema's own names are shown.
pub fn column_label(name: &str, position: usize, schema: &DatasetSchema) -> String {
    if schema.columns.iter().any(|c| c.name == name) {
        format!("\"{name}\"")
    } else {
        format!(
            "number {position} (its name is not shown, as it may be a value; is the header row missing?)"
        )
    }
}

/// An accepted upload: the stored batch and its quality report.
#[derive(Debug, Clone)]
pub struct Ingested {
    /// Columns in schema order with [`arrow_schema`] types, identifiers
    /// pseudonymised, rows clustered by privacy-unit pseudonym.
    pub batch: RecordBatch,
    pub report: QualityReport,
}

/// The Arrow schema of stored versions: declared types (int → Int64, float →
/// Float64, text → Utf8, bool → Boolean), pseudonymised columns as Utf8,
/// every column nullable; with a privacy unit, then `UNIT_ROW_COLUMN`.
pub fn arrow_schema(schema: &DatasetSchema) -> SchemaRef {
    let mut fields: Vec<Field> = schema
        .columns
        .iter()
        .map(|c| Field::new(&c.name, arrow_type(c.stored_type()), true))
        .collect();
    if schema.privacy_unit().is_some() {
        fields.push(Field::new(
            sluice_types::schema::UNIT_ROW_COLUMN,
            DataType::Int64,
            true,
        ));
    }
    std::sync::Arc::new(Schema::new(fields))
}

fn arrow_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Int => DataType::Int64,
        ColumnType::Float => DataType::Float64,
        ColumnType::Text => DataType::Utf8,
        ColumnType::Bool => DataType::Boolean,
    }
}

/// Parses, types, checks and pseudonymises an upload.
///
/// Columns are matched by exact name (header names trimmed); order in the
/// output is the schema's. Identifier and privacy-unit columns are replaced
/// by `pseudonymizer.pseudonym(&schema.id_space, canonical_raw)` as they are
/// read (integers in canonical form, so "17", "17.0" and 17 agree). With a
/// privacy-unit column the rows are sorted by its pseudonym (stable, nulls
/// last); without one source order is kept.
pub fn ingest(
    input: &[u8],
    format: DataFormat,
    schema: &DatasetSchema,
    pseudonymizer: &Pseudonymizer,
) -> Result<Ingested, IngestError> {
    ingest_with_limits(
        input,
        format,
        schema,
        pseudonymizer,
        &IngestLimits::default(),
    )
}

/// [`ingest`] within `limits` instead of the defaults.
pub fn ingest_with_limits(
    input: &[u8],
    format: DataFormat,
    schema: &DatasetSchema,
    pseudonymizer: &Pseudonymizer,
    limits: &IngestLimits,
) -> Result<Ingested, IngestError> {
    schema.validate()?;
    if input.len() as u64 > limits.input_bytes {
        return Err(IngestError::Limit {
            what: format!(
                "the file is {} bytes, more than {}",
                input.len(),
                limits.input_bytes
            ),
            limit: Limit::InputSize,
        });
    }
    if schema.columns.len() > limits.columns {
        return Err(IngestError::Limit {
            what: format!(
                "the schema declares {} columns, more than {}",
                schema.columns.len(),
                limits.columns
            ),
            limit: Limit::Columns,
        });
    }
    if input.iter().all(u8::is_ascii_whitespace) {
        return Err(IngestError::Empty);
    }
    let mut sink = convert::Sink::new(schema, pseudonymizer, limits);
    read::read(input, format, &mut sink, limits)?;
    let columns = sink.finish()?;
    let report = quality::report(&columns, schema);
    let batch = convert::to_batch(&columns, schema, pseudonymizer)?;
    Ok(Ingested { batch, report })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_describe_rows_without_values() {
        let e = IngestError::TypeErrors(vec![ColumnProblem {
            column: "age".into(),
            expected: "int",
            count: 3,
            rows: vec![2, 5, 9],
        }]);
        assert_eq!(
            e.to_string(),
            "values of the wrong type: column \"age\" (expected int): 3 row(s), first at row 2, 5, 9"
        );
    }

    #[test]
    fn labels_show_only_the_schema_names() {
        let schema: DatasetSchema =
            toml::from_str(
            "[[columns]]\nname = \"age\"\ntype = \"int\"\n[[columns]]\nname = \"secret_1\"\ntype = \"text\"",
        )
                .unwrap();
        assert_eq!(column_label("age", 2, &schema), "\"age\"");
        assert_eq!(column_label("secret_1", 2, &schema), "\"secret_1\"");
        for value in [
            "Age",
            "score830017",
            "Quill",
            "17000.0",
            "Ada Quill",
            "a@b.org",
            "",
        ] {
            let label = column_label(value, 4, &schema);
            assert!(label.starts_with("number 4 "), "{label}");
            if !value.is_empty() {
                assert!(!label.contains(value), "{label}");
            }
        }
    }
}
