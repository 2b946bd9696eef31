//! Content-addressed Parquet versions and previews of stored versions.

use std::io::Write;
use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::IngestError;

#[derive(Debug, Clone, PartialEq)]
pub struct StoredVersion {
    /// Hex SHA-256 of the file's bytes.
    pub version: String,
    pub path: PathBuf,
    pub bytes: u64,
}

/// Encodes the batch (same batch → same bytes), writes it to a temporary
/// file in `dir`, syncs it and renames it to `<sha256>.parquet`. An existing
/// version with the same content is reused. On error nothing is left behind.
pub fn write_version(batch: &RecordBatch, dir: &Path) -> Result<StoredVersion, IngestError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_created_by("sluice".to_owned())
        .build();
    let mut encoded = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut encoded, batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    let version = sluice_crypto::sha256_hex(&encoded);
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{version}.parquet"));
    let stored = StoredVersion {
        version: version.clone(),
        path: path.clone(),
        bytes: encoded.len() as u64,
    };
    if path.exists() {
        return Ok(stored);
    }
    let tmp = dir.join(format!(".{version}.tmp"));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(&encoded)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    Ok(stored)
}

/// The first `limit` rows of a stored version as JSON objects.
pub fn preview(
    path: &Path,
    limit: usize,
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, IngestError> {
    let file = std::fs::File::open(path)?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)?
        .with_limit(limit)
        .build()?;
    let mut buf = Vec::new();
    {
        let mut writer = arrow::json::ArrayWriter::new(&mut buf);
        for batch in reader {
            writer.write(&batch?)?;
        }
        writer.finish()?;
    }
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_slice(&buf).map_err(|e| IngestError::Io(std::io::Error::other(e)))?;
    Ok(rows.into_iter().take(limit).collect())
}
