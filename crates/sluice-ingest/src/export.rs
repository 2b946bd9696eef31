//! CSV exports of stored versions, for downloads of unconditional data.
//! The file goes to people who open it in spreadsheets, so every text cell
//! is neutralised (`sluice_types::text::csv_text_field`): a provider's cell
//! `=1+1` arrives as the text `'=1+1`, never as a formula. Sluice's own
//! bounding column (`__sluice_unit_row`) is not the provider's data and is
//! left out, as in previews.

use std::fmt::Write as _;
use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sluice_types::text::csv_text_field;

use crate::IngestError;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the CSV form of this version is larger than {max} bytes")]
    TooLarge { max: usize },
    #[error("reading the stored version: {0}")]
    Read(#[from] IngestError),
}

/// Every row of a stored version as CSV: a header of column names, then one
/// line per row (CRLF line ends, RFC 4180). Text cells (and the names) are
/// quoted and neutralised; integers, floats and booleans are written as
/// such; a null is an empty unquoted field, an empty text `""`. Fails
/// rather than return more than `max_bytes`.
pub fn export_csv(path: &Path, max_bytes: usize) -> Result<String, ExportError> {
    let file = File::open(path).map_err(IngestError::from)?;
    catch_unwind(AssertUnwindSafe(|| export_inner(file, max_bytes))).unwrap_or_else(|_| {
        Err(ExportError::Read(IngestError::Malformed {
            format: "Parquet",
            detail: "the stored version is corrupt".to_owned(),
        }))
    })
}

fn export_inner(file: File, max_bytes: usize) -> Result<String, ExportError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(IngestError::from)?;
    let keep: Vec<usize> = builder
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| f.name() != sluice_types::schema::UNIT_ROW_COLUMN)
        .map(|(i, _)| i)
        .collect();
    let names: Vec<String> = keep
        .iter()
        .map(|&i| csv_text_field(builder.schema().field(i).name()))
        .collect();
    let mut out = names.join(",");
    out.push_str("\r\n");
    let reader = builder
        .with_batch_size(8192)
        .build()
        .map_err(IngestError::from)?;
    for batch in reader {
        let batch = batch.map_err(IngestError::from)?;
        let columns: Vec<ArrayRef> = keep.iter().map(|&i| batch.column(i).clone()).collect();
        for r in 0..batch.num_rows() {
            for (c, col) in columns.iter().enumerate() {
                if c > 0 {
                    out.push(',');
                }
                write_cell(&mut out, col, r);
            }
            out.push_str("\r\n");
            if out.len() > max_bytes {
                return Err(ExportError::TooLarge { max: max_bytes });
            }
        }
    }
    if out.len() > max_bytes {
        return Err(ExportError::TooLarge { max: max_bytes });
    }
    Ok(out)
}

fn write_cell(out: &mut String, col: &ArrayRef, r: usize) {
    if col.is_null(r) {
        return;
    }
    match col.data_type() {
        DataType::Int64 => {
            let _ = write!(out, "{}", col.as_primitive::<Int64Type>().value(r));
        }
        DataType::Float64 => {
            let _ = write!(out, "{}", col.as_primitive::<Float64Type>().value(r));
        }
        DataType::Boolean => out.push_str(if col.as_boolean().value(r) {
            "true"
        } else {
            "false"
        }),
        DataType::Utf8 => out.push_str(&csv_text_field(col.as_string::<i32>().value(r))),
        // Stored versions hold only the four types above; anything else is
        // written as its text form.
        _ => match cast(&col.slice(r, 1), &DataType::Utf8) {
            Ok(text) if !text.is_null(0) => {
                out.push_str(&csv_text_field(text.as_string::<i32>().value(0)))
            }
            _ => {}
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_types::schema::DatasetSchema;

    fn stored(csv: &str, schema_toml: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let schema: DatasetSchema = toml::from_str(schema_toml).unwrap();
        let p = sluice_crypto::Pseudonymizer::new(&[7; 32]);
        let ingested =
            crate::ingest(csv.as_bytes(), sluice_types::DataFormat::Csv, &schema, &p).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let v = crate::write_version(&ingested.batch, dir.path()).unwrap();
        (dir, v.path)
    }

    #[test]
    fn formula_cells_are_neutralised_and_numbers_kept() {
        let schema = r#"
            id_space = "person"
            [[columns]]
            name = "pid"
            type = "text"
            role = "privacy_unit"
            [[columns]]
            name = "note"
            type = "text"
            [[columns]]
            name = "n"
            type = "int"
            [[columns]]
            name = "x"
            type = "float"
        "#;
        let csv = "pid,note,n,x\n1,=1+1,-2,-2.5\n2,+A1,3,\n3,@SUM(A1),4,0.5\n4,-2,5,1\n5,\"a,\"\"b\"\"\",6,2\n";
        let (_dir, path) = stored(csv, schema);
        let out = export_csv(&path, 1 << 20).unwrap();
        let mut lines: Vec<&str> = out.split("\r\n").collect();
        assert_eq!(lines.pop(), Some(""));
        // No bounding column; the pseudonym replaces each pid.
        assert_eq!(lines[0], "\"pid\",\"note\",\"n\",\"x\"");
        let mut rows: Vec<String> = lines[1..]
            .iter()
            .map(|l| l.split_once(',').unwrap().1.to_owned())
            .collect();
        rows.sort();
        assert_eq!(
            rows,
            [
                "\"'+A1\",3,",
                "\"'-2\",5,1",
                "\"'=1+1\",-2,-2.5",
                "\"'@SUM(A1)\",4,0.5",
                "\"a,\"\"b\"\"\",6,2",
            ]
        );
        assert!(
            lines[1..]
                .iter()
                .all(|l| l.starts_with('"') && l.len() > 34)
        );
    }

    #[test]
    fn too_large_an_export_is_refused() {
        let schema = "[[columns]]\nname = \"a\"\ntype = \"int\"\n";
        let (_dir, path) = stored("a\n1\n2\n3\n", schema);
        assert!(matches!(
            export_csv(&path, 8),
            Err(ExportError::TooLarge { max: 8 })
        ));
        assert_eq!(export_csv(&path, 100).unwrap(), "\"a\"\r\n1\r\n2\r\n3\r\n");
    }
}
