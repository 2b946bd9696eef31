//! HTTP routes under /v1. Every route but health and the public key needs a
//! bearer token; role checks are made per route. Objects a caller may not
//! see answer 404, indistinguishable from absent ones.

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sluice_store::{DatasetRecord, NewDataset, SearchQuery, UserRecord};
use sluice_types::api::{
    BudgetView, CreateUser, CreatedUser, DatasetDescriptor, JobView, PreviewView, PublicKey,
    UserView, VersionAdded,
};
use sluice_types::error::ErrorCode;
use sluice_types::privacy::Epsilon;
use sluice_types::sandbox::{IngestTask, PreviewTask, SandboxResponse, SandboxTask};
use sluice_types::{CatalogEntry, DataFormat, DatasetVersion, OpenCategory, Role};

use crate::error::{ApiError, ApiJson};
use crate::{
    AppState, MAX_UPLOAD_BYTES, SharedState, applications, control, feedback, jobs, reviews,
    sandbox, synthetic,
};

pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/openapi.json", get(crate::openapi::serve))
        .route("/v1/health", get(|| async { "ok" }))
        .route("/v1/public-key", get(public_key))
        .route("/v1/me", get(me))
        .route("/v1/users", post(create_user))
        .route("/v1/datasets", post(create_dataset).get(search))
        .route("/v1/datasets/{name}", get(show_dataset))
        .route(
            "/v1/datasets/{name}/versions",
            post(add_version).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route(
            "/v1/datasets/{name}/versions/{version}/quality",
            get(quality),
        )
        .route("/v1/datasets/{name}/preview", get(preview))
        .route("/v1/datasets/{name}/download", get(download))
        .route("/v1/datasets/{name}/budget", get(budget))
        .route(
            "/v1/datasets/{name}/review-policy",
            axum::routing::put(reviews::set_policy),
        )
        .route("/v1/datasets/{name}/suspend", post(control::suspend))
        .route("/v1/datasets/{name}/resume", post(control::resume))
        .route("/v1/datasets/{name}/withdraw", post(control::withdraw))
        .route("/v1/datasets/{name}/revoke", post(control::revoke))
        .route("/v1/users/{name}/close", post(control::close_user))
        .route("/v1/revocations", get(control::revocations))
        .route("/v1/stats", get(control::stats))
        .route(
            "/v1/applications",
            post(applications::apply).get(applications::list),
        )
        .route("/v1/applications/{id}", get(applications::show))
        .route("/v1/applications/{id}/decision", post(applications::decide))
        .route("/v1/agreements", get(applications::agreements))
        .route("/v1/agreements/{id}", get(applications::agreement))
        .route("/v1/datasets/{name}/feedback", post(feedback::report))
        .route("/v1/feedback", get(feedback::list))
        .route("/v1/feedback/{id}", get(feedback::show))
        .route("/v1/feedback/{id}/answer", post(feedback::answer))
        .route(
            "/v1/feedback/{id}/extension",
            post(feedback::request_extension),
        )
        .route(
            "/v1/feedback/{id}/extension/decision",
            post(feedback::decide_extension),
        )
        .route("/v1/reviews", get(reviews::list))
        .route("/v1/reviews/{id}", get(reviews::show).post(reviews::decide))
        .route("/v1/jobs", post(submit_job).get(list_jobs))
        .route("/v1/jobs/estimate", post(estimate_job))
        .route("/v1/jobs/{id}", get(show_job))
        .route("/v1/jobs/{id}/release", get(job_release))
        .route("/v1/jobs/{id}/release.csv", get(job_release_csv))
        .route("/v1/jobs/{id}/events", get(job_events))
        .route("/v1/audit", get(audit_log))
        .route("/v1/audit/checkpoint", get(audit_checkpoint))
        .fallback(crate::error::no_route)
        .method_not_allowed_fallback(crate::error::no_method)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit_denials,
        ))
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .with_state(state)
}

/// Writes an audit entry for each refusal on a matched route: 401, 402,
/// 403, and 404 (an object that is not the caller's answers exactly like
/// an absent one, so every 404 is recorded). The entry names the actor,
/// the method and path template (never the URL's ids, query or body) and
/// the error code; repeats within a minute are counted into one summary
/// (`sluice_store::DenialWindow`). A failure to write is logged, and the
/// refusal stands.
async fn audit_denials(
    State(state): State<SharedState>,
    matched: axum::extract::MatchedPath,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = format!("{} {}", request.method(), matched.as_str());
    let token = bearer_token(request.headers()).map(str::to_owned);
    let response = next.run(request).await;
    let status = response.status().as_u16();
    if !matches!(status, 401..=404) {
        return response;
    }
    let code = response
        .extensions()
        .get::<ErrorCode>()
        .map_or("unknown", |c| c.as_str());
    let actor = match token {
        None => "anonymous".to_owned(),
        Some(token) => match state.store.user_by_token(&token).await {
            Ok(Some(user)) => user.id,
            _ => sluice_crypto::token_hash(&token)[..12].to_owned(),
        },
    };
    let denial = sluice_store::Denial {
        actor,
        route,
        code: code.to_owned(),
        status,
    };
    state.record_denial(denial).await;
    response
}

/// The bearer token of a request, trimmed; None when absent or malformed.
fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The authenticated caller.
pub struct Caller(pub UserRecord);

impl FromRequestParts<SharedState> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let unauthenticated = || {
            ApiError::new(
                ErrorCode::Unauthenticated,
                "missing or invalid bearer token",
            )
            .hint("send Authorization: Bearer <token>")
        };
        let token = bearer_token(&parts.headers).ok_or_else(unauthenticated)?;
        match state.store.user_by_token(token).await? {
            Some(u) if !state.allow(&u.id) => Err(ApiError::new(
                ErrorCode::RateLimited,
                "too many requests for this token",
            )
            .hint(format!(
                "at most {} requests per second on average",
                state.config.rate_limit.per_second
            ))),
            Some(u) => Ok(Caller(u)),
            None => Err(unauthenticated()),
        }
    }
}

pub(crate) fn require(caller: &UserRecord, roles: &[Role], action: &str) -> Result<(), ApiError> {
    if roles.contains(&caller.role) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "role {} may not {action}",
            caller.role.as_str()
        )))
    }
}

fn user_view(u: &UserRecord) -> UserView {
    UserView {
        id: u.id.clone(),
        name: u.name.clone(),
        role: u.role,
    }
}

async fn public_key(State(state): State<SharedState>) -> Json<PublicKey> {
    Json(PublicKey {
        key_id: state.keys.key_id(),
        public_key_hex: state.keys.public_key_hex(),
    })
}

async fn me(Caller(caller): Caller) -> Json<UserView> {
    Json(user_view(&caller))
}

async fn create_user(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    ApiJson(req): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<CreatedUser>), ApiError> {
    require(&caller, &[Role::Admin], "create users")?;
    let name = sluice_types::text::check_name(&req.name, sluice_types::text::MAX_USER_NAME_BYTES)
        .map_err(|e| ApiError::bad_request(format!("user name {e}")))?;
    let (user, token) = state.store.create_user(&caller.id, name, req.role).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            user: user_view(&user),
            token,
        }),
    ))
}

/// Whether `caller` may see that `record` exists.
fn visible(caller: &UserRecord, record: &DatasetRecord) -> bool {
    record.entry.open_category != OpenCategory::NotOpen || owns(caller, record)
}

/// A user's name for display; its id if the account is gone.
pub(crate) async fn user_name(state: &AppState, id: &str) -> Result<String, ApiError> {
    Ok(state
        .store
        .user_by_id(id)
        .await?
        .map_or_else(|| id.to_owned(), |u| u.name))
}

/// A dataset's name for display; its id if it is gone.
pub(crate) async fn dataset_name(state: &AppState, id: &str) -> Result<String, ApiError> {
    Ok(state
        .store
        .dataset(id)
        .await?
        .map_or_else(|| id.to_owned(), |d| d.entry.name))
}

/// A required free-text field, trimmed: 1 to `max` bytes.
pub(crate) fn required_text<'a>(
    field: &str,
    value: &'a str,
    max: usize,
) -> Result<&'a str, ApiError> {
    let v = value.trim();
    if v.is_empty() || v.len() > max {
        return Err(ApiError::bad_request(format!(
            "{field} must be 1 to {max} bytes: it is recorded and shown"
        )));
    }
    Ok(v)
}

/// Whose applications, agreements or feedback a caller's listing shows.
pub(crate) fn party_scope(caller: &UserRecord) -> sluice_store::PartyScope<'_> {
    match caller.role {
        Role::Admin => sluice_store::PartyScope::All,
        Role::Provider => sluice_store::PartyScope::Provider(&caller.id),
        _ => sluice_store::PartyScope::User(&caller.id),
    }
}

/// `?overdue=true`: only items past their deadline.
#[derive(serde::Deserialize)]
pub(crate) struct OverdueQuery {
    #[serde(default)]
    pub overdue: bool,
}

pub(crate) fn owns(caller: &UserRecord, record: &DatasetRecord) -> bool {
    record.owner_id == caller.id || caller.role == Role::Admin
}

pub(crate) async fn find_dataset(
    state: &AppState,
    caller: &UserRecord,
    name: &str,
) -> Result<DatasetRecord, ApiError> {
    state
        .store
        .dataset(name)
        .await?
        .filter(|d| visible(caller, d))
        .ok_or_else(|| ApiError::not_found(&format!("dataset {name}")))
}

async fn create_dataset(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    ApiJson(desc): ApiJson<DatasetDescriptor>,
) -> Result<(StatusCode, Json<CatalogEntry>), ApiError> {
    require(&caller, &[Role::Provider, Role::Admin], "publish datasets")?;
    let mut problems = Vec::new();
    let f = &desc.dataset;
    if !sluice_types::schema::is_valid_name(&f.name) {
        problems.push(format!(
            "dataset name \"{}\" must be lowercase letters, digits and _",
            f.name
        ));
    }
    for (field, value) in [
        ("title", &f.title),
        ("provider", &f.provider),
        ("update_frequency", &f.update_frequency),
        ("data_type", &f.data_type),
    ] {
        if value.trim().is_empty() {
            problems.push(format!("{field} is required (art. 14)"));
        } else if let Err(e) =
            sluice_types::text::check_name(value, sluice_types::text::MAX_TITLE_BYTES)
        {
            // Shown in every catalog listing: the rule for names.
            problems.push(format!("{field} {e}"));
        }
    }
    if let Err(e) = desc.schema.validate() {
        problems.extend(e.0);
    }
    let cap = Epsilon::grant_from_f64(f.epsilon_cap)
        .map_err(|e| problems.push(format!("epsilon_cap: {e}")));
    let per_user = Epsilon::grant_from_f64(f.user_epsilon)
        .map_err(|e| problems.push(format!("user_epsilon: {e}")));
    if !problems.is_empty() {
        return Err(ApiError::new(
            ErrorCode::SchemaInvalid,
            format!("dataset descriptor invalid: {}", problems.join("; ")),
        ));
    }
    let id = state
        .store
        .create_dataset(
            &caller.id,
            &caller.id,
            NewDataset {
                name: f.name.clone(),
                title: f.title.trim().to_owned(),
                description: f.description.clone(),
                provider: f.provider.trim().to_owned(),
                open_category: f.open_category,
                format: f.format,
                data_type: f.data_type.trim().to_owned(),
                update_frequency: f.update_frequency.trim().to_owned(),
                schema: desc.schema.clone(),
                epsilon_cap: cap.expect("checked"),
                user_epsilon: per_user.expect("checked"),
            },
        )
        .await?;
    let record = state
        .store
        .dataset(&id)
        .await?
        .ok_or_else(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(record.entry)))
}

#[derive(Deserialize)]
struct SearchParams {
    q: Option<String>,
    provider: Option<String>,
    open_category: Option<String>,
    format: Option<String>,
    update_frequency: Option<String>,
}

async fn search(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Query(p): Query<SearchParams>,
) -> Result<Json<Vec<CatalogEntry>>, ApiError> {
    let open_category = match p.open_category.as_deref() {
        None => None,
        Some(c) => Some(OpenCategory::parse(c).ok_or_else(|| {
            ApiError::bad_request(format!(
                "open_category \"{c}\" is not one of not_open, conditional, unconditional"
            ))
        })?),
    };
    let format = match p.format.as_deref() {
        None => None,
        Some(f) => Some(
            DataFormat::parse(f)
                .ok_or_else(|| ApiError::bad_request(format!("unknown format \"{f}\"")))?,
        ),
    };
    let q = SearchQuery {
        text: p.q,
        provider: p.provider,
        open_category,
        format,
        update_frequency: p.update_frequency,
    };
    let mut out = Vec::new();
    for entry in state.store.search(&q).await? {
        if entry.open_category != OpenCategory::NotOpen || caller.role == Role::Admin {
            out.push(entry);
        } else if let Some(rec) = state.store.dataset(&entry.id).await?
            && owns(&caller, &rec)
        {
            out.push(entry);
        }
    }
    Ok(Json(out))
}

async fn show_dataset(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<Json<CatalogEntry>, ApiError> {
    Ok(Json(find_dataset(&state, &caller, &name).await?.entry))
}

fn dataset_dir(state: &AppState, record: &DatasetRecord) -> std::path::PathBuf {
    state
        .config
        .data_dir
        .join("datasets")
        .join(&record.entry.id)
}

async fn add_version(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<VersionAdded>), ApiError> {
    let record = find_dataset(&state, &caller, &name).await?;
    if !owns(&caller, &record) {
        return Err(ApiError::forbidden(format!(
            "only the provider of {name} may publish versions"
        )));
    }
    // A suspended dataset may get a processed version before it resumes; a
    // withdrawn one is closed for good.
    if record.status == sluice_store::DatasetStatus::Withdrawn {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("dataset {name} was withdrawn: no new version may be published"),
        ));
    }
    if body.is_empty() {
        return Err(ApiError::new(
            ErrorCode::IngestRejected,
            "upload rejected: the file is empty",
        ));
    }
    let task = SandboxTask::Ingest(IngestTask {
        format: record.entry.format,
        schema: record.entry.schema.clone(),
        output_dir: dataset_dir(&state, &record).to_string_lossy().into_owned(),
        pseudonym_key_hex: state.keys.pseudonym_key_hex(),
    });
    // The upload goes straight to the sandbox's stdin; it never touches disk here.
    let response = sandbox::run(&state, &task, &body).await.map_err(|e| {
        tracing::error!(dataset = %name, error = %e, "ingest sandbox failed");
        ApiError::new(
            ErrorCode::IngestRejected,
            "upload rejected: the file could not be processed",
        )
    })?;
    match response {
        SandboxResponse::Ingested {
            version,
            file_name,
            bytes,
            report,
        } => {
            let v = DatasetVersion {
                version: version.clone(),
                created_at: sluice_types::time::now_rfc3339(),
                source_format: record.entry.format,
            };
            state
                .store
                .add_version(&caller.id, &record.entry.id, &v, &file_name, bytes, &report)
                .await?;
            Ok((
                StatusCode::CREATED,
                Json(VersionAdded {
                    dataset: name,
                    version,
                    report,
                }),
            ))
        }
        SandboxResponse::Rejected { reasons } => Err(ApiError::new(
            ErrorCode::IngestRejected,
            format!("upload rejected: {}", reasons.join("; ")),
        )
        .hint("fix the file or the schema and upload again; nothing was stored")),
        other => {
            tracing::error!(dataset = %name, response = ?other_status(&other), "ingest failed");
            Err(ApiError::new(
                ErrorCode::IngestRejected,
                "upload rejected: the file could not be processed",
            ))
        }
    }
}

fn other_status(r: &SandboxResponse) -> &'static str {
    match r {
        SandboxResponse::Failed { .. } => "failed",
        _ => "unexpected",
    }
}

async fn quality(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<sluice_types::QualityReport>, ApiError> {
    let record = find_dataset(&state, &caller, &name).await?;
    if !owns(&caller, &record) {
        return Err(ApiError::not_found(&format!("quality report of {name}")));
    }
    state
        .store
        .quality_report(&record.entry.id, &version)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(&format!("version {version} of {name}")))
}

#[derive(Deserialize)]
struct VersionParam {
    version: Option<String>,
    limit: Option<usize>,
    /// Downloads: `parquet` (the stored file, the default) or `csv`.
    format: Option<String>,
}

/// Largest CSV export a sandbox may produce: a quarter of its output cap,
/// so that the JSON escaping of the answer cannot push it over.
const MAX_CSV_EXPORT_BYTES: u64 = sandbox::MAX_OUTPUT_BYTES / 4;

async fn version_path(
    state: &AppState,
    record: &DatasetRecord,
    version: Option<&str>,
) -> Result<std::path::PathBuf, ApiError> {
    let name = &record.entry.name;
    let version = match version {
        Some(v) => v.to_owned(),
        None => record
            .entry
            .latest_version()
            .map(|v| v.version.clone())
            .ok_or_else(|| ApiError::not_found(&format!("a published version of {name}")))?,
    };
    let file = state
        .store
        .version_file(&record.entry.id, &version)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("version {version} of {name}")))?;
    Ok(dataset_dir(state, record).join(file))
}

async fn preview(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    Query(p): Query<VersionParam>,
) -> Result<Json<PreviewView>, ApiError> {
    let record = find_dataset(&state, &caller, &name).await?;
    let limit = p.limit.unwrap_or(10).min(100);
    match record.entry.open_category {
        OpenCategory::NotOpen => Err(ApiError::new(
            ErrorCode::DatasetNotOpen,
            format!("dataset {name} is not open"),
        )),
        OpenCategory::Conditional => Ok(Json(PreviewView {
            synthetic: true,
            rows: synthetic::rows(&record.entry.schema, limit),
        })),
        OpenCategory::Unconditional => {
            let path = version_path(&state, &record, p.version.as_deref()).await?;
            let task = SandboxTask::Preview(PreviewTask {
                path: path.to_string_lossy().into_owned(),
                limit,
            });
            match sandbox::run(&state, &task, &[]).await {
                Ok(SandboxResponse::Preview { rows }) => Ok(Json(PreviewView {
                    synthetic: false,
                    rows,
                })),
                other => {
                    tracing::error!(dataset = %name, ok = other.is_ok(), "preview failed");
                    Err(ApiError::internal())
                }
            }
        }
    }
}

async fn download(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    Query(p): Query<VersionParam>,
) -> Result<Response, ApiError> {
    let record = find_dataset(&state, &caller, &name).await?;
    if record.entry.open_category != OpenCategory::Unconditional {
        return Err(ApiError::new(
            ErrorCode::DatasetNotOpen,
            format!(
                "dataset {name} is {}: only unconditional data can be downloaded",
                record.entry.open_category.as_str()
            ),
        )
        .hint("submit a DP job instead"));
    }
    let csv = match p.format.as_deref() {
        None | Some("parquet") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format \"{}\" is not one of parquet, csv",
                other.escape_debug()
            )));
        }
    };
    let path = version_path(&state, &record, p.version.as_deref()).await?;
    if csv {
        return download_csv(&state, &name, &path).await;
    }
    let file = tokio::fs::File::open(&path).await.map_err(|e| {
        tracing::error!(error = %e, "stored version missing");
        ApiError::internal()
    })?;
    let stream = tokio_util::io::ReaderStream::new(file);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.apache.parquet".to_owned(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.parquet\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// An unconditional version as CSV, made in a sandbox (the server never
/// parses a stored version), with every text cell neutralised for
/// spreadsheets.
async fn download_csv(
    state: &AppState,
    name: &str,
    path: &std::path::Path,
) -> Result<Response, ApiError> {
    let task = SandboxTask::Export(sluice_types::sandbox::ExportTask {
        path: path.to_string_lossy().into_owned(),
        max_bytes: MAX_CSV_EXPORT_BYTES,
    });
    match sandbox::run(state, &task, &[]).await {
        Ok(SandboxResponse::Exported { csv }) => Ok(csv_response(name, csv)),
        Ok(SandboxResponse::Rejected { reasons }) => Err(ApiError::bad_request(format!(
            "dataset {name} cannot be downloaded as CSV: {}",
            reasons.join("; ")
        ))
        .hint("download the Parquet form (without format=csv)")),
        other => {
            tracing::error!(dataset = %name, ok = other.is_ok(), "CSV export failed");
            Err(ApiError::internal())
        }
    }
}

fn csv_response(file_stem: &str, csv: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_stem}.csv\""),
            ),
        ],
        csv,
    )
        .into_response()
}

async fn budget(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<Json<BudgetView>, ApiError> {
    let record = find_dataset(&state, &caller, &name).await?;
    let b = state.store.budget(&caller.id, &record.entry.id).await?;
    let remaining =
        Epsilon::from_units(b.user_granted.units().saturating_sub(b.user_spent.units()));
    Ok(Json(BudgetView {
        dataset: name,
        user_granted: b.user_granted.to_string(),
        user_spent: b.user_spent.to_string(),
        user_remaining: remaining.to_string(),
        user_delta_spent: b.user_delta_spent.to_string(),
    }))
}

async fn submit_job(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    body: String,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    require(
        &caller,
        &[Role::User, Role::Provider, Role::Admin],
        "submit jobs",
    )?;
    let id = jobs::submit(state.clone(), caller, &body).await?;
    let job = state.store.job(&id).await?.ok_or_else(ApiError::internal)?;
    Ok((StatusCode::ACCEPTED, Json(job_view(&job))))
}

async fn estimate_job(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    body: String,
) -> Result<Json<sluice_types::api::EstimateView>, ApiError> {
    require(
        &caller,
        &[Role::User, Role::Provider, Role::Admin],
        "estimate jobs",
    )?;
    Ok(Json(jobs::estimate(&state, &caller, &body).await?))
}

fn job_view(j: &sluice_store::JobRecord) -> JobView {
    JobView {
        id: j.id.clone(),
        state: if j.awaiting_review {
            "awaiting_review".to_owned()
        } else {
            serde_json::to_value(j.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        },
        message: j.message.clone(),
        manifest_digest: j.manifest_digest.clone(),
        epsilon: j.epsilon.to_string(),
        created_at: j.created_at.clone(),
        updated_at: j.updated_at.clone(),
        due_at: j.due_at.clone(),
    }
}

async fn own_job(
    state: &AppState,
    caller: &UserRecord,
    id: &str,
) -> Result<sluice_store::JobRecord, ApiError> {
    state
        .store
        .job(id)
        .await?
        .filter(|j| j.user_id == caller.id)
        .ok_or_else(|| ApiError::not_found(&format!("job {id}")))
}

async fn list_jobs(
    State(state): State<SharedState>,
    Caller(caller): Caller,
) -> Result<Json<Vec<JobView>>, ApiError> {
    Ok(Json(
        state
            .store
            .jobs_of_user(&caller.id)
            .await?
            .iter()
            .map(job_view)
            .collect(),
    ))
}

async fn show_job(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(job_view(&own_job(&state, &caller, &id).await?)))
}

/// Server-sent events: the job's view each time it changes, until it ends
/// (released, rejected, failed) or an hour passes. Read from the store when
/// the job's change is announced (and each second regardless), so it shows
/// exactly what `GET /v1/jobs/{id}` would, at the times that view changes:
/// a running job's on its schedule only.
async fn job_events(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<
    axum::response::sse::Sse<
        impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
    >,
    ApiError,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    struct Watch {
        state: SharedState,
        id: String,
        last: Option<JobView>,
        pending: Option<JobView>,
        finished: bool,
        deadline: std::time::Instant,
        changes: tokio::sync::broadcast::Receiver<String>,
    }
    let changes = state.job_changes.subscribe();
    let first = job_view(&own_job(&state, &caller, &id).await?);
    let watch = Watch {
        changes,
        state,
        id,
        last: None,
        pending: Some(first),
        finished: false,
        deadline: std::time::Instant::now() + std::time::Duration::from_secs(3600),
    };
    let stream = futures_util::stream::unfold(watch, |mut w| async move {
        if w.finished {
            return None;
        }
        loop {
            let view = match w.pending.take() {
                Some(v) => v,
                None => {
                    if std::time::Instant::now() > w.deadline {
                        return None;
                    }
                    let announced = async {
                        loop {
                            match w.changes.recv().await {
                                Ok(changed) if changed == w.id => break,
                                Ok(_) => {}
                                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                                    std::future::pending::<()>().await
                                }
                            }
                        }
                    };
                    let _ =
                        tokio::time::timeout(std::time::Duration::from_secs(1), announced).await;
                    match w.state.store.job(&w.id).await {
                        Ok(Some(j)) => job_view(&j),
                        _ => return None,
                    }
                }
            };
            if w.last.as_ref() != Some(&view) {
                w.finished = matches!(view.state.as_str(), "released" | "rejected" | "failed");
                let event = Event::default()
                    .event("job")
                    .json_data(&view)
                    .unwrap_or_else(|_| Event::default().event("error"));
                w.last = Some(view);
                return Some((Ok(event), w));
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

async fn job_release(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    own_job(&state, &caller, &id).await?;
    let json = state
        .store
        .release(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("release of job {id}")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// The release as CSV for spreadsheets: a header, then one line per
/// released row. A group key is one column; an aggregate `x` is three: `x`,
/// `x_ci95_low`, `x_ci95_high` (empty for a quantile or a derived value,
/// which have no interval). Text is neutralised against formulas; numbers
/// are written as numbers. Not signed: the JSON release is authoritative.
async fn job_release_csv(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    own_job(&state, &caller, &id).await?;
    let json = state
        .store
        .release(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("release of job {id}")))?;
    let release: sluice_types::Release = serde_json::from_str(&json).map_err(|e| {
        tracing::error!(job = %id, error = %e, "stored release does not parse");
        ApiError::internal()
    })?;
    Ok(csv_response(&id, release_csv(&release.body)))
}

fn release_csv(body: &sluice_types::ReleaseBody) -> String {
    use sluice_types::release::{Cell, ColumnKind};
    use sluice_types::text::csv_text_field;
    let columns = &body.outputs.columns;
    let mut header = Vec::new();
    for c in columns {
        header.push(csv_text_field(&c.name));
        if c.kind == ColumnKind::Aggregate {
            header.push(csv_text_field(&format!("{}_ci95_low", c.name)));
            header.push(csv_text_field(&format!("{}_ci95_high", c.name)));
        }
    }
    let key = |v: &serde_json::Value| match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => csv_text_field(s),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Bool(b) => b.to_string(),
        other => csv_text_field(&other.to_string()),
    };
    let mut out = header.join(",");
    out.push_str("\r\n");
    for row in &body.outputs.rows {
        let mut fields = Vec::new();
        for (c, cell) in columns.iter().zip(row) {
            let (value, interval) = match cell {
                Cell::Noisy { value, ci95 } => (
                    value.to_string(),
                    [ci95[0].to_string(), ci95[1].to_string()],
                ),
                Cell::Quantile { value, .. } | Cell::Derived { value } => {
                    (value.to_string(), Default::default())
                }
                Cell::Key(v) => (key(v), Default::default()),
            };
            fields.push(value);
            if c.kind == ColumnKind::Aggregate {
                fields.extend(interval);
            }
        }
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

async fn audit_log(
    State(state): State<SharedState>,
    Caller(caller): Caller,
) -> Result<Json<Vec<sluice_store::AuditEntry>>, ApiError> {
    require(&caller, &[Role::Admin], "read the audit log")?;
    Ok(Json(state.store.audit_entries().await?))
}

/// The log's current length and head, signed: keep it elsewhere to detect
/// later truncation or rewriting.
async fn audit_checkpoint(
    State(state): State<SharedState>,
    Caller(_caller): Caller,
) -> Result<Json<sluice_types::audit::SignedCheckpoint>, ApiError> {
    let (length, head) = state.store.audit_head().await?;
    let checkpoint = sluice_types::audit::AuditCheckpoint {
        length,
        head,
        created_at: sluice_types::time::now_rfc3339(),
    };
    Ok(Json(sluice_crypto::sign_checkpoint(
        &state.keys,
        &checkpoint,
    )))
}
