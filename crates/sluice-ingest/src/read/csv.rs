//! CSV with a header row. Field counts are checked here (the csv crate runs
//! in flexible mode) so that a ragged row is reported by its number.

use super::malformed;
use crate::IngestError;
use crate::convert::{Raw, Sink};

const CSV: &str = "CSV";

pub fn read(input: &[u8], sink: &mut Sink<'_>) -> Result<(), IngestError> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(input);
    let header = reader
        .byte_headers()
        .map_err(|e| malformed(CSV, format!("header: {}", kind_only(&e))))?;
    if header.is_empty() {
        return Err(IngestError::Empty);
    }
    sink.check_width(header.len())?;
    let mut names = Vec::with_capacity(header.len());
    for (i, name) in header.iter().enumerate() {
        let name = std::str::from_utf8(name)
            .map_err(|_| malformed(CSV, format!("header field {} is not valid UTF-8", i + 1)))?;
        names.push(name.trim_start_matches('\u{feff}').trim().to_owned());
    }
    let mapping = sink.header(&names)?;
    let mut record = ::csv::ByteRecord::new();
    loop {
        let row = sink.rows() + 1;
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(malformed(CSV, format!("row {row}: {}", kind_only(&e)))),
        }
        if record.len() != names.len() {
            return Err(IngestError::Ragged {
                row,
                expected: names.len(),
                found: record.len(),
            });
        }
        for (field, (&index, bytes)) in mapping.iter().zip(record.iter()).enumerate() {
            let text = std::str::from_utf8(bytes).map_err(|_| {
                malformed(
                    CSV,
                    format!("row {row}, field {}: text is not valid UTF-8", field + 1),
                )
            })?;
            sink.push(index, Raw::Str(text))?;
        }
        sink.end_record()?;
    }
    Ok(())
}

/// csv errors can quote input; keep only the kind.
fn kind_only(e: &::csv::Error) -> &'static str {
    match e.kind() {
        ::csv::ErrorKind::Utf8 { .. } => "text is not valid UTF-8",
        ::csv::ErrorKind::UnequalLengths { .. } => "rows of unequal length",
        ::csv::ErrorKind::Io(_) => "read error",
        _ => "cannot be parsed",
    }
}
