//! Content-addressed Parquet versions and previews of stored versions.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::{Map, Value};
use sluice_crypto::Sha256;

use crate::IngestError;

/// A stored version: `path` is `dir/<version>.parquet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    /// Hex SHA-256 of the file's bytes.
    pub version: String,
    pub path: PathBuf,
    pub bytes: u64,
}

/// Hashes and counts everything written through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Same batch, same bytes: fixed properties, fixed `created_by`, no
/// timestamps anywhere in the file.
fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_created_by("sluice-ingest".to_owned())
        .build()
}

/// Writes the batch as Parquet to a temporary file in `dir` (created if
/// missing), hashing the bytes as they are written, syncs it and renames it
/// atomically to `dir/<sha256>.parquet`. If that version already exists the
/// temporary file is removed and the existing one returned. On any error
/// nothing is left behind in `dir`.
pub fn write_version(batch: &RecordBatch, dir: &Path) -> Result<StoredVersion, IngestError> {
    std::fs::create_dir_all(dir)?;
    // Removed on drop, so every early return below cleans up.
    let tmp = tempfile::Builder::new()
        .prefix(".incoming-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    let mut out = Hashing {
        inner: BufWriter::new(tmp),
        hasher: Sha256::default(),
        bytes: 0,
    };
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(writer_properties()))?;
    writer.write(batch)?;
    writer.close()?;
    let Hashing {
        inner,
        hasher,
        bytes,
    } = out;
    let tmp = inner.into_inner().map_err(|e| e.into_error())?;
    tmp.as_file().sync_all()?;
    let version = hasher.finish_hex();
    let path = dir.join(format!("{version}.parquet"));
    if path.exists() {
        drop(tmp);
        let bytes = std::fs::metadata(&path)?.len();
        return Ok(StoredVersion {
            version,
            path,
            bytes,
        });
    }
    tmp.persist(&path).map_err(|e| e.error)?;
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        let _ = std::fs::remove_file(&path);
        return Err(e.into());
    }
    Ok(StoredVersion {
        version,
        path,
        bytes,
    })
}

/// The first `limit` rows of a stored version as JSON objects (nulls as
/// `null`). For unconditional data only: this returns real values.
pub fn preview(path: &Path, limit: usize) -> Result<Vec<Map<String, Value>>, IngestError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let file = File::open(path)?;
    catch_unwind(AssertUnwindSafe(|| preview_inner(file, limit))).unwrap_or_else(|_| {
        Err(IngestError::Malformed {
            format: "Parquet",
            detail: "the stored version is corrupt".to_owned(),
        })
    })
}

fn preview_inner(file: File, limit: usize) -> Result<Vec<Map<String, Value>>, IngestError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)?
        .with_batch_size(limit.min(8192))
        .with_limit(limit)
        .build()?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch?;
        let schema = batch.schema();
        let columns: Vec<ArrayRef> = batch.columns().iter().map(as_json_able).collect();
        for r in 0..batch.num_rows() {
            if rows.len() == limit {
                return Ok(rows);
            }
            let row: Map<String, Value> = schema
                .fields()
                .iter()
                .zip(&columns)
                // The bounding index is Sluice's, not the provider's data.
                .filter(|(f, _)| f.name() != sluice_types::schema::UNIT_ROW_COLUMN)
                .map(|(f, col)| (f.name().clone(), json_cell(col, r)))
                .collect();
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Stored columns are Int64, Float64, Utf8 or Boolean; anything else is
/// shown as text (or null if it has no text form).
fn as_json_able(col: &ArrayRef) -> ArrayRef {
    match col.data_type() {
        DataType::Int64 | DataType::Float64 | DataType::Utf8 | DataType::Boolean => col.clone(),
        _ => cast(col, &DataType::Utf8)
            .unwrap_or_else(|_| arrow::array::new_null_array(&DataType::Utf8, col.len())),
    }
}

fn json_cell(col: &ArrayRef, r: usize) -> Value {
    if col.is_null(r) {
        return Value::Null;
    }
    match col.data_type() {
        DataType::Int64 => Value::from(col.as_primitive::<Int64Type>().value(r)),
        DataType::Float64 => {
            serde_json::Number::from_f64(col.as_primitive::<Float64Type>().value(r))
                .map_or(Value::Null, Value::Number)
        }
        DataType::Boolean => Value::Bool(col.as_boolean().value(r)),
        _ => Value::String(col.as_string::<i32>().value(r).to_owned()),
    }
}
