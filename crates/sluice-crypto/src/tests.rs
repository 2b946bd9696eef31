use super::*;
use sluice_types::privacy::{Delta, Epsilon};
use sluice_types::release::{Cell, ReleasedOutputs};

fn body() -> ReleaseBody {
    ReleaseBody {
        job_id: "job_1".into(),
        title: "t".into(),
        manifest_digest: "ab".repeat(32),
        datasets: vec![],
        outputs: ReleasedOutputs {
            columns: vec![],
            rows: vec![vec![Cell::Noisy {
                value: 1.5,
                ci95: [0.5, 2.5],
            }]],
            mechanism: "m".into(),
            epsilon: Epsilon::from_units(1),
            delta: Delta::ZERO,
        },
        epsilon_spent: Epsilon::from_units(1),
        delta_spent: Delta::ZERO,
        confidence_level: 0.95,
        created_at: "2026-01-01T00:00:00Z".into(),
    }
}

#[test]
fn canonical_json_sorts_keys_at_every_level() {
    let v = serde_json::json!({"b": 1, "a": {"d": [1, {"z": 0, "y": 1}], "c": null}});
    assert_eq!(
        canonical_json_string(&v),
        r#"{"a":{"c":null,"d":[1,{"y":1,"z":0}]},"b":1}"#
    );
}

#[test]
fn release_round_trips_and_any_flipped_byte_fails() {
    let dir = tempfile::tempdir().unwrap();
    let keys = PlatformKeys::load_or_create(&dir.path().join("keys")).unwrap();
    let env = sign_release(&keys, &body());
    assert_eq!(verify_release(&env, keys.public_key()).unwrap(), body());
    let json = serde_json::to_vec(&env).unwrap();
    let mut failures = 0;
    for i in 0..json.len() {
        let mut bad = json.clone();
        bad[i] ^= 0x01;
        let ok = serde_json::from_slice::<SignedRelease>(&bad)
            .ok()
            .and_then(|e| verify_release(&e, keys.public_key()).ok())
            .is_some_and(|b| b == body());
        if !ok {
            failures += 1;
        }
    }
    // Every flip must fail, except flips that JSON parsing normalises away
    // (none in this envelope: no escapes, no insignificant whitespace).
    assert_eq!(failures, json.len());
}

#[test]
fn keys_persist_and_pseudonyms_are_stable_and_keyed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys");
    let a = PlatformKeys::load_or_create(&path).unwrap();
    let b = PlatformKeys::load_or_create(&path).unwrap();
    assert_eq!(a.public_key(), b.public_key());
    let p = a.pseudonymizer().pseudonym("person", "123");
    assert_eq!(p, b.pseudonymizer().pseudonym("person", "123"));
    assert_eq!(p.len(), 32);
    assert_ne!(p, a.pseudonymizer().pseudonym("other", "123"));
    let other = PlatformKeys::load_or_create(&dir.path().join("k2")).unwrap();
    assert_ne!(p, other.pseudonymizer().pseudonym("person", "123"));
}

#[test]
fn checkpoints_verify_and_any_change_fails() {
    let dir = tempfile::tempdir().unwrap();
    let keys = PlatformKeys::load_or_create(&dir.path().join("keys")).unwrap();
    let cp = sluice_types::audit::AuditCheckpoint {
        length: 7,
        head: "ab".repeat(32),
        created_at: "2026-01-01T00:00:00Z".into(),
    };
    let signed = sign_checkpoint(&keys, &cp);
    verify_checkpoint(&signed, keys.public_key()).unwrap();
    let mut longer = signed.clone();
    longer.checkpoint.length = 8;
    assert!(verify_checkpoint(&longer, keys.public_key()).is_err());
    let mut other_head = signed.clone();
    other_head.checkpoint.head = "cd".repeat(32);
    assert!(verify_checkpoint(&other_head, keys.public_key()).is_err());
    let other = PlatformKeys::load_or_create(&dir.path().join("k2")).unwrap();
    assert!(verify_checkpoint(&signed, other.public_key()).is_err());
}

/// SplitMix64: a seeded generator, so every run checks the same cases and a
/// failure names a reproducible one.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A finite float drawn from several shapes: any bit pattern (extremes,
    /// subnormals, long mantissas), values near the notation boundaries,
    /// integers, short decimals, and noisy values of ordinary size.
    fn float(&mut self) -> f64 {
        loop {
            let x = match self.below(6) {
                0 => f64::from_bits(self.next()),
                1 => f64::from_bits(self.next() & 0x800f_ffff_ffff_ffff), // subnormal or zero
                2 => {
                    let e = self.below(44) as i32 - 22;
                    (self.next() as f64 / u64::MAX as f64) * 10f64.powi(e)
                }
                3 => (self.next() as i64 >> self.below(64)) as f64,
                4 => {
                    (self.below(2_000_001) as f64 - 1_000_000.0) / 10f64.powi(self.below(8) as i32)
                }
                _ => (self.next() as f64 / u64::MAX as f64 - 0.5) * 1e4,
            };
            if x.is_finite() {
                return x;
            }
        }
    }
}

/// The shortest digits and exponent `E` read off any decimal printing of a
/// float (serde_json's, here: another algorithm than the one under test).
fn digits_of(printed: &str) -> (String, i32) {
    let s = printed.trim_start_matches('-');
    let (mantissa, e) = match s.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap()),
        None => (s, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all = format!("{int}{frac}");
    let lead = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_start_matches('0').trim_end_matches('0').to_owned();
    (digits, e + int.len() as i32 - 1 - lead as i32)
}

/// The documented float form, written from docs/releases-and-audit.md
/// independently of `canonical::write_f64`: digits from serde_json, laid
/// out by the decimal point's place rather than by the digits' count.
fn documented_float(x: f64) -> String {
    documented_float_from(x, &serde_json::to_string(&x).unwrap())
}

/// [`documented_float`] with `x` as serde_json printed it.
fn documented_float_from(x: f64, printed: &str) -> String {
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if x == 0.0 {
        return format!("{sign}0.0");
    }
    let (digits, exp) = digits_of(printed);
    let body = if (-5..=15).contains(&exp) {
        // Pad with zeros on both sides, then put the point after digit E+1.
        let padded = format!("{}{digits}{}", "0".repeat(6), "0".repeat(17));
        let point = (6 + exp + 1) as usize;
        let int = padded[..point].trim_start_matches('0');
        let frac = padded[point..].trim_end_matches('0');
        format!(
            "{}.{}",
            if int.is_empty() { "0" } else { int },
            if frac.is_empty() { "0" } else { frac }
        )
    } else {
        let rest = &digits[1..];
        let dot = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        format!(
            "{}{dot}e{}{}",
            &digits[..1],
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        )
    };
    format!("{sign}{body}")
}

fn canonical_float(x: f64) -> String {
    let mut s = String::new();
    canonical::write_f64(x, &mut s);
    s
}

#[test]
// The ties are written exactly: 150676623248382.125 is a double.
#[allow(clippy::excessive_precision)]
fn floats_print_as_documented() {
    for (x, want) in [
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (1.0, "1.0"),
        (-2.5, "-2.5"),
        (0.1, "0.1"),
        (123.456, "123.456"),
        (1e15, "1000000000000000.0"),
        (1.5e15, "1500000000000000.0"),
        (9_007_199_254_740_993.0, "9007199254740992.0"),
        (1e16, "1e+16"),
        (1.2345e16, "1.2345e+16"),
        (1e-5, "0.00001"),
        (1.5e-5, "0.000015"),
        (1e-6, "1e-6"),
        (2.5e-7, "2.5e-7"),
        (f64::MAX, "1.7976931348623157e+308"),
        (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
        (5e-324, "5e-324"),
        (-5e-324, "-5e-324"),
        (0.30000000000000004, "0.30000000000000004"),
        (1.0 / 3.0, "0.3333333333333333"),
        // Exact ties between two shortest forms go to the even digit.
        (150676623248382.125, "150676623248382.12"),
        (2993902368718.0625, "2993902368718.0625"),
        (0.125, "0.125"),
    ] {
        assert_eq!(canonical_float(x), want, "{x:e}");
        assert_eq!(documented_float(x), want, "{x:e}");
    }
}

/// A million floats of every shape: the printed form is the documented
/// one, with the digits another algorithm finds (serde_json's; so also
/// what releases signed before this writer hold), and parses back to the
/// same bits both with the standard library and with serde_json
/// (float_roundtrip).
#[test]
fn every_float_prints_as_documented_and_round_trips_exactly() {
    let mut rng = Rng(0x5eed_f10a7);
    let mut checked = 0u64;
    let specials = [
        0.0,
        -0.0,
        5e-324,
        -5e-324,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        f64::EPSILON,
    ];
    for i in 0..1_000_000u64 {
        let x = specials
            .get(i as usize)
            .copied()
            .unwrap_or_else(|| rng.float());
        let s = canonical_float(x);
        let printed = serde_json::to_string(&x).unwrap();
        assert_eq!(
            s,
            documented_float_from(x, &printed),
            "bits {:#x}",
            x.to_bits()
        );
        assert_eq!(s, printed, "bits {:#x}", x.to_bits());
        assert_eq!(s.parse::<f64>().unwrap().to_bits(), x.to_bits(), "{s}");
        let parsed: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(parsed.as_f64().unwrap().to_bits(), x.to_bits(), "{s}");
        assert_eq!(canonical_value(&parsed), s.as_bytes(), "{s}");
        checked += 1;
    }
    assert_eq!(checked, 1_000_000);
}

/// A random JSON value: nested objects and arrays, keys and strings with
/// escapes, control characters and non-ASCII text, integers and floats.
fn random_value(rng: &mut Rng, depth: u32) -> serde_json::Value {
    use serde_json::Value;
    const PIECES: [&str; 12] = [
        "a", "Z", "_", "\"", "\\", "\n", "\u{1}", "\u{7f}", "é", "€", "𝄞", "\u{202e}",
    ];
    let text = |rng: &mut Rng| -> String {
        (0..rng.below(6))
            .map(|_| PIECES[rng.below(PIECES.len() as u64) as usize])
            .collect()
    };
    match rng.below(if depth == 0 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => Value::from(rng.next()),
        3 => Value::from(rng.next() as i64),
        4 => Value::from(rng.float()),
        5 => Value::String(text(rng)),
        6 => Value::Array(
            (0..rng.below(5))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.below(5))
                .map(|_| (text(rng), random_value(rng, depth - 1)))
                .collect(),
        ),
    }
}

/// serde_json's own compact printing with keys sorted: the writer this
/// crate used before, kept as the reference for audit-chain hashes.
fn serde_json_sorted(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            let inner: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| {
                    format!(
                        "{}:{}",
                        serde_json::to_string(k).unwrap(),
                        serde_json_sorted(v)
                    )
                })
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(serde_json_sorted).collect();
            format!("[{}]", inner.join(","))
        }
        other => serde_json::to_string(other).unwrap(),
    }
}

#[test]
fn random_structures_round_trip_byte_for_byte() {
    let mut rng = Rng(0xca11_ab1e);
    for _ in 0..20_000 {
        let v = random_value(&mut rng, 4);
        let bytes = canonical_value(&v);
        assert_eq!(bytes, serde_json_sorted(&v).as_bytes());
        let back = parse_canonical(&bytes).expect("canonical bytes parse as canonical");
        assert_eq!(canonical_value(&back), bytes);
        assert_eq!(back, v);
    }
    // Not canonical: whitespace, unsorted keys, other number or string forms.
    for text in [
        r#"{"b":1,"a":2}"#,
        r#"{"a": 1}"#,
        r#"[1.50]"#,
        r#"[1e16]"#,
        r#"[1E+16]"#,
        r#"[-0]"#,
        r#"[0.1e1]"#,
        r#"["\u00e9"]"#,
        r#"["\/"]"#,
        r#"{"a":1,"a":1}"#,
    ] {
        assert!(parse_canonical(text.as_bytes()).is_none(), "{text}");
    }
}

/// A random release body whose cells hold random floats (and sometimes a
/// non-finite one, which signing makes finite).
fn random_body(rng: &mut Rng, non_finite: bool) -> ReleaseBody {
    let mut b = body();
    let odd = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY];
    let float = |rng: &mut Rng| {
        if non_finite && rng.below(20) == 0 {
            odd[rng.below(3) as usize]
        } else {
            rng.float()
        }
    };
    b.outputs.rows = (0..rng.below(64))
        .map(|_| {
            (0..1 + rng.below(8))
                .map(|_| match rng.below(4) {
                    0 => Cell::Noisy {
                        value: float(rng),
                        ci95: [float(rng), float(rng)],
                    },
                    1 => Cell::Quantile {
                        value: float(rng),
                        rank_error95: float(rng),
                    },
                    2 => Cell::Derived { value: float(rng) },
                    _ => Cell::Key(random_value(rng, 0)),
                })
                .collect()
        })
        .collect();
    b.title = format!("t{}\u{1b}[31m\"é", rng.below(100));
    b.confidence_level = rng.float();
    b
}

/// Signing then verifying succeeds for every body, gives the body back,
/// and the payload is the canonical form of what it decodes to.
#[test]
fn sign_then_verify_always_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let keys = PlatformKeys::load_or_create(&dir.path().join("keys")).unwrap();
    let mut rng = Rng(0xb0d1e5);
    let mut floats = 0usize;
    // Signing is the slow part (ring is not optimised in debug builds):
    // few bodies, many cells each.
    for i in 0..1_500 {
        let non_finite = i % 4 == 0;
        let b = random_body(&mut rng, non_finite);
        floats += b.outputs.rows.iter().flatten().count() * 2;
        let env = sign_release(&keys, &b);
        let back = verify_release(&env, keys.public_key())
            .unwrap_or_else(|e| panic!("body {i} does not verify: {e}"));
        let payload = B64.decode(&env.payload).unwrap();
        assert_eq!(canonical_json(&back), payload, "body {i}");
        if non_finite {
            assert_eq!(back, *finite_release_body(&b), "body {i}");
        } else {
            assert_eq!(back, b, "body {i}");
        }
    }
    assert!(floats > 300_000, "{floats}");
}

#[test]
fn non_finite_cells_are_released_without_them() {
    let mut b = body();
    b.outputs.rows = vec![vec![
        Cell::Noisy {
            value: f64::NAN,
            ci95: [0.0, 1.0],
        },
        Cell::Noisy {
            value: 2.0,
            ci95: [f64::NEG_INFINITY, f64::INFINITY],
        },
        Cell::Quantile {
            value: 3.0,
            rank_error95: f64::INFINITY,
        },
        Cell::Derived {
            value: f64::NEG_INFINITY,
        },
    ]];
    let dir = tempfile::tempdir().unwrap();
    let keys = PlatformKeys::load_or_create(&dir.path().join("keys")).unwrap();
    let back = verify_release(&sign_release(&keys, &b), keys.public_key()).unwrap();
    assert_eq!(
        back.outputs.rows[0],
        vec![
            Cell::Key(serde_json::Value::Null),
            Cell::Derived { value: 2.0 },
            Cell::Derived { value: 3.0 },
            Cell::Key(serde_json::Value::Null),
        ]
    );
}
