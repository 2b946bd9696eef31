//! XLSX: the first worksheet; its first row is the header. Blank rows are
//! skipped (they are not records); numbers may arrive as floats; date cells
//! become ISO 8601 text.

use std::io::Cursor;

use calamine::{Data, ExcelDateTime, Reader, Xlsx, open_workbook_from_rs};

use super::malformed;
use crate::IngestError;
use crate::convert::{Raw, Sink};

const XLSX: &str = "XLSX";

pub fn read(input: &[u8], sink: &mut Sink<'_>) -> Result<(), IngestError> {
    // calamine's errors can quote cell contents: only their kind is kept.
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(input))
        .map_err(|_| malformed(XLSX, "not a readable workbook"))?;
    let range = book
        .worksheet_range_at(0)
        .ok_or_else(|| malformed(XLSX, "the workbook has no worksheet"))?
        .map_err(|_| malformed(XLSX, "the first worksheet cannot be read"))?;
    let mut rows = range.rows();
    let Some(header) = rows.next() else {
        return Err(IngestError::Empty);
    };
    let header: Vec<String> = header
        .iter()
        .map(|c| match c {
            Data::String(s) => s.trim().to_owned(),
            Data::Empty => String::new(),
            other => other.to_string(),
        })
        .collect();
    // Trailing empty header cells are formatting, not columns.
    let width = header
        .iter()
        .rposition(|h| !h.is_empty())
        .map_or(0, |i| i + 1);
    let mapping = sink.header(&header[..width])?;
    for r in rows {
        let Some(last) = r.iter().rposition(|c| !matches!(c, Data::Empty)) else {
            continue;
        };
        if last >= width {
            return Err(IngestError::Ragged {
                row: sink.rows() + 1,
                expected: width,
                found: last + 1,
            });
        }
        for (&index, cell) in mapping.iter().zip(r) {
            let date;
            let raw = match cell {
                Data::Empty => Raw::Null,
                Data::Int(v) => Raw::Int(*v),
                Data::Float(v) => Raw::Float(*v),
                Data::Bool(v) => Raw::Bool(*v),
                Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => Raw::Str(s),
                Data::DateTime(d) if d.is_datetime() => {
                    date = iso_date(d);
                    Raw::Str(&date)
                }
                Data::DateTime(d) => Raw::Float(d.as_f64()),
                Data::Error(_) => Raw::Invalid,
            };
            sink.push(index, raw);
        }
        sink.end_record();
    }
    Ok(())
}

/// "2025-10-13" for a whole day, "2025-10-13T12:59:02.400" otherwise.
fn iso_date(d: &ExcelDateTime) -> String {
    let (y, mo, day, h, mi, s, ms) = d.to_ymd_hms_milli();
    match (h, mi, s, ms) {
        (0, 0, 0, 0) => format!("{y:04}-{mo:02}-{day:02}"),
        (_, _, _, 0) => format!("{y:04}-{mo:02}-{day:02}T{h:02}:{mi:02}:{s:02}"),
        _ => format!("{y:04}-{mo:02}-{day:02}T{h:02}:{mi:02}:{s:02}.{ms:03}"),
    }
}
