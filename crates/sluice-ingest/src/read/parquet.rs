//! Parquet: columns matched by name. Integers, floats and booleans keep
//! their type; decimals and everything else are read as text (decimals
//! exactly, so "17000.00" is a valid int); a column that cannot be read as
//! text is a type error in every non-null row.
//!
//! Parquet decoders can panic on corrupt input, so the whole read runs under
//! `catch_unwind` and a panic becomes [`IngestError::Malformed`].

use std::panic::{AssertUnwindSafe, catch_unwind};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use arrow::record_batch::RecordBatchReader;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::errors::ParquetError;

use super::malformed;
use crate::IngestError;
use crate::convert::{Raw, Sink};

const PARQUET: &str = "Parquet";

pub fn read(input: &[u8], sink: &mut Sink<'_>) -> Result<(), IngestError> {
    let bytes = bytes::Bytes::copy_from_slice(input);
    catch_unwind(AssertUnwindSafe(|| read_inner(bytes, sink))).unwrap_or_else(|_| {
        Err(malformed(
            PARQUET,
            "the file is corrupt (the Parquet decoder failed)",
        ))
    })
}

/// Parquet errors are structural, but may still quote bytes of the file;
/// only "not yet implemented" messages (which name features) are kept.
fn describe(e: &ParquetError) -> String {
    match e {
        ParquetError::NYI(what) => format!("unsupported Parquet feature: {what}"),
        ParquetError::EOF(_) => "the file is truncated".to_owned(),
        _ => "not a readable Parquet file".to_owned(),
    }
}

fn read_inner(bytes: bytes::Bytes, sink: &mut Sink<'_>) -> Result<(), IngestError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| malformed(PARQUET, describe(&e)))?;
    let header: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mapping = sink.header(&header)?;
    for batch in reader {
        let batch = batch.map_err(|_| malformed(PARQUET, "a row group cannot be decoded"))?;
        let columns: Vec<Cells> = batch.columns().iter().map(Cells::new).collect();
        for r in 0..batch.num_rows() {
            for (&index, col) in mapping.iter().zip(&columns) {
                sink.push(index, col.get(r));
            }
            sink.end_record();
        }
    }
    Ok(())
}

/// A column in one of the shapes the sink takes.
enum Cells {
    Int(ArrayRef),
    Float(ArrayRef),
    Bool(ArrayRef),
    Text(ArrayRef),
    /// Not convertible: every non-null cell is invalid.
    Invalid(ArrayRef),
}

impl Cells {
    fn new(col: &ArrayRef) -> Self {
        let strict = CastOptions {
            safe: false,
            ..Default::default()
        };
        let to = |ty: &DataType| cast_with_options(col, ty, &strict).ok();
        let ty = col.data_type();
        let converted = if ty.is_integer() && *ty != DataType::UInt64 {
            to(&DataType::Int64).map(Cells::Int)
        } else if ty.is_floating() {
            to(&DataType::Float64).map(Cells::Float)
        } else if *ty == DataType::Boolean {
            Some(Cells::Bool(col.clone()))
        } else {
            to(&DataType::Utf8).map(Cells::Text)
        };
        converted.unwrap_or_else(|| Cells::Invalid(col.clone()))
    }

    fn get(&self, r: usize) -> Raw<'_> {
        let (Cells::Int(a) | Cells::Float(a) | Cells::Bool(a) | Cells::Text(a) | Cells::Invalid(a)) =
            self;
        if a.is_null(r) {
            return Raw::Null;
        }
        match self {
            Cells::Int(a) => Raw::Int(a.as_primitive::<Int64Type>().value(r)),
            Cells::Float(a) => Raw::Float(a.as_primitive::<Float64Type>().value(r)),
            Cells::Bool(a) => Raw::Bool(a.as_boolean().value(r)),
            Cells::Text(a) => Raw::Str(a.as_string::<i32>().value(r)),
            Cells::Invalid(_) => Raw::Invalid,
        }
    }
}
