//! Feedback on datasets (art. 10: the provider answers within 5 working
//! days, extendable to at most 30 with the authority's approval) and quality
//! rectification tasks (art. 16: due in 10 working days). Deadlines are
//! stored; overdue items are listed.

use serde::Serialize;
use sluice_types::time::{add_working_days, now_rfc3339, now_unix, rfc3339};
use sqlx::Row;

use crate::db::{PartyScope, dataset_name, list_rows, user_name};
use crate::{Store, StoreError, commit, corrupt};

/// Working days a provider has to answer feedback, and at most with an
/// extension; a rectification task's.
pub const FEEDBACK_DAYS: u32 = 5;
pub const FEEDBACK_MAX_DAYS: u32 = 30;
pub const RECTIFICATION_DAYS: u32 = 10;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Feedback {
    pub id: String,
    pub dataset_id: String,
    pub reporter_id: String,
    pub kind: String,
    pub description: String,
    pub state: String,
    pub answer: Option<String>,
    pub created_at: String,
    pub due_at: String,
    pub extension_days: Option<u32>,
    pub extension_reason: Option<String>,
    pub extension_state: Option<String>,
    pub answered_at: Option<String>,
}

/// A feedback item with its dataset's and reporter's names (or ids, if
/// gone).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NamedFeedback {
    pub feedback: Feedback,
    pub dataset_name: String,
    pub reporter_name: String,
}

/// A feedback row with its dataset's and reporter's names; filtered by the
/// caller.
fn select_named() -> String {
    format!(
        "SELECT *, {} AS dataset_name, {} AS reporter_name FROM feedback",
        dataset_name("feedback.dataset_id"),
        user_name("feedback.reporter_id"),
    )
}

fn named_from_row(r: &sqlx::sqlite::SqliteRow) -> NamedFeedback {
    NamedFeedback {
        feedback: from_row(r),
        dataset_name: r.get("dataset_name"),
        reporter_name: r.get("reporter_name"),
    }
}

fn from_row(r: &sqlx::sqlite::SqliteRow) -> Feedback {
    Feedback {
        id: r.get("id"),
        dataset_id: r.get("dataset_id"),
        reporter_id: r.get("reporter_id"),
        kind: r.get("kind"),
        description: r.get("description"),
        state: r.get("state"),
        answer: r.get("answer"),
        created_at: r.get("created_at"),
        due_at: r.get("due_at"),
        extension_days: r
            .get::<Option<i64>, _>("extension_days")
            .and_then(|d| u32::try_from(d).ok()),
        extension_reason: r.get("extension_reason"),
        extension_state: r.get("extension_state"),
        answered_at: r.get("answered_at"),
    }
}

impl Store {
    /// Opens a feedback item or rectification task, due in working days
    /// from now.
    pub async fn create_feedback(
        &self,
        reporter_id: &str,
        dataset_id: &str,
        kind: &str,
        description: &str,
    ) -> Result<Feedback, StoreError> {
        let id = sluice_crypto::random_id("fb");
        let now = now_unix();
        let days = if kind == "rectification" {
            RECTIFICATION_DAYS
        } else {
            FEEDBACK_DAYS
        };
        let mut tx = self
            .write_audited(
                reporter_id,
                "feedback.create",
                &id,
                &serde_json::json!({"dataset": dataset_id, "kind": kind}),
            )
            .await?;
        sqlx::query(
            "INSERT INTO feedback (id, dataset_id, reporter_id, kind, description, state, created_at, due_at)
             VALUES (?, ?, ?, ?, ?, 'open', ?, ?)",
        )
        .bind(&id)
        .bind(dataset_id)
        .bind(reporter_id)
        .bind(kind)
        .bind(description)
        .bind(rfc3339(now))
        .bind(rfc3339(add_working_days(now, days)))
        .execute(&mut *tx)
        .await?;
        commit(tx).await?;
        self.feedback(&id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("feedback {id}")))
    }

    pub async fn feedback(&self, id: &str) -> Result<Option<Feedback>, StoreError> {
        Ok(self.named_feedback(id).await?.map(|n| n.feedback))
    }

    /// [`Store::feedback`] with its dataset's and reporter's names, in one
    /// query.
    pub async fn named_feedback(&self, id: &str) -> Result<Option<NamedFeedback>, StoreError> {
        Ok(self.named_feedback_where("id = ?1", id, None).await?.pop())
    }

    /// Feedback in `scope`; with `overdue_at`, only items still open whose
    /// deadline is before that instant (RFC 3339).
    pub async fn feedback_list(
        &self,
        scope: PartyScope<'_>,
        overdue_at: Option<&str>,
    ) -> Result<Vec<Feedback>, StoreError> {
        Ok(self
            .named_feedback_list(scope, overdue_at)
            .await?
            .into_iter()
            .map(|n| n.feedback)
            .collect())
    }

    /// [`Store::feedback_list`] with each item's dataset's and reporter's
    /// names, in one query.
    pub async fn named_feedback_list(
        &self,
        scope: PartyScope<'_>,
        overdue_at: Option<&str>,
    ) -> Result<Vec<NamedFeedback>, StoreError> {
        // A provider sees feedback on its datasets, a user what it reported.
        let (filter, who) = scope.filter(
            "dataset_id IN (SELECT id FROM datasets WHERE owner_id = ?1)",
            "reporter_id = ?1",
        );
        self.named_feedback_where(filter, &who, overdue_at).await
    }

    async fn named_feedback_where(
        &self,
        filter: &str,
        who: &str,
        overdue_at: Option<&str>,
    ) -> Result<Vec<NamedFeedback>, StoreError> {
        Ok(list_rows(
            &self.pool,
            &select_named(),
            filter,
            who,
            "open",
            overdue_at,
            "due_at, rowid",
        )
        .await?
        .iter()
        .map(named_from_row)
        .collect())
    }

    /// The provider's answer closes the item.
    pub async fn answer_feedback(
        &self,
        actor: &str,
        id: &str,
        answer: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self
            .write_audited(actor, "feedback.answer", id, &serde_json::json!({}))
            .await?;
        let done = sqlx::query(
            "UPDATE feedback SET state = 'answered', answer = ?, answered_at = ? WHERE id = ? AND state = 'open'",
        )
        .bind(answer)
        .bind(now_rfc3339())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Refused(format!(
                "feedback {id} is already answered"
            )));
        }
        commit(tx).await
    }

    /// The provider asks for a deadline of `days` working days in all
    /// (at most 30), pending the authority's approval.
    pub async fn request_extension(
        &self,
        actor: &str,
        id: &str,
        days: u32,
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self
            .write_audited(
                actor,
                "feedback.extension_request",
                id,
                &serde_json::json!({"working_days": days, "reason": reason}),
            )
            .await?;
        let done = sqlx::query(
            "UPDATE feedback SET extension_days = ?, extension_reason = ?, extension_state = 'requested'
             WHERE id = ? AND state = 'open' AND kind != 'rectification' AND extension_state IS NULL",
        )
        .bind(i64::from(days))
        .bind(reason)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Refused(format!(
                "feedback {id} cannot be extended (answered, a rectification task, or already extended once)"
            )));
        }
        commit(tx).await
    }

    /// The authority approves (the deadline moves to the requested number
    /// of working days from the item's creation) or refuses.
    pub async fn decide_extension(
        &self,
        actor: &str,
        id: &str,
        approve: bool,
    ) -> Result<(), StoreError> {
        let item = self
            .feedback(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("feedback {id}")))?;
        if item.extension_state.as_deref() != Some("requested") {
            return Err(StoreError::Refused(format!(
                "feedback {id} has no pending extension request"
            )));
        }
        let created = sluice_types::time::parse_rfc3339(&item.created_at)
            .ok_or_else(|| corrupt("feedback created_at"))?;
        let days = item.extension_days.unwrap_or(FEEDBACK_DAYS);
        let mut tx = self
            .write_audited(
                actor,
                "feedback.extension_decision",
                id,
                &serde_json::json!({"approved": approve, "working_days": days}),
            )
            .await?;
        let (state, due) = if approve {
            ("approved", rfc3339(add_working_days(created, days)))
        } else {
            ("refused", item.due_at.clone())
        };
        sqlx::query(
            "UPDATE feedback SET extension_state = ?, due_at = ? WHERE id = ? AND extension_state = 'requested'",
        )
        .bind(state)
        .bind(due)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        commit(tx).await
    }
}
