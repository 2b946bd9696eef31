//! Durable platform state on SQLite (the embedded default): users and hashed
//! tokens, the catalog with versions and quality reports, access grants, the
//! privacy ledger, jobs, releases, and the hash-chained audit log. It must
//! never store raw data values, raw tokens or raw identifiers: it only ever
//! receives schemas, hashes, counts, ids and signed outputs, and it never
//! reads dataset files.
//!
//! Every change writes its audit entry first, inside the same `BEGIN
//! IMMEDIATE` transaction, so an action without its audit entry cannot
//! exist. Privacy amounts are exact integer units, summed as SQL integers;
//! a reservation that would exceed a user's grant or a dataset's cap writes
//! nothing. One process at a time owns a data dir (an exclusive `flock` on
//! `sluice.lock`).

mod applications;
mod audit;
mod control;
mod feedback;
mod ledger;
mod reviews;
mod stats;

pub use applications::{APPLICATION_DAYS, Agreement, Application, NewAgreement};
pub use control::{ActiveJob, DatasetStatus, Revocation};
pub use feedback::{FEEDBACK_DAYS, FEEDBACK_MAX_DAYS, Feedback, RECTIFICATION_DAYS};

pub use reviews::{Decision, HeldJob, HoldForReview, ReviewOutcome};
pub use stats::{Usage, UsageGroup};

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sluice_types::privacy::{Delta, Epsilon};
use sluice_types::schema::DatasetSchema;
use sluice_types::time::now_rfc3339;
use sluice_types::{CatalogEntry, DataFormat, DatasetVersion, OpenCategory, QualityReport, Role};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

pub use audit::{
    AuditEntry, AuditError, Denial, DenialEntry, DenialWindow, GENESIS,
    MAX_DENIAL_KINDS_PER_MINUTE, verify_audit_chain,
};
pub use ledger::{DEFAULT_MIN_EPSILON, Shortfall};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("another server holds the data dir {0} (only one server may use a data dir)")]
    Locked(String),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("privacy budget exhausted on dataset {dataset}")]
    BudgetExhausted { dataset: String },
    #[error("privacy budget exhausted on agreement {agreement}")]
    AgreementBudgetExhausted { agreement: String },
    /// The job's ε is below the least one job may spend.
    #[error("epsilon {epsilon} is below the least a job may spend, {minimum} ({set_by})")]
    BelowMinimum {
        epsilon: Epsilon,
        minimum: Epsilon,
        set_by: String,
    },
    #[error("{0} not found")]
    NotFound(String),
    #[error("invalid operation: {0}")]
    Invalid(String),
    /// A request the state refuses, with a reason safe to show the caller.
    #[error("{0}")]
    Refused(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("opening {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: String,
}

#[derive(Debug, Clone)]
pub struct NewDataset {
    pub name: String,
    pub title: String,
    pub description: String,
    pub provider: String,
    pub open_category: OpenCategory,
    pub format: DataFormat,
    pub data_type: String,
    pub update_frequency: String,
    pub schema: DatasetSchema,
    /// Total ε all users together may spend on this dataset.
    pub epsilon_cap: Epsilon,
    /// ε each user may spend on this dataset.
    pub user_epsilon: Epsilon,
}

#[derive(Debug, Clone)]
pub struct DatasetRecord {
    pub entry: CatalogEntry,
    pub owner_id: String,
    pub epsilon_cap: Epsilon,
    pub user_epsilon: Epsilon,
    /// Distinct reviewers who must approve a job on this dataset (0 to 2).
    pub reviewers_required: u8,
    pub status: DatasetStatus,
    /// Why it was suspended or withdrawn.
    pub status_reason: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// Case-insensitive substring of name, title, description, provider or
    /// a column's name or description.
    pub text: Option<String>,
    pub provider: Option<String>,
    pub open_category: Option<OpenCategory>,
    pub format: Option<DataFormat>,
    pub update_frequency: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetView {
    pub user_granted: Epsilon,
    /// Committed and reserved.
    pub user_spent: Epsilon,
    /// δ committed and reserved (spent on selecting group keys).
    pub user_delta_spent: Delta,
    pub dataset_cap: Epsilon,
    pub dataset_spent: Epsilon,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Released,
    Rejected,
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Released => "released",
            JobState::Rejected => "rejected",
            JobState::Failed => "failed",
        }
    }
    /// Released, rejected and failed jobs never change state again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Released | JobState::Rejected | JobState::Failed
        )
    }
    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "released" => JobState::Released,
            "rejected" => JobState::Rejected,
            "failed" => JobState::Failed,
            other => return Err(corrupt(format!("job state {other}"))),
        })
    }
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
    /// Held for human review, no decision yet (the state is then `queued`).
    pub awaiting_review: bool,
    pub message: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// When a running job's outcome becomes visible (its schedule).
    pub due_at: Option<String>,
}

/// Selects a job row with whether it awaits review.
const JOB_COLUMNS: &str = "jobs.*, (jobs.state = 'queued' AND EXISTS (SELECT 1 FROM job_reviews r WHERE r.job_id = jobs.id AND r.outcome IS NULL)) AS awaiting_review";

pub struct Store {
    pool: SqlitePool,
    ledger: tokio::sync::mpsc::Sender<ledger::Request>,
    ledger_task: tokio::task::JoinHandle<()>,
    _lock: Flock<std::fs::File>,
}

fn units(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Invalid("privacy amount too large".into()))
}

fn size(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Invalid("size too large".into()))
}

fn from_units(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| corrupt("negative privacy amount"))
}

type Tx = Transaction<'static, Sqlite>;

/// Commits a write transaction. An I/O error here means SQLite could not
/// make the commit durable (e.g. a failed fsync); the state of the file is
/// then unknown, so the process aborts instead of retrying or carrying on.
async fn commit(tx: Tx) -> Result<(), StoreError> {
    match tx.commit().await {
        Ok(()) => Ok(()),
        Err(sqlx::Error::Database(e)) if is_io_error(e.code().as_deref()) => {
            tracing::error!(error = %e, "durable commit failed; aborting");
            eprintln!("sluice: durable commit failed ({e}); aborting to protect the ledger");
            std::process::abort();
        }
        Err(sqlx::Error::Io(e)) => {
            eprintln!("sluice: durable commit failed ({e}); aborting to protect the ledger");
            std::process::abort();
        }
        Err(e) => Err(e.into()),
    }
}

/// SQLITE_IOERR (10) and its extended codes (10 + n * 256), and SQLITE_FULL (13).
fn is_io_error(code: Option<&str>) -> bool {
    code.and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 10 | 13))
}

/// A job's current state, read inside a write transaction.
/// The state of a job that may still change: final states are refused.
async fn open_job_state(tx: &mut Tx, job_id: &str) -> Result<JobState, StoreError> {
    let current = job_state(tx, job_id).await?;
    if current.is_final() {
        return Err(StoreError::Invalid(format!(
            "job {job_id} is already {}",
            current.as_str()
        )));
    }
    Ok(current)
}

async fn job_state(tx: &mut Tx, job_id: &str) -> Result<JobState, StoreError> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM jobs WHERE id = ?")
        .bind(job_id)
        .fetch_optional(&mut **tx)
        .await?;
    match state {
        Some(s) => JobState::parse(&s),
        None => Err(StoreError::NotFound(format!("job {job_id}"))),
    }
}

/// Whose records a listing shows: everything (the authority), a provider's
/// side, or a user's side. Applications, agreements and feedback share it.
pub enum PartyScope<'a> {
    All,
    Provider(&'a str),
    User(&'a str),
}

impl PartyScope<'_> {
    /// The SQL predicate (with `?1`) and its value for this scope, given the
    /// record kind's predicates for the provider's and the user's side.
    fn filter<'p>(&self, provider_pred: &'p str, user_pred: &'p str) -> (&'p str, String) {
        match self {
            PartyScope::All => ("1 = 1", String::new()),
            PartyScope::Provider(p) => (provider_pred, (*p).to_owned()),
            PartyScope::User(u) => (user_pred, (*u).to_owned()),
        }
    }
}

/// Rows of `table` that `filter` (SQL using `?1`, bound to `who` unless
/// empty) selects, in `order`; with `overdue_at`, only those still
/// in `open_state` whose `due_at` is before that instant. The one query
/// behind every deadline list (applications, feedback).
async fn rows_with_deadline(
    pool: &SqlitePool,
    table: &str,
    filter: &str,
    who: &str,
    open_state: &str,
    overdue_at: Option<&str>,
    order: &str,
) -> Result<Vec<sqlx::sqlite::SqliteRow>, StoreError> {
    let overdue = if overdue_at.is_some() {
        " AND state = ?3 AND due_at < ?2"
    } else {
        ""
    };
    let sql = format!("SELECT * FROM {table} WHERE {filter}{overdue} ORDER BY {order}");
    let mut q = sqlx::query(&sql);
    if !who.is_empty() || overdue_at.is_some() {
        q = q.bind(who);
    }
    if let Some(at) = overdue_at {
        q = q.bind(at).bind(open_state);
    }
    Ok(q.fetch_all(pool).await?)
}

/// Tries at taking the data dir's lock, 100 ms apart.
const LOCK_ATTEMPTS: u32 = 20;

impl Store {
    /// Opens (creating if needed) `data_dir/sluice.db` with WAL and
    /// `synchronous=FULL`, runs migrations, and takes an exclusive lock on
    /// `data_dir/sluice.lock`: a second server on the same data dir is refused.
    pub async fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let io = |source| StoreError::Io {
            path: data_dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(io)?;
        let mut lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(data_dir.join("sluice.lock"))
            .map_err(io)?;
        // A server killed while it was starting a sandbox child leaves the
        // lock with that child until it execs (the descriptor is
        // close-on-exec): wait briefly before calling the dir taken.
        let mut attempts = 0;
        let lock = loop {
            match Flock::lock(lock_file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => break lock,
                Err((file, Errno::EWOULDBLOCK)) if attempts < LOCK_ATTEMPTS => {
                    attempts += 1;
                    lock_file = file;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err((_, Errno::EWOULDBLOCK)) => {
                    return Err(StoreError::Locked(data_dir.display().to_string()));
                }
                Err((_, errno)) => return Err(io(std::io::Error::from(errno))),
            }
        };
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(data_dir.join("sluice.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A connection whose transaction could not be rolled back (e.g.
            // SQLite already ended it after an I/O error) is not reused.
            .after_release(|conn, _| {
                Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) })
            })
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let (ledger, ledger_task) = ledger::spawn_writer(pool.clone());
        Ok(Store {
            pool,
            ledger,
            ledger_task,
            _lock: lock,
        })
    }

    /// Shuts down cleanly: lets the ledger writer finish what it was sent,
    /// checkpoints the WAL into `sluice.db` (so that file alone holds every
    /// committed change), closes the pool, then releases the data-dir lock.
    /// Dropping a `Store` also releases the lock, without these steps
    /// (committed changes are durable in the WAL either way).
    pub async fn close(self) -> Result<(), StoreError> {
        let Store {
            pool,
            ledger,
            ledger_task,
            _lock,
        } = self;
        drop(ledger);
        if let Err(e) = ledger_task.await {
            tracing::error!(error = %e, "ledger writer ended abnormally");
        }
        let checkpoint = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&pool)
            .await;
        pool.close().await;
        checkpoint?;
        Ok(())
    }

    /// A write transaction that holds SQLite's write lock from its start, so
    /// checks and writes inside it are serialised against every other writer.
    async fn write(&self) -> Result<Tx, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    // ---- audit ----

    /// Appends an audit entry on its own (for actions with no other state change).
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        object: &str,
        details: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        audit::append(&mut tx, actor, action, object, details).await?;
        commit(tx).await?;
        Ok(())
    }

    pub async fn audit_entries(&self) -> Result<Vec<AuditEntry>, StoreError> {
        audit::entries(&self.pool).await
    }

    // ---- users ----

    pub async fn user_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    /// Creates a user; returns the record and its bearer token (shown once;
    /// only its hash is stored).
    pub async fn create_user(
        &self,
        actor: &str,
        name: &str,
        role: Role,
    ) -> Result<(UserRecord, String), StoreError> {
        let id = sluice_crypto::random_id("usr");
        let (token, hash) = sluice_crypto::new_token();
        let now = now_rfc3339();
        let mut tx = self.write().await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(StoreError::Conflict(format!("user {name}")));
        }
        audit::append(
            &mut tx,
            actor,
            "user.create",
            &id,
            &serde_json::json!({"name": name, "role": role.as_str()}),
        )
        .await?;
        sqlx::query(
            "INSERT INTO users (id, name, role, token_hash, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(name)
        .bind(role.as_str())
        .bind(&hash)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        commit(tx).await?;
        Ok((
            UserRecord {
                id,
                name: name.to_owned(),
                role,
                created_at: now,
            },
            token,
        ))
    }

    fn user_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<UserRecord, StoreError> {
        let role: String = row.get("role");
        Ok(UserRecord {
            id: row.get("id"),
            name: row.get("name"),
            role: Role::parse(&role).ok_or_else(|| corrupt(format!("role {role}")))?,
            created_at: row.get("created_at"),
        })
    }

    pub async fn user_by_token(&self, token: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query("SELECT id, name, role, created_at FROM users WHERE token_hash = ?")
            .bind(sluice_crypto::token_hash(token))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::user_from_row).transpose()
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query("SELECT id, name, role, created_at FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::user_from_row).transpose()
    }

    pub async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query("SELECT id, name, role, created_at FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::user_from_row).transpose()
    }

    // ---- catalog ----

    pub async fn create_dataset(
        &self,
        actor: &str,
        owner_id: &str,
        new: NewDataset,
    ) -> Result<String, StoreError> {
        let id = sluice_crypto::random_id("ds");
        let schema_json = serde_json::to_string(&new.schema).expect("schema serialises");
        let mut tx = self.write().await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM datasets WHERE name = ?")
            .bind(&new.name)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(StoreError::Conflict(format!("dataset {}", new.name)));
        }
        audit::append(
            &mut tx,
            actor,
            "dataset.create",
            &id,
            &serde_json::json!({
                "name": new.name,
                "open_category": new.open_category.as_str(),
                "epsilon_cap_units": new.epsilon_cap.units(),
                "user_epsilon_units": new.user_epsilon.units(),
            }),
        )
        .await?;
        sqlx::query(
            "INSERT INTO datasets (id, name, owner_id, title, description, provider, open_category, format, data_type,
             update_frequency, schema_json, epsilon_cap_units, user_epsilon_units, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(&new.name)
        .bind(owner_id)
        .bind(&new.title)
        .bind(&new.description)
        .bind(&new.provider)
        .bind(new.open_category.as_str())
        .bind(new.format.as_str())
        .bind(&new.data_type)
        .bind(&new.update_frequency)
        .bind(&schema_json)
        .bind(units(new.epsilon_cap.units())?)
        .bind(units(new.user_epsilon.units())?)
        .bind(now_rfc3339())
        .execute(&mut *tx)
        .await?;
        commit(tx).await?;
        Ok(id)
    }

    pub async fn add_version(
        &self,
        actor: &str,
        dataset_id: &str,
        version: &DatasetVersion,
        file_name: &str,
        bytes: u64,
        report: &QualityReport,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let exists: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM dataset_versions WHERE dataset_id = ? AND version = ?",
        )
        .bind(dataset_id)
        .bind(&version.version)
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_some() {
            return Err(StoreError::Conflict(format!("version {}", version.version)));
        }
        let seq: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM dataset_versions WHERE dataset_id = ?",
        )
        .bind(dataset_id)
        .fetch_one(&mut *tx)
        .await?;
        audit::append(
            &mut tx,
            actor,
            "version.add",
            dataset_id,
            &serde_json::json!({"version": version.version, "bytes": bytes}),
        )
        .await?;
        sqlx::query(
            "INSERT INTO dataset_versions (dataset_id, version, seq, file_name, bytes, source_format, quality_json, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(dataset_id)
        .bind(&version.version)
        .bind(seq)
        .bind(file_name)
        .bind(size(bytes)?)
        .bind(version.source_format.as_str())
        .bind(serde_json::to_string(report).expect("report serialises"))
        .bind(&version.created_at)
        .execute(&mut *tx)
        .await?;
        commit(tx).await?;
        Ok(())
    }

    async fn record_from_row(
        &self,
        row: &sqlx::sqlite::SqliteRow,
    ) -> Result<DatasetRecord, StoreError> {
        let id: String = row.get("id");
        let category: String = row.get("open_category");
        let format: String = row.get("format");
        let schema: DatasetSchema =
            serde_json::from_str(row.get::<&str, _>("schema_json")).map_err(corrupt)?;
        let versions = sqlx::query(
            "SELECT version, created_at, source_format FROM dataset_versions WHERE dataset_id = ? ORDER BY seq",
        )
        .bind(&id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|v| {
            let f: String = v.get("source_format");
            Ok(DatasetVersion {
                version: v.get("version"),
                created_at: v.get("created_at"),
                source_format: DataFormat::parse(&f).ok_or_else(|| corrupt(format!("format {f}")))?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(DatasetRecord {
            entry: CatalogEntry {
                id,
                name: row.get("name"),
                title: row.get("title"),
                description: row.get("description"),
                provider: row.get("provider"),
                open_category: OpenCategory::parse(&category)
                    .ok_or_else(|| corrupt(format!("category {category}")))?,
                format: DataFormat::parse(&format)
                    .ok_or_else(|| corrupt(format!("format {format}")))?,
                data_type: row.get("data_type"),
                update_frequency: row.get("update_frequency"),
                schema,
                versions,
                created_at: row.get("created_at"),
            },
            owner_id: row.get("owner_id"),
            epsilon_cap: Epsilon::from_units(from_units(row.get("epsilon_cap_units"))?),
            user_epsilon: Epsilon::from_units(from_units(row.get("user_epsilon_units"))?),
            reviewers_required: u8::try_from(row.get::<i64, _>("reviewers_required"))
                .map_err(corrupt)?,
            status: DatasetStatus::parse(row.get::<&str, _>("status"))
                .ok_or_else(|| corrupt("dataset status"))?,
            status_reason: row.get("status_reason"),
        })
    }

    /// A dataset by name or id.
    pub async fn dataset(&self, name_or_id: &str) -> Result<Option<DatasetRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM datasets WHERE name = ? OR id = ?")
            .bind(name_or_id)
            .bind(name_or_id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => Ok(Some(self.record_from_row(&r).await?)),
            None => Ok(None),
        }
    }

    pub async fn version_file(
        &self,
        dataset_id: &str,
        version: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT file_name FROM dataset_versions WHERE dataset_id = ? AND version = ?",
        )
        .bind(dataset_id)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn quality_report(
        &self,
        dataset_id: &str,
        version: &str,
    ) -> Result<Option<QualityReport>, StoreError> {
        let json: Option<String> = sqlx::query_scalar(
            "SELECT quality_json FROM dataset_versions WHERE dataset_id = ? AND version = ?",
        )
        .bind(dataset_id)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        json.map(|j| serde_json::from_str(&j).map_err(corrupt))
            .transpose()
    }

    pub async fn search(&self, q: &SearchQuery) -> Result<Vec<CatalogEntry>, StoreError> {
        let rows = sqlx::query("SELECT * FROM datasets ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        let text = q.text.as_ref().map(|t| t.to_lowercase());
        let mut out = Vec::new();
        for row in rows {
            let entry = self.record_from_row(&row).await?.entry;
            if q.provider
                .as_ref()
                .is_some_and(|p| !entry.provider.eq_ignore_ascii_case(p))
                || q.open_category.is_some_and(|c| c != entry.open_category)
                || q.format.is_some_and(|f| f != entry.format)
                || q.update_frequency
                    .as_ref()
                    .is_some_and(|u| !entry.update_frequency.eq_ignore_ascii_case(u))
            {
                continue;
            }
            if let Some(t) = &text {
                let mut haystack = vec![
                    entry.name.to_lowercase(),
                    entry.title.to_lowercase(),
                    entry.description.to_lowercase(),
                    entry.provider.to_lowercase(),
                ];
                for c in &entry.schema.columns {
                    haystack.push(c.name.to_lowercase());
                    if let Some(d) = &c.description {
                        haystack.push(d.to_lowercase());
                    }
                }
                if !haystack.iter().any(|h| h.contains(t.as_str())) {
                    continue;
                }
            }
            out.push(entry);
        }
        Ok(out)
    }

    // ---- access grants ----

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

    // ---- ledger ----

    async fn ledger_op(&self, op: ledger::Op) -> Result<(), StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.ledger
            .send(ledger::Request { op, reply })
            .await
            .map_err(|_| StoreError::Invalid("ledger writer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Invalid("ledger writer stopped".into()))?
    }

    /// Reserves `eps` (and `delta`) on every dataset of a job, atomically:
    /// either every dataset has room under both the user's grant and the
    /// dataset's cap and all reservations are written, or nothing is.
    /// Durable when it returns (group-committed with concurrent requests).
    pub async fn reserve(
        &self,
        actor: &str,
        job_id: &str,
        user_id: &str,
        dataset_ids: &[String],
        eps: Epsilon,
        delta: Delta,
    ) -> Result<(), StoreError> {
        self.reserve_under(actor, job_id, user_id, dataset_ids, &[], eps, delta)
            .await
    }

    /// [`Store::reserve`] for a job under data-use agreements: each of
    /// `agreement_ids` (the user's) must also have `eps` left of its budget,
    /// and is charged in the same atomic step.
    #[allow(clippy::too_many_arguments)]
    pub async fn reserve_under(
        &self,
        actor: &str,
        job_id: &str,
        user_id: &str,
        dataset_ids: &[String],
        agreement_ids: &[String],
        eps: Epsilon,
        delta: Delta,
    ) -> Result<(), StoreError> {
        self.ledger_op(ledger::Op::Reserve {
            actor: actor.to_owned(),
            job_id: job_id.to_owned(),
            user_id: user_id.to_owned(),
            dataset_ids: dataset_ids.to_vec(),
            agreement_ids: agreement_ids.to_vec(),
            eps,
            delta,
        })
        .await
    }

    /// Every budget a job of `user_id` would exceed if reserved now (the
    /// ledger's own rules; reads only): for estimates.
    pub async fn shortfalls(
        &self,
        user_id: &str,
        dataset_ids: &[String],
        agreement_ids: &[String],
        eps: Epsilon,
        delta: Delta,
    ) -> Result<Vec<Shortfall>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let charge = ledger::Charge {
            user_id,
            dataset_ids,
            agreement_ids,
            eps,
            delta,
        };
        ledger::shortfalls(&mut conn, &charge).await
    }

    /// The least ε one job of `user_id` under `agreement_ids` may spend,
    /// and who set it.
    pub async fn minimum_epsilon(
        &self,
        user_id: &str,
        agreement_ids: &[String],
    ) -> Result<(Epsilon, String), StoreError> {
        let mut conn = self.pool.acquire().await?;
        ledger::minimum_epsilon(&mut conn, user_id, agreement_ids).await
    }

    /// Reserved → committed: noise was (or may have been) drawn.
    pub async fn commit_spend(&self, actor: &str, job_id: &str) -> Result<(), StoreError> {
        self.ledger_op(ledger::Op::Commit {
            actor: actor.to_owned(),
            job_id: job_id.to_owned(),
        })
        .await
    }

    /// Reserved → refunded: only for jobs rejected before touching data.
    /// A committed spend is never refunded.
    pub async fn refund(&self, actor: &str, job_id: &str) -> Result<(), StoreError> {
        self.ledger_op(ledger::Op::Refund {
            actor: actor.to_owned(),
            job_id: job_id.to_owned(),
        })
        .await
    }

    pub async fn budget(&self, user_id: &str, dataset_id: &str) -> Result<BudgetView, StoreError> {
        let row = sqlx::query(
            "SELECT d.epsilon_cap_units, d.user_epsilon_units,
                    COALESCE((SELECT epsilon_units FROM user_usage WHERE dataset_id = d.id AND user_id = ?), 0) AS user_spent,
                    COALESCE((SELECT delta_units FROM user_usage WHERE dataset_id = d.id AND user_id = ?), 0) AS user_delta,
                    COALESCE((SELECT epsilon_units FROM dataset_usage WHERE dataset_id = d.id), 0) AS all_spent
             FROM datasets d WHERE d.id = ?",
        )
        .bind(user_id)
        .bind(user_id)
        .bind(dataset_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("dataset {dataset_id}")))?;
        Ok(BudgetView {
            user_granted: Epsilon::from_units(from_units(row.get("user_epsilon_units"))?),
            user_spent: Epsilon::from_units(from_units(row.get("user_spent"))?),
            user_delta_spent: Delta::from_units(from_units(row.get("user_delta"))?),
            dataset_cap: Epsilon::from_units(from_units(row.get("epsilon_cap_units"))?),
            dataset_spent: Epsilon::from_units(from_units(row.get("all_spent"))?),
        })
    }

    // ---- jobs and releases ----

    pub async fn create_job(&self, actor: &str, job: NewJob) -> Result<String, StoreError> {
        let id = sluice_crypto::random_id("job");
        let now = now_rfc3339();
        let mut tx = self.write().await?;
        audit::append(
            &mut tx,
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
        let mut tx = self.write().await?;
        let current = open_job_state(&mut tx, job_id).await?;
        audit::append(
            &mut tx,
            actor,
            "job.state",
            job_id,
            &serde_json::json!({"from": current.as_str(), "state": state.as_str()}),
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
            state: JobState::parse(row.get::<&str, _>("state"))?,
            awaiting_review: row.get::<bool, _>("awaiting_review"),
            message: row.get("message"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
            due_at: row.get("due_at"),
        })
    }

    pub async fn job(&self, job_id: &str) -> Result<Option<JobRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"))
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::job_from_row).transpose()
    }

    pub async fn jobs_of_user(&self, user_id: &str) -> Result<Vec<JobRecord>, StoreError> {
        sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE user_id = ? ORDER BY created_at, id"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(Self::job_from_row)
        .collect()
    }

    /// Stores a job's signed release, commits its spend and marks it
    /// released, in one transaction: no release exists without its spend.
    pub async fn release_job(
        &self,
        actor: &str,
        job_id: &str,
        release_json: &str,
    ) -> Result<(), StoreError> {
        self.release_job_at(actor, job_id, release_json, &now_rfc3339())
            .await
    }

    /// [`Store::release_job`] recorded at `at`, the job's scheduled time.
    pub async fn release_job_at(
        &self,
        actor: &str,
        job_id: &str,
        release_json: &str,
        at: &str,
    ) -> Result<(), StoreError> {
        let digest = sluice_crypto::sha256_hex(release_json.as_bytes());
        let now = at.to_owned();
        let mut tx = self.write().await?;
        open_job_state(&mut tx, job_id).await?;
        audit::append(
            &mut tx,
            actor,
            "job.release",
            job_id,
            &serde_json::json!({"release_sha256": digest}),
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
        let mut tx = self.write().await?;
        open_job_state(&mut tx, job_id).await?;
        audit::append(
            &mut tx,
            actor,
            "job.schedule",
            job_id,
            &serde_json::json!({"due_at": due_at}),
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
        let level: Option<i64> = sqlx::query_scalar(
            "SELECT level FROM timing_levels WHERE user_id = ? AND principal = ?",
        )
        .bind(user_id)
        .bind(principal)
        .fetch_optional(&self.pool)
        .await?;
        Ok(level.map_or(0, |l| u32::try_from(l).unwrap_or(u32::MAX)))
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
        let mut tx = self.write().await?;
        audit::append(
            &mut tx,
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
        let now: i64 = sqlx::query_scalar(
            "SELECT level FROM timing_levels WHERE user_id = ? AND principal = ?",
        )
        .bind(user_id)
        .bind(principal)
        .fetch_one(&mut *tx)
        .await?;
        commit(tx).await?;
        Ok(u32::try_from(now).unwrap_or(u32::MAX))
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
    /// are marked failed. Jobs still awaiting review have reserved and read
    /// nothing: they keep waiting. Returns how many jobs were recovered.
    pub async fn recover_interrupted_jobs(&self, actor: &str) -> Result<u64, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE state IN ('queued', 'running')
             AND id NOT IN (SELECT job_id FROM job_reviews WHERE outcome IS NULL) ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        for id in &ids {
            let mut tx = self.write().await?;
            audit::append(&mut tx, actor, "job.recover", id, &serde_json::json!({})).await?;
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

    /// Length and head hash of the audit log, for a signed checkpoint.
    pub async fn audit_head(&self) -> Result<(u64, String), StoreError> {
        let last: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        Ok(match last {
            Some((seq, hash)) => (seq as u64, hash),
            None => (0, audit::GENESIS.to_owned()),
        })
    }

    /// Ledger consistency, for crash tests and operators: releases whose
    /// job has no committed spend (must be none).
    pub async fn releases_without_committed_spend(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM releases r WHERE NOT EXISTS
             (SELECT 1 FROM spends s WHERE s.job_id = r.job_id AND s.state = 'committed')
             OR EXISTS (SELECT 1 FROM spends s WHERE s.job_id = r.job_id AND s.state != 'committed')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(n as u64)
    }

    /// Total committed ε units across all spends.
    pub async fn committed_epsilon_units(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(epsilon_units), 0) FROM spends WHERE state = 'committed'",
        )
        .fetch_one(&self.pool)
        .await?;
        from_units(n)
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
