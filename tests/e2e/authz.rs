//! The authorization matrix: every route × no token, a bad token and every
//! role → the expected status. Mutating routes get a body that fails
//! validation *after* the permission check, so the matrix changes nothing
//! and still tells "may not" (403/404) from "may, but not like this" (400).
//! Another user's jobs, releases, applications, feedback and agreements are
//! 404, indistinguishable from ids that do not exist.

use serde_json::{Value, json};
use sluice_types::api::{AgreementTerms, ApplicationDecision, ApplicationRequest};

use crate::{manifest, with_pums};

/// Expected status per caller: none, bad token, admin, provider, alice
/// (owner of the job, application, feedback), bob (another user), reviewer.
struct Row {
    method: &'static str,
    path: String,
    body: Option<Value>,
    expect: [u16; 7],
}

fn row(
    method: &'static str,
    path: impl Into<String>,
    body: Option<Value>,
    expect: [u16; 7],
) -> Row {
    Row {
        method,
        path: path.into(),
        body,
        expect,
    }
}

#[tokio::test]
async fn every_route_answers_every_caller_as_documented() {
    let p = with_pums().await;
    let reviewer = p.reviewer("rev").await;
    // Objects owned by alice: a released job, feedback, an application
    // approved into an agreement, and a second one still submitted.
    let job = crate::run_job(
        &p.alice,
        &manifest("pums", "SELECT COUNT(*) AS n FROM pums", 1.0),
    )
    .await;
    assert_eq!(job.state, "released");
    let version = p.provider.dataset("pums").await.unwrap().versions[0]
        .version
        .clone();
    let fb = p
        .alice
        .report_feedback("pums", "error", "a value looks wrong")
        .await
        .unwrap();
    let application = ApplicationRequest {
        title: Some("t".into()),
        reason: Some("r".into()),
        kind: Some("dataset".into()),
        datasets: vec!["pums".into()],
        period_start: Some("2026-01-01".into()),
        period_end: Some("2030-12-31".into()),
        result_form: Some("f".into()),
        scenario: Some("s".into()),
        pledge: true,
    };
    let approved = p.alice.apply(&application).await.unwrap();
    let decided = p
        .provider
        .decide_application(
            &approved.id,
            &ApplicationDecision {
                approve: true,
                terms: Some(AgreementTerms {
                    purpose: "p".into(),
                    scope: "s".into(),
                    manner: "m".into(),
                    prohibitions: "x".into(),
                    credit_commitment: "c".into(),
                    liability: "l".into(),
                    dispute_resolution: "d".into(),
                    epsilon: 1.0,
                }),
                reasons: None,
                legal_basis: None,
            },
        )
        .await
        .unwrap();
    let agreement = decided.agreement.unwrap();
    let pending = p.alice.apply(&application).await.unwrap();

    const ALL: [u16; 7] = [401, 401, 200, 200, 200, 200, 200];
    let j = &job.id;
    let rows = vec![
        row("GET", "/openapi.json", None, [200; 7]),
        row("GET", "/v1/health", None, [200; 7]),
        row("GET", "/v1/public-key", None, [200; 7]),
        row("GET", "/v1/me", None, ALL),
        row(
            "POST",
            "/v1/users",
            Some(json!({"name": "", "role": "user"})),
            [401, 401, 400, 403, 403, 403, 403],
        ),
        row("GET", "/v1/datasets", None, ALL),
        row("GET", "/v1/datasets/pums", None, ALL),
        row(
            "GET",
            "/v1/datasets/nope",
            None,
            [401, 401, 404, 404, 404, 404, 404],
        ),
        row(
            "GET",
            format!("/v1/datasets/pums/versions/{version}/quality"),
            None,
            [401, 401, 200, 200, 404, 404, 404],
        ),
        row("GET", "/v1/datasets/pums/preview", None, ALL),
        row(
            "GET",
            "/v1/datasets/pums/download",
            None,
            [401, 401, 403, 403, 403, 403, 403],
        ),
        row(
            "POST",
            "/v1/datasets/pums/access",
            Some(json!({"user": "nobody"})),
            [401, 401, 404, 404, 403, 403, 403],
        ),
        row("GET", "/v1/datasets/pums/budget", None, ALL),
        row(
            "PUT",
            "/v1/datasets/pums/review-policy",
            Some(json!({"reviewers": 9})),
            [401, 401, 400, 400, 403, 403, 403],
        ),
        row(
            "POST",
            "/v1/datasets/pums/suspend",
            Some(json!({"reason": " "})),
            [401, 401, 400, 400, 403, 403, 403],
        ),
        row(
            "POST",
            "/v1/datasets/pums/resume",
            Some(json!({"reason": " "})),
            [401, 401, 400, 400, 403, 403, 403],
        ),
        row(
            "POST",
            "/v1/datasets/pums/withdraw",
            Some(json!({"reason": " "})),
            [401, 401, 400, 400, 403, 403, 403],
        ),
        row(
            "POST",
            "/v1/datasets/pums/revoke",
            Some(json!({"user": "bob", "reason": " "})),
            [401, 401, 400, 400, 403, 403, 403],
        ),
        row(
            "POST",
            "/v1/users/bob/close",
            Some(json!({"reason": " "})),
            [401, 401, 400, 403, 403, 403, 403],
        ),
        row("GET", "/v1/revocations", None, ALL),
        row("GET", "/v1/stats", None, ALL),
        row(
            "POST",
            "/v1/datasets/pums/feedback",
            Some(json!({"kind": "bogus", "description": "x"})),
            [401, 401, 400, 400, 400, 400, 400],
        ),
        row("GET", "/v1/feedback", None, ALL),
        row(
            "GET",
            format!("/v1/feedback/{}", fb.id),
            None,
            [401, 401, 200, 200, 200, 404, 404],
        ),
        row(
            "GET",
            "/v1/feedback/fb_nope",
            None,
            [401, 401, 404, 404, 404, 404, 404],
        ),
        row(
            "POST",
            format!("/v1/feedback/{}/answer", fb.id),
            Some(json!({"answer": " "})),
            [401, 401, 400, 400, 403, 404, 404],
        ),
        row(
            "POST",
            format!("/v1/feedback/{}/extension", fb.id),
            Some(json!({"working_days": 99, "reason": "x"})),
            [401, 401, 400, 400, 403, 404, 404],
        ),
        row(
            "POST",
            format!("/v1/feedback/{}/extension/decision", fb.id),
            Some(json!({"approve": true})),
            [401, 401, 409, 403, 403, 403, 403],
        ),
        row(
            "POST",
            "/v1/applications",
            Some(json!({})),
            [401, 401, 403, 403, 400, 400, 403],
        ),
        row("GET", "/v1/applications", None, ALL),
        row(
            "GET",
            format!("/v1/applications/{}", pending.id),
            None,
            [401, 401, 200, 200, 200, 404, 404],
        ),
        row(
            "GET",
            "/v1/applications/app_nope",
            None,
            [401, 401, 404, 404, 404, 404, 404],
        ),
        row(
            "POST",
            format!("/v1/applications/{}/decision", pending.id),
            Some(json!({"approve": true})),
            [401, 401, 400, 400, 403, 404, 404],
        ),
        row("GET", "/v1/agreements", None, ALL),
        row(
            "GET",
            format!("/v1/agreements/{agreement}"),
            None,
            [401, 401, 200, 200, 200, 404, 404],
        ),
        row(
            "GET",
            "/v1/agreements/agr_nope",
            None,
            [401, 401, 404, 404, 404, 404, 404],
        ),
        row("GET", "/v1/jobs", None, ALL),
        row(
            "GET",
            format!("/v1/jobs/{j}"),
            None,
            [401, 401, 404, 404, 200, 404, 404],
        ),
        row(
            "GET",
            "/v1/jobs/job_nope",
            None,
            [401, 401, 404, 404, 404, 404, 404],
        ),
        row(
            "GET",
            format!("/v1/jobs/{j}/events"),
            None,
            [401, 401, 404, 404, 200, 404, 404],
        ),
        row(
            "GET",
            format!("/v1/jobs/{j}/release"),
            None,
            [401, 401, 404, 404, 200, 404, 404],
        ),
        row(
            "GET",
            "/v1/reviews",
            None,
            [401, 401, 403, 403, 403, 403, 200],
        ),
        row(
            "GET",
            format!("/v1/reviews/{j}"),
            None,
            [401, 401, 403, 403, 403, 403, 404],
        ),
        row(
            "POST",
            format!("/v1/reviews/{j}"),
            Some(json!({"decision": "approve", "reason": "", "manifest_digest": "x"})),
            [401, 401, 403, 403, 403, 403, 404],
        ),
        row(
            "GET",
            "/v1/audit",
            None,
            [401, 401, 200, 403, 403, 403, 403],
        ),
        row("GET", "/v1/audit/checkpoint", None, ALL),
        // Unknown routes and methods, and bodies of the wrong shape, are
        // JSON errors too.
        row("GET", "/v1/nowhere", None, [404; 7]),
        row("DELETE", "/v1/datasets/pums", None, [400; 7]),
        row(
            "PUT",
            "/v1/datasets/pums/review-policy",
            Some(json!({"reviewers": "two"})),
            [401, 401, 400, 400, 400, 400, 400],
        ),
    ];
    let callers = [
        p.admin.anonymous(),
        p.admin.with_token("not-a-real-token"),
        p.admin.clone(),
        p.provider.clone(),
        p.alice.clone(),
        p.bob.clone(),
        reviewer,
    ];
    let names = [
        "none",
        "bad token",
        "admin",
        "provider",
        "alice",
        "bob",
        "reviewer",
    ];
    let mut wrong = Vec::new();
    for r in &rows {
        for ((caller, name), want) in callers.iter().zip(names).zip(r.expect) {
            let (got, body) = caller
                .raw(r.method, &r.path, r.body.as_ref())
                .await
                .unwrap();
            if got != want {
                wrong.push(format!(
                    "{} {} as {name}: {got} (want {want}) {body}",
                    r.method, r.path
                ));
            }
            // Errors are JSON with a stable code and no stack trace.
            if got >= 400 {
                let v: Value = serde_json::from_str(&body)
                    .unwrap_or_else(|_| panic!("{} {}: not JSON: {body}", r.method, r.path));
                assert!(v["code"].is_string(), "{body}");
                assert!(
                    !body.contains("panicked") && !body.contains("src/"),
                    "{body}"
                );
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} mismatches:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // Nothing above changed anything: the job, the budget and the dataset.
    assert_eq!(p.alice.budget("pums").await.unwrap().user_spent, "1");
    assert_eq!(
        crate::run_job(
            &p.alice,
            &manifest("pums", "SELECT COUNT(*) AS n FROM pums", 0.5)
        )
        .await
        .state,
        "released"
    );
}

/// The OpenAPI document is served without a token, parses as a valid
/// OpenAPI 3.0 document, and every operation in it answers (no 404 route,
/// no wrong method) for a caller with a token.
#[tokio::test]
async fn the_openapi_document_validates_and_every_operation_exists() {
    let p = with_pums().await;
    let (status, body) = p
        .admin
        .anonymous()
        .raw("GET", "/openapi.json", None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let doc: openapiv3::OpenAPI = serde_json::from_str(&body).expect("valid OpenAPI 3.0");
    assert!(doc.openapi.starts_with("3.0"));
    let mut operations = 0;
    for (path, item) in doc.paths.iter() {
        let item = item.as_item().expect("inline path item");
        for (method, op) in item.iter() {
            operations += 1;
            assert!(!op.responses.responses.is_empty(), "{method} {path}");
            assert!(
                op.responses.default.is_some(),
                "{method} {path}: no error response"
            );
            let concrete = path
                .replace("{name}", "pums")
                .replace("{version}", "v")
                .replace("{id}", "x");
            let (got, text) = p
                .admin
                .raw(&method.to_uppercase(), &concrete, Some(&json!({})))
                .await
                .unwrap();
            // A real route may refuse the empty body or the made-up id, but
            // is never an unknown route or method.
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let unknown = v["message"] == "route not found"
                || v["message"] == "this route does not take that method";
            assert!(!unknown, "{method} {path}: {got} {text}");
        }
    }
    assert_eq!(operations, 45, "every registered route is documented");
}

/// Each token has its own request budget: a flood from one gets JSON 429s
/// with the stable code, while another token is served.
#[tokio::test]
async fn a_token_that_floods_is_rate_limited_alone() {
    let p = crate::Platform::start_with(sluice_server::RateLimit {
        per_second: 1.0,
        burst: 20.0,
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let (status, body) = p.bob.raw("GET", "/v1/me", None).await.unwrap();
        if status == 429 {
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["code"], "rate_limited", "{body}");
        }
        statuses.push(status);
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!((20..=22).contains(&ok), "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 40 - ok);
    assert_eq!(p.alice.raw("GET", "/v1/me", None).await.unwrap().0, 200);
}
