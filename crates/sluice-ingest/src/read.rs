//! Readers: every format pushes its records, cell by cell, into a [`Sink`].
//!
//! Readers must not put input text into errors: parser messages are reduced
//! to a kind and a position before they become [`IngestError::Malformed`].
//! Every reader runs under `catch_unwind`: the parsers of XLSX and Parquet
//! (and any other) may panic on corrupt input, which must be an error.

mod csv;
mod json;
mod parquet;
mod xlsx;
mod xml;

use std::panic::{AssertUnwindSafe, catch_unwind};

use sluice_types::DataFormat;

use crate::convert::Sink;
use crate::{IngestError, IngestLimits};

pub fn read(
    input: &[u8],
    format: DataFormat,
    sink: &mut Sink<'_>,
    limits: &IngestLimits,
) -> Result<(), IngestError> {
    let (name, outcome) = match format {
        DataFormat::Csv => (
            "CSV",
            catch_unwind(AssertUnwindSafe(|| csv::read(input, sink))),
        ),
        DataFormat::Json => (
            "JSON",
            catch_unwind(AssertUnwindSafe(|| json::read(input, sink))),
        ),
        DataFormat::Xml => (
            "XML",
            catch_unwind(AssertUnwindSafe(|| xml::read(input, sink))),
        ),
        DataFormat::Xlsx => (
            "XLSX",
            catch_unwind(AssertUnwindSafe(|| xlsx::read(input, sink, limits))),
        ),
        DataFormat::Parquet => (
            "Parquet",
            catch_unwind(AssertUnwindSafe(|| parquet::read(input, sink, limits))),
        ),
    };
    // The sink may be half-filled; it is dropped with the error.
    outcome.unwrap_or_else(|_| Err(malformed(name, "the file is corrupt (the reader failed)")))
}

fn malformed(format: &'static str, detail: impl Into<String>) -> IngestError {
    IngestError::Malformed {
        format,
        detail: detail.into(),
    }
}
