//! Human review of jobs: which datasets require it, the jobs held for it,
//! and reviewers' decisions, each bound to the manifest digest reviewed.
//! A held job is `awaiting_review` with nothing reserved; the server reserves and
//! runs it once enough distinct reviewers approved.

use serde::{Deserialize, Serialize};
use sluice_types::time::now_rfc3339;
use sqlx::Row;

use crate::db::user_name;
use crate::jobs::{JobState, job_state};
use crate::{Store, StoreError, audit, commit, corrupt};

/// A job held for review, as reviewers see it: never data.
#[derive(Debug, Clone, Serialize)]
pub struct HeldJob {
    pub job_id: String,
    pub user_id: String,
    pub required: u8,
    pub plan: String,
    pub estimate_json: String,
    pub task_json: String,
    pub datasets_json: String,
    pub outcome: Option<String>,
    pub decisions: Vec<Decision>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub reviewer_id: String,
    pub decision: String,
    pub reason: String,
    pub manifest_digest: String,
    pub at: String,
}

/// A held job with what its review page shows, in one query: the
/// submitter's name, the manifest, each reviewer's name, and the manifest
/// last approved for the submitter (to diff against).
#[derive(Debug, Clone, Serialize)]
pub struct NamedHeldJob {
    pub held: HeldJob,
    /// The submitter's name (or id, if the account is gone).
    pub submitted_by: String,
    /// One per `held.decisions`, in the same order.
    pub reviewer_names: Vec<String>,
    pub manifest_json: String,
    pub manifest_digest: String,
    /// What [`Store::last_approved_manifest`] gives for this job.
    pub previous_approved: Option<(String, String)>,
}

/// What a decision did.
#[derive(Debug, Clone, PartialEq)]
pub enum ReviewOutcome {
    /// More approvals are needed.
    Pending {
        approvals: u8,
        required: u8,
    },
    /// Enough distinct reviewers approved: the job may run.
    Approved,
    Rejected,
}

/// What a held job needs to run once approved.
pub struct HoldForReview<'a> {
    pub required: u8,
    pub plan: &'a str,
    pub estimate_json: &'a str,
    pub task_json: &'a str,
    pub datasets_json: &'a str,
}

impl Store {
    /// Sets how many distinct reviewers must approve jobs on a dataset.
    pub async fn set_review_policy(
        &self,
        actor: &str,
        dataset_id: &str,
        reviewers: u8,
    ) -> Result<(), StoreError> {
        if reviewers > 2 {
            return Err(StoreError::Invalid("at most two reviewers".into()));
        }
        let mut tx = self
            .write_audited(
                actor,
                "dataset.review_policy",
                dataset_id,
                &serde_json::json!({"reviewers_required": reviewers}),
            )
            .await?;
        let done = sqlx::query("UPDATE datasets SET reviewers_required = ? WHERE id = ?")
            .bind(i64::from(reviewers))
            .bind(dataset_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound(format!("dataset {dataset_id}")));
        }
        commit(tx).await
    }

    /// Holds a queued job for review.
    pub async fn hold_for_review(
        &self,
        actor: &str,
        job_id: &str,
        hold: HoldForReview<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self
            .write_audited(
                actor,
                "job.hold_for_review",
                job_id,
                &serde_json::json!({"reviewers_required": hold.required}),
            )
            .await?;
        sqlx::query(
            "INSERT INTO job_reviews (job_id, required, plan, estimate_json, task_json, datasets_json, outcome, created_at)
             VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
        )
        .bind(job_id)
        .bind(i64::from(hold.required))
        .bind(hold.plan)
        .bind(hold.estimate_json)
        .bind(hold.task_json)
        .bind(hold.datasets_json)
        .bind(now_rfc3339())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE jobs SET state = 'awaiting_review', updated_at = ? WHERE id = ? AND state = 'queued'",
        )
        .bind(now_rfc3339())
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
        commit(tx).await
    }

    /// A job held for review (decided or not), with its decisions.
    pub async fn held_job(&self, job_id: &str) -> Result<Option<HeldJob>, StoreError> {
        Ok(self.named_held_job(job_id).await?.map(|n| n.held))
    }

    /// [`Store::held_job`] with what its review page shows, in one query.
    pub async fn named_held_job(&self, job_id: &str) -> Result<Option<NamedHeldJob>, StoreError> {
        Ok(self
            .named_held_jobs("r.job_id = ?1", &[job_id])
            .await?
            .pop())
    }

    /// Jobs awaiting a decision that `reviewer_id` may make: not their own,
    /// not already decided by them.
    pub async fn reviews_for(&self, reviewer_id: &str) -> Result<Vec<HeldJob>, StoreError> {
        Ok(self
            .named_reviews_for(reviewer_id)
            .await?
            .into_iter()
            .map(|n| n.held)
            .collect())
    }

    /// [`Store::reviews_for`] with what each review page shows, in one query.
    pub async fn named_reviews_for(
        &self,
        reviewer_id: &str,
    ) -> Result<Vec<NamedHeldJob>, StoreError> {
        self.named_held_jobs(
            "r.outcome IS NULL AND j.state = 'awaiting_review' AND j.user_id != ?1
             AND NOT EXISTS (SELECT 1 FROM review_decisions d WHERE d.job_id = r.job_id AND d.reviewer_id = ?1)",
            &[reviewer_id],
        )
        .await
    }

    /// Held jobs that `filter` (SQL over `r`, the review, and `j`, the job,
    /// using `?1`, `?2`… for `binds`) selects, in the order they were held.
    /// Each one's decisions come as one JSON array, in the order made.
    async fn named_held_jobs(
        &self,
        filter: &str,
        binds: &[&str],
    ) -> Result<Vec<NamedHeldJob>, StoreError> {
        let sql = format!(
            "SELECT r.*, j.user_id, j.manifest_json, j.manifest_digest, {} AS submitted_by,
               (SELECT json_group_array(json_object(
                  'reviewer_id', d.reviewer_id, 'reviewer_name', {}, 'decision', d.decision,
                  'reason', d.reason, 'manifest_digest', d.manifest_digest, 'at', d.created_at)
                  ORDER BY d.rowid)
                FROM review_decisions d WHERE d.job_id = r.job_id) AS decisions_json,
               (SELECT json_array(p.manifest_json, p.manifest_digest) {}) AS previous_json
             FROM job_reviews r JOIN jobs j ON j.id = r.job_id
             WHERE {filter} ORDER BY r.rowid",
            user_name("j.user_id"),
            user_name("d.reviewer_id"),
            last_approved("j.user_id", "j.id"),
        );
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(*b);
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(named_held_from_row)
            .collect()
    }

    /// The manifest (canonical JSON) and digest of `user_id`'s most recent
    /// approved job other than `except`: what a reviewer diffs against.
    pub async fn last_approved_manifest(
        &self,
        user_id: &str,
        except: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        let sql = format!(
            "SELECT p.manifest_json, p.manifest_digest {}",
            last_approved("?1", "?2")
        );
        let row = sqlx::query(&sql)
            .bind(user_id)
            .bind(except)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| (r.get("manifest_json"), r.get("manifest_digest"))))
    }

    /// Records one reviewer's decision on a held job, atomically with what
    /// it implies: a rejection rejects the job; the last approval needed
    /// marks it approved (the caller then reserves and runs it). Refused
    /// when the job is not awaiting review, the reviewer submitted it,
    /// already decided, or reviewed another manifest digest.
    pub async fn decide_review(
        &self,
        reviewer_id: &str,
        job_id: &str,
        approve: bool,
        reason: &str,
        manifest_digest: &str,
    ) -> Result<ReviewOutcome, StoreError> {
        let mut tx = self.write().await?;
        let row = sqlx::query(
            "SELECT r.required, r.outcome, j.user_id, j.manifest_digest FROM job_reviews r
             JOIN jobs j ON j.id = r.job_id WHERE r.job_id = ?",
        )
        .bind(job_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("review of job {job_id}")))?;
        let required = u8::try_from(row.get::<i64, _>("required")).map_err(corrupt)?;
        let outcome: Option<String> = row.get("outcome");
        let state = job_state(&mut tx, job_id).await?;
        if outcome.is_some() || state != JobState::AwaitingReview {
            return Err(StoreError::Refused(format!(
                "job {job_id} is no longer awaiting review"
            )));
        }
        if row.get::<String, _>("user_id") == reviewer_id {
            return Err(StoreError::Refused("nobody reviews their own job".into()));
        }
        if row.get::<String, _>("manifest_digest") != manifest_digest {
            return Err(StoreError::Refused(format!(
                "the decision names manifest digest {manifest_digest}, but job {job_id} runs another; review the current manifest"
            )));
        }
        let done = sqlx::query(
            "INSERT OR IGNORE INTO review_decisions (job_id, reviewer_id, decision, reason, manifest_digest, created_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(job_id)
        .bind(reviewer_id)
        .bind(if approve { "approve" } else { "reject" })
        .bind(reason)
        .bind(manifest_digest)
        .bind(now_rfc3339())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Refused(format!(
                "you already decided on job {job_id}"
            )));
        }
        let approvals: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM review_decisions WHERE job_id = ? AND decision = 'approve'",
        )
        .bind(job_id)
        .fetch_one(&mut *tx)
        .await?;
        let approvals = u8::try_from(approvals).map_err(corrupt)?;
        let result = if !approve {
            sqlx::query("UPDATE job_reviews SET outcome = 'rejected' WHERE job_id = ?")
                .bind(job_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE jobs SET state = 'rejected', message = ?, updated_at = ? WHERE id = ?",
            )
            .bind(format!("rejected in review: {reason}"))
            .bind(now_rfc3339())
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
            ReviewOutcome::Rejected
        } else if approvals >= required {
            sqlx::query("UPDATE job_reviews SET outcome = 'approved' WHERE job_id = ?")
                .bind(job_id)
                .execute(&mut *tx)
                .await?;
            ReviewOutcome::Approved
        } else {
            ReviewOutcome::Pending {
                approvals,
                required,
            }
        };
        audit::append(
            &mut tx,
            reviewer_id,
            if approve {
                "review.approve"
            } else {
                "review.reject"
            },
            job_id,
            &serde_json::json!({
                "manifest_digest": manifest_digest,
                "reason": reason,
                "approvals": approvals,
                "required": required,
            }),
        )
        .await?;
        commit(tx).await?;
        Ok(result)
    }
}

/// The FROM … LIMIT 1 of a query for the job `p` that was last approved for
/// the user in `user` other than the job in `except` (SQL expressions).
fn last_approved(user: &str, except: &str) -> String {
    format!(
        "FROM jobs p JOIN job_reviews pr ON pr.job_id = p.id
         WHERE p.user_id = {user} AND p.id != {except} AND pr.outcome = 'approved'
         ORDER BY p.rowid DESC LIMIT 1"
    )
}

/// A decision as the held-job query aggregates it.
#[derive(Deserialize)]
struct DecisionRow {
    reviewer_id: String,
    reviewer_name: String,
    decision: String,
    reason: String,
    manifest_digest: String,
    at: String,
}

fn named_held_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<NamedHeldJob, StoreError> {
    let rows: Vec<DecisionRow> =
        serde_json::from_str(row.get::<&str, _>("decisions_json")).map_err(corrupt)?;
    let (decisions, reviewer_names) = rows
        .into_iter()
        .map(|d| {
            let name = d.reviewer_name;
            let decision = Decision {
                reviewer_id: d.reviewer_id,
                decision: d.decision,
                reason: d.reason,
                manifest_digest: d.manifest_digest,
                at: d.at,
            };
            (decision, name)
        })
        .unzip();
    let previous_approved = row
        .get::<Option<&str>, _>("previous_json")
        .map(|p| serde_json::from_str(p).map_err(corrupt))
        .transpose()?;
    Ok(NamedHeldJob {
        held: HeldJob {
            job_id: row.get("job_id"),
            user_id: row.get("user_id"),
            required: u8::try_from(row.get::<i64, _>("required")).unwrap_or(2),
            plan: row.get("plan"),
            estimate_json: row.get("estimate_json"),
            task_json: row.get("task_json"),
            datasets_json: row.get("datasets_json"),
            outcome: row.get("outcome"),
            decisions,
        },
        submitted_by: row.get("submitted_by"),
        reviewer_names,
        manifest_json: row.get("manifest_json"),
        manifest_digest: row.get("manifest_digest"),
        previous_approved,
    })
}
