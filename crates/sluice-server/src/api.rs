//! Every route, declared once: method, path, who may call it, what it takes
//! and returns, and its handler. The router, the OpenAPI document
//! (`crate::openapi`) and the authorization matrix test
//! (`tests/e2e/authz.rs`) are all derived from [`routes`], and each route's
//! role rule is enforced by `crate::access::gate` from this declaration:
//! a route cannot be added without saying who may call it, nor be missing
//! from the document or the matrix.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{MethodRouter, get, post, put};
use sluice_types::Role;
use sluice_types::api as body;

use crate::access::Access;
use crate::route_spec::{Body, RouteSpec, json, list};
use crate::{
    MAX_UPLOAD_BYTES, SharedState, applications, audit, control, datasets, feedback, jobs, reviews,
    users,
};

/// A route: its spec and its handler.
pub struct Route {
    pub spec: RouteSpec,
    handler: MethodRouter<SharedState>,
}

/// One route. Taking `access` as an argument is what makes a route without
/// a role rule impossible to declare.
fn route(
    method: Method,
    path: &'static str,
    access: Access,
    summary: &'static str,
    request: Body,
    response: (u16, Body),
    handler: MethodRouter<SharedState>,
) -> Route {
    Route {
        spec: RouteSpec {
            method,
            path,
            access,
            summary,
            request,
            response,
        },
        handler,
    }
}

const ANY: Access = Access::Authenticated;
const ADMIN_ONLY: &[Role] = &[Role::Admin];
const PUBLISHERS: &[Role] = &[Role::Provider, Role::Admin];
const SUBMITTERS: &[Role] = &[Role::User, Role::Provider, Role::Admin];
const APPLICANTS: &[Role] = &[Role::User];
const REVIEWERS: &[Role] = &[Role::Reviewer];

/// Every route of the API.
pub fn routes() -> Vec<Route> {
    use Body::{Media, Nothing};
    use Method as M;
    let upload = post(datasets::add_version).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES));
    vec![
        route(
            M::GET,
            "/openapi.json",
            Access::Public,
            "This document",
            Nothing,
            (200, Media("application/json")),
            get(serve_openapi),
        ),
        route(
            M::GET,
            "/v1/health",
            Access::Public,
            "Liveness",
            Nothing,
            (200, Media("text/plain")),
            get(|| async { "ok" }),
        ),
        route(
            M::GET,
            "/v1/public-key",
            Access::Public,
            "The release-signing key and its id",
            Nothing,
            (200, json::<body::PublicKey>()),
            get(users::public_key),
        ),
        route(
            M::GET,
            "/v1/me",
            ANY,
            "The caller",
            Nothing,
            (200, json::<body::UserView>()),
            get(users::me),
        ),
        route(
            M::GET,
            "/v1/users",
            Access::Roles(ADMIN_ONLY, "list users"),
            "Every user: id, name, role",
            Nothing,
            (200, list::<body::UserView>()),
            get(users::list_users),
        ),
        route(
            M::POST,
            "/v1/users",
            Access::Roles(ADMIN_ONLY, "create users"),
            "Create a user; returns its token once",
            json::<body::CreateUser>(),
            (201, json::<body::CreatedUser>()),
            post(users::create_user),
        ),
        route(
            M::POST,
            "/v1/users/{name}/close",
            Access::Roles(ADMIN_ONLY, "close a user's access"),
            "Close a user's access to every dataset (art. 34); their jobs are cancelled",
            json::<body::Reason>(),
            (200, json::<body::ControlResult>()),
            post(control::close_user),
        ),
        route(
            M::POST,
            "/v1/datasets",
            Access::Roles(PUBLISHERS, "publish datasets"),
            "Create a catalog entry from a descriptor",
            json::<body::DatasetDescriptor>(),
            (201, json::<sluice_types::CatalogEntry>()),
            post(datasets::create_dataset),
        ),
        route(
            M::GET,
            "/v1/datasets",
            ANY,
            "Search the catalog (art. 14 fields)",
            Nothing,
            (200, list::<sluice_types::CatalogEntry>()),
            get(datasets::search),
        ),
        route(
            M::GET,
            "/v1/datasets/{name}",
            ANY,
            "A catalog entry",
            Nothing,
            (200, json::<sluice_types::CatalogEntry>()),
            get(datasets::show_dataset),
        ),
        route(
            M::POST,
            "/v1/datasets/{name}/versions",
            ANY,
            "Upload a version (raw file bytes, at most 256 MiB); the dataset's provider or admin",
            Media("application/octet-stream"),
            (201, json::<body::VersionAdded>()),
            upload,
        ),
        route(
            M::GET,
            "/v1/datasets/{name}/versions/{version}/quality",
            ANY,
            "A version's quality report; the dataset's provider or admin",
            Nothing,
            (200, json::<sluice_types::QualityReport>()),
            get(datasets::quality),
        ),
        route(
            M::GET,
            "/v1/datasets/{name}/preview",
            ANY,
            "Real rows (unconditional) or synthetic rows (conditional)",
            Nothing,
            (200, json::<body::PreviewView>()),
            get(datasets::preview),
        ),
        route(
            M::GET,
            "/v1/datasets/{name}/download",
            ANY,
            "The stored Parquet, or with ?format=csv spreadsheet-safe CSV (unconditional only)",
            Nothing,
            (200, Media("application/octet-stream")),
            get(datasets::download),
        ),
        route(
            M::GET,
            "/v1/datasets/{name}/budget",
            ANY,
            "The caller's own privacy budget on a dataset",
            Nothing,
            (200, json::<body::BudgetView>()),
            get(datasets::budget),
        ),
        route(
            M::PUT,
            "/v1/datasets/{name}/review-policy",
            ANY,
            "Distinct reviewers required per job (0 to 2); the dataset's provider or admin",
            json::<body::ReviewPolicy>(),
            (204, Nothing),
            put(reviews::set_policy),
        ),
        route(
            M::POST,
            "/v1/datasets/{name}/suspend",
            ANY,
            "Suspend a dataset (art. 38): new jobs refused, running ones cancelled; the dataset's provider or admin",
            json::<body::Reason>(),
            (200, json::<body::ControlResult>()),
            post(control::suspend),
        ),
        route(
            M::POST,
            "/v1/datasets/{name}/resume",
            ANY,
            "Resume a suspended dataset; the dataset's provider or admin",
            json::<body::Reason>(),
            (200, json::<body::ControlResult>()),
            post(control::resume),
        ),
        route(
            M::POST,
            "/v1/datasets/{name}/withdraw",
            ANY,
            "Withdraw a dataset for good; the dataset's provider or admin",
            json::<body::Reason>(),
            (200, json::<body::ControlResult>()),
            post(control::withdraw),
        ),
        route(
            M::POST,
            "/v1/datasets/{name}/revoke",
            ANY,
            "Revoke one user's access (art. 34); their jobs on it are cancelled; the dataset's provider or admin",
            json::<body::RevokeRequest>(),
            (200, json::<body::ControlResult>()),
            post(control::revoke),
        ),
        route(
            M::POST,
            "/v1/datasets/{name}/feedback",
            ANY,
            "Report an error or omission (art. 10), or open a rectification task (art. 16, admin only)",
            json::<body::FeedbackRequest>(),
            (201, json::<body::FeedbackView>()),
            post(feedback::report),
        ),
        route(
            M::GET,
            "/v1/revocations",
            ANY,
            "Every revocation, publicly listed (art. 34)",
            Nothing,
            (200, list::<body::RevocationView>()),
            get(control::revocations),
        ),
        route(
            M::GET,
            "/v1/stats",
            ANY,
            "Usage statistics by provider and open category (art. 9)",
            Nothing,
            (200, json::<body::UsageStats>()),
            get(control::stats),
        ),
        route(
            M::POST,
            "/v1/applications",
            Access::Roles(APPLICANTS, "apply for conditional data"),
            "Apply for conditional data (art. 20); incomplete ones are refused with every reason",
            json::<body::ApplicationRequest>(),
            (201, json::<body::ApplicationView>()),
            post(applications::apply),
        ),
        route(
            M::GET,
            "/v1/applications",
            ANY,
            "Applications the caller made, must decide, or all (admin); ?overdue=true",
            Nothing,
            (200, list::<body::ApplicationView>()),
            get(applications::list),
        ),
        route(
            M::GET,
            "/v1/applications/{id}",
            ANY,
            "An application; its applicant, its provider or admin",
            Nothing,
            (200, json::<body::ApplicationView>()),
            get(applications::show),
        ),
        route(
            M::POST,
            "/v1/applications/{id}/decision",
            ANY,
            "Approve with the agreement's terms, or refuse with reasons and legal basis; the provider",
            json::<body::ApplicationDecision>(),
            (200, json::<body::ApplicationView>()),
            post(applications::decide),
        ),
        route(
            M::GET,
            "/v1/agreements",
            ANY,
            "The caller's data-use agreements (art. 21)",
            Nothing,
            (200, list::<body::AgreementView>()),
            get(applications::agreements),
        ),
        route(
            M::GET,
            "/v1/agreements/{id}",
            ANY,
            "A data-use agreement; its user, its provider or admin",
            Nothing,
            (200, json::<body::AgreementView>()),
            get(applications::agreement),
        ),
        route(
            M::GET,
            "/v1/feedback",
            ANY,
            "Feedback the caller may see; ?overdue=true",
            Nothing,
            (200, list::<body::FeedbackView>()),
            get(feedback::list),
        ),
        route(
            M::GET,
            "/v1/feedback/{id}",
            ANY,
            "A feedback item; its reporter, the dataset's provider or admin",
            Nothing,
            (200, json::<body::FeedbackView>()),
            get(feedback::show),
        ),
        route(
            M::POST,
            "/v1/feedback/{id}/answer",
            ANY,
            "Answer feedback; the dataset's provider",
            json::<body::FeedbackAnswer>(),
            (200, json::<body::FeedbackView>()),
            post(feedback::answer),
        ),
        route(
            M::POST,
            "/v1/feedback/{id}/extension",
            ANY,
            "Ask for a longer deadline (at most 30 working days); the dataset's provider",
            json::<body::ExtensionRequest>(),
            (200, json::<body::FeedbackView>()),
            post(feedback::request_extension),
        ),
        route(
            M::POST,
            "/v1/feedback/{id}/extension/decision",
            Access::Roles(ADMIN_ONLY, "approve deadline extensions"),
            "Approve or refuse an extension",
            json::<body::ExtensionDecision>(),
            (200, json::<body::FeedbackView>()),
            post(feedback::decide_extension),
        ),
        route(
            M::GET,
            "/v1/reviews",
            Access::Roles(REVIEWERS, "review jobs"),
            "Jobs awaiting the caller's review",
            Nothing,
            (200, list::<body::ReviewView>()),
            get(reviews::list),
        ),
        route(
            M::GET,
            "/v1/reviews/{id}",
            Access::Roles(REVIEWERS, "review jobs"),
            "A held job: manifest, analysis, diff",
            Nothing,
            (200, json::<body::ReviewView>()),
            get(reviews::show),
        ),
        route(
            M::POST,
            "/v1/reviews/{id}",
            Access::Roles(REVIEWERS, "review jobs"),
            "Approve or reject, bound to the manifest digest (never the submitter)",
            json::<body::ReviewRequest>(),
            (200, json::<body::ReviewResult>()),
            post(reviews::decide),
        ),
        route(
            M::POST,
            "/v1/jobs",
            Access::Roles(SUBMITTERS, "submit jobs"),
            "Submit a manifest (TOML); runs, or waits for review",
            Media("application/toml"),
            (202, json::<body::JobView>()),
            post(jobs::submit_job),
        ),
        route(
            M::GET,
            "/v1/jobs",
            ANY,
            "The caller's jobs",
            Nothing,
            (200, list::<body::JobView>()),
            get(jobs::list_jobs),
        ),
        route(
            M::POST,
            "/v1/jobs/estimate",
            Access::Roles(SUBMITTERS, "estimate jobs"),
            "Check a manifest and give its exact cost, expected error and schedule; reads no data",
            Media("application/toml"),
            (200, json::<body::EstimateView>()),
            post(jobs::estimate_job),
        ),
        route(
            M::GET,
            "/v1/jobs/{id}",
            ANY,
            "A job's state; its owner",
            Nothing,
            (200, json::<body::JobView>()),
            get(jobs::show_job),
        ),
        route(
            M::GET,
            "/v1/jobs/{id}/events",
            ANY,
            "Server-sent events: the job's view on every change, until it ends; its owner",
            Nothing,
            (200, Media("text/event-stream")),
            get(jobs::job_events),
        ),
        route(
            M::GET,
            "/v1/jobs/{id}/release",
            ANY,
            "The signed release; its owner",
            Nothing,
            (200, json::<sluice_types::release::Release>()),
            get(jobs::job_release),
        ),
        route(
            M::GET,
            "/v1/jobs/{id}/release.csv",
            ANY,
            "The release as spreadsheet-safe CSV (unsigned; the JSON release is authoritative); its owner",
            Nothing,
            (200, Media("text/csv")),
            get(jobs::job_release_csv),
        ),
        route(
            M::GET,
            "/v1/audit",
            Access::Roles(ADMIN_ONLY, "read the audit log"),
            "The hash-chained audit log",
            Nothing,
            (200, list::<sluice_store::AuditEntry>()),
            get(audit::audit_log),
        ),
        route(
            M::GET,
            "/v1/audit/checkpoint",
            ANY,
            "A signed checkpoint of the audit log's head",
            Nothing,
            (200, json::<sluice_types::audit::SignedCheckpoint>()),
            get(audit::audit_checkpoint),
        ),
    ]
}

/// What every route is, without handlers: for the document and the tests.
pub fn route_specs() -> Vec<RouteSpec> {
    routes().into_iter().map(|r| r.spec).collect()
}

/// The OpenAPI document of [`routes`], built once; [`crate::start`] builds
/// it before serving, so that a route naming a type without a schema fails
/// at boot.
pub fn openapi_document() -> &'static serde_json::Value {
    static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| crate::openapi::document(&route_specs()))
}

async fn serve_openapi() -> axum::Json<serde_json::Value> {
    axum::Json(openapi_document().clone())
}

/// The router: every declared route behind its gate, the denial audit
/// around them all, errors as JSON everywhere.
pub fn router(state: SharedState) -> Router {
    let mut by_path: std::collections::BTreeMap<&'static str, MethodRouter<SharedState>> =
        Default::default();
    for Route { spec, handler } in routes() {
        let gated = handler.route_layer(axum::middleware::from_fn_with_state(
            (state.clone(), spec.access),
            crate::access::gate,
        ));
        let merged = match by_path.remove(spec.path) {
            Some(existing) => existing.merge(gated),
            None => gated,
        };
        by_path.insert(spec.path, merged);
    }
    let mut router = Router::new();
    for (path, handler) in by_path {
        router = router.route(path, handler);
    }
    router
        .fallback(crate::error::no_route)
        .method_not_allowed_fallback(crate::error::no_method)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::access::audit_denials,
        ))
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .with_state(state)
}
