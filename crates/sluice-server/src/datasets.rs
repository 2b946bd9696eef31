//! The catalog and its data: creating entries, search, versions (uploads
//! streamed to an ingest sandbox), quality reports, previews, downloads of
//! unconditional data and the caller's budget. The server never parses an
//! upload or a stored version: sandboxes do.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sluice_store::{DatasetRecord, NewDataset, SearchQuery};
use sluice_types::api::{BudgetView, DatasetDescriptor, PreviewView, VersionAdded};
use sluice_types::error::ErrorCode;
use sluice_types::privacy::Epsilon;
use sluice_types::sandbox::{IngestTask, PreviewTask, SandboxResponse, SandboxTask};
use sluice_types::{CatalogEntry, DataFormat, DatasetVersion, OpenCategory, Role};

use crate::access::{Caller, find_dataset, owns, visible};
use crate::error::{ApiError, ApiJson};
use crate::{AppState, SharedState, sandbox, synthetic};

pub(crate) async fn create_dataset(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    ApiJson(desc): ApiJson<DatasetDescriptor>,
) -> Result<(StatusCode, Json<CatalogEntry>), ApiError> {
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
pub(crate) struct SearchParams {
    q: Option<String>,
    provider: Option<String>,
    open_category: Option<String>,
    format: Option<String>,
    update_frequency: Option<String>,
}

pub(crate) async fn search(
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
        // Not-open entries only for their provider and the authority.
        if entry.open_category != OpenCategory::NotOpen || caller.role == Role::Admin {
            out.push(entry);
        } else if let Some(rec) = state.store.dataset(&entry.id).await?
            && visible(&caller, &rec)
        {
            out.push(entry);
        }
    }
    Ok(Json(out))
}

pub(crate) async fn show_dataset(
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

pub(crate) async fn add_version(
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

pub(crate) async fn quality(
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
pub(crate) struct VersionParam {
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

pub(crate) async fn preview(
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

pub(crate) async fn download(
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

pub(crate) fn csv_response(file_stem: &str, csv: String) -> Response {
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

pub(crate) async fn budget(
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
