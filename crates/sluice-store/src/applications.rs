//! Applications for conditional data and the agreements their approval
//! creates (art. 20-21). The server checks an application's completeness
//! and an agreement's terms; this module stores them atomically: an
//! approval writes the decision, the agreement and the access it gives in
//! one transaction.

use serde::Serialize;
use sluice_types::time::{add_working_days, now_rfc3339, now_unix, rfc3339};
use sqlx::Row;

use sluice_types::privacy::Epsilon;

use crate::db::{PartyScope, dataset_name, from_units, list_rows, units, user_name};
use crate::{Store, StoreError, audit, commit, corrupt};

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

/// An application with its parties' names (or ids, if an account is gone).
#[derive(Debug, Clone, Serialize)]
pub struct NamedApplication {
    pub application: Application,
    pub applicant_name: String,
    pub provider_name: String,
}

/// An agreement with its parties' and datasets' names (or ids, if gone).
#[derive(Debug, Clone, Serialize)]
pub struct NamedAgreement {
    pub agreement: Agreement,
    pub user_name: String,
    pub provider_name: String,
    /// One per `agreement.dataset_ids`, in the same order.
    pub dataset_names: Vec<String>,
}

/// An application row with its parties' names; filtered by the caller.
fn select_named_applications() -> String {
    format!(
        "SELECT *, {} AS applicant_name, {} AS provider_name FROM applications",
        user_name("applications.applicant_id"),
        user_name("applications.provider_id"),
    )
}

fn named_application_from_row(r: &sqlx::sqlite::SqliteRow) -> NamedApplication {
    NamedApplication {
        application: application_from_row(r),
        applicant_name: r.get("applicant_name"),
        provider_name: r.get("provider_name"),
    }
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
        let mut tx = self
            .write_audited(
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
        Ok(self.named_application(id).await?.map(|n| n.application))
    }

    /// [`Store::application`] with its parties' names, in one query.
    pub async fn named_application(
        &self,
        id: &str,
    ) -> Result<Option<NamedApplication>, StoreError> {
        Ok(self
            .named_applications_where("id = ?1", id, None)
            .await?
            .pop())
    }

    /// Applications in `scope`; with `overdue_at`, only undecided ones past
    /// their deadline at that instant.
    pub async fn applications(
        &self,
        scope: PartyScope<'_>,
        overdue_at: Option<&str>,
    ) -> Result<Vec<Application>, StoreError> {
        Ok(self
            .named_applications(scope, overdue_at)
            .await?
            .into_iter()
            .map(|n| n.application)
            .collect())
    }

    /// [`Store::applications`] with each one's parties' names, in one query.
    pub async fn named_applications(
        &self,
        scope: PartyScope<'_>,
        overdue_at: Option<&str>,
    ) -> Result<Vec<NamedApplication>, StoreError> {
        let (filter, who) = scope.filter("provider_id = ?1", "applicant_id = ?1");
        self.named_applications_where(filter, &who, overdue_at)
            .await
    }

    async fn named_applications_where(
        &self,
        filter: &str,
        who: &str,
        overdue_at: Option<&str>,
    ) -> Result<Vec<NamedApplication>, StoreError> {
        Ok(list_rows(
            &self.pool,
            &select_named_applications(),
            filter,
            who,
            "submitted",
            overdue_at,
            "rowid",
        )
        .await?
        .iter()
        .map(named_application_from_row)
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
        Ok(self.named_agreement(id).await?.map(|n| n.agreement))
    }

    /// [`Store::agreement`] with its parties' and datasets' names, in one
    /// query.
    pub async fn named_agreement(&self, id: &str) -> Result<Option<NamedAgreement>, StoreError> {
        Ok(self.named_agreements_where("id = ?1", id).await?.pop())
    }

    pub async fn agreements(&self, scope: PartyScope<'_>) -> Result<Vec<Agreement>, StoreError> {
        Ok(self
            .named_agreements(scope)
            .await?
            .into_iter()
            .map(|n| n.agreement)
            .collect())
    }

    /// [`Store::agreements`] with each one's parties' and datasets' names,
    /// in one query.
    pub async fn named_agreements(
        &self,
        scope: PartyScope<'_>,
    ) -> Result<Vec<NamedAgreement>, StoreError> {
        let (filter, who) = scope.filter("provider_id = ?1", "user_id = ?1");
        self.named_agreements_where(filter, &who).await
    }

    /// Agreements that `filter` (SQL using `?1`, bound to `who` unless
    /// empty) selects, oldest first; each one's datasets, ordered by id,
    /// come as one JSON array of `[id, name]` pairs.
    async fn named_agreements_where(
        &self,
        filter: &str,
        who: &str,
    ) -> Result<Vec<NamedAgreement>, StoreError> {
        let select = format!(
            "SELECT a.*, {} AS user_name, {} AS provider_name,
               (SELECT json_group_array(json_array(ad.dataset_id, {}) ORDER BY ad.dataset_id)
                FROM agreement_datasets ad WHERE ad.agreement_id = a.id) AS datasets_json
             FROM agreements a",
            user_name("a.user_id"),
            user_name("a.provider_id"),
            dataset_name("ad.dataset_id"),
        );
        list_rows(&self.pool, &select, filter, who, "", None, "a.rowid")
            .await?
            .iter()
            .map(named_agreement_from_row)
            .collect()
    }
}

fn named_agreement_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<NamedAgreement, StoreError> {
    let datasets: Vec<(String, String)> =
        serde_json::from_str(r.get::<&str, _>("datasets_json")).map_err(corrupt)?;
    let (dataset_ids, dataset_names) = datasets.into_iter().unzip();
    Ok(NamedAgreement {
        agreement: Agreement {
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
        },
        user_name: r.get("user_name"),
        provider_name: r.get("provider_name"),
        dataset_names,
    })
}
