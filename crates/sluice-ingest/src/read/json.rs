//! A top-level JSON array of objects, streamed element by element, or JSON
//! lines (one object per line). Which one is decided by the first
//! non-whitespace byte. A missing key or `null` is a null cell.

use std::fmt;

use serde::de::{DeserializeSeed, Error as _, SeqAccess, Visitor};
use serde_json::Value;

use super::malformed;
use crate::IngestError;
use crate::convert::{Raw, Sink};

const JSON: &str = "JSON";

pub fn read(input: &[u8], sink: &mut Sink<'_>) -> Result<(), IngestError> {
    let input = input.strip_prefix(b"\xef\xbb\xbf").unwrap_or(input);
    match input.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => read_array(input, sink),
        Some(b'{') => read_lines(input, sink),
        _ => Err(malformed(
            JSON,
            "expected an array of objects or one object per line",
        )),
    }
}

fn read_array(input: &[u8], sink: &mut Sink<'_>) -> Result<(), IngestError> {
    let mut rejected = None;
    let mut de = serde_json::Deserializer::from_slice(input);
    let outcome = Records {
        sink,
        rejected: &mut rejected,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    if let Some(e) = rejected {
        return Err(e);
    }
    outcome.map_err(|e| malformed(JSON, position(&e, None)))
}

fn read_lines(input: &[u8], sink: &mut Sink<'_>) -> Result<(), IngestError> {
    for (i, line) in input.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let value: Value =
            serde_json::from_slice(line).map_err(|e| malformed(JSON, position(&e, Some(i + 1))))?;
        record(sink, &value)?;
    }
    Ok(())
}

/// Where and what kind of error; serde_json's own messages are not used.
fn position(e: &serde_json::Error, line: Option<usize>) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of input",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected value",
        serde_json::error::Category::Io => "read error",
    };
    format!(
        "{what} at line {}, column {}",
        line.unwrap_or(e.line()),
        e.column()
    )
}

fn record(sink: &mut Sink<'_>, value: &Value) -> Result<(), IngestError> {
    let Value::Object(map) = value else {
        return Err(malformed(
            JSON,
            format!("record {} is not an object", sink.rows() + 1),
        ));
    };
    for (position, (key, v)) in map.iter().enumerate() {
        let index = sink.column(key, position + 1)?;
        let raw = match v {
            Value::Null => Raw::Null,
            Value::Bool(b) => Raw::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Raw::Int(i),
                None => n.as_f64().map_or(Raw::Invalid, Raw::Float),
            },
            Value::String(s) => Raw::Str(s),
            Value::Array(_) | Value::Object(_) => Raw::Invalid,
        };
        sink.push(index, raw)?;
    }
    sink.end_record()
}

/// Visits the top-level array, handing each element to the sink as soon as
/// it is parsed. An ingest error stops the parse and is kept in `rejected`.
struct Records<'a, 's> {
    sink: &'a mut Sink<'s>,
    rejected: &'a mut Option<IngestError>,
}

impl<'de> DeserializeSeed<'de> for Records<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Records<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of objects")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(value) = seq.next_element::<Value>()? {
            if let Err(e) = record(self.sink, &value) {
                *self.rejected = Some(e);
                return Err(A::Error::custom("record rejected"));
            }
        }
        Ok(())
    }
}
