//! Feedback on datasets (art. 10) and quality rectification tasks (art. 16),
//! with working-day deadlines and overdue lists. Users see what they
//! reported, providers what concerns their datasets, the authority all.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use sluice_store::{FEEDBACK_DAYS, FEEDBACK_MAX_DAYS, Feedback, NamedFeedback, UserRecord};
use sluice_types::Role;
use sluice_types::api::{
    ExtensionDecision, ExtensionRequest, FeedbackAnswer, FeedbackRequest, FeedbackView,
};
use sluice_types::time::now_rfc3339;

use crate::SharedState;
use crate::access::{
    Caller, OverdueQuery, find_dataset, owns, party_scope, party_to, require, required_text,
};
use crate::error::{ApiError, ApiJson};

fn view(named: NamedFeedback) -> FeedbackView {
    let (f, dataset, reported_by) = (named.feedback, named.dataset_name, named.reporter_name);
    let overdue = f.state == "open" && f.due_at < now_rfc3339();
    FeedbackView {
        id: f.id,
        dataset,
        reported_by,
        kind: f.kind,
        description: f.description,
        state: f.state,
        answer: f.answer,
        created_at: f.created_at,
        due_at: f.due_at,
        overdue,
        extension: f
            .extension_state
            .map(|s| format!("{s} ({} working days)", f.extension_days.unwrap_or(0))),
    }
}

pub async fn report(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<FeedbackRequest>,
) -> Result<(StatusCode, Json<FeedbackView>), ApiError> {
    let record = find_dataset(&state, &caller, &name).await?;
    match req.kind.as_str() {
        "error" | "omission" | "other" => {}
        "rectification" => require(&caller, &[Role::Admin], "open rectification tasks")?,
        other => {
            return Err(ApiError::bad_request(format!(
                "kind must be error, omission, other or rectification, not {other:?}"
            )));
        }
    }
    let description = required_text("description", &req.description, 8192)?;
    let f = state
        .store
        .create_feedback(&caller.id, &record.entry.id, &req.kind, description)
        .await?;
    let f = visible(&state, &caller, &f.id).await?;
    Ok((StatusCode::CREATED, Json(view(f))))
}

pub async fn list(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Query(q): Query<OverdueQuery>,
) -> Result<Json<Vec<FeedbackView>>, ApiError> {
    let scope = party_scope(&caller);
    let now = now_rfc3339();
    let items = state
        .store
        .named_feedback_list(scope, q.overdue.then_some(now.as_str()))
        .await?;
    Ok(Json(items.into_iter().map(view).collect()))
}

/// An item the caller may see: reported by them, on their dataset, or any
/// for the authority. Anything else is "not found".
async fn visible(
    state: &SharedState,
    caller: &UserRecord,
    id: &str,
) -> Result<NamedFeedback, ApiError> {
    let f = state.store.named_feedback(id).await?;
    let mut ok = false;
    if let Some(NamedFeedback { feedback: f, .. }) = &f {
        ok = party_to(caller, &[&f.reporter_id]);
        if !ok && let Some(d) = state.store.dataset(&f.dataset_id).await? {
            ok = owns(caller, &d);
        }
    }
    f.filter(|_| ok)
        .ok_or_else(|| ApiError::not_found(&format!("feedback {id}")))
}

async fn provider_of(
    state: &SharedState,
    caller: &UserRecord,
    f: &Feedback,
) -> Result<(), ApiError> {
    let d = state
        .store
        .dataset(&f.dataset_id)
        .await?
        .ok_or_else(ApiError::internal)?;
    if owns(caller, &d) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "only the dataset's provider answers its feedback",
        ))
    }
}

pub async fn show(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<FeedbackView>, ApiError> {
    let f = visible(&state, &caller, &id).await?;
    Ok(Json(view(f)))
}

pub async fn answer(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<FeedbackAnswer>,
) -> Result<Json<FeedbackView>, ApiError> {
    let f = visible(&state, &caller, &id).await?;
    provider_of(&state, &caller, &f.feedback).await?;
    let answer = required_text("answer", &req.answer, 8192)?;
    state.store.answer_feedback(&caller.id, &id, answer).await?;
    let f = visible(&state, &caller, &id).await?;
    Ok(Json(view(f)))
}

pub async fn request_extension(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ExtensionRequest>,
) -> Result<Json<FeedbackView>, ApiError> {
    let f = visible(&state, &caller, &id).await?;
    provider_of(&state, &caller, &f.feedback).await?;
    if !(FEEDBACK_DAYS + 1..=FEEDBACK_MAX_DAYS).contains(&req.working_days) {
        return Err(ApiError::bad_request(format!(
            "working_days is the new deadline in all: more than {FEEDBACK_DAYS}, at most {FEEDBACK_MAX_DAYS}"
        )));
    }
    let reason = required_text("reason", &req.reason, 8192)?;
    state
        .store
        .request_extension(&caller.id, &id, req.working_days, reason)
        .await?;
    let f = visible(&state, &caller, &id).await?;
    Ok(Json(view(f)))
}

pub async fn decide_extension(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ExtensionDecision>,
) -> Result<Json<FeedbackView>, ApiError> {
    visible(&state, &caller, &id).await?;
    state
        .store
        .decide_extension(&caller.id, &id, req.approve)
        .await?;
    let f = visible(&state, &caller, &id).await?;
    Ok(Json(view(f)))
}
