//! The OpenAPI document, generated from the route table below and served
//! at `/openapi.json`. A test reads `routes.rs` and fails when a route is
//! registered there but missing here (or the other way round), so the
//! document covers every route.

use serde_json::{Value, json};

pub struct ApiRoute {
    pub method: &'static str,
    pub path: &'static str,
    /// Who may call it (the authorization the matrix test checks).
    pub roles: &'static str,
    pub summary: &'static str,
    /// Request body: the `sluice_types::api` type, or a media type.
    pub body: Option<&'static str>,
    /// Success status and what it returns.
    pub ok: (u16, &'static str),
}

const fn r(
    method: &'static str,
    path: &'static str,
    roles: &'static str,
    summary: &'static str,
    body: Option<&'static str>,
    ok: (u16, &'static str),
) -> ApiRoute {
    ApiRoute {
        method,
        path,
        roles,
        summary,
        body,
        ok,
    }
}

const ANY: &str = "any authenticated role";
const OWNER: &str = "the dataset's provider, admin";

pub const ROUTES: &[ApiRoute] = &[
    r(
        "get",
        "/openapi.json",
        "anyone",
        "This document",
        None,
        (200, "OpenAPI 3.0 JSON"),
    ),
    r("get", "/v1/health", "anyone", "Liveness", None, (200, "ok")),
    r(
        "get",
        "/v1/public-key",
        "anyone",
        "The release-signing key and its id",
        None,
        (200, "PublicKey"),
    ),
    r("get", "/v1/me", ANY, "The caller", None, (200, "UserView")),
    r(
        "post",
        "/v1/users",
        "admin",
        "Create a user; returns its token once",
        Some("CreateUser"),
        (201, "CreatedUser"),
    ),
    r(
        "post",
        "/v1/users/{name}/close",
        "admin",
        "Close a user's access to every dataset (art. 34); their jobs are cancelled",
        Some("Reason"),
        (200, "ControlResult"),
    ),
    r(
        "post",
        "/v1/datasets",
        "provider, admin",
        "Create a catalog entry from a descriptor",
        Some("DatasetDescriptor"),
        (201, "CatalogEntry"),
    ),
    r(
        "get",
        "/v1/datasets",
        ANY,
        "Search the catalog",
        None,
        (200, "CatalogEntry[]"),
    ),
    r(
        "get",
        "/v1/datasets/{name}",
        ANY,
        "A catalog entry",
        None,
        (200, "CatalogEntry"),
    ),
    r(
        "post",
        "/v1/datasets/{name}/versions",
        OWNER,
        "Upload a version (raw file bytes, at most 256 MiB)",
        Some("application/octet-stream"),
        (201, "VersionAdded"),
    ),
    r(
        "get",
        "/v1/datasets/{name}/versions/{version}/quality",
        OWNER,
        "A version's quality report",
        None,
        (200, "QualityReport"),
    ),
    r(
        "get",
        "/v1/datasets/{name}/preview",
        ANY,
        "Real rows (unconditional) or synthetic rows (conditional)",
        None,
        (200, "PreviewView"),
    ),
    r(
        "get",
        "/v1/datasets/{name}/download",
        ANY,
        "The stored Parquet (unconditional only)",
        None,
        (200, "application/octet-stream"),
    ),
    r(
        "post",
        "/v1/datasets/{name}/access",
        OWNER,
        "Grant a user access to a conditional dataset",
        Some("AccessGrant"),
        (204, "nothing"),
    ),
    r(
        "get",
        "/v1/datasets/{name}/budget",
        ANY,
        "The caller's own privacy budget on a dataset",
        None,
        (200, "BudgetView"),
    ),
    r(
        "put",
        "/v1/datasets/{name}/review-policy",
        OWNER,
        "Distinct reviewers required per job (0 to 2)",
        Some("ReviewPolicy"),
        (204, "nothing"),
    ),
    r(
        "post",
        "/v1/datasets/{name}/suspend",
        OWNER,
        "Suspend a dataset (art. 38): new jobs refused, running ones cancelled",
        Some("Reason"),
        (200, "ControlResult"),
    ),
    r(
        "post",
        "/v1/datasets/{name}/resume",
        OWNER,
        "Resume a suspended dataset",
        Some("Reason"),
        (200, "ControlResult"),
    ),
    r(
        "post",
        "/v1/datasets/{name}/withdraw",
        OWNER,
        "Withdraw a dataset for good",
        Some("Reason"),
        (200, "ControlResult"),
    ),
    r(
        "post",
        "/v1/datasets/{name}/revoke",
        OWNER,
        "Revoke one user's access (art. 34); their jobs on it are cancelled",
        Some("RevokeRequest"),
        (200, "ControlResult"),
    ),
    r(
        "post",
        "/v1/datasets/{name}/feedback",
        "any role (rectification: admin)",
        "Report an error or omission (art. 10), or open a rectification task (art. 16)",
        Some("FeedbackRequest"),
        (201, "FeedbackView"),
    ),
    r(
        "get",
        "/v1/revocations",
        ANY,
        "Every revocation, publicly listed",
        None,
        (200, "RevocationView[]"),
    ),
    r(
        "get",
        "/v1/stats",
        ANY,
        "Usage statistics by provider and open category (art. 9)",
        None,
        (200, "UsageStats"),
    ),
    r(
        "post",
        "/v1/applications",
        "user",
        "Apply for conditional data (art. 20); incomplete ones are refused with every problem",
        Some("ApplicationRequest"),
        (201, "ApplicationView"),
    ),
    r(
        "get",
        "/v1/applications",
        ANY,
        "Applications the caller made, must decide, or all (admin); ?overdue=true",
        None,
        (200, "ApplicationView[]"),
    ),
    r(
        "get",
        "/v1/applications/{id}",
        "its parties, admin",
        "One application",
        None,
        (200, "ApplicationView"),
    ),
    r(
        "post",
        "/v1/applications/{id}/decision",
        "its provider, admin; never the applicant",
        "Approve with agreement terms, or refuse with reasons and legal basis",
        Some("ApplicationDecision"),
        (200, "ApplicationView"),
    ),
    r(
        "get",
        "/v1/agreements",
        ANY,
        "The caller's data-use agreements (art. 21)",
        None,
        (200, "AgreementView[]"),
    ),
    r(
        "get",
        "/v1/agreements/{id}",
        "its parties, admin",
        "One agreement with its content hash",
        None,
        (200, "AgreementView"),
    ),
    r(
        "get",
        "/v1/feedback",
        ANY,
        "Feedback the caller may see; ?overdue=true",
        None,
        (200, "FeedbackView[]"),
    ),
    r(
        "get",
        "/v1/feedback/{id}",
        "reporter, provider, admin",
        "One feedback item",
        None,
        (200, "FeedbackView"),
    ),
    r(
        "post",
        "/v1/feedback/{id}/answer",
        OWNER,
        "Answer feedback",
        Some("FeedbackAnswer"),
        (200, "FeedbackView"),
    ),
    r(
        "post",
        "/v1/feedback/{id}/extension",
        OWNER,
        "Ask for a longer deadline (at most 30 working days)",
        Some("ExtensionRequest"),
        (200, "FeedbackView"),
    ),
    r(
        "post",
        "/v1/feedback/{id}/extension/decision",
        "admin",
        "Approve or refuse an extension",
        Some("ExtensionDecision"),
        (200, "FeedbackView"),
    ),
    r(
        "get",
        "/v1/reviews",
        "reviewer",
        "Jobs awaiting the caller's review",
        None,
        (200, "ReviewView[]"),
    ),
    r(
        "get",
        "/v1/reviews/{id}",
        "reviewer",
        "A held job: manifest, analysis, diff",
        None,
        (200, "ReviewView"),
    ),
    r(
        "post",
        "/v1/reviews/{id}",
        "reviewer (never the submitter)",
        "Approve or reject, bound to the manifest digest",
        Some("ReviewRequest"),
        (200, "ReviewResult"),
    ),
    r(
        "post",
        "/v1/jobs",
        "user, provider, admin",
        "Submit a manifest (TOML body)",
        Some("application/toml"),
        (202, "JobView"),
    ),
    r(
        "get",
        "/v1/jobs",
        ANY,
        "The caller's jobs",
        None,
        (200, "JobView[]"),
    ),
    r(
        "post",
        "/v1/jobs/estimate",
        "user, provider, admin",
        "Exact cost and accuracy of a manifest; reads no data",
        Some("application/toml"),
        (200, "EstimateView"),
    ),
    r(
        "get",
        "/v1/jobs/{id}",
        "its owner",
        "A job's state",
        None,
        (200, "JobView"),
    ),
    r(
        "get",
        "/v1/jobs/{id}/events",
        "its owner",
        "Server-sent events: the job's view on every change, until it ends",
        None,
        (200, "text/event-stream"),
    ),
    r(
        "get",
        "/v1/jobs/{id}/release",
        "its owner",
        "The signed release",
        None,
        (200, "Release"),
    ),
    r(
        "get",
        "/v1/audit",
        "admin",
        "The hash-chained audit log",
        None,
        (200, "AuditEntry[]"),
    ),
    r(
        "get",
        "/v1/audit/checkpoint",
        ANY,
        "A signed checkpoint of the audit log's head",
        None,
        (200, "SignedCheckpoint"),
    ),
];

fn media(name: &str) -> (&str, Value) {
    if name.contains('/') {
        (name, json!({"type": "string", "format": "binary"}))
    } else {
        (
            "application/json",
            json!({"type": if name.ends_with("[]") { "array" } else { "object" },
                   "description": format!("sluice_types::api::{}", name.trim_end_matches("[]"))}),
        )
    }
}

/// The document: OpenAPI 3.0.3, bearer-token security on every route but
/// the public ones, the error body on every error status.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for route in ROUTES {
        let params: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let (ok_status, ok_what) = route.ok;
        let mut responses = serde_json::Map::new();
        let ok = if ok_status == 204 || ok_what == "ok" {
            json!({"description": ok_what})
        } else {
            let (mt, schema) = media(ok_what);
            json!({"description": ok_what, "content": {mt: {"schema": schema}}})
        };
        responses.insert(ok_status.to_string(), ok);
        responses.insert(
            "default".into(),
            json!({"description": "an error: a stable code, a message, maybe a hint",
                   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
        let mut op = json!({
            "summary": route.summary,
            "description": format!("Who: {}.", route.roles),
            "operationId": format!("{}{}", route.method, route.path.replace(['/', '{', '}', '-', '.'], "_")),
            "parameters": params,
            "responses": responses,
        });
        if route.roles == "anyone" {
            op["security"] = json!([]);
        }
        if let Some(body) = route.body {
            let (mt, schema) = media(body);
            op["requestBody"] = json!({"required": true, "content": {mt: {"schema": schema}}});
        }
        paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("path item is an object")
            .insert(route.method.to_owned(), op);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Sluice API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Privacy-preserving computation on public-sector data: only differentially private results leave. See docs/api.md."
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "description": "stable error code (docs/api.md)"},
                    "message": {"type": "string"},
                    "hint": {"type": "string"}
                }
            }}
        },
        "paths": paths,
    })
}

pub async fn serve() -> axum::Json<Value> {
    axum::Json(document())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Every `.route(...)` registered in routes.rs, as (method, path).
    fn registered() -> BTreeSet<(String, String)> {
        let source = include_str!("routes.rs");
        let body = &source[source.find("Router::new()").expect("router")..];
        let mut out = BTreeSet::new();
        for segment in body.split(".route(").skip(1) {
            let segment = segment.split(".fallback(").next().unwrap_or(segment);
            let path = segment
                .split('"')
                .nth(1)
                .expect("a route's path literal")
                .to_owned();
            for method in ["get", "post", "put", "delete", "patch"] {
                let called = segment.match_indices(&format!("{method}(")).any(|(i, _)| {
                    i == 0
                        || !segment.as_bytes()[i - 1].is_ascii_alphanumeric()
                            && segment.as_bytes()[i - 1] != b'_'
                });
                if called {
                    out.insert((method.to_owned(), path.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn the_document_covers_every_registered_route_and_no_other() {
        let documented: BTreeSet<(String, String)> = super::ROUTES
            .iter()
            .map(|r| (r.method.to_owned(), r.path.to_owned()))
            .collect();
        let registered = registered();
        assert!(registered.len() > 40, "{registered:?}");
        let missing: Vec<_> = registered.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&registered).collect();
        assert!(
            missing.is_empty(),
            "routes without documentation: {missing:?}"
        );
        assert!(
            extra.is_empty(),
            "documented routes that do not exist: {extra:?}"
        );
    }
}
