//! Jobs over HTTP: submission and estimates, the caller's jobs, their
//! event streams and releases. What a job does, in the order that makes the
//! privacy argument, is in [`run`]; when its outcome becomes visible, in
//! `crate::schedule`.

pub mod run;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sluice_store::UserRecord;
use sluice_types::api::JobView;

use crate::access::Caller;
use crate::datasets::csv_response;
use crate::error::ApiError;
use crate::{AppState, SharedState};

pub use run::{cancel_jobs, start_approved};

pub(crate) async fn submit_job(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    body: String,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let id = run::submit(state.clone(), caller, &body).await?;
    let job = state.store.job(&id).await?.ok_or_else(ApiError::internal)?;
    Ok((StatusCode::ACCEPTED, Json(job_view(&job))))
}

pub(crate) async fn estimate_job(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    body: String,
) -> Result<Json<sluice_types::api::EstimateView>, ApiError> {
    Ok(Json(run::estimate(&state, &caller, &body).await?))
}

pub(crate) fn job_view(j: &sluice_store::JobRecord) -> JobView {
    JobView {
        id: j.id.clone(),
        state: j.state,
        message: j.message.clone(),
        manifest_digest: j.manifest_digest.clone(),
        epsilon: j.epsilon.to_string(),
        created_at: j.created_at.clone(),
        updated_at: j.updated_at.clone(),
        due_at: j.due_at.clone(),
    }
}

pub(crate) async fn own_job(
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

pub(crate) async fn list_jobs(
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

pub(crate) async fn show_job(
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
pub(crate) async fn job_events(
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
                w.finished = view.state.is_final();
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

/// The stored release of the caller's own job (404 for others' and for
/// jobs with none).
async fn own_release(state: &AppState, caller: &UserRecord, id: &str) -> Result<String, ApiError> {
    own_job(state, caller, id).await?;
    state
        .store
        .release(id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("release of job {id}")))
}

pub(crate) async fn job_release(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let json = own_release(&state, &caller, &id).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// The release as CSV for spreadsheets: a header, then one line per
/// released row. A group key is one column; an aggregate `x` is three: `x`,
/// `x_ci95_low`, `x_ci95_high` (empty for a quantile or a derived value,
/// which have no interval). Text is neutralised against formulas; numbers
/// are written as numbers. Not signed: the JSON release is authoritative.
pub(crate) async fn job_release_csv(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let json = own_release(&state, &caller, &id).await?;
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
