//! Issue #6's acceptance, every role over HTTP: a provider publishes
//! conditional data; a user applies with fields missing (all listed at
//! once), then completely; the provider approves, creating an agreement;
//! the user's job under it waits for review; a reviewer approves; a signed
//! release comes back. The provider suspends the dataset while a job runs:
//! that job is cancelled and a new one refused. The admin revokes a user
//! with a queued job: it never releases.

use std::time::Duration;

use sluice_types::ErrorCode;
use sluice_types::api::{AgreementTerms, ApplicationDecision, ApplicationRequest};

use crate::{Platform, pums_csv, pums_descriptor, slow_job, wait_for_state};

const PURPOSE: &str = "Income inequality by sex for the city's 2027 equity report";

fn job(query: &str, agreement: &str, purpose: &str) -> String {
    format!(
        "version = 1\ntitle = \"equity\"\npurpose = \"{purpose}\"\nagreement = \"{agreement}\"\ndatasets = [\"pums\"]\n\n[job]\nkind = \"sql\"\nquery = \"{query}\"\n\n[privacy]\nepsilon = 0.5\n"
    )
}

#[tokio::test]
async fn every_role_plays_its_part_over_http() {
    let p = Platform::start().await;
    let reviewer = p.reviewer("security-reviewer").await;
    // The provider publishes conditional data and requires review.
    p.provider
        .create_dataset(&pums_descriptor("pums", "conditional"))
        .await
        .unwrap();
    p.provider.upload_version("pums", pums_csv()).await.unwrap();
    p.provider.set_review_policy("pums", 1).await.unwrap();

    // An incomplete application: every problem at once, nothing forwarded.
    let partial = ApplicationRequest {
        title: Some("Equity report".into()),
        datasets: vec!["pums".into()],
        period_start: Some("2026-01-01".into()),
        period_end: Some("2025-12-31".into()),
        ..Default::default()
    };
    let err = p.alice.apply(&partial).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BadRequest), "{err}");
    let msg = err.to_string();
    for missing in [
        "reason is missing",
        "result_form is missing",
        "scenario is missing",
        "type is missing",
        "period_end is before period_start",
        "pledge must be true",
    ] {
        assert!(msg.contains(missing), "{missing} not listed: {msg}");
    }
    assert!(p.provider.applications(false).await.unwrap().is_empty());

    // The complete application goes to the provider with a deadline.
    let complete = ApplicationRequest {
        reason: Some("to measure the pay gap the equity plan must close".into()),
        kind: Some("dataset".into()),
        period_start: Some("2026-01-01".into()),
        period_end: Some("2030-12-31".into()),
        result_form: Some("DP aggregates in a published report".into()),
        scenario: Some("city equity report".into()),
        pledge: true,
        ..partial
    };
    let app = p.alice.apply(&complete).await.unwrap();
    assert_eq!((app.state.as_str(), app.overdue), ("submitted", false));
    assert!(app.due_at > app.created_at);
    let err = p.bob.application(&app.id).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound), "{err}");
    assert_eq!(p.provider.applications(false).await.unwrap().len(), 1);
    assert!(p.provider.applications(true).await.unwrap().is_empty());

    // Nobody decides their own application; a refusal needs its legal basis.
    let approve = ApplicationDecision {
        approve: true,
        terms: Some(AgreementTerms {
            purpose: PURPOSE.into(),
            scope: "pums, DP aggregates only".into(),
            manner: "jobs in the Sluice sandbox".into(),
            prohibitions: "no re-identification; no third parties".into(),
            credit_commitment: "cite the Census Bureau sample".into(),
            liability: "per the platform rules".into(),
            dispute_resolution: "the city's big-data bureau".into(),
            epsilon: 5.0,
            min_epsilon_per_job: None,
        }),
        reasons: None,
        legal_basis: None,
    };
    let err = p
        .alice
        .decide_application(&app.id, &approve)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden), "{err}");
    let refuse = ApplicationDecision {
        approve: false,
        terms: None,
        reasons: Some("x".into()),
        legal_basis: None,
    };
    let err = p
        .provider
        .decide_application(&app.id, &refuse)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("legal_basis is missing"), "{err}");

    // Approval creates a content-hashed agreement.
    let decided = p
        .provider
        .decide_application(&app.id, &approve)
        .await
        .unwrap();
    assert_eq!(decided.state, "approved");
    let agreement = p
        .alice
        .agreement(decided.agreement.as_deref().unwrap())
        .await
        .unwrap();
    assert!(agreement.active);
    assert_eq!(agreement.datasets, vec!["pums".to_owned()]);
    assert_eq!(
        agreement.content_hash,
        sluice_crypto::sha256_hex(
            sluice_crypto::canonical_json_string(&agreement.content).as_bytes()
        )
    );
    let err = p
        .provider
        .decide_application(&app.id, &approve)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict), "{err}");

    // A job outside the agreement's purpose is refused; inside, it waits
    // for review, the reviewer approves, a signed release comes back.
    let q = "SELECT sex, AVG(income) AS mean_income FROM pums GROUP BY sex";
    let err = p
        .alice
        .submit_job(&job(q, &agreement.id, "marketing"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden), "{err}");
    assert!(err.to_string().contains("purpose"), "{err}");
    let submitted = p
        .alice
        .submit_job(&job(q, &agreement.id, PURPOSE))
        .await
        .unwrap();
    wait_for_state(&p.alice, &submitted.id, "awaiting_review").await;
    let view = reviewer.review(&submitted.id).await.unwrap();
    assert!(view.manifest.contains(&agreement.id));
    reviewer
        .decide_review(
            &submitted.id,
            true,
            "aggregates only",
            &view.manifest_digest,
        )
        .await
        .unwrap();
    let released = p
        .alice
        .wait_job(&submitted.id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(released.state, "released", "{:?}", released.message);
    let release = p.alice.release(&submitted.id).await.unwrap();
    let key = p.alice.public_key().await.unwrap();
    let key_bytes: Vec<u8> = (0..key.public_key_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&key.public_key_hex[i..i + 2], 16).unwrap())
        .collect();
    assert_eq!(
        sluice_crypto::verify_release(&release.envelope, &key_bytes).unwrap(),
        release.body
    );

    // The provider suspends the dataset while a job runs: it is cancelled,
    // and a new one refused.
    let running = p
        .alice
        .submit_job(&slow_job(&format!(
            "purpose = \"{PURPOSE}\"\nagreement = \"{}\"",
            agreement.id
        )))
        .await
        .unwrap();
    wait_for_state(&p.alice, &running.id, "awaiting_review").await;
    let view = reviewer.review(&running.id).await.unwrap();
    reviewer
        .decide_review(&running.id, true, "ok", &view.manifest_digest)
        .await
        .unwrap();
    wait_for_state(&p.alice, &running.id, "running").await;
    let r = p
        .provider
        .suspend_dataset("pums", "a person reported a privacy complaint")
        .await
        .unwrap();
    assert_eq!(r.jobs_cancelled, 1);
    let ended = p
        .alice
        .wait_job(&running.id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(ended.state, "cancelled");
    let err = p
        .alice
        .submit_job(&job(q, &agreement.id, PURPOSE))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden), "{err}");

    // The admin revokes a user with a queued job: it never releases.
    p.provider
        .resume_dataset("pums", "complaint checked: no infringement")
        .await
        .unwrap();
    let queued = p
        .alice
        .submit_job(&job(
            "SELECT COUNT(*) AS n FROM pums",
            &agreement.id,
            PURPOSE,
        ))
        .await
        .unwrap();
    wait_for_state(&p.alice, &queued.id, "awaiting_review").await;
    let view = reviewer.review(&queued.id).await.unwrap();
    let r = p
        .admin
        .close_user("alice", "broke the agreement's prohibitions")
        .await
        .unwrap();
    assert_eq!(r.jobs_cancelled, 1);
    let err = reviewer
        .decide_review(&queued.id, true, "ok", &view.manifest_digest)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict), "{err}");
    let never = p.alice.job(&queued.id).await.unwrap();
    assert_eq!(never.state, "cancelled");
    let err = p.alice.release(&queued.id).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound), "{err}");
    let listed = p.bob.revocations().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].user, "alice");
}
