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
        (200, "application/json"),
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
        "The stored Parquet, or with ?format=csv spreadsheet-safe CSV (unconditional only)",
        None,
        (200, "application/octet-stream"),
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
        "/v1/jobs/{id}/release.csv",
        "its owner",
        "The release as spreadsheet-safe CSV (unsigned; the JSON release is authoritative)",
        None,
        (200, "text/csv"),
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

/// The JSON Schemas of every API type a route names, generated from the
/// types themselves (schemars, OpenAPI 3.0 dialect) so that the document
/// cannot drift from what the server sends and accepts. Responses are
/// described as serialised, request bodies as deserialised (a field with a
/// default is optional there); a type whose two forms differ appears twice,
/// the request form named `…Input`.
macro_rules! api_schemas {
    (requests { $($rq:literal => $rq_ty:ty),* $(,)? } responses { $($rs:literal => $rs_ty:ty),* $(,)? }) => {
        /// Response types the route table may name.
        pub const RESPONSE_SCHEMAS: &[&str] = &[$($rs),*];

        /// (components, request name → component name)
        fn components() -> (serde_json::Map<String, Value>, std::collections::BTreeMap<String, String>) {
            use schemars::generate::{Contract, SchemaSettings};
            let generate = |contract: Contract| {
                SchemaSettings::openapi3()
                    .with(|s| s.contract = contract)
                    .into_generator()
            };
            let mut out = generate(Contract::Serialize);
            // Registers each response type (and what it contains) under its
            // name in the definitions; routes refer to it by that name.
            $(
                let schema = out.subschema_for::<$rs_ty>();
                assert_eq!(
                    schema.get("$ref").and_then(Value::as_str),
                    Some(concat!("#/components/schemas/", $rs)),
                    "a response type is a named component"
                );
            )*
            let mut input = generate(Contract::Deserialize);
            let mut requests = serde_json::Map::new();
            $(
                let schema = input.subschema_for::<$rq_ty>();
                requests.insert($rq.to_owned(), serde_json::to_value(schema).expect("a schema serialises"));
            )*
            merge(out.take_definitions(true), input.take_definitions(true), requests)
        }
    };
}

/// Joins the response and request definitions; a request definition that
/// differs from the response one of the same name is renamed `…Input`, and
/// every reference to it follows.
fn merge(
    mut components: serde_json::Map<String, Value>,
    mut input: serde_json::Map<String, Value>,
    roots: serde_json::Map<String, Value>,
) -> (
    serde_json::Map<String, Value>,
    std::collections::BTreeMap<String, String>,
) {
    let renamed: std::collections::BTreeMap<String, String> = input
        .iter()
        .filter(|(name, schema)| components.get(*name).is_some_and(|s| s != *schema))
        .map(|(name, _)| (name.clone(), format!("{name}Input")))
        .collect();
    fn follow(v: &mut Value, renamed: &std::collections::BTreeMap<String, String>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get_mut("$ref")
                    && let Some(to) = r
                        .strip_prefix("#/components/schemas/")
                        .and_then(|name| renamed.get(name))
                {
                    *r = format!("#/components/schemas/{to}");
                }
                map.values_mut().for_each(|v| follow(v, renamed));
            }
            Value::Array(items) => items.iter_mut().for_each(|v| follow(v, renamed)),
            _ => {}
        }
    }
    for schema in input.values_mut() {
        follow(schema, &renamed);
    }
    for (name, schema) in input {
        let name = renamed.get(&name).cloned().unwrap_or(name);
        components.entry(name).or_insert(schema);
    }
    // A request root is a reference (to its component, maybe renamed).
    let mut request_names = std::collections::BTreeMap::new();
    for (name, mut root) in roots {
        follow(&mut root, &renamed);
        let target = root["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .map(str::to_owned)
            .unwrap_or_else(|| {
                // Inlined (not a named struct): store it under its name.
                components.insert(name.clone(), root.clone());
                name.clone()
            });
        request_names.insert(name, target);
    }
    (components, request_names)
}

api_schemas! {
    requests {
        "ApplicationDecision" => sluice_types::api::ApplicationDecision,
        "ApplicationRequest" => sluice_types::api::ApplicationRequest,
        "CreateUser" => sluice_types::api::CreateUser,
        "DatasetDescriptor" => sluice_types::api::DatasetDescriptor,
        "ExtensionDecision" => sluice_types::api::ExtensionDecision,
        "ExtensionRequest" => sluice_types::api::ExtensionRequest,
        "FeedbackAnswer" => sluice_types::api::FeedbackAnswer,
        "FeedbackRequest" => sluice_types::api::FeedbackRequest,
        "Reason" => sluice_types::api::Reason,
        "ReviewPolicy" => sluice_types::api::ReviewPolicy,
        "ReviewRequest" => sluice_types::api::ReviewRequest,
        "RevokeRequest" => sluice_types::api::RevokeRequest,
    }
    responses {
        "AgreementView" => sluice_types::api::AgreementView,
        "ApplicationView" => sluice_types::api::ApplicationView,
        "AuditEntry" => sluice_store::AuditEntry,
        "BudgetView" => sluice_types::api::BudgetView,
        "CatalogEntry" => sluice_types::CatalogEntry,
        "ControlResult" => sluice_types::api::ControlResult,
        "CreatedUser" => sluice_types::api::CreatedUser,
        "EstimateView" => sluice_types::api::EstimateView,
        "FeedbackView" => sluice_types::api::FeedbackView,
        "JobView" => sluice_types::api::JobView,
        "PreviewView" => sluice_types::api::PreviewView,
        "PublicKey" => sluice_types::api::PublicKey,
        "QualityReport" => sluice_types::QualityReport,
        "Release" => sluice_types::release::Release,
        "ReviewResult" => sluice_types::api::ReviewResult,
        "ReviewView" => sluice_types::api::ReviewView,
        "RevocationView" => sluice_types::api::RevocationView,
        "SignedCheckpoint" => sluice_types::audit::SignedCheckpoint,
        "UsageStats" => sluice_types::api::UsageStats,
        "UserView" => sluice_types::api::UserView,
        "VersionAdded" => sluice_types::api::VersionAdded,
    }
}

/// A body's media type and schema: a media type names itself; a type name
/// (`Name` or `Name[]`) refers to its component (`component` maps a
/// request type to the component that describes it).
fn media(name: &str, component: impl Fn(&str) -> String) -> (&str, Value) {
    match name {
        "application/json" => return (name, json!({"type": "object"})),
        "text/event-stream" | "application/toml" => return (name, json!({"type": "string"})),
        _ if name.contains('/') => return (name, json!({"type": "string", "format": "binary"})),
        _ => {}
    }
    let item = name.trim_end_matches("[]");
    let reference = json!({"$ref": format!("#/components/schemas/{}", component(item))});
    let schema = if name.ends_with("[]") {
        json!({"type": "array", "items": reference})
    } else {
        reference
    };
    ("application/json", schema)
}

/// The document: OpenAPI 3.0.3, bearer-token security on every route but
/// the public ones, the error body on every error status.
pub fn document() -> Value {
    let (mut schemas, request_names) = components();
    let response = |name: &str| {
        assert!(
            RESPONSE_SCHEMAS.contains(&name),
            "the route table returns {name}, which has no response schema"
        );
        name.to_owned()
    };
    let request = |name: &str| {
        request_names
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("the route table takes {name}, which has no request schema"))
    };
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
            let (mt, schema) = media(ok_what, response);
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
            let (mt, schema) = media(body, request);
            op["requestBody"] = json!({"required": true, "content": {mt: {"schema": schema}}});
        }
        paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("path item is an object")
            .insert(route.method.to_owned(), op);
    }
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "stable error code (docs/api.md)"},
                "message": {"type": "string"},
                "hint": {"type": "string"}
            }
        }),
    );
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
            "schemas": schemas,
        },
        "paths": paths,
    })
}

/// The document, built once; [`crate::start`] builds it before serving so
/// that a route table naming a type without a schema fails at boot.
pub fn cached() -> &'static Value {
    static DOCUMENT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(document)
}

pub async fn serve() -> axum::Json<Value> {
    axum::Json(cached().clone())
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

    /// Collects every `$ref` target in `v`.
    fn refs(v: &serde_json::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(r) = map.get("$ref").and_then(|r| r.as_str()) {
                    out.insert(r.to_owned());
                }
                map.values().for_each(|v| refs(v, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    /// Bodies are described field by field, and every reference resolves.
    #[test]
    fn every_body_has_a_field_level_schema_and_every_reference_resolves() {
        let doc = super::document();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut all = BTreeSet::new();
        refs(&doc, &mut all);
        for r in &all {
            let name = r.strip_prefix("#/components/schemas/").unwrap();
            assert!(schemas.contains_key(name), "{r} does not resolve");
        }
        // Fields are named, typed and described from the code.
        let job = &schemas["JobView"];
        assert_eq!(job["type"], "object");
        assert_eq!(job["properties"]["epsilon"]["type"], "string");
        assert!(
            job["required"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!("manifest_digest"))
        );
        let agreement = &schemas["AgreementView"]["properties"];
        assert!(agreement["epsilon"]["description"].is_string());
        // A request's defaulted field is optional; unknown fields are refused.
        let apply = &schemas[doc["paths"]["/v1/applications"]["post"]["requestBody"]["content"]
            ["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()];
        assert_eq!(apply["additionalProperties"], false);
        assert!(
            apply["required"]
                .as_array()
                .is_none_or(|r| !r.contains(&serde_json::json!("title")))
        );
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
