//! Canonical JSON: object keys sorted bytewise at every level, no whitespace,
//! numbers as serde_json prints them (shortest round-trip). Sorting is done
//! here rather than relying on serde_json's map type, which a feature flag
//! anywhere in the dependency tree could change.

use serde::Serialize;
use serde_json::Value;

pub fn canonical_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    canonical_json_string(value).into_bytes()
}

pub fn canonical_json_string<T: Serialize + ?Sized>(value: &T) -> String {
    let value = serde_json::to_value(value).expect("serialisable value");
    let mut out = String::new();
    write_value(&value, &mut out);
    out
}

fn write_value(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).expect("string key"));
                out.push(':');
                write_value(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&serde_json::to_string(other).expect("scalar")),
    }
}
