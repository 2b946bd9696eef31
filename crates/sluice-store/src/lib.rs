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
//!
//! This file holds the `Store`, its opening and transactions, and the error
//! type; each area adds its methods to `Store` in a module of its own.

// Modules import one way only: each from this file (`Store`, `Tx`,
// `commit`, `StoreError`, `corrupt`) and from those listed before it;
// `use crate::` lines say which. This file uses `ledger` only to start its
// writer.
//   db            unit conversions, party scopes, the list query, names in SQL
//   audit         the hash-chained log, each change's entry (`write_audited`)
//   ledger        reserve, commit, refund (group commit), budgets  (db, audit)
//   jobs          jobs, releases, schedules, crash recovery        (db, audit, ledger)
//   users         users and hashed tokens                          (audit)
//   sessions      console sessions (hashed cookies)                (audit, users)
//   control       dataset status, revocations, access grants       (db, audit, jobs)
//   catalog       datasets, versions, quality reports, search      (db, audit, control)
//   reviews       jobs held for review, decisions                  (db, audit, jobs)
//   applications  applications, the agreements they create         (db, audit)
//   feedback      feedback and rectification deadlines             (db, audit)
//   stats         usage statistics                                 (db)
mod applications;
mod audit;
mod catalog;
mod control;
mod db;
mod feedback;
mod jobs;
mod ledger;
mod reviews;
mod sessions;
mod stats;
mod users;

pub use applications::{
    APPLICATION_DAYS, Agreement, Application, NamedAgreement, NamedApplication, NewAgreement,
};
pub use audit::{
    AuditEntry, AuditError, Denial, DenialEntry, DenialWindow, GENESIS,
    MAX_DENIAL_KINDS_PER_MINUTE, verify_audit_chain,
};
pub use catalog::{DatasetRecord, NewDataset, SearchQuery};
pub use control::{ActiveJob, DatasetStatus, NamedRevocation, Revocation};
pub use db::PartyScope;
pub use feedback::{FEEDBACK_DAYS, FEEDBACK_MAX_DAYS, Feedback, NamedFeedback, RECTIFICATION_DAYS};
pub use jobs::{JobRecord, JobState, NewJob};
pub use ledger::{Budget, DEFAULT_MIN_EPSILON, Shortfall};
pub use reviews::{Decision, HeldJob, HoldForReview, NamedHeldJob, ReviewOutcome};
pub use sessions::Session;
pub use stats::{Usage, UsageGroup};
pub use users::UserRecord;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use sluice_types::privacy::Epsilon;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

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

pub struct Store {
    pool: SqlitePool,
    ledger: tokio::sync::mpsc::Sender<ledger::Request>,
    ledger_task: tokio::task::JoinHandle<()>,
    _lock: Flock<std::fs::File>,
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
}
