//! Readers: every format pushes its records, cell by cell, into a [`Sink`].
//!
//! Readers must not put input text into errors: parser messages are reduced
//! to a kind and a position before they become [`IngestError::Malformed`].

mod csv;
mod json;
mod parquet;
mod xlsx;
mod xml;

use sluice_types::DataFormat;

use crate::IngestError;
use crate::convert::Sink;

pub fn read(input: &[u8], format: DataFormat, sink: &mut Sink<'_>) -> Result<(), IngestError> {
    match format {
        DataFormat::Csv => csv::read(input, sink),
        DataFormat::Json => json::read(input, sink),
        DataFormat::Xml => xml::read(input, sink),
        DataFormat::Xlsx => xlsx::read(input, sink),
        DataFormat::Parquet => parquet::read(input, sink),
    }
}

fn malformed(format: &'static str, detail: impl Into<String>) -> IngestError {
    IngestError::Malformed {
        format,
        detail: detail.into(),
    }
}
