use super::{Raw, Table, malformed};
use crate::IngestError;

pub fn read(input: &[u8]) -> Result<Table, IngestError> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(input);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| malformed("CSV", position_only(&e)))?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_owned())
        .collect();
    if header.iter().all(String::is_empty) {
        return Err(IngestError::Empty);
    }
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let row = i as u64 + 1;
        let record =
            record.map_err(|e| malformed("CSV", format!("row {row}: {}", position_only(&e))))?;
        if record.len() != header.len() {
            return Err(IngestError::Ragged {
                row,
                expected: header.len(),
                found: record.len(),
            });
        }
        rows.push(
            record
                .iter()
                .map(|f| {
                    if f.is_empty() {
                        Raw::Null
                    } else {
                        Raw::Str(f.to_owned())
                    }
                })
                .collect(),
        );
    }
    Ok(Table { header, rows })
}

/// csv errors can quote input (invalid UTF-8 bytes); keep only the kind.
fn position_only(e: &::csv::Error) -> String {
    match e.kind() {
        ::csv::ErrorKind::Utf8 { .. } => "text is not valid UTF-8".into(),
        ::csv::ErrorKind::UnequalLengths { .. } => "rows of unequal length".into(),
        ::csv::ErrorKind::Io(_) => "read error".into(),
        _ => "cannot be parsed".into(),
    }
}
