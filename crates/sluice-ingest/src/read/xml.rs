use quick_xml::Reader;
use quick_xml::events::Event;

use super::{Raw, Table, malformed};
use crate::IngestError;

/// Flat records: every child of the root is a record, every child of a
/// record a column; an empty or missing element is null.
pub fn read(input: &[u8]) -> Result<Table, IngestError> {
    let mut reader = Reader::from_reader(input);
    let mut buf = Vec::new();
    let mut depth = 0usize;
    let mut header: Vec<String> = Vec::new();
    let mut records: Vec<Vec<(usize, String)>> = Vec::new();
    let mut column: Option<usize> = None;
    let mut text = String::new();
    let bad = |e: &dyn std::fmt::Display| malformed("XML", e);
    loop {
        let event = reader.read_event_into(&mut buf).map_err(|_| {
            malformed(
                "XML",
                format!("syntax error near byte {}", reader.error_position()),
            )
        })?;
        match event {
            Event::Start(e) => {
                depth += 1;
                match depth {
                    2 => records.push(Vec::new()),
                    3 => {
                        let name = String::from_utf8_lossy(e.local_name().as_ref())
                            .trim()
                            .to_owned();
                        column = Some(column_index(&mut header, name));
                        text.clear();
                    }
                    d if d > 3 => {
                        return Err(malformed(
                            "XML",
                            format!(
                                "record {} is nested deeper than flat columns",
                                records.len()
                            ),
                        ));
                    }
                    _ => {}
                }
            }
            Event::Empty(e) => {
                if depth == 2 {
                    let name = String::from_utf8_lossy(e.local_name().as_ref())
                        .trim()
                        .to_owned();
                    column_index(&mut header, name);
                } else if depth == 1 {
                    records.push(Vec::new());
                }
            }
            Event::Text(t) if depth == 3 => text.push_str(&t.decode().map_err(|e| bad(&e))?),
            Event::CData(t) if depth == 3 => text.push_str(&t.decode().map_err(|e| bad(&e))?),
            Event::GeneralRef(r) if depth == 3 => {
                if let Some(c) = r
                    .resolve_char_ref()
                    .map_err(|_| malformed("XML", "bad character reference"))?
                {
                    text.push(c);
                } else {
                    let name = r.decode().map_err(|e| bad(&e))?;
                    let resolved = quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| malformed("XML", "unknown entity"))?;
                    text.push_str(resolved);
                }
            }
            Event::End(_) => {
                if depth == 3
                    && let (Some(c), Some(rec)) = (column.take(), records.last_mut())
                {
                    rec.push((c, std::mem::take(&mut text)));
                }
                depth = depth.saturating_sub(1);
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if depth != 0 {
        return Err(malformed("XML", "unclosed element"));
    }
    let rows = records
        .into_iter()
        .map(|rec| {
            let mut row = vec![Raw::Null; header.len()];
            for (c, v) in rec {
                let v = v.trim();
                row[c] = if v.is_empty() {
                    Raw::Null
                } else {
                    Raw::Str(v.to_owned())
                };
            }
            row
        })
        .collect();
    Ok(Table { header, rows })
}

fn column_index(header: &mut Vec<String>, name: String) -> usize {
    match header.iter().position(|h| *h == name) {
        Some(i) => i,
        None => {
            header.push(name);
            header.len() - 1
        }
    }
}
