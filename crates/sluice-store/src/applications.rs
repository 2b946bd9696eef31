//! Applications for conditional data and the agreements their approval
//! creates (art. 20-21). The server checks an application's completeness
//! and an agreement's terms; this module stores them atomically: an
//! approval writes the decision, the agreement and the access it gives in
//! one transaction.

use serde::Serialize;
use sluice_types::time::{add_working_days, now_rfc3339, now_unix, rfc3339};
use sqlx::Row;

use sluice_types::privacy::Epsilon;

use crate::db::{PartyScope, from_units, rows_with_deadline, units};
use crate::{Store, StoreError, audit, commit};

/// Working days a provider has to decide an application.
pub const APPLICATION_DAYS: u32 = 10;

#[derive(Debug, Clone, Serialize)]
pub struct Application {
    pub id: String,
    pub applicant_id: String,
    pub provider_id: String,
    pub body_json: String,
    pub state: String,
    pub decision_json: Option<String>,
    pub agreement_id: Option<String>,
    pub created_at: String,
    pub due_at: String,
    pub decided_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Agreement {
    pub id: String,
    pub application_id: String,
    pub user_id: String,
    pub provider_id: String,
    pub terms_json: String,
    pub content_hash: String,
    pub period_start: String,
    pub period_end: String,
    pub dataset_ids: Vec<String>,
    pub created_at: String,
    /// The agreement's privacy budget and what jobs under it have been
    /// charged (reserved or committed; refunds give it back).
    pub epsilon: Epsilon,
    pub epsilon_spent: Epsilon,
    /// The least ε one job under it spends (the ledger refuses less).
    pub min_epsilon: Epsilon,
}

fn application_from_row(r: &sqlx::sqlite::SqliteRow) -> Application {
    Application {
        id: r.get("id"),
        applicant_id: r.get("applicant_id"),
        provider_id: r.get("provider_id"),
        body_json: r.get("body_json"),
        state: r.get("state"),
        decision_json: r.get("decision_json"),
        agreement_id: r.get("agreement_id"),
        created_at: r.get("created_at"),
        due_at: r.get("due_at"),
        decided_at: r.get("decided_at"),
    }
}

/// An approval: the agreement to create and the datasets it covers.
pub struct NewAgreement<'a> {
    pub terms_json: &'a str,
    pub content_hash: &'a str,
    pub period_start: &'a str,
    pub period_end: &'a str,
    pub dataset_ids: &'a [String],
    pub epsilon: Epsilon,
    /// The least ε one job under the agreement spends.
    pub min_epsilon: Epsilon,
}

impl Store {
    /// Stores a complete application, due for decision in 10 working days.
    pub async fn create_application(
        &self,
        applicant_id: &str,
        provider_id: &str,
        body_json: &str,
    ) -> Result<Application, StoreError> {
        let id = sluice_crypto::random_id("app");
        let now = now_unix();
        let mut tx = self.write().await?;
        audit::append(
            &mut tx,
            applicant_id,
            "application.submit",
            &id,
            &serde_json::json!({"provider": provider_id}),
        )
        .await?;
        sqlx::query(
            "INSERT INTO applications (id, applicant_id, provider_id, body_json, state, created_at, due_at)
             VALUES (?, ?, ?, ?, 'submitted', ?, ?)",
        )
        .bind(&id)
        .bind(applicant_id)
        .bind(provider_id)
        .bind(body_json)
        .bind(rfc3339(now))
        .bind(rfc3339(add_working_days(now, APPLICATION_DAYS)))
        .execute(&mut *tx)
        .await?;
        commit(tx).await?;
        self.application(&id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("application {id}")))
    }

    pub async fn application(&self, id: &str) -> Result<Option<Application>, StoreError> {
        Ok(sqlx::query("SELECT * FROM applications WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(application_from_row))
    }

    /// Applications in `scope`; with `overdue_at`, only undecided ones past
    /// their deadline at that instant.
    pub async fn applications(
        &self,
        scope: PartyScope<'_>,
        overdue_at: Option<&str>,
    ) -> Result<Vec<Application>, StoreError> {
        let (filter, who) = scope.filter("provider_id = ?1", "applicant_id = ?1");
        Ok(rows_with_deadline(
            &self.pool,
            "applications",
            filter,
            &who,
            "submitted",
            overdue_at,
            "rowid",
        )
        .await?
        .iter()
        .map(application_from_row)
        .collect())
    }

    /// Decides a submitted application: a refusal records its reasons and
    /// legal basis; an approval also creates the agreement and grants the
    /// access it covers, in the same transaction.
    pub async fn decide_application(
        &self,
        actor: &str,
        id: &str,
        decision_json: &str,
        agreement: Option<NewAgreement<'_>>,
    ) -> Result<Option<String>, StoreError> {
        let app = self
            .application(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("application {id}")))?;
        let now = now_rfc3339();
        let mut tx = self.write().await?;
        let agreement_id = agreement
            .as_ref()
            .map(|a| format!("agr_{}", &a.content_hash[..24]));
        let done = sqlx::query(
            "UPDATE applications SET state = ?, decision_json = ?, agreement_id = ?, decided_at = ?
             WHERE id = ? AND state = 'submitted'",
        )
        .bind(if agreement.is_some() {
            "approved"
        } else {
            "refused"
        })
        .bind(decision_json)
        .bind(&agreement_id)
        .bind(&now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Refused(format!(
                "application {id} was already decided"
            )));
        }
        audit::append(
            &mut tx,
            actor,
            if agreement.is_some() {
                "application.approve"
            } else {
                "application.refuse"
            },
            id,
            &serde_json::json!({"agreement": agreement_id}),
        )
        .await?;
        if let (Some(a), Some(agreement_id)) = (&agreement, &agreement_id) {
            sqlx::query(
                "INSERT INTO agreements (id, application_id, user_id, provider_id, terms_json, content_hash,
                 period_start, period_end, created_at, epsilon_units, min_epsilon_units)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(agreement_id)
            .bind(id)
            .bind(&app.applicant_id)
            .bind(&app.provider_id)
            .bind(a.terms_json)
            .bind(a.content_hash)
            .bind(a.period_start)
            .bind(a.period_end)
            .bind(&now)
            .bind(units(a.epsilon.units())?)
            .bind(units(a.min_epsilon.units())?)
            .execute(&mut *tx)
            .await?;
            for d in a.dataset_ids {
                sqlx::query(
                    "INSERT INTO agreement_datasets (agreement_id, dataset_id) VALUES (?, ?)",
                )
                .bind(agreement_id)
                .bind(d)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT OR IGNORE INTO access_grants (dataset_id, user_id, granted_by, created_at) VALUES (?, ?, ?, ?)",
                )
                .bind(d)
                .bind(&app.applicant_id)
                .bind(actor)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
            }
            audit::append(
                &mut tx,
                actor,
                "agreement.create",
                agreement_id,
                &serde_json::json!({"content_hash": a.content_hash, "datasets": a.dataset_ids}),
            )
            .await?;
        }
        commit(tx).await?;
        Ok(agreement_id)
    }

    pub async fn agreement(&self, id: &str) -> Result<Option<Agreement>, StoreError> {
        let Some(r) = sqlx::query("SELECT * FROM agreements WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let dataset_ids = sqlx::query_scalar(
            "SELECT dataset_id FROM agreement_datasets WHERE agreement_id = ? ORDER BY dataset_id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(Agreement {
            id: r.get("id"),
            application_id: r.get("application_id"),
            user_id: r.get("user_id"),
            provider_id: r.get("provider_id"),
            terms_json: r.get("terms_json"),
            content_hash: r.get("content_hash"),
            period_start: r.get("period_start"),
            period_end: r.get("period_end"),
            dataset_ids,
            created_at: r.get("created_at"),
            epsilon: Epsilon::from_units(from_units(r.get("epsilon_units"))?),
            min_epsilon: Epsilon::from_units(from_units(r.get("min_epsilon_units"))?),
            epsilon_spent: Epsilon::from_units(from_units(r.get("epsilon_spent_units"))?),
        }))
    }

    pub async fn agreements(&self, scope: PartyScope<'_>) -> Result<Vec<Agreement>, StoreError> {
        let (filter, who) = scope.filter("provider_id = ?1", "user_id = ?1");
        let sql = format!("SELECT id FROM agreements WHERE {filter} ORDER BY rowid");
        let mut q = sqlx::query_scalar::<_, String>(&sql);
        if !who.is_empty() {
            q = q.bind(who);
        }
        let ids = q.fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(a) = self.agreement(&id).await? {
                out.push(a);
            }
        }
        Ok(out)
    }
}
