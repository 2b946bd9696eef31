//! Flat XML records: `<root><record><col>value</col>...</record>...</root>`.
//! Every child element of the root is a record, every child of a record a
//! column (by local name); an empty or missing column element is null.
//! Values are trimmed of surrounding whitespace.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::malformed;
use crate::IngestError;
use crate::convert::{Raw, Sink};

const XML: &str = "XML";

pub fn read(input: &[u8], sink: &mut Sink<'_>) -> Result<(), IngestError> {
    let mut reader = Reader::from_reader(input);
    // 0: before or after the root, 1: in the root, 2: in a record, 3: in a column.
    let mut depth = 0usize;
    let mut roots = 0usize;
    let mut column: Option<usize> = None;
    let mut position = 0usize;
    let mut text = Value::default();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| malformed(XML, describe(&e, reader.error_position())))?;
        let record = sink.rows() + 1;
        match event {
            Event::Start(e) => {
                match depth {
                    0 => roots = new_root(roots)?,
                    1 => position = 0,
                    2 => {
                        position += 1;
                        column = Some(column_index(sink, &e, position, record)?);
                        text = Value::default();
                    }
                    _ => {
                        return Err(malformed(
                            XML,
                            format!("record {record}: a column element contains an element"),
                        ));
                    }
                }
                depth += 1;
            }
            Event::Empty(e) => match depth {
                0 => roots = new_root(roots)?,
                1 => sink.end_record()?,
                2 => {
                    position += 1;
                    let index = column_index(sink, &e, position, record)?;
                    sink.push(index, Raw::Null)?;
                }
                _ => {
                    return Err(malformed(
                        XML,
                        format!("record {record}: a column element contains an element"),
                    ));
                }
            },
            Event::Text(t) => {
                let content = t.xml10_content();
                push_text(&mut text, content.ok().as_deref(), depth, record)?;
            }
            Event::CData(t) => {
                let content = t.xml10_content();
                push_text(&mut text, content.ok().as_deref(), depth, record)?;
            }
            Event::GeneralRef(r) => {
                if depth != 3 {
                    return Err(stray_text(depth, record));
                }
                let bad_reference = || {
                    malformed(
                        XML,
                        format!("record {record}: unknown entity or invalid character reference"),
                    )
                };
                if let Some(c) = r.resolve_char_ref().map_err(|_| bad_reference())? {
                    text.append(c.encode_utf8(&mut [0; 4]));
                } else {
                    let name = r.decode().map_err(|_| bad_reference())?;
                    let resolved = quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(bad_reference)?;
                    text.append(resolved);
                }
            }
            Event::End(_) => {
                match depth {
                    3 => {
                        if let Some(index) = column.take() {
                            sink.push(index, Raw::Str(text.value()))?;
                        }
                    }
                    2 => sink.end_record()?,
                    _ => {}
                }
                depth = depth.saturating_sub(1);
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::DocType(_) | Event::Comment(_) => {}
        }
        // Refused while it grows, not once the whole value is in memory.
        if let Some(index) = column
            && text.end > sink.cell_bytes()
        {
            return Err(sink.cell_too_large(index));
        }
    }
    if depth != 0 {
        return Err(malformed(XML, "the document ends inside an element"));
    }
    if roots == 0 {
        return Err(malformed(XML, "no root element"));
    }
    Ok(())
}

fn new_root(roots: usize) -> Result<usize, IngestError> {
    if roots > 0 {
        return Err(malformed(XML, "more than one root element"));
    }
    Ok(roots + 1)
}

fn stray_text(depth: usize, record: u64) -> IngestError {
    match depth {
        2 => malformed(
            XML,
            format!("record {record}: text outside a column element"),
        ),
        _ => malformed(XML, "text outside a record"),
    }
}

/// The schema index of a column element; the same column twice in one record
/// is an error.
fn column_index(
    sink: &mut Sink<'_>,
    e: &BytesStart<'_>,
    position: usize,
    record: u64,
) -> Result<usize, IngestError> {
    let name = e.local_name();
    let name = std::str::from_utf8(name.as_ref())
        .map_err(|_| malformed(XML, "an element name is not valid UTF-8"))?;
    let index = sink.column(name, position)?;
    if sink.is_filled(index) {
        return Err(malformed(
            XML,
            format!("record {record} has column element number {position} twice"),
        ));
    }
    Ok(index)
}

/// The kind of a parse error and where; quick-xml's messages can quote input.
fn describe(e: &quick_xml::Error, at: u64) -> String {
    let what = match e {
        quick_xml::Error::Syntax(_) => "syntax error",
        quick_xml::Error::IllFormed(_) => "ill-formed document (mismatched or missing tags)",
        quick_xml::Error::Encoding(_) => "text is not valid UTF-8",
        quick_xml::Error::Escape(_) => "invalid character or entity reference",
        quick_xml::Error::InvalidAttr(_) => "invalid attribute",
        _ => "cannot be parsed",
    };
    format!("{what} near byte {at}")
}

/// Text or CDATA: part of a column's value at depth 3; only whitespace elsewhere.
fn push_text(
    text: &mut Value,
    content: Option<&str>,
    depth: usize,
    record: u64,
) -> Result<(), IngestError> {
    let content = content.ok_or_else(|| malformed(XML, "text is not valid UTF-8"))?;
    if depth == 3 {
        text.append(content);
    } else if !content.trim().is_empty() {
        return Err(stray_text(depth, record));
    }
    Ok(())
}

/// A column element's text as it is read, trimmed as it grows: leading
/// whitespace is dropped and `end` is the length up to the last
/// non-whitespace character, so its size is known at every step.
#[derive(Default)]
struct Value {
    text: String,
    end: usize,
}

impl Value {
    fn append(&mut self, s: &str) {
        let s = if self.text.is_empty() {
            s.trim_start()
        } else {
            s
        };
        let kept = s.trim_end().len();
        if kept > 0 {
            self.end = self.text.len() + kept;
        }
        self.text.push_str(s);
    }

    fn value(&self) -> &str {
        &self.text[..self.end]
    }
}
