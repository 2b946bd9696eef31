//! Ledger, releases and the audit log through the API and the CLI.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sluice_types::ErrorCode;

use crate::{Platform, pums_csv, pums_descriptor};

async fn with_budget(user_epsilon: f64) -> Platform {
    with_budgets(user_epsilon, 1000.0).await
}

/// pums with alice's budget on it and her agreement's budget.
async fn with_budgets(user_epsilon: f64, agreement_epsilon: f64) -> Platform {
    let mut p = Platform::start().await;
    let mut d = pums_descriptor("pums", "conditional");
    d.dataset.user_epsilon = user_epsilon;
    p.provider.create_dataset(&d).await.unwrap();
    p.provider.upload_version("pums", pums_csv()).await.unwrap();
    p.agreements =
        vec![crate::agreement(&p.alice, &p.provider, &["pums"], agreement_epsilon).await];
    p
}

#[tokio::test]
async fn identical_job_returns_the_stored_release_and_spends_nothing() {
    let p = with_budget(10.0).await;
    let m = p.manifest("pums", "SELECT sex, COUNT(*) FROM pums GROUP BY sex", 1.0);
    let first = crate::run_job(&p.alice, &m).await;
    assert_eq!(first.state, "released");
    let again = p.alice.submit_job(&m).await.unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(again.state, "released");
    assert_eq!(p.alice.budget("pums").await.unwrap().user_spent, "1");
    // A different epsilon is a different manifest: it runs and is charged.
    let other = p
        .alice
        .submit_job(&m.replace("epsilon = 1.0", "epsilon = 0.5"))
        .await
        .unwrap();
    assert_ne!(other.id, first.id);
    p.alice
        .wait_job(&other.id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(p.alice.budget("pums").await.unwrap().user_spent, "1.5");
}

#[tokio::test]
async fn two_hundred_concurrent_jobs_against_one_budget_run_exactly_once() {
    concurrent_jobs_run_exactly_once(with_budget(1.0).await, "dataset pums").await;
}

/// The agreement's budget binds like the dataset's: the dataset would allow
/// sixteen of these jobs, the agreement one.
#[tokio::test]
async fn two_hundred_concurrent_jobs_against_one_agreement_run_exactly_once() {
    let p = with_budgets(10.0, 1.0).await;
    let agreement = p.agreements[0].clone();
    let e = p
        .alice
        .estimate_job(&p.manifest("pums", "SELECT COUNT(*) FROM pums", 1.5))
        .await
        .unwrap();
    assert_eq!(
        e.reasons,
        [format!(
            "epsilon 1.5 exceeds what remains of agreement {agreement}'s budget"
        )]
    );
    concurrent_jobs_run_exactly_once(p, &format!("agreement {agreement}")).await;
}

async fn concurrent_jobs_run_exactly_once(p: Platform, exhausted: &str) {
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let alice = p.alice.clone();
            // Distinct titles: distinct manifests, so no cached release applies.
            let m = p
                .manifest("pums", "SELECT COUNT(*) FROM pums", 0.6)
                .replace("title = \"t\"", &format!("title = \"t{i}\""));
            tokio::spawn(async move { alice.submit_job(&m).await })
        })
        .collect();
    let mut accepted = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(job) => accepted.push(job),
            Err(e) => {
                assert_eq!(e.code(), Some(ErrorCode::BudgetExhausted), "{e}");
                assert!(e.to_string().contains(exhausted), "{e}");
            }
        }
    }
    assert_eq!(accepted.len(), 1);
    let job = p
        .alice
        .wait_job(&accepted[0].id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(job.state, "released");
    let b = p.alice.budget("pums").await.unwrap();
    assert_eq!(b.user_spent.as_str(), "0.6");
    let a = p.alice.agreement(&p.agreements[0]).await.unwrap();
    assert_eq!(a.epsilon_spent, "0.6");
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_refuses_to_start() {
    let p = Platform::start().await;
    let config = sluice_server::Config {
        data_dir: p.data_dir(),
        key_dir: p.dir.path().join("keys"),
        bind: "127.0.0.1:0".parse().unwrap(),
        sandbox_exe: env!("CARGO_BIN_EXE_sluice").into(),
        sandbox_timeout: Duration::from_secs(10),
        rate_limit: Default::default(),
        timing: Default::default(),
        secure_cookies: false,
    };
    let err = sluice_server::start(config)
        .await
        .err()
        .expect("second server must not start");
    assert!(
        err.to_string()
            .contains("another server holds the data dir"),
        "{err}"
    );
    // The first one still serves.
    p.alice.me().await.unwrap();
}

fn sluice(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn write_json(path: &Path, value: &serde_json::Value) {
    std::fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

#[tokio::test]
async fn audit_verify_detects_every_kind_of_tampering() {
    let p = with_budget(10.0).await;
    let dir = p.dir.path();
    let key = p.alice.public_key().await.unwrap().public_key_hex;
    let cp_path = dir.join("checkpoint.json");
    write_json(
        &cp_path,
        &serde_json::to_value(p.admin.audit_checkpoint().await.unwrap()).unwrap(),
    );
    // More activity after the checkpoint: the log extends it.
    crate::run_job(
        &p.alice,
        &p.manifest("pums", "SELECT COUNT(*) FROM pums", 1.0),
    )
    .await;
    let log = p.admin.audit_log().await.unwrap();
    let entries = log.as_array().unwrap().clone();
    assert!(entries.len() > 10);
    // Only admins read the log.
    assert_eq!(
        p.alice.audit_log().await.unwrap_err().code(),
        Some(ErrorCode::Forbidden)
    );

    let cp = cp_path.to_str().unwrap();
    let check = |name: &str, value: serde_json::Value| {
        let path = dir.join(format!("{name}.json"));
        write_json(&path, &value);
        sluice(&[
            "audit",
            "verify",
            path.to_str().unwrap(),
            "--checkpoint",
            cp,
            "--public-key",
            &key,
        ])
    };
    let (ok, out) = check("intact", serde_json::Value::Array(entries.clone()));
    assert!(ok, "{out}");
    assert!(out.contains("extending the checkpoint"), "{out}");

    let mut flipped = entries.clone();
    let actor = flipped[4]["actor"].as_str().unwrap().to_owned();
    let mut bytes = actor.into_bytes();
    bytes[0] ^= 0x01;
    flipped[4]["actor"] = serde_json::Value::String(String::from_utf8(bytes).unwrap());
    let mut deleted = entries.clone();
    deleted.remove(3);
    let mut reordered = entries.clone();
    reordered.swap(5, 6);
    let mut inserted = entries.clone();
    let mut extra = entries[2].clone();
    extra["action"] = serde_json::json!("ledger.refund");
    inserted.insert(3, extra);
    let cp_len = serde_json::from_slice::<serde_json::Value>(&std::fs::read(&cp_path).unwrap())
        .unwrap()["checkpoint"]["length"]
        .as_u64()
        .unwrap() as usize;
    let truncated = entries[..cp_len - 1].to_vec();
    for (name, tampered, expect) in [
        ("flipped", flipped, "does not verify"),
        ("deleted", deleted, "does not verify"),
        ("reordered", reordered, "does not verify"),
        ("inserted", inserted, "does not verify"),
        ("truncated", truncated, "truncated"),
    ] {
        let (ok, out) = check(name, serde_json::Value::Array(tampered));
        assert!(!ok, "{name} was not detected: {out}");
        assert!(out.contains(expect), "{name}: {out}");
    }
    // A checkpoint from another key is refused.
    let (ok, out) = sluice(&[
        "audit",
        "verify",
        dir.join("intact.json").to_str().unwrap(),
        "--checkpoint",
        cp,
        "--public-key",
        &"00".repeat(32),
    ]);
    assert!(!ok, "{out}");
}

#[tokio::test]
async fn a_release_with_any_byte_changed_fails_verify() {
    let p = with_budget(10.0).await;
    let job = crate::run_job(
        &p.alice,
        &p.manifest("pums", "SELECT sex, COUNT(*) FROM pums GROUP BY sex", 1.0),
    )
    .await;
    let release = p.alice.release(&job.id).await.unwrap();
    let key = p.alice.public_key().await.unwrap().public_key_hex;
    // The envelope is what is verified; the convenience body is ignored.
    let envelope = serde_json::to_vec(&release.envelope).unwrap();
    let path = p.dir.path().join("release.json");
    std::fs::write(&path, &envelope).unwrap();
    let (ok, out) = sluice(&["verify", path.to_str().unwrap(), "--public-key", &key]);
    assert!(ok, "{out}");
    // Flip one bit at many positions spread over the file, every time in a new copy.
    let step = (envelope.len() / 60).max(1);
    for i in (0..envelope.len()).step_by(step) {
        let mut bad = envelope.clone();
        bad[i] ^= 0x01;
        std::fs::write(&path, &bad).unwrap();
        let (ok, out) = sluice(&["verify", path.to_str().unwrap(), "--public-key", &key]);
        assert!(!ok, "flip at byte {i} verified: {out}");
    }
}

#[test]
fn manifest_check_and_digest_work_offline() {
    let example = crate::repo_file("examples/jobs/income_by_sex.toml");
    let (ok, out) = sluice(&["manifest", "check", example.to_str().unwrap()]);
    assert!(ok && out.contains("manifest ok"), "{out}");
    let (ok, digest) = sluice(&["manifest", "digest", example.to_str().unwrap()]);
    assert!(ok);
    assert_eq!(digest.trim().len(), 64);
    // Reformatting the TOML does not change the digest; changing a value does.
    let text = std::fs::read_to_string(&example).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spaced = dir.path().join("spaced.toml");
    std::fs::write(&spaced, text.replace(" = ", "   =   ")).unwrap();
    assert_eq!(
        sluice(&["manifest", "digest", spaced.to_str().unwrap()]).1,
        digest
    );
    let changed = dir.path().join("changed.toml");
    std::fs::write(&changed, text.replace("epsilon = 1.0", "epsilon = 1.5")).unwrap();
    assert_ne!(
        sluice(&["manifest", "digest", changed.to_str().unwrap()]).1,
        digest
    );
    // Unknown fields and bad values are refused, every problem listed.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        text.replace("epsilon = 1.0", "epsilon = 1.0\nbudget_override = true"),
    )
    .unwrap();
    let (ok, out) = sluice(&["manifest", "check", bad.to_str().unwrap()]);
    assert!(!ok && out.contains("unknown field"), "{out}");
    let worse = dir.path().join("worse.toml");
    std::fs::write(
        &worse,
        text.replace("epsilon = 1.0", "epsilon = -1.0")
            .replace("title = \"Income by sex\"", "title = \"\""),
    )
    .unwrap();
    let (ok, out) = sluice(&["manifest", "check", worse.to_str().unwrap()]);
    assert!(
        !ok && out.contains("title is empty") && out.contains("epsilon must be a positive"),
        "{out}"
    );
}

#[test]
fn published_manifest_schema_matches_the_parser() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(crate::repo_file("docs/manifest.schema.json")).unwrap(),
    )
    .unwrap();
    let props: std::collections::BTreeSet<&str> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    // Every top-level field of a full manifest is in the schema, and nothing else.
    let full: sluice_types::Manifest = toml::from_str(
        "version = 1\ntitle = \"t\"\npurpose = \"p\"\nagreement = \"a\"\ndatasets = [\"d\"]\n[job]\nkind = \"sql\"\nquery = \"q\"\n[privacy]\nepsilon = 1.0\ndelta = 1e-6\n",
    )
    .unwrap();
    let fields: std::collections::BTreeSet<String> = serde_json::to_value(&full)
        .unwrap()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(props, fields.iter().map(String::as_str).collect());
    assert_eq!(schema["additionalProperties"], false);
    for required in schema["required"].as_array().unwrap() {
        assert!(fields.contains(required.as_str().unwrap()));
    }
}
