//! The authorization matrix: every route × no token, a bad token and every
//! role → the expected status. Mutating routes get a body that fails
//! validation *after* the permission check, so the matrix changes nothing
//! and still tells "may not" (403/404) from "may, but not like this" (400).
//! Another user's jobs, releases, applications, feedback and agreements are
//! 404, indistinguishable from ids that do not exist.

use serde_json::{Value, json};
use sluice_types::Role;
use sluice_types::api::{AgreementTerms, ApplicationDecision, ApplicationRequest};

use crate::with_pums;

/// A probe of one declared route (its method and path template) at a
/// concrete path: the expected status for each caller, in the order none,
/// bad token, admin, provider, alice (owner of the job, application,
/// feedback), bob (another user), reviewer. Who is refused for their role
/// comes from the route's declaration (`sluice_server::route_specs`); a
/// probe must agree with it, and every declared route must have one.
struct Row {
    method: &'static str,
    template: &'static str,
    path: String,
    body: Option<Value>,
    expect: [u16; 7],
}

fn row(
    method: &'static str,
    template: &'static str,
    path: impl Into<String>,
    body: Option<Value>,
    expect: [u16; 7],
) -> Row {
    Row {
        method,
        template,
        path: path.into(),
        body,
        expect,
    }
}

/// A probe whose concrete path is its template.
fn at(method: &'static str, template: &'static str, body: Option<Value>, expect: [u16; 7]) -> Row {
    row(method, template, template, body, expect)
}

#[tokio::test]
async fn every_route_answers_every_caller_as_documented() {
    let p = with_pums().await;
    let reviewer = p.reviewer("rev").await;
    // Objects owned by alice: a released job, feedback, an application
    // approved into an agreement, and a second one still submitted.
    let job = crate::run_job(
        &p.alice,
        &p.manifest("pums", "SELECT COUNT(*) AS n FROM pums", 1.0),
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
                    min_epsilon_per_job: None,
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
    let f = &fb.id;
    let a = &pending.id;
    let rows = vec![
        at("GET", "/openapi.json", None, [200; 7]),
        at("GET", "/v1/health", None, [200; 7]),
        at("GET", "/v1/public-key", None, [200; 7]),
        at("GET", "/v1/me", None, ALL),
        at(
            "GET",
            "/v1/users",
            None,
            [401, 401, 200, 403, 403, 403, 403],
        ),
        at(
            "POST",
            "/v1/users",
            Some(json!({"name": "", "role": "user"})),
            [401, 401, 400, 403, 403, 403, 403],
        ),
        row(
            "POST",
            "/v1/users/{name}/close",
            "/v1/users/bob/close",
            Some(json!({"reason": " "})),
            [401, 401, 400, 403, 403, 403, 403],
        ),
        // A descriptor that fails validation after the permission check.
        at(
            "POST",
            "/v1/datasets",
            Some(json!({})),
            [401, 401, 400, 400, 403, 403, 403],
        ),
        at("GET", "/v1/datasets", None, ALL),
        row("GET", "/v1/datasets/{name}", "/v1/datasets/pums", None, ALL),
        row(
            "GET",
            "/v1/datasets/{name}",
            "/v1/datasets/nope",
            None,
            [401, 401, 404, 404, 404, 404, 404],
        ),
        // An empty upload: refused after the owner check, nothing stored.
        row(
            "POST",
            "/v1/datasets/{name}/versions",
            "/v1/datasets/pums/versions",
            None,
            [401, 401, 400, 400, 403, 403, 403],
        ),
        row(
            "GET",
            "/v1/datasets/{name}/versions/{version}/quality",
            format!("/v1/datasets/pums/versions/{version}/quality"),
            None,
            [401, 401, 200, 200, 404, 404, 404],
        ),
        row(
            "GET",
            "/v1/datasets/{name}/preview",
            "/v1/datasets/pums/preview",
            None,
            ALL,
        ),
        row(
            "GET",
            "/v1/datasets/{name}/download",
            "/v1/datasets/pums/download",
            None,
            [401, 401, 403, 403, 403, 403, 403],
        ),
        row(
            "GET",
            "/v1/datasets/{name}/download",
            "/v1/datasets/pums/download?format=csv",
            None,
            [401, 401, 403, 403, 403, 403, 403],
        ),
        row(
            "GET",
            "/v1/datasets/{name}/budget",
            "/v1/datasets/pums/budget",
            None,
            ALL,
        ),
        row(
            "PUT",
            "/v1/datasets/{name}/review-policy",
            "/v1/datasets/pums/review-policy",
            Some(json!({"reviewers": 9})),
            [401, 401, 400, 400, 403, 403, 403],
        ),
        row(
            "POST",
            "/v1/datasets/{name}/suspend",
            "/v1/datasets/pums/suspend",
            Some(json!({"reason": " "})),
            [401, 401, 400, 400, 403, 403, 403],
        ),
        row(
            "POST",
            "/v1/datasets/{name}/resume",
            "/v1/datasets/pums/resume",
            Some(json!({"reason": " "})),
            [401, 401, 400, 400, 403, 403, 403],
        ),
        row(
            "POST",
            "/v1/datasets/{name}/withdraw",
            "/v1/datasets/pums/withdraw",
            Some(json!({"reason": " "})),
            [401, 401, 400, 400, 403, 403, 403],
        ),
        row(
            "POST",
            "/v1/datasets/{name}/revoke",
            "/v1/datasets/pums/revoke",
            Some(json!({"user": "bob", "reason": " "})),
            [401, 401, 400, 400, 403, 403, 403],
        ),
        at("GET", "/v1/revocations", None, ALL),
        at("GET", "/v1/stats", None, ALL),
        row(
            "POST",
            "/v1/datasets/{name}/feedback",
            "/v1/datasets/pums/feedback",
            Some(json!({"kind": "bogus", "description": "x"})),
            [401, 401, 400, 400, 400, 400, 400],
        ),
        at("GET", "/v1/feedback", None, ALL),
        row(
            "GET",
            "/v1/feedback/{id}",
            format!("/v1/feedback/{f}"),
            None,
            [401, 401, 200, 200, 200, 404, 404],
        ),
        row(
            "GET",
            "/v1/feedback/{id}",
            "/v1/feedback/fb_nope",
            None,
            [401, 401, 404, 404, 404, 404, 404],
        ),
        row(
            "POST",
            "/v1/feedback/{id}/answer",
            format!("/v1/feedback/{f}/answer"),
            Some(json!({"answer": " "})),
            [401, 401, 400, 400, 403, 404, 404],
        ),
        row(
            "POST",
            "/v1/feedback/{id}/extension",
            format!("/v1/feedback/{f}/extension"),
            Some(json!({"working_days": 99, "reason": "x"})),
            [401, 401, 400, 400, 403, 404, 404],
        ),
        row(
            "POST",
            "/v1/feedback/{id}/extension/decision",
            format!("/v1/feedback/{f}/extension/decision"),
            Some(json!({"approve": true})),
            [401, 401, 409, 403, 403, 403, 403],
        ),
        at(
            "POST",
            "/v1/applications",
            Some(json!({})),
            [401, 401, 403, 403, 400, 400, 403],
        ),
        at("GET", "/v1/applications", None, ALL),
        row(
            "GET",
            "/v1/applications/{id}",
            format!("/v1/applications/{a}"),
            None,
            [401, 401, 200, 200, 200, 404, 404],
        ),
        row(
            "GET",
            "/v1/applications/{id}",
            "/v1/applications/app_nope",
            None,
            [401, 401, 404, 404, 404, 404, 404],
        ),
        row(
            "POST",
            "/v1/applications/{id}/decision",
            format!("/v1/applications/{a}/decision"),
            Some(json!({"approve": true})),
            [401, 401, 400, 400, 403, 404, 404],
        ),
        at("GET", "/v1/agreements", None, ALL),
        row(
            "GET",
            "/v1/agreements/{id}",
            format!("/v1/agreements/{agreement}"),
            None,
            [401, 401, 200, 200, 200, 404, 404],
        ),
        row(
            "GET",
            "/v1/agreements/{id}",
            "/v1/agreements/agr_nope",
            None,
            [401, 401, 404, 404, 404, 404, 404],
        ),
        // A manifest that does not parse: refused after the role check.
        at(
            "POST",
            "/v1/jobs",
            None,
            [401, 401, 400, 400, 400, 400, 403],
        ),
        at(
            "POST",
            "/v1/jobs/estimate",
            None,
            [401, 401, 400, 400, 400, 400, 403],
        ),
        at("GET", "/v1/jobs", None, ALL),
        row(
            "GET",
            "/v1/jobs/{id}",
            format!("/v1/jobs/{j}"),
            None,
            [401, 401, 404, 404, 200, 404, 404],
        ),
        row(
            "GET",
            "/v1/jobs/{id}",
            "/v1/jobs/job_nope",
            None,
            [401, 401, 404, 404, 404, 404, 404],
        ),
        row(
            "GET",
            "/v1/jobs/{id}/events",
            format!("/v1/jobs/{j}/events"),
            None,
            [401, 401, 404, 404, 200, 404, 404],
        ),
        row(
            "GET",
            "/v1/jobs/{id}/release",
            format!("/v1/jobs/{j}/release"),
            None,
            [401, 401, 404, 404, 200, 404, 404],
        ),
        row(
            "GET",
            "/v1/jobs/{id}/release.csv",
            format!("/v1/jobs/{j}/release.csv"),
            None,
            [401, 401, 404, 404, 200, 404, 404],
        ),
        row(
            "GET",
            "/v1/jobs/{id}/release.csv",
            "/v1/jobs/job_nope/release.csv",
            None,
            [401, 401, 404, 404, 404, 404, 404],
        ),
        at(
            "GET",
            "/v1/reviews",
            None,
            [401, 401, 403, 403, 403, 403, 200],
        ),
        row(
            "GET",
            "/v1/reviews/{id}",
            format!("/v1/reviews/{j}"),
            None,
            [401, 401, 403, 403, 403, 403, 404],
        ),
        row(
            "POST",
            "/v1/reviews/{id}",
            format!("/v1/reviews/{j}"),
            Some(json!({"decision": "approve", "reason": "", "manifest_digest": "x"})),
            [401, 401, 403, 403, 403, 403, 404],
        ),
        at(
            "GET",
            "/v1/audit",
            None,
            [401, 401, 200, 403, 403, 403, 403],
        ),
        at("GET", "/v1/audit/checkpoint", None, ALL),
    ];
    // Unknown routes and methods, and bodies of the wrong shape, are JSON
    // errors too.
    let extra = vec![
        at("GET", "/v1/nowhere", None, [404; 7]),
        at("DELETE", "/v1/datasets/pums", None, [400; 7]),
        row(
            "PUT",
            "/v1/datasets/{name}/review-policy",
            "/v1/datasets/pums/review-policy",
            Some(json!({"reviewers": "two"})),
            [401, 401, 400, 400, 400, 400, 400],
        ),
    ];
    // The matrix follows the declaration: every declared route is probed,
    // and each probe's 401s and 403s are what the route's access says.
    let declared = sluice_server::route_specs();
    let roles = [
        sluice_types::Role::Admin,
        sluice_types::Role::Provider,
        sluice_types::Role::User,
        sluice_types::Role::User,
        sluice_types::Role::Reviewer,
    ];
    for spec in &declared {
        let probes: Vec<&Row> = rows
            .iter()
            .filter(|r| r.method == spec.method.as_str() && r.template == spec.path)
            .collect();
        assert!(
            !probes.is_empty(),
            "{} {} is declared but has no probe in the authorization matrix",
            spec.method,
            spec.path
        );
        for r in probes {
            let public = spec.access == sluice_server::Access::Public;
            assert_eq!(
                (r.expect[0] == 401, r.expect[1] == 401),
                (!public, !public),
                "{} {}: the probe disagrees with the declaration about tokens",
                r.method,
                r.path
            );
            for (k, role) in roles.iter().enumerate() {
                if !spec.access.admits(*role) {
                    assert_eq!(
                        r.expect[k + 2],
                        403,
                        "{} {}: the declaration refuses {role:?}, the probe does not",
                        r.method,
                        r.path
                    );
                }
            }
        }
    }
    for r in &rows {
        assert!(
            declared
                .iter()
                .any(|s| s.method.as_str() == r.method && s.path == r.template),
            "{} {} probes a route that is not declared",
            r.method,
            r.template
        );
    }
    let rows: Vec<Row> = rows.into_iter().chain(extra).collect();
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
            &p.manifest("pums", "SELECT COUNT(*) AS n FROM pums", 0.5)
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
    let raw: Value = serde_json::from_str(&body).unwrap();
    let mut checked = 0;
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
            if got == 200 && (v.is_object() || v.is_array()) {
                conforms_to_response(&raw, path, method, &v);
                checked += 1;
            }
        }
    }
    assert_eq!(
        operations,
        sluice_server::route_specs().len(),
        "every registered route is documented"
    );
    // The admin's 200s above, and alice's own job, release and agreement:
    // every field the server sends is one the document describes, typed as
    // it says, and every field it requires is there.
    assert!(checked >= 15, "only {checked} responses checked");
    // The check can fail: a field the schema lacks, a wrong type, a
    // missing required field.
    let job_schema = json!({"$ref": "#/components/schemas/JobView"});
    let (_, text) = p.alice.raw("GET", "/v1/jobs", None).await.unwrap();
    let mut sample = serde_json::from_str::<Value>(&text).unwrap()[0].clone();
    if sample.is_null() {
        sample = json!({"id": "j", "state": "released", "manifest_digest": "d", "epsilon": "1", "created_at": "t", "updated_at": "t"});
    }
    assert!(
        conforms(&raw, &job_schema, &sample, "$").is_ok(),
        "{sample}"
    );
    let mut extra = sample.clone();
    extra["rows"] = json!([1, 2]);
    let mut wrong = sample.clone();
    wrong["epsilon"] = json!(1.0);
    let mut missing = sample.clone();
    missing.as_object_mut().unwrap().remove("manifest_digest");
    for bad in [extra, wrong, missing] {
        assert!(conforms(&raw, &job_schema, &bad, "$").is_err(), "{bad}");
    }
    let job = crate::run_job(
        &p.alice,
        &p.manifest("pums", "SELECT COUNT(*) AS n FROM pums", 1.0),
    )
    .await;
    for (template, concrete) in [
        ("/v1/jobs/{id}", format!("/v1/jobs/{}", job.id)),
        (
            "/v1/jobs/{id}/release",
            format!("/v1/jobs/{}/release", job.id),
        ),
        ("/v1/jobs", "/v1/jobs".to_owned()),
        (
            "/v1/agreements/{id}",
            format!("/v1/agreements/{}", p.agreements[0]),
        ),
        ("/v1/applications", "/v1/applications".to_owned()),
        (
            "/v1/datasets/{name}/budget",
            "/v1/datasets/pums/budget".to_owned(),
        ),
    ] {
        let (got, text) = p.alice.raw("GET", &concrete, None).await.unwrap();
        assert_eq!(got, 200, "{concrete}: {text}");
        conforms_to_response(&raw, template, "get", &serde_json::from_str(&text).unwrap());
    }
}

/// Asserts that `value` matches the 200 response schema of `method path`.
fn conforms_to_response(doc: &Value, path: &str, method: &str, value: &Value) {
    let schema =
        &doc["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path}: no JSON schema for 200"
    );
    if let Err(e) = conforms(doc, schema, value, "$") {
        panic!("{method} {path}: {e}\n{value}");
    }
}

/// A small JSON Schema (OpenAPI 3.0 subset) check: references, nullable,
/// one/any/allOf, enums, types, required and additional properties, items.
fn conforms(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        let target = &doc["components"]["schemas"][name];
        assert!(target.is_object(), "{r} does not resolve");
        return conforms(doc, target, v, at);
    }
    if v.is_null() && schema["nullable"] == true {
        return Ok(());
    }
    if let Some(all) = schema["allOf"].as_array() {
        for s in all {
            conforms(doc, s, v, at)?;
        }
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema[key].as_array()
            && !options.iter().any(|s| conforms(doc, s, v, at).is_ok())
        {
            return Err(format!("{at}: matches none of its {key} options"));
        }
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(v)
    {
        return Err(format!("{at}: {v} is not one of {options:?}"));
    }
    let ok = match schema["type"].as_str() {
        None => true,
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        Some(other) => return Err(format!("{at}: unknown type {other}")),
    };
    if !ok {
        return Err(format!("{at}: {v} is not of type {}", schema["type"]));
    }
    if let Some(map) = v.as_object() {
        for field in schema["required"].as_array().into_iter().flatten() {
            let field = field.as_str().unwrap();
            if !map.contains_key(field) {
                return Err(format!("{at}: required field {field} is missing"));
            }
        }
        let properties = schema["properties"].as_object();
        for (key, value) in map {
            let at = format!("{at}.{key}");
            match properties.and_then(|p| p.get(key)) {
                Some(s) => conforms(doc, s, value, &at)?,
                None if schema["additionalProperties"] == false => {
                    return Err(format!("{at}: not in the schema"));
                }
                None if schema["additionalProperties"].is_object() => {
                    conforms(doc, &schema["additionalProperties"], value, &at)?
                }
                // Described nowhere: only a free-form object may carry it.
                None if properties.is_some() => {
                    return Err(format!("{at}: not in the schema"));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(values)) = (schema.get("items"), v.as_array()) {
        for (i, item) in values.iter().enumerate() {
            conforms(doc, items, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
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

/// Every route that takes a JSON body refuses a field it does not know,
/// with 400 and the field named, before anything else is looked at.
#[tokio::test]
async fn every_json_body_refuses_unknown_fields() {
    let p = with_pums().await;
    let reviewer = p.reviewer("rev").await;
    let (_, text) = p.admin.raw("GET", "/openapi.json", None).await.unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut checked = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op["requestBody"]["content"]["application/json"].is_null() {
                continue;
            }
            let concrete = path
                .replace("{name}", "pums")
                .replace("{version}", "v")
                .replace("{id}", "x");
            // A caller the route admits, so the body is what is refused.
            let spec = sluice_server::route_specs()
                .into_iter()
                .find(|r| r.path == path && r.method.as_str().eq_ignore_ascii_case(method))
                .unwrap_or_else(|| panic!("{method} {path} is not declared"));
            let caller = if spec.access.admits(Role::Admin) {
                &p.admin
            } else if spec.access.admits(Role::User) {
                &p.alice
            } else {
                &reviewer
            };
            let (status, body) = caller
                .raw(
                    &method.to_uppercase(),
                    &concrete,
                    Some(&json!({"sluice_unknown_field": 1})),
                )
                .await
                .unwrap();
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(status, 400, "{method} {path}: {body}");
            assert_eq!(v["code"], "bad_request", "{method} {path}: {body}");
            let message = v["message"].as_str().unwrap();
            assert!(
                message.contains("unknown field `sluice_unknown_field`"),
                "{method} {path}: {message}"
            );
            checked.push(format!("{method} {path}"));
        }
    }
    assert!(checked.len() >= 15, "{checked:?}");
    // Nested bodies too: an agreement's terms inside a decision.
    let (status, body) = p
        .admin
        .raw(
            "POST",
            "/v1/applications/x/decision",
            Some(&json!({"approve": true, "terms": {"purpose": "p", "extra": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("unknown field `extra`"), "{body}");
}

/// Refusals are audited: the actor (user id, a hash prefix of an unknown
/// token, or anonymous), the route's template and the code, once per kind
/// and minute however often it repeats, never the token, the object's id,
/// the query string or the body; the chain still verifies.
#[tokio::test]
async fn refusals_are_audited_once_per_kind_with_no_raw_values() {
    let p = with_pums().await;
    let fb = p
        .alice
        .report_feedback("pums", "error", "a value looks wrong")
        .await
        .unwrap();
    let bob = p.bob.me().await.unwrap().id;
    let alice = p.alice.me().await.unwrap().id;
    let made_up = "slc_made_up_token_for_the_audit_test";
    let stranger = p.admin.with_token(made_up);
    let secret_query = format!("/v1/feedback/{}?probe=secret-query-value", fb.id);
    let mut sent = Vec::new();
    for _ in 0..5 {
        sent.push(stranger.raw("GET", "/v1/me", None).await.unwrap().0);
        sent.push(
            p.admin
                .anonymous()
                .raw("GET", "/v1/datasets", None)
                .await
                .unwrap()
                .0,
        );
        sent.push(p.bob.raw("GET", "/v1/audit", None).await.unwrap().0);
        sent.push(p.bob.raw("GET", &secret_query, None).await.unwrap().0);
        sent.push(
            p.bob
                .raw(
                    "POST",
                    "/v1/users/alice/close",
                    Some(&json!({"reason": "body-secret"})),
                )
                .await
                .unwrap()
                .0,
        );
    }
    // More ε than alice's grant on pums: 402, before any data is read.
    let greedy = p.manifest("pums", "SELECT COUNT(*) AS n FROM pums", 50.0);
    let refused = p.alice.submit_job(&greedy).await.unwrap_err();
    assert_eq!(refused.status().map(|s| s.as_u16()), Some(402), "{refused}");
    assert_eq!(sent.iter().filter(|s| **s == 401).count(), 10);
    assert_eq!(sent.iter().filter(|s| **s == 403).count(), 10);
    assert_eq!(sent.iter().filter(|s| **s == 404).count(), 5);

    let log: Vec<sluice_store::AuditEntry> =
        serde_json::from_value(p.admin.audit_log().await.unwrap()).unwrap();
    sluice_store::verify_audit_chain(&log).unwrap();
    let token_actor = &sluice_crypto::sha256_hex(made_up.as_bytes())[..12];
    for (actor, route, code) in [
        (token_actor, "GET /v1/me", "unauthenticated"),
        ("anonymous", "GET /v1/datasets", "unauthenticated"),
        (bob.as_str(), "GET /v1/audit", "forbidden"),
        (bob.as_str(), "GET /v1/feedback/{id}", "not_found"),
        (bob.as_str(), "POST /v1/users/{name}/close", "forbidden"),
        (alice.as_str(), "POST /v1/jobs", "budget_exhausted"),
    ] {
        let written: Vec<&sluice_store::AuditEntry> = log
            .iter()
            .filter(|e| e.action == "request.denied" && e.actor == actor && e.object == route)
            .collect();
        // Five alike in a minute: written once (twice if the minute turned).
        assert!(
            (1..=2).contains(&written.len()),
            "{actor} {route}: {written:?}"
        );
        let details: Value = serde_json::from_str(&written[0].details).unwrap();
        assert_eq!(details["code"], code, "{route}");
    }
    let text = serde_json::to_string(&log).unwrap();
    for raw in [made_up, "secret-query-value", "body-secret", "probe="] {
        assert!(!text.contains(raw), "the audit log holds {raw}");
    }
    // The feedback's id is in its own creation entry, in no refusal's.
    let denials: Vec<_> = log
        .iter()
        .filter(|e| e.action.starts_with("request.denied"))
        .collect();
    let text = serde_json::to_string(&denials).unwrap();
    assert!(!text.contains(&fb.id), "a refusal names {}", fb.id);
}
