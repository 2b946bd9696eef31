//! The authority's and providers' controls over access (art. 34: revoke)
//! and over datasets (art. 38: suspend, resume, withdraw), and who has
//! access now (grants, which approved applications create). The server
//! enforces them at every job start and cancels affected jobs.

use serde::Serialize;
use sluice_types::time::now_rfc3339;
use sqlx::Row;

use crate::db::{dataset_name, user_name};
use crate::jobs::JobState;
use crate::{Store, StoreError, audit, commit, corrupt};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetStatus {
    Active,
    Suspended,
    Withdrawn,
}

impl DatasetStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetStatus::Active => "active",
            DatasetStatus::Suspended => "suspended",
            DatasetStatus::Withdrawn => "withdrawn",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => DatasetStatus::Active,
            "suspended" => DatasetStatus::Suspended,
            "withdrawn" => DatasetStatus::Withdrawn,
            _ => return None,
        })
    }
}

/// A revocation decision, public.
#[derive(Debug, Clone, Serialize)]
pub struct Revocation {
    pub id: String,
    pub user_id: String,
    /// None: every dataset (the authority closed the user's access).
    pub dataset_id: Option<String>,
    pub decided_by: String,
    pub reason: String,
    pub created_at: String,
}

/// A revocation with the names the public list shows: each a user's or
/// dataset's name, or its id if that is gone.
#[derive(Debug, Clone, Serialize)]
pub struct NamedRevocation {
    pub revocation: Revocation,
    pub user_name: String,
    /// None: every dataset.
    pub dataset_name: Option<String>,
    pub decided_by_name: String,
}

/// A job that has not ended, with what cancelling it needs.
#[derive(Debug, Clone)]
pub struct ActiveJob {
    pub id: String,
    pub user_id: String,
    pub dataset_ids: Vec<String>,
    pub state: JobState,
}

impl Store {
    /// Moves a dataset between active, suspended and withdrawn. Withdrawn is
    /// final; resuming needs a suspended dataset.
    pub async fn set_dataset_status(
        &self,
        actor: &str,
        dataset_id: &str,
        status: DatasetStatus,
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let current: Option<String> =
            sqlx::query_scalar("SELECT status FROM datasets WHERE id = ?")
                .bind(dataset_id)
                .fetch_optional(&mut *tx)
                .await?;
        let current = current
            .and_then(|c| DatasetStatus::parse(&c))
            .ok_or_else(|| StoreError::NotFound(format!("dataset {dataset_id}")))?;
        let allowed = matches!(
            (current, status),
            (DatasetStatus::Active, DatasetStatus::Suspended)
                | (DatasetStatus::Suspended, DatasetStatus::Active)
                | (
                    DatasetStatus::Active | DatasetStatus::Suspended,
                    DatasetStatus::Withdrawn
                )
        );
        if !allowed {
            return Err(StoreError::Refused(format!(
                "the dataset is {}; it cannot become {}",
                current.as_str(),
                status.as_str()
            )));
        }
        audit::append(
            &mut tx,
            actor,
            &format!("dataset.{}", status.as_str()),
            dataset_id,
            &serde_json::json!({"from": current.as_str(), "reason": reason}),
        )
        .await?;
        sqlx::query("UPDATE datasets SET status = ?, status_reason = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(reason)
            .bind(dataset_id)
            .execute(&mut *tx)
            .await?;
        commit(tx).await
    }

    /// Records a revocation and removes the grant it supersedes, in one
    /// transaction.
    pub async fn revoke(
        &self,
        actor: &str,
        user_id: &str,
        dataset_id: Option<&str>,
        reason: &str,
    ) -> Result<String, StoreError> {
        let id = sluice_crypto::random_id("rev");
        let mut tx = self
            .write_audited(
                actor,
                "user.revoke",
                user_id,
                &serde_json::json!({"dataset": dataset_id, "reason": reason, "revocation": id}),
            )
            .await?;
        sqlx::query(
            "INSERT INTO revocations (id, user_id, dataset_id, decided_by, reason, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(user_id)
        .bind(dataset_id)
        .bind(actor)
        .bind(reason)
        .bind(now_rfc3339())
        .execute(&mut *tx)
        .await?;
        match dataset_id {
            Some(d) => {
                sqlx::query("DELETE FROM access_grants WHERE user_id = ? AND dataset_id = ?")
                    .bind(user_id)
                    .bind(d)
                    .execute(&mut *tx)
                    .await?
            }
            None => {
                sqlx::query("DELETE FROM access_grants WHERE user_id = ?")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?
            }
        };
        commit(tx).await?;
        Ok(id)
    }

    /// The revocation that bars `user_id` from `dataset_id`, if any.
    pub async fn revocation_of(
        &self,
        user_id: &str,
        dataset_id: &str,
    ) -> Result<Option<Revocation>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM revocations WHERE user_id = ? AND (dataset_id IS NULL OR dataset_id = ?)
             ORDER BY created_at LIMIT 1",
        )
        .bind(user_id)
        .bind(dataset_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(revocation_from_row))
    }

    /// Every revocation, oldest first: the public list.
    pub async fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        Ok(self
            .named_revocations()
            .await?
            .into_iter()
            .map(|n| n.revocation)
            .collect())
    }

    /// [`Store::revocations`] with the user's, dataset's and decider's
    /// names, in one query.
    pub async fn named_revocations(&self) -> Result<Vec<NamedRevocation>, StoreError> {
        let sql = format!(
            "SELECT *, {} AS user_name, {} AS dataset_name, {} AS decided_by_name
             FROM revocations ORDER BY rowid",
            user_name("revocations.user_id"),
            dataset_name("revocations.dataset_id"),
            user_name("revocations.decided_by"),
        );
        Ok(sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| NamedRevocation {
                revocation: revocation_from_row(r),
                user_name: r.get("user_name"),
                dataset_name: r.get("dataset_name"),
                decided_by_name: r.get("decided_by_name"),
            })
            .collect())
    }

    /// Whether an approved application gave `user_id` access to the
    /// dataset and no revocation has taken it away since.
    pub async fn has_access(&self, dataset_id: &str, user_id: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM access_grants WHERE dataset_id = ? AND user_id = ?",
        )
        .bind(dataset_id)
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Jobs not yet ended (queued, awaiting review, or running).
    pub async fn active_jobs(&self) -> Result<Vec<ActiveJob>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, user_id, dataset_versions_json, state FROM jobs
             WHERE state IN ('queued', 'awaiting_review', 'running') ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let versions: Vec<(String, String)> =
                    serde_json::from_str(r.get::<&str, _>("dataset_versions_json"))
                        .map_err(corrupt)?;
                Ok(ActiveJob {
                    id: r.get("id"),
                    user_id: r.get("user_id"),
                    dataset_ids: versions.into_iter().map(|(d, _)| d).collect(),
                    state: JobState::parse(r.get::<&str, _>("state"))
                        .ok_or_else(|| crate::corrupt("a job state"))?,
                })
            })
            .collect()
    }
}

fn revocation_from_row(r: &sqlx::sqlite::SqliteRow) -> Revocation {
    Revocation {
        id: r.get("id"),
        user_id: r.get("user_id"),
        dataset_id: r.get("dataset_id"),
        decided_by: r.get("decided_by"),
        reason: r.get("reason"),
        created_at: r.get("created_at"),
    }
}
