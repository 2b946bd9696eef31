//! Synthetic preview rows for conditional data, generated from the schema
//! alone: domain values, uniform draws within declared bounds, random
//! pseudonyms. No stored value is read.

use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{Map, Value};
use sluice_types::schema::{ColumnType, DatasetSchema, DomainValue};

fn rand_u64(rng: &SystemRandom) -> u64 {
    let mut b = [0u8; 8];
    rng.fill(&mut b).expect("system random source");
    u64::from_le_bytes(b)
}

pub fn rows(schema: &DatasetSchema, n: usize) -> Vec<Map<String, Value>> {
    let rng = SystemRandom::new();
    (0..n)
        .map(|i| {
            schema
                .columns
                .iter()
                .map(|c| {
                    let v = if c.role.is_pseudonymised() {
                        let mut b = [0u8; 16];
                        rng.fill(&mut b).expect("system random source");
                        Value::String(hex::encode(b))
                    } else if let Some(domain) = &c.domain {
                        match &domain[(rand_u64(&rng) % domain.len() as u64) as usize] {
                            DomainValue::Bool(b) => Value::Bool(*b),
                            DomainValue::Int(x) => Value::from(*x),
                            DomainValue::Text(s) => Value::String(s.clone()),
                        }
                    } else {
                        let unit = (rand_u64(&rng) >> 11) as f64 / (1u64 << 53) as f64;
                        let (lo, hi) = c.bounds().unwrap_or((0.0, 100.0));
                        match c.ty {
                            ColumnType::Int => Value::from((lo + unit * (hi - lo)).round() as i64),
                            ColumnType::Float => {
                                serde_json::Number::from_f64(lo + unit * (hi - lo))
                                    .map(Value::Number)
                                    .unwrap_or(Value::Null)
                            }
                            ColumnType::Bool => Value::Bool(unit < 0.5),
                            ColumnType::Text => {
                                Value::String(format!("synthetic {} {}", c.name, i + 1))
                            }
                        }
                    };
                    (c.name.clone(), v)
                })
                .collect()
        })
        .collect()
}
