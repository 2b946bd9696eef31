use serde_json::Value;

use super::{Raw, Table, malformed};
use crate::IngestError;

/// A top-level array of objects, or JSON lines (one object per line).
pub fn read(input: &[u8]) -> Result<Table, IngestError> {
    let first = input.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let objects: Vec<Value> = if first == Some(b'[') {
        match serde_json::from_slice::<Value>(input) {
            Ok(Value::Array(items)) => items,
            Ok(_) => return Err(malformed("JSON", "expected an array of objects")),
            Err(e) => {
                return Err(malformed(
                    "JSON",
                    format!("line {}, column {}", e.line(), e.column()),
                ));
            }
        }
    } else {
        let mut out = Vec::new();
        for (i, line) in input.split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            out.push(serde_json::from_slice(line).map_err(|e| {
                malformed("JSON", format!("line {}, column {}", i + 1, e.column()))
            })?);
        }
        out
    };
    let mut header: Vec<String> = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        let Value::Object(map) = o else {
            return Err(malformed(
                "JSON",
                format!("record {} is not an object", i + 1),
            ));
        };
        for k in map.keys() {
            if !header.contains(k) {
                header.push(k.clone());
            }
        }
    }
    let rows = objects
        .iter()
        .map(|o| {
            header
                .iter()
                .map(|k| match o.get(k) {
                    None | Some(Value::Null) => Raw::Null,
                    Some(Value::Bool(b)) => Raw::Bool(*b),
                    Some(Value::Number(n)) => match n.as_i64() {
                        Some(i) => Raw::Int(i),
                        None => n.as_f64().map(Raw::Float).unwrap_or(Raw::Invalid),
                    },
                    Some(Value::String(s)) if s.is_empty() => Raw::Null,
                    Some(Value::String(s)) => Raw::Str(s.clone()),
                    Some(_) => Raw::Invalid,
                })
                .collect()
        })
        .collect();
    Ok(Table { header, rows })
}
