use std::io::Cursor;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};

use super::{Raw, Table, malformed};
use crate::IngestError;

/// The first worksheet; its first row is the header.
pub fn read(input: &[u8]) -> Result<Table, IngestError> {
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(input))
        .map_err(|_| malformed("XLSX", "not a readable workbook"))?;
    let range = book
        .worksheet_range_at(0)
        .ok_or_else(|| malformed("XLSX", "the workbook has no worksheet"))?
        .map_err(|_| malformed("XLSX", "the first worksheet cannot be read"))?;
    let mut rows = range.rows();
    let header: Vec<String> = match rows.next() {
        Some(h) => h
            .iter()
            .map(|c| match c {
                Data::String(s) => s.trim().to_owned(),
                Data::Empty => String::new(),
                other => other.to_string(),
            })
            .collect(),
        None => return Err(IngestError::Empty),
    };
    // Trailing empty header cells are formatting, not columns.
    let width = header
        .iter()
        .rposition(|h| !h.is_empty())
        .map_or(0, |i| i + 1);
    let header = header[..width].to_vec();
    let mut out = Vec::new();
    for (i, r) in rows.enumerate() {
        if r.iter().all(|c| matches!(c, Data::Empty)) {
            continue;
        }
        if r.iter().skip(width).any(|c| !matches!(c, Data::Empty)) {
            return Err(IngestError::Ragged {
                row: i as u64 + 1,
                expected: width,
                found: r.len(),
            });
        }
        out.push(
            (0..width)
                .map(|c| match r.get(c).unwrap_or(&Data::Empty) {
                    Data::Empty => Raw::Null,
                    Data::Int(v) => Raw::Int(*v),
                    Data::Float(v) => Raw::Float(*v),
                    Data::Bool(v) => Raw::Bool(*v),
                    Data::String(s) if s.is_empty() => Raw::Null,
                    Data::String(s) => Raw::Str(s.clone()),
                    Data::DateTimeIso(s) | Data::DurationIso(s) => Raw::Str(s.clone()),
                    Data::DateTime(d) => Raw::Str(d.to_string()),
                    Data::Error(_) => Raw::Invalid,
                })
                .collect(),
        );
    }
    Ok(Table { header, rows: out })
}
