//! Jobs and their states, releases (stored with their committed spend),
//! schedules and timing levels, and recovery after a crash.

use serde::Serialize;
use sluice_types::privacy::{Delta, Epsilon};
use sluice_types::time::now_rfc3339;
use sqlx::Row;

use crate::db::{from_units, units};
use crate::{Store, StoreError, Tx, audit, commit, corrupt, ledger};

pub use sluice_types::JobState;

fn parse_state(s: &str) -> Result<JobState, StoreError> {
    JobState::parse(s).ok_or_else(|| corrupt(format!("job state {s}")))
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub user_id: String,
    pub manifest_json: String,
    pub manifest_digest: String,
    /// (dataset id, version) pairs.
    pub dataset_versions: Vec<(String, String)>,
    pub epsilon: Epsilon,
    pub delta: Delta,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobRecord {
    pub id: String,
    pub user_id: String,
    pub manifest_json: String,
    pub manifest_digest: String,
    pub dataset_versions: Vec<(String, String)>,
    pub epsilon: Epsilon,
    pub delta: Delta,
    pub state: JobState,
    pub message: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// When a running job's outcome becomes visible (its schedule).
    pub due_at: Option<String>,
}

/// Selects a job row.
const JOB_COLUMNS: &str = "jobs.*";

/// A job's current state, read inside a write transaction.
pub(crate) async fn job_state(tx: &mut Tx, job_id: &str) -> Result<JobState, StoreError> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM jobs WHERE id = ?")
        .bind(job_id)
        .fetch_optional(&mut **tx)
        .await?;
    match state {
        Some(s) => parse_state(&s),
        None => Err(StoreError::NotFound(format!("job {job_id}"))),
    }
}

fn job_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<JobRecord, StoreError> {
    Ok(JobRecord {
        id: row.get("id"),
        user_id: row.get("user_id"),
        manifest_json: row.get("manifest_json"),
        manifest_digest: row.get("manifest_digest"),
        dataset_versions: serde_json::from_str(row.get::<&str, _>("dataset_versions_json"))
            .map_err(corrupt)?,
        epsilon: Epsilon::from_units(from_units(row.get("epsilon_units"))?),
        delta: Delta::from_units(from_units(row.get("delta_units"))?),
        state: parse_state(row.get::<&str, _>("state"))?,
        message: row.get("message"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        due_at: row.get("due_at"),
    })
}

/// The level reached by `user_id`'s predictions under `principal`, if any
/// misprediction raised it.
async fn stored_level<'e>(
    conn: impl sqlx::Executor<'e, Database = sqlx::Sqlite>,
    user_id: &str,
    principal: &str,
) -> Result<u32, StoreError> {
    let level: Option<i64> =
        sqlx::query_scalar("SELECT level FROM timing_levels WHERE user_id = ? AND principal = ?")
            .bind(user_id)
            .bind(principal)
            .fetch_optional(conn)
            .await?;
    Ok(level.map_or(0, |l| u32::try_from(l).unwrap_or(u32::MAX)))
}

impl Store {
    /// Starts a change to a job that has not ended: takes the write lock,
    /// refuses a job in a final state, and appends the change's audit entry
    /// (`details` sees the state it leaves). The caller writes the change
    /// and commits.
    async fn change_open_job(
        &self,
        actor: &str,
        job_id: &str,
        action: &str,
        details: impl FnOnce(JobState) -> serde_json::Value,
    ) -> Result<Tx, StoreError> {
        let mut tx = self.write().await?;
        let current = job_state(&mut tx, job_id).await?;
        if current.is_final() {
            return Err(StoreError::Invalid(format!(
                "job {job_id} is already {}",
                current.as_str()
            )));
        }
        audit::append(&mut tx, actor, action, job_id, &details(current)).await?;
        Ok(tx)
    }

    pub async fn create_job(&self, actor: &str, job: NewJob) -> Result<String, StoreError> {
        let id = sluice_crypto::random_id("job");
        let now = now_rfc3339();
        let mut tx = self
            .write_audited(
                actor,
                "job.create",
                &id,
                &serde_json::json!({
                    "manifest_digest": job.manifest_digest,
                    "datasets": job.dataset_versions,
                    "epsilon_units": job.epsilon.units(),
                }),
            )
            .await?;
        sqlx::query(
            "INSERT INTO jobs (id, user_id, manifest_json, manifest_digest, dataset_versions_json, epsilon_units,
             delta_units, state, message, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', NULL, ?, ?)",
        )
        .bind(&id)
        .bind(&job.user_id)
        .bind(&job.manifest_json)
        .bind(&job.manifest_digest)
        .bind(serde_json::to_string(&job.dataset_versions).expect("pairs serialise"))
        .bind(units(job.epsilon.units())?)
        .bind(units(job.delta.units())?)
        .bind(&now)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        commit(tx).await?;
        Ok(id)
    }

    pub async fn set_job_state(
        &self,
        actor: &str,
        job_id: &str,
        state: JobState,
        message: Option<&str>,
    ) -> Result<(), StoreError> {
        self.set_job_state_at(actor, job_id, state, message, &now_rfc3339())
            .await
    }

    /// [`Store::set_job_state`] recorded at `at`: a job's scheduled time,
    /// so that what its submitter sees follows the schedule, not the work.
    pub async fn set_job_state_at(
        &self,
        actor: &str,
        job_id: &str,
        state: JobState,
        message: Option<&str>,
        at: &str,
    ) -> Result<(), StoreError> {
        if state == JobState::Released {
            return Err(StoreError::Invalid(
                "a job becomes released only through release_job".into(),
            ));
        }
        let mut tx = self
            .change_open_job(
                actor,
                job_id,
                "job.state",
                |current| serde_json::json!({"from": current.as_str(), "state": state.as_str()}),
            )
            .await?;
        sqlx::query("UPDATE jobs SET state = ?, message = ?, updated_at = ? WHERE id = ?")
            .bind(state.as_str())
            .bind(message)
            .bind(at)
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        commit(tx).await?;
        Ok(())
    }

    pub async fn job(&self, job_id: &str) -> Result<Option<JobRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"))
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    pub async fn jobs_of_user(&self, user_id: &str) -> Result<Vec<JobRecord>, StoreError> {
        sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE user_id = ? ORDER BY created_at, id"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(job_from_row)
        .collect()
    }

    /// [`Store::release_job_at`] recorded now; the server records each
    /// release at its job's scheduled time, so only tests call this.
    #[cfg(feature = "testing")]
    pub async fn release_job(
        &self,
        actor: &str,
        job_id: &str,
        release_json: &str,
    ) -> Result<(), StoreError> {
        self.release_job_at(actor, job_id, release_json, &now_rfc3339())
            .await
    }

    /// Stores a job's signed release, commits its spend and marks it
    /// released, in one transaction: no release exists without its spend.
    /// Recorded at `at`, the job's scheduled time.
    pub async fn release_job_at(
        &self,
        actor: &str,
        job_id: &str,
        release_json: &str,
        at: &str,
    ) -> Result<(), StoreError> {
        let digest = sluice_crypto::sha256_hex(release_json.as_bytes());
        let now = at.to_owned();
        let mut tx = self
            .change_open_job(
                actor,
                job_id,
                "job.release",
                |_| serde_json::json!({"release_sha256": digest}),
            )
            .await?;
        ledger::move_spend(&mut tx, job_id, "reserved", "committed").await?;
        sqlx::query("INSERT INTO releases (job_id, release_json, created_at) VALUES (?, ?, ?)")
            .bind(job_id)
            .bind(release_json)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE jobs SET state = 'released', message = NULL, updated_at = ? WHERE id = ?",
        )
        .bind(&now)
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
        commit(tx).await?;
        Ok(())
    }

    /// Sets when a running job's outcome becomes visible: at admission, and
    /// later once per misprediction (each a scheduled time itself).
    pub async fn schedule_job(
        &self,
        actor: &str,
        job_id: &str,
        due_at: &str,
        at: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self
            .change_open_job(
                actor,
                job_id,
                "job.schedule",
                |_| serde_json::json!({"due_at": due_at}),
            )
            .await?;
        sqlx::query("UPDATE jobs SET due_at = ?, updated_at = ? WHERE id = ?")
            .bind(due_at)
            .bind(at)
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        commit(tx).await?;
        Ok(())
    }

    /// The level `user_id`'s predictions under `principal` have reached
    /// (0 until a first misprediction).
    pub async fn timing_level(&self, user_id: &str, principal: &str) -> Result<u32, StoreError> {
        stored_level(&self.pool, user_id, principal).await
    }

    /// Records a misprediction of `job_id`: the principal's level rises to
    /// at least `level`, for good. Returns the level now in force.
    pub async fn raise_timing_level(
        &self,
        actor: &str,
        user_id: &str,
        principal: &str,
        job_id: &str,
        level: u32,
    ) -> Result<u32, StoreError> {
        let mut tx = self
            .write_audited(
                actor,
                "timing.misprediction",
                job_id,
                &serde_json::json!({"user": user_id, "principal": principal, "level": level}),
            )
            .await?;
        sqlx::query(
            "INSERT INTO timing_levels (user_id, principal, level, mispredictions, updated_at)
             VALUES (?, ?, ?, 1, ?)
             ON CONFLICT (user_id, principal) DO UPDATE SET
               level = MAX(level, excluded.level),
               mispredictions = mispredictions + 1,
               updated_at = excluded.updated_at",
        )
        .bind(user_id)
        .bind(principal)
        .bind(i64::from(level))
        .bind(now_rfc3339())
        .execute(&mut *tx)
        .await?;
        let now = stored_level(&mut *tx, user_id, principal).await?;
        commit(tx).await?;
        Ok(now)
    }

    /// A released job of this user with the same manifest digest on the same
    /// dataset versions: re-running it returns its release and spends nothing.
    pub async fn cached_release(
        &self,
        user_id: &str,
        manifest_digest: &str,
        dataset_versions: &[(String, String)],
    ) -> Result<Option<String>, StoreError> {
        let versions = serde_json::to_string(dataset_versions).expect("pairs serialise");
        Ok(sqlx::query_scalar(
            "SELECT id FROM jobs WHERE user_id = ? AND manifest_digest = ? AND dataset_versions_json = ?
             AND state = 'released' ORDER BY created_at LIMIT 1",
        )
        .bind(user_id)
        .bind(manifest_digest)
        .bind(versions)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// After a crash or restart: jobs left queued or running may have read
    /// data, so their reservations are committed (never refunded) and they
    /// are marked failed; so are jobs approved in review that had not
    /// started. Jobs still awaiting a decision have reserved and read
    /// nothing: they keep waiting. Returns how many jobs were recovered.
    pub async fn recover_interrupted_jobs(&self, actor: &str) -> Result<u64, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE state IN ('queued', 'running')
             OR (state = 'awaiting_review'
                 AND id NOT IN (SELECT job_id FROM job_reviews WHERE outcome IS NULL))
             ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        for id in &ids {
            let mut tx = self
                .write_audited(actor, "job.recover", id, &serde_json::json!({}))
                .await?;
            ledger::set_spend_state(&mut tx, id, "reserved", "committed").await?;
            sqlx::query(
                "UPDATE jobs SET state = 'failed', message = 'interrupted by a server restart; nothing was released and its budget stays spent', updated_at = ? WHERE id = ?",
            )
            .bind(now_rfc3339())
            .bind(id)
            .execute(&mut *tx)
            .await?;
            commit(tx).await?;
        }
        Ok(ids.len() as u64)
    }

    pub async fn release(&self, job_id: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT release_json FROM releases WHERE job_id = ?")
                .bind(job_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}
