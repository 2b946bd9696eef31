//! Revocation (art. 34), suspension (art. 38) and usage statistics (art. 9). Each decision is
//! recorded with its reason (audit log; revocations also publicly listed),
//! then every affected job that has not ended is cancelled: nothing more is
//! released to a revoked user or from a suspended dataset.

use axum::Json;
use axum::extract::{Path, State};
use sluice_store::DatasetStatus;
use sluice_types::Role;
use sluice_types::api::{ControlResult, Reason, RevocationView, RevokeRequest};

use crate::SharedState;
use crate::access::{Caller, find_dataset, owns, required_text};
use crate::error::{ApiError, ApiJson};
use crate::jobs::cancel_jobs;

async fn set_status(
    state: SharedState,
    caller: sluice_store::UserRecord,
    name: String,
    status: DatasetStatus,
    reason: &str,
) -> Result<Json<ControlResult>, ApiError> {
    let record = find_dataset(&state, &caller, &name).await?;
    if !owns(&caller, &record) {
        return Err(ApiError::forbidden(format!(
            "only the provider of {name} or the authority may change its status"
        )));
    }
    let reason = required_text("reason", reason, 4096)?;
    state
        .store
        .set_dataset_status(&caller.id, &record.entry.id, status, reason)
        .await?;
    let id = record.entry.id.clone();
    let jobs_cancelled = if status == DatasetStatus::Active {
        0
    } else {
        cancel_jobs(
            &state,
            |j| j.dataset_ids.contains(&id),
            &format!("dataset {name} was {}: {reason}", status.as_str()),
        )
        .await?
    };
    Ok(Json(ControlResult { jobs_cancelled }))
}

pub async fn suspend(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<Reason>,
) -> Result<Json<ControlResult>, ApiError> {
    set_status(state, caller, name, DatasetStatus::Suspended, &req.reason).await
}

pub async fn resume(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<Reason>,
) -> Result<Json<ControlResult>, ApiError> {
    set_status(state, caller, name, DatasetStatus::Active, &req.reason).await
}

pub async fn withdraw(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<Reason>,
) -> Result<Json<ControlResult>, ApiError> {
    set_status(state, caller, name, DatasetStatus::Withdrawn, &req.reason).await
}

/// A provider restricts one user's access to its dataset.
pub async fn revoke(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<RevokeRequest>,
) -> Result<Json<ControlResult>, ApiError> {
    let record = find_dataset(&state, &caller, &name).await?;
    if !owns(&caller, &record) {
        return Err(ApiError::forbidden(format!(
            "only the provider of {name} or the authority may revoke access to it"
        )));
    }
    let reason = required_text("reason", &req.reason, 4096)?;
    let user = state
        .store
        .user_by_name(&req.user)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("user {}", req.user)))?;
    state
        .store
        .revoke(&caller.id, &user.id, Some(&record.entry.id), reason)
        .await?;
    let id = record.entry.id.clone();
    let jobs_cancelled = cancel_jobs(
        &state,
        |j| j.user_id == user.id && j.dataset_ids.contains(&id),
        &format!("access to {name} was revoked: {reason}"),
    )
    .await?;
    Ok(Json(ControlResult { jobs_cancelled }))
}

/// The authority closes a user's access to every dataset.
pub async fn close_user(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<Reason>,
) -> Result<Json<ControlResult>, ApiError> {
    let reason = required_text("reason", &req.reason, 4096)?;
    let user = state
        .store
        .user_by_name(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("user {name}")))?;
    if user.role == Role::Admin {
        return Err(ApiError::bad_request(
            "the authority's own accounts cannot be closed this way",
        ));
    }
    state
        .store
        .revoke(&caller.id, &user.id, None, reason)
        .await?;
    let jobs_cancelled = cancel_jobs(
        &state,
        |j| j.user_id == user.id,
        &format!("access was closed by the authority: {reason}"),
    )
    .await?;
    Ok(Json(ControlResult { jobs_cancelled }))
}

/// Every revocation, for anyone with a token (art. 34: listed publicly).
pub async fn revocations(
    State(state): State<SharedState>,
    Caller(_): Caller,
) -> Result<Json<Vec<RevocationView>>, ApiError> {
    let all = state.store.named_revocations().await?;
    Ok(Json(
        all.into_iter()
            .map(|r| RevocationView {
                user: r.user_name,
                dataset: r.dataset_name,
                decided_by: r.decided_by_name,
                reason: r.revocation.reason,
                at: r.revocation.created_at,
            })
            .collect(),
    ))
}

/// Usage statistics (art. 9), for any authenticated user: counts and
/// budget by provider and by open category; no dataset's values.
pub async fn stats(
    State(state): State<SharedState>,
    Caller(_): Caller,
) -> Result<Json<sluice_types::api::UsageStats>, ApiError> {
    let usage = state.store.usage().await?;
    let rows = |groups: std::collections::BTreeMap<String, sluice_store::UsageGroup>| {
        groups
            .into_iter()
            .map(|(group, g)| sluice_types::api::UsageRow {
                group,
                datasets: g.datasets,
                versions: g.versions,
                jobs_released: g.jobs_released,
                jobs_failed: g.jobs_failed,
                jobs_rejected: g.jobs_rejected,
                jobs_pending: g.jobs_pending,
                applications: g.applications,
                epsilon_spent: sluice_types::privacy::Epsilon::from_units(g.epsilon_spent_units)
                    .to_string(),
            })
            .collect()
    };
    Ok(Json(sluice_types::api::UsageStats {
        by_provider: rows(usage.by_provider),
        by_category: rows(usage.by_category),
        users: usage.users,
        releases: usage.releases,
        revocations: usage.revocations,
    }))
}
