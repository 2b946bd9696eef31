use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use arrow::record_batch::RecordBatchReader;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{Raw, Table, malformed};
use crate::IngestError;

/// Columns by name; integers, floats and booleans keep their type, anything
/// else is read as text. Parquet readers can panic on corrupt input, so the
/// read runs under `catch_unwind` (the sandbox process is the outer wall).
pub fn read(input: &[u8]) -> Result<Table, IngestError> {
    let bytes = bytes::Bytes::copy_from_slice(input);
    std::panic::catch_unwind(move || read_inner(bytes))
        .unwrap_or_else(|_| Err(malformed("Parquet", "the file is corrupt")))
}

fn read_inner(bytes: bytes::Bytes) -> Result<Table, IngestError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|_| malformed("Parquet", "not a readable Parquet file"))?
        .build()
        .map_err(|_| malformed("Parquet", "not a readable Parquet file"))?;
    let header: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().trim().to_owned())
        .collect();
    let mut rows: Vec<Vec<Raw>> = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|_| malformed("Parquet", "a row group cannot be decoded"))?;
        let start = rows.len();
        rows.extend((0..batch.num_rows()).map(|_| Vec::with_capacity(header.len())));
        for col in batch.columns() {
            let cells = column_cells(col.as_ref())?;
            for (r, cell) in cells.into_iter().enumerate() {
                rows[start + r].push(cell);
            }
        }
    }
    Ok(Table { header, rows })
}

fn column_cells(col: &dyn Array) -> Result<Vec<Raw>, IngestError> {
    let bad = |_| malformed("Parquet", "a column cannot be converted");
    let ty = col.data_type();
    Ok(if ty.is_integer() {
        let a = cast(col, &DataType::Int64).map_err(bad)?;
        let a = a.as_primitive::<Int64Type>();
        (0..a.len())
            .map(|i| {
                if a.is_null(i) {
                    Raw::Null
                } else {
                    Raw::Int(a.value(i))
                }
            })
            .collect()
    } else if ty.is_floating() || matches!(ty, DataType::Decimal128(..) | DataType::Decimal256(..))
    {
        let a = cast(col, &DataType::Float64).map_err(bad)?;
        let a = a.as_primitive::<Float64Type>();
        (0..a.len())
            .map(|i| {
                if a.is_null(i) {
                    Raw::Null
                } else {
                    Raw::Float(a.value(i))
                }
            })
            .collect()
    } else if *ty == DataType::Boolean {
        let a = col.as_boolean();
        (0..a.len())
            .map(|i| {
                if a.is_null(i) {
                    Raw::Null
                } else {
                    Raw::Bool(a.value(i))
                }
            })
            .collect()
    } else {
        let a = cast(col, &DataType::Utf8).map_err(bad)?;
        let a = a.as_string::<i32>();
        (0..a.len())
            .map(|i| {
                if a.is_null(i) || a.value(i).is_empty() {
                    Raw::Null
                } else {
                    Raw::Str(a.value(i).to_owned())
                }
            })
            .collect()
    })
}
