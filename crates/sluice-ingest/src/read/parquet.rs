//! Parquet: columns matched by name. Integers, floats and booleans keep
//! their type; decimals and everything else are read as text (decimals
//! exactly, so "17000.00" is a valid int); a column that cannot be read as
//! text is a type error in every non-null row.
//!
//! Before any page is decompressed the file is checked within the limits:
//! the footer's length, then from the footer the columns (flat ones only),
//! the rows, the codecs and the declared uncompressed sizes, then every page
//! header (`pages.rs`): the pages' uncompressed sizes, which bound what the
//! SNAPPY, ZSTD and LZ4_RAW decoders may produce, add up within the limit;
//! GZIP pages, whose decoder is not bounded by its header, are inflated here
//! through a cap first; codecs that cannot be bounded are refused. Text
//! columns are read as dictionaries, so a dictionary value is not copied
//! into every row of a batch; where values can still be copied (a chunk that
//! mixes dictionary and plain pages, DELTA_BYTE_ARRAY pages, whose values
//! repeat prefixes of the ones before) or are wide, batches shrink so that
//! one stays within [`BATCH_BYTES`].

mod pages;

use std::io;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::basic::{Compression, Type as PhysicalType};
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use parquet::schema::types::ColumnDescriptor;

use super::malformed;
use crate::convert::{Raw, Sink};
use crate::limits::{Capped, Limit, over};
use crate::{IngestError, IngestLimits};

const PARQUET: &str = "Parquet";
/// Rows per batch at most, and the bytes a batch may take.
const BATCH_ROWS: u64 = 1024;
const BATCH_BYTES: u64 = 64 * 1024 * 1024;
/// What one value may take in a batch besides its physical size (its cast
/// to Int64, Float64 or text).
const VALUE_OVERHEAD: u64 = 48;

pub fn read(input: &[u8], sink: &mut Sink<'_>, limits: &IngestLimits) -> Result<(), IngestError> {
    let n = input.len();
    if n < 12 || &input[n - 4..] != b"PAR1" {
        return Err(malformed(PARQUET, "not a readable Parquet file"));
    }
    let footer = u64::from(u32::from_le_bytes(
        input[n - 8..n - 4].try_into().expect("4 bytes"),
    ));
    // "PAR1", the footer, its length and "PAR1" again.
    if footer + 12 > n as u64 {
        return Err(malformed(PARQUET, "the file is truncated"));
    }
    if footer > limits.footer_bytes {
        return Err(over(
            Limit::FooterSize,
            format!(
                "the Parquet footer is {footer} bytes, more than {}",
                limits.footer_bytes
            ),
        ));
    }
    let bytes = bytes::Bytes::copy_from_slice(input);
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Skip);
    let meta = ArrowReaderMetadata::load(&bytes, options.clone())
        .map_err(|e| malformed(PARQUET, describe(&e)))?;
    check_footer(meta.metadata(), footer, limits, sink)?;
    let copies = check_pages(input, meta.metadata(), footer, limits)?;
    let meta = ArrowReaderMetadata::try_new(
        meta.metadata().clone(),
        options.with_schema(dictionary_schema(meta.schema())),
    )
    .map_err(|e| malformed(PARQUET, describe(&e)))?;
    let batch_size = batch_size(meta.metadata(), &copies);
    let header: Vec<String> = meta
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mapping = sink.header(&header)?;
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, meta)
        .with_batch_size(batch_size)
        .build()
        .map_err(|e| malformed(PARQUET, describe(&e)))?;
    for batch in reader {
        let batch = batch.map_err(|_| malformed(PARQUET, "a row group cannot be decoded"))?;
        let columns: Vec<Cells> = batch.columns().iter().map(Cells::new).collect();
        for r in 0..batch.num_rows() {
            for (&index, col) in mapping.iter().zip(&columns) {
                sink.push(index, col.get(r))?;
            }
            sink.end_record()?;
        }
    }
    Ok(())
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

/// What the footer declares: flat columns within the columns limit, rows,
/// codecs ingest can bound, and uncompressed sizes.
fn check_footer(
    meta: &ParquetMetaData,
    footer: u64,
    limits: &IngestLimits,
    sink: &Sink<'_>,
) -> Result<(), IngestError> {
    let descr = meta.file_metadata().schema_descr();
    if descr.num_columns() > limits.columns {
        return Err(over(
            Limit::Columns,
            format!(
                "the Parquet file has {} columns, more than {}",
                descr.num_columns(),
                limits.columns
            ),
        ));
    }
    for (i, col) in descr.columns().iter().enumerate() {
        if col.path().parts().len() != 1 || col.max_rep_level() > 0 {
            return Err(malformed(
                PARQUET,
                format!(
                    "column {} is nested (a list, map or struct); ingest reads flat columns only",
                    sink.label(&col.path().parts()[0], i + 1)
                ),
            ));
        }
        if col.physical_type() == PhysicalType::FIXED_LEN_BYTE_ARRAY
            && col.type_length() as i64 > limits.cell_bytes as i64
        {
            return Err(over(
                Limit::CellSize,
                format!(
                    "column {} of the Parquet file has fixed-length values of {} bytes, more than {}",
                    sink.label(col.name(), i + 1),
                    col.type_length(),
                    limits.cell_bytes
                ),
            ));
        }
    }
    let mut rows = 0u64;
    let mut declared = footer;
    for rg in meta.row_groups() {
        rows = rows.saturating_add(u64::try_from(rg.num_rows()).unwrap_or(u64::MAX));
        for col in rg.columns() {
            declared =
                declared.saturating_add(u64::try_from(col.uncompressed_size()).unwrap_or(u64::MAX));
            if let Some(codec) = unbounded_codec(col.compression()) {
                return Err(malformed(
                    PARQUET,
                    format!(
                        "unsupported Parquet feature: the {codec} codec (ingest reads SNAPPY, ZSTD, GZIP, LZ4_RAW or uncompressed pages)"
                    ),
                ));
            }
        }
    }
    let rows = rows.max(u64::try_from(meta.file_metadata().num_rows()).unwrap_or(u64::MAX));
    if rows > limits.rows {
        return Err(over(
            Limit::Rows,
            format!(
                "the Parquet file has {rows} rows, more than {}",
                limits.rows
            ),
        ));
    }
    if declared > limits.decompressed_bytes {
        return Err(over(
            Limit::DecompressedSize,
            format!(
                "the Parquet file decompresses to more than {} bytes",
                limits.decompressed_bytes
            ),
        ));
    }
    Ok(())
}

/// Codecs whose decoder in the parquet crate reads to the end of its input
/// whatever the page header says (and that ingest does not inflate itself).
fn unbounded_codec(c: Compression) -> Option<&'static str> {
    match c {
        Compression::UNCOMPRESSED
        | Compression::SNAPPY
        | Compression::ZSTD(_)
        | Compression::LZ4_RAW
        | Compression::GZIP(_) => None,
        Compression::BROTLI(_) => Some("BROTLI"),
        Compression::LZ4 => Some("LZ4 (Hadoop)"),
        Compression::LZO => Some("LZO"),
    }
}

/// Walks every page header of every column chunk (see the module doc).
/// Returns, per column, the bytes one value may take in a batch when the
/// reader copies it from elsewhere: the largest dictionary page of a chunk
/// that also has pages not encoded with it (the reader then copies
/// dictionary values into the batch), plus the largest DELTA_BYTE_ARRAY page
/// (a value there is a prefix of the one before and a suffix, so at most the
/// page).
fn check_pages(
    input: &[u8],
    meta: &ParquetMetaData,
    footer: u64,
    limits: &IngestLimits,
) -> Result<Vec<u64>, IngestError> {
    let truncated = || malformed(PARQUET, "the file is truncated");
    let bad_header = || malformed(PARQUET, "a page header cannot be read");
    let mut copies = vec![0u64; meta.file_metadata().schema_descr().num_columns()];
    let mut total = footer;
    for rg in meta.row_groups() {
        for (c, col) in rg.columns().iter().enumerate() {
            let (start, len) = col.byte_range();
            let start = usize::try_from(start).map_err(|_| truncated())?;
            let end = usize::try_from(len)
                .ok()
                .and_then(|len| start.checked_add(len))
                .filter(|&end| end <= input.len())
                .ok_or_else(truncated)?;
            let gzip = matches!(col.compression(), Compression::GZIP(_));
            let (mut dictionary, mut other_pages, mut delta) = (0u64, false, 0u64);
            let mut pos = start;
            while pos < end {
                let h = pages::read_header(&input[pos..end]).ok_or_else(bad_header)?;
                let data = pos + h.len;
                let data_end = data
                    .checked_add(h.compressed as usize)
                    .filter(|&e| e <= end)
                    .ok_or_else(truncated)?;
                let uncompressed = h.uncompressed as u64;
                total = total.saturating_add(uncompressed);
                if total > limits.decompressed_bytes {
                    return Err(over(
                        Limit::DecompressedSize,
                        format!(
                            "the Parquet pages decompress to more than {} bytes",
                            limits.decompressed_bytes
                        ),
                    ));
                }
                if h.encoding == Some(pages::DELTA_BYTE_ARRAY) {
                    delta = delta.max(uncompressed);
                }
                match h.kind {
                    pages::DICTIONARY_PAGE => dictionary = dictionary.max(uncompressed),
                    pages::DATA_PAGE | pages::DATA_PAGE_V2
                        if !matches!(
                            h.encoding,
                            Some(pages::PLAIN_DICTIONARY | pages::RLE_DICTIONARY)
                        ) =>
                    {
                        other_pages = true
                    }
                    _ => {}
                }
                if gzip && (h.kind != pages::DATA_PAGE_V2 || h.is_compressed) {
                    let levels = if h.kind == pages::DATA_PAGE_V2 {
                        h.levels as usize
                    } else {
                        0
                    };
                    if let Some(compressed) = input[data..data_end].get(levels..) {
                        check_gzip(compressed, uncompressed.saturating_sub(levels as u64))?;
                    }
                }
                pos = data_end;
            }
            let copied = if other_pages { dictionary } else { 0 } + delta;
            if let Some(c) = copies.get_mut(c) {
                *c = (*c).max(copied);
            }
        }
    }
    Ok(copies)
}

/// Inflates a GZIP page through a cap of its declared size: the parquet
/// crate's GZIP decoder would read it to the end, however large.
fn check_gzip(compressed: &[u8], declared: u64) -> Result<(), IngestError> {
    let mut capped = Capped::new(flate2::read::MultiGzDecoder::new(compressed), declared);
    match io::copy(&mut capped, &mut io::sink()) {
        Err(_) if capped.over => Err(over(
            Limit::DecompressedSize,
            format!(
                "a Parquet GZIP page decompresses to more than the {declared} bytes its header declares"
            ),
        )),
        // A corrupt page is the reader's to report.
        _ => Ok(()),
    }
}

/// The file's schema with every text or binary column read as a dictionary.
fn dictionary_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let values = match f.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
                DataType::Binary | DataType::LargeBinary | DataType::BinaryView => DataType::Binary,
                _ => return f.as_ref().clone(),
            };
            f.as_ref().clone().with_data_type(DataType::Dictionary(
                Box::new(DataType::Int32),
                Box::new(values),
            ))
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Rows per batch: [`BATCH_ROWS`], or fewer so that a batch of fixed-size
/// and copied values stays within [`BATCH_BYTES`].
fn batch_size(meta: &ParquetMetaData, copies: &[u64]) -> usize {
    let descr = meta.file_metadata().schema_descr();
    let width: u64 = descr
        .columns()
        .iter()
        .zip(copies)
        .map(|(col, copied)| physical_width(col) + VALUE_OVERHEAD + copied)
        .sum();
    (BATCH_BYTES / width.max(1)).clamp(1, BATCH_ROWS) as usize
}

fn physical_width(col: &ColumnDescriptor) -> u64 {
    match col.physical_type() {
        PhysicalType::BOOLEAN => 1,
        PhysicalType::INT32 | PhysicalType::FLOAT => 4,
        PhysicalType::INT64 | PhysicalType::DOUBLE => 8,
        PhysicalType::INT96 => 12,
        // A dictionary key; the values are shared by every batch.
        PhysicalType::BYTE_ARRAY => 4,
        PhysicalType::FIXED_LEN_BYTE_ARRAY => u64::try_from(col.type_length()).unwrap_or(0),
    }
}

/// A column in one of the shapes the sink takes.
enum Cells {
    Int(ArrayRef),
    Float(ArrayRef),
    Bool(ArrayRef),
    Text(ArrayRef),
    /// Text through a dictionary: the column, its keys and its values as Utf8.
    Dictionary(ArrayRef, Vec<usize>, ArrayRef),
    /// Not convertible: every non-null cell is invalid.
    Invalid(ArrayRef),
}

impl Cells {
    fn new(col: &ArrayRef) -> Self {
        let strict = CastOptions {
            safe: false,
            ..Default::default()
        };
        let to = |a: &ArrayRef, ty: &DataType| cast_with_options(a, ty, &strict).ok();
        let ty = col.data_type();
        let converted = if let DataType::Dictionary(_, _) = ty {
            let dict = col.as_any_dictionary();
            to(dict.values(), &DataType::Utf8)
                .map(|values| Cells::Dictionary(col.clone(), dict.normalized_keys(), values))
        } else if ty.is_integer() && *ty != DataType::UInt64 {
            to(col, &DataType::Int64).map(Cells::Int)
        } else if ty.is_floating() {
            to(col, &DataType::Float64).map(Cells::Float)
        } else if *ty == DataType::Boolean {
            Some(Cells::Bool(col.clone()))
        } else {
            to(col, &DataType::Utf8).map(Cells::Text)
        };
        converted.unwrap_or_else(|| Cells::Invalid(col.clone()))
    }

    fn get(&self, r: usize) -> Raw<'_> {
        let (Cells::Int(a)
        | Cells::Float(a)
        | Cells::Bool(a)
        | Cells::Text(a)
        | Cells::Dictionary(a, _, _)
        | Cells::Invalid(a)) = self;
        if a.is_null(r) {
            return Raw::Null;
        }
        match self {
            Cells::Int(a) => Raw::Int(a.as_primitive::<Int64Type>().value(r)),
            Cells::Float(a) => Raw::Float(a.as_primitive::<Float64Type>().value(r)),
            Cells::Bool(a) => Raw::Bool(a.as_boolean().value(r)),
            Cells::Text(a) => Raw::Str(a.as_string::<i32>().value(r)),
            Cells::Dictionary(_, keys, values) => {
                let k = keys[r];
                if values.is_null(k) {
                    Raw::Null
                } else {
                    Raw::Str(values.as_string::<i32>().value(k))
                }
            }
            Cells::Invalid(_) => Raw::Invalid,
        }
    }
}
