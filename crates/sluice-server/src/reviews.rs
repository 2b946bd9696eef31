//! Human review of jobs (issue #6): providers require one or two distinct
//! reviewers per dataset; reviewers see the manifest, the sandbox's analysis
//! and a diff against the same user's last approved manifest, never data;
//! a decision binds to the manifest digest the reviewer read. Nobody reviews
//! their own job.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use sluice_store::{NamedHeldJob, ReviewOutcome, UserRecord};
use sluice_types::api::{
    ReviewDecisionView, ReviewPolicy, ReviewRequest, ReviewResult, ReviewView,
};
use sluice_types::manifest::Manifest;

use crate::SharedState;
use crate::access::{Caller, find_dataset, owns};
use crate::error::{ApiError, ApiJson};

/// Most lines of a manifest diffed line by line (a manifest is small; the
/// bound keeps the quadratic diff cheap whatever is submitted).
const MAX_DIFF_LINES: usize = 2_000;

pub async fn set_policy(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<ReviewPolicy>,
) -> Result<StatusCode, ApiError> {
    let record = find_dataset(&state, &caller, &name).await?;
    if !owns(&caller, &record) {
        return Err(ApiError::forbidden(format!(
            "only the provider of {name} may set its review policy"
        )));
    }
    if req.reviewers > 2 {
        return Err(ApiError::bad_request(
            "reviewers must be 0 (no review), 1 or 2 (two distinct reviewers)",
        ));
    }
    state
        .store
        .set_review_policy(&caller.id, &record.entry.id, req.reviewers)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pretty JSON of a stored canonical manifest.
fn pretty(manifest_json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(manifest_json)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| manifest_json.to_owned())
}

/// Line diff by longest common subsequence: "  " kept, "- " removed from
/// `old`, "+ " added in `new`.
pub fn line_diff(old: &str, new: &str) -> Vec<String> {
    let a: Vec<&str> = old.lines().take(MAX_DIFF_LINES).collect();
    let b: Vec<&str> = new.lines().take(MAX_DIFF_LINES).collect();
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(format!("  {}", a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Removals before additions, as diff tools print them.
            out.push(format!("- {}", a[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", b[j]));
            j += 1;
        }
    }
    out
}

fn view(named: NamedHeldJob) -> Result<ReviewView, ApiError> {
    let NamedHeldJob {
        held,
        submitted_by,
        reviewer_names,
        manifest_json,
        manifest_digest,
        previous_approved,
    } = named;
    let manifest: Manifest =
        serde_json::from_str(&manifest_json).map_err(|_| ApiError::internal())?;
    let current = pretty(&manifest_json);
    let (previous_approved_digest, diff) = match previous_approved {
        Some((json, digest)) => (Some(digest), line_diff(&pretty(&json), &current)),
        None => (None, Vec::new()),
    };
    let decisions = held
        .decisions
        .into_iter()
        .zip(reviewer_names)
        .map(|(d, reviewer)| ReviewDecisionView {
            reviewer,
            decision: d.decision,
            reason: d.reason,
            manifest_digest: d.manifest_digest,
            at: d.at,
        })
        .collect();
    Ok(ReviewView {
        job_id: held.job_id,
        submitted_by,
        title: manifest.title,
        datasets: manifest.datasets,
        manifest_digest,
        manifest: current,
        plan: held.plan,
        estimate: serde_json::from_str(&held.estimate_json).map_err(|_| ApiError::internal())?,
        previous_approved_digest,
        diff,
        required: held.required,
        decisions,
    })
}

pub async fn list(
    State(state): State<SharedState>,
    Caller(caller): Caller,
) -> Result<Json<Vec<ReviewView>>, ApiError> {
    let held = state.store.named_reviews_for(&caller.id).await?;
    Ok(Json(held.into_iter().map(view).collect::<Result<_, _>>()?))
}

/// A reviewer's own job, or a job that was never held, is "not found":
/// indistinguishable from an id that does not exist.
async fn held_for(
    state: &SharedState,
    caller: &UserRecord,
    job_id: &str,
) -> Result<NamedHeldJob, ApiError> {
    state
        .store
        .named_held_job(job_id)
        .await?
        .filter(|h| h.held.user_id != caller.id)
        .ok_or_else(|| ApiError::not_found(&format!("review of job {job_id}")))
}

pub async fn show(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(job_id): Path<String>,
) -> Result<Json<ReviewView>, ApiError> {
    let held = held_for(&state, &caller, &job_id).await?;
    Ok(Json(view(held)?))
}

pub async fn decide(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(job_id): Path<String>,
    ApiJson(req): ApiJson<ReviewRequest>,
) -> Result<Json<ReviewResult>, ApiError> {
    held_for(&state, &caller, &job_id).await?;
    let approve = match req.decision.as_str() {
        "approve" => true,
        "reject" => false,
        other => {
            return Err(ApiError::bad_request(format!(
                "decision must be approve or reject, not {other:?}"
            )));
        }
    };
    let reason = req.reason.trim();
    if !approve && reason.is_empty() {
        return Err(ApiError::bad_request(
            "a rejection must give its reason (the submitter reads it)",
        ));
    }
    if reason.len() > 4096 {
        return Err(ApiError::bad_request("reason is longer than 4096 bytes"));
    }
    let outcome = state
        .store
        .decide_review(&caller.id, &job_id, approve, reason, &req.manifest_digest)
        .await?;
    let held = held_for(&state, &caller, &job_id).await?.held;
    let approvals = held
        .decisions
        .iter()
        .filter(|d| d.decision == "approve")
        .count() as u8;
    let mut note = None;
    let outcome = match outcome {
        ReviewOutcome::Pending { .. } => "pending",
        ReviewOutcome::Rejected => "rejected",
        ReviewOutcome::Approved => {
            // The budget is reserved now, before any data is read; a refusal
            // (budget spent meanwhile) rejects the job with its reason.
            if let Err(e) = crate::jobs::start_approved(state.clone(), &job_id).await {
                tracing::info!(job = %job_id, "an approved job could not start");
                note = Some(format!(
                    "approved, but the job could not start and was rejected: {}",
                    e.message
                ));
            }
            "approved"
        }
    };
    state.notify(&job_id);
    Ok(Json(ReviewResult {
        outcome: outcome.into(),
        approvals,
        required: held.required,
        note,
    }))
}

#[cfg(test)]
mod tests {
    use super::line_diff;

    #[test]
    fn diff_marks_changed_lines_only() {
        let d = line_diff("a\nb\nc\n", "a\nB\nc\nd\n");
        assert_eq!(d, vec!["  a", "- b", "+ B", "  c", "+ d"]);
        assert!(line_diff("x\n", "x\n").iter().all(|l| l.starts_with("  ")));
    }
}
