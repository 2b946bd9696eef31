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
