//! The privacy ledger's write path, with group commit.
//!
//! Reservations, commits and refunds are sent to one writer task. It takes
//! every request waiting (up to `MAX_BATCH`), applies each inside its own
//! savepoint of a single `BEGIN IMMEDIATE` transaction — so each request
//! sees the effect of the ones before it, and a refused request leaves no
//! trace — then commits once. One fsync then makes a whole batch durable,
//! and nobody is answered before it is. Checks read running totals
//! (`user_usage`, `dataset_usage`, an agreement's `epsilon_spent_units`),
//! so a reservation costs O(1) whatever the ledger's size.

use serde::Serialize;
use sqlx::{Acquire, Row, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use sluice_types::privacy::{Delta, Epsilon};

use crate::db::{from_units, units};
use crate::{Store, StoreError, audit, commit};

const MAX_BATCH: usize = 512;

pub(crate) enum Op {
    Reserve {
        actor: String,
        job_id: String,
        user_id: String,
        dataset_ids: Vec<String>,
        agreement_ids: Vec<String>,
        eps: Epsilon,
        delta: Delta,
    },
    Commit {
        actor: String,
        job_id: String,
    },
    Refund {
        actor: String,
        job_id: String,
    },
}

pub(crate) struct Request {
    pub op: Op,
    pub reply: oneshot::Sender<Result<(), StoreError>>,
}

pub(crate) fn spawn_writer(
    pool: SqlitePool,
) -> (mpsc::Sender<Request>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(4096);
    let task = tokio::spawn(writer(pool, rx));
    (tx, task)
}

async fn writer(pool: SqlitePool, mut rx: mpsc::Receiver<Request>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let results = apply_batch(&pool, &batch).await;
        for (req, result) in batch.into_iter().zip(results) {
            let _ = req.reply.send(result);
        }
    }
}

async fn apply_batch(pool: &SqlitePool, batch: &[Request]) -> Vec<Result<(), StoreError>> {
    let failed_all = |e: &StoreError| -> Vec<Result<(), StoreError>> {
        batch
            .iter()
            .map(|_| Err(StoreError::Invalid(format!("ledger write failed: {e}"))))
            .collect()
    };
    let mut tx = match pool.begin_with("BEGIN IMMEDIATE").await {
        Ok(tx) => tx,
        Err(e) => return failed_all(&e.into()),
    };
    let mut results = Vec::with_capacity(batch.len());
    for req in batch {
        let mut sp = match tx.begin().await {
            Ok(sp) => sp,
            Err(e) => return failed_all(&e.into()),
        };
        match apply(&mut sp, &req.op).await {
            Ok(()) => {
                if let Err(e) = sp.commit().await {
                    return failed_all(&e.into());
                }
                results.push(Ok(()));
            }
            Err(e) => {
                // A refused request is undone by its savepoint. An unexpected
                // database error may have ended the whole transaction inside
                // SQLite (I/O, full disk, busy), so the batch is abandoned
                // rather than carrying on outside it: nobody is told "done"
                // for a change that might not be there, or vice versa.
                if !is_request_local(&e) {
                    return failed_all(&e);
                }
                if let Err(re) = sp.rollback().await {
                    return failed_all(&re.into());
                }
                results.push(Err(e));
            }
        }
    }
    match commit(tx).await {
        Ok(()) => results,
        Err(e) => failed_all(&e),
    }
}

/// Errors that concern one request only and leave the surrounding
/// transaction intact: refusals decided here, and constraint violations
/// (which SQLite undoes for the one statement).
fn is_request_local(e: &StoreError) -> bool {
    match e {
        StoreError::Db(sqlx::Error::Database(d)) => d
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| c & 0xff == 19), // SQLITE_CONSTRAINT
        StoreError::Db(_) | StoreError::Migrate(_) | StoreError::Io { .. } => false,
        StoreError::Locked(_)
        | StoreError::Conflict(_)
        | StoreError::BudgetExhausted { .. }
        | StoreError::AgreementBudgetExhausted { .. }
        | StoreError::BelowMinimum { .. }
        | StoreError::NotFound(_)
        | StoreError::Invalid(_)
        | StoreError::Refused(_)
        | StoreError::Corrupt(_) => true,
    }
}

async fn apply(conn: &mut SqliteConnection, op: &Op) -> Result<(), StoreError> {
    match op {
        Op::Reserve {
            actor,
            job_id,
            user_id,
            dataset_ids,
            agreement_ids,
            eps,
            delta,
        } => {
            let charge = Charge {
                user_id,
                dataset_ids,
                agreement_ids,
                eps: *eps,
                delta: *delta,
            };
            reserve(conn, actor, job_id, &charge).await
        }
        Op::Commit { actor, job_id } => {
            audit::append(conn, actor, "ledger.commit", job_id, &serde_json::json!({})).await?;
            move_spend(conn, job_id, "reserved", "committed").await
        }
        Op::Refund { actor, job_id } => {
            audit::append(conn, actor, "ledger.refund", job_id, &serde_json::json!({})).await?;
            move_spend(conn, job_id, "reserved", "refunded").await
        }
    }
}

/// A budget a charge would exceed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shortfall {
    /// The user's grant on the dataset (by name).
    UserGrant(String),
    /// The dataset's cap across users (by name), or its δ total's range.
    DatasetCap(String),
    /// The agreement's budget (by id).
    Agreement(String),
    /// The job's ε is below the least one job may spend: the platform's
    /// default, or the higher one an agreement sets (`set_by` says which).
    BelowMinimum { minimum: Epsilon, set_by: String },
}

/// The least ε one job spends where no agreement sets more: 0.001. Every
/// job costs at least this, so a budget buys a bounded number of jobs, and
/// with them a bounded number of timing observations (docs/threat-model.md).
pub const DEFAULT_MIN_EPSILON: Epsilon = Epsilon::from_units(1_000_000);

/// Every budget `charge` would exceed now, datasets first: the rules the
/// ledger reserves by, also read by estimates. A dataset or agreement
/// that does not exist (or an agreement of another user) is an error.
async fn shortfalls(
    conn: &mut SqliteConnection,
    charge: &Charge<'_>,
) -> Result<Vec<Shortfall>, StoreError> {
    let e = units(charge.eps.units())?;
    let d = units(charge.delta.units())?;
    let fits = |spent: i64, limit: i64| spent.checked_add(e).is_some_and(|t| t <= limit);
    let mut out = Vec::new();
    for ds in charge.dataset_ids {
        let row = sqlx::query(
            "SELECT d.name, d.epsilon_cap_units, d.user_epsilon_units,
                    COALESCE((SELECT epsilon_units FROM user_usage WHERE dataset_id = d.id AND user_id = ?), 0) AS user_spent,
                    COALESCE((SELECT epsilon_units FROM dataset_usage WHERE dataset_id = d.id), 0) AS all_spent,
                    COALESCE((SELECT delta_units FROM dataset_usage WHERE dataset_id = d.id), 0) AS all_delta
             FROM datasets d WHERE d.id = ?",
        )
        .bind(charge.user_id)
        .bind(ds)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("dataset {ds}")))?;
        // δ has no cap of its own; its running totals must still stay exact
        // integers (SQLite would turn an overflowing sum into a float).
        let delta_fits = row.get::<i64, _>("all_delta").checked_add(d).is_some();
        if !fits(row.get("user_spent"), row.get("user_epsilon_units")) {
            out.push(Shortfall::UserGrant(row.get("name")));
        } else if !fits(row.get("all_spent"), row.get("epsilon_cap_units")) || !delta_fits {
            out.push(Shortfall::DatasetCap(row.get("name")));
        }
    }
    for a in charge.agreement_ids {
        let row = sqlx::query(
            "SELECT user_id, epsilon_units, epsilon_spent_units FROM agreements WHERE id = ?",
        )
        .bind(a)
        .fetch_optional(&mut *conn)
        .await?
        .filter(|r| r.get::<&str, _>("user_id") == charge.user_id)
        .ok_or_else(|| StoreError::NotFound(format!("agreement {a}")))?;
        if !fits(row.get("epsilon_spent_units"), row.get("epsilon_units")) {
            out.push(Shortfall::Agreement(a.clone()));
        }
    }
    let minimum = minimum_epsilon(conn, charge.user_id, charge.agreement_ids).await?;
    if charge.eps < minimum.0 {
        out.insert(
            0,
            Shortfall::BelowMinimum {
                minimum: minimum.0,
                set_by: minimum.1,
            },
        );
    }
    Ok(out)
}

/// The least ε one job may spend: the platform's default, or the highest
/// minimum among `agreement_ids` (the user's), and who set it.
async fn minimum_epsilon(
    conn: &mut SqliteConnection,
    user_id: &str,
    agreement_ids: &[String],
) -> Result<(Epsilon, String), StoreError> {
    let mut minimum = (DEFAULT_MIN_EPSILON, "the platform's default".to_owned());
    for a in agreement_ids {
        let units: Option<i64> = sqlx::query_scalar(
            "SELECT min_epsilon_units FROM agreements WHERE id = ? AND user_id = ?",
        )
        .bind(a)
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(units) = units else {
            return Err(StoreError::NotFound(format!("agreement {a}")));
        };
        let min = Epsilon::from_units(from_units(units)?);
        if min > minimum.0 {
            minimum = (min, format!("set by agreement {a}"));
        }
    }
    Ok(minimum)
}

/// What one reservation charges, and to whom.
struct Charge<'a> {
    pub user_id: &'a str,
    pub dataset_ids: &'a [String],
    /// Data-use agreements the job runs under; each is charged `eps` once.
    pub agreement_ids: &'a [String],
    pub eps: Epsilon,
    pub delta: Delta,
}

async fn reserve(
    conn: &mut SqliteConnection,
    actor: &str,
    job_id: &str,
    charge: &Charge<'_>,
) -> Result<(), StoreError> {
    let &Charge {
        user_id,
        dataset_ids,
        agreement_ids,
        eps,
        delta,
    } = charge;
    if eps.units() == 0 {
        return Err(StoreError::Invalid("epsilon must be positive".into()));
    }
    if dataset_ids.is_empty() {
        return Err(StoreError::Invalid("a reservation needs a dataset".into()));
    }
    for (i, ds) in dataset_ids.iter().enumerate() {
        if dataset_ids[..i].contains(ds) {
            return Err(StoreError::Invalid(format!(
                "dataset {ds} is listed twice in one reservation"
            )));
        }
    }
    for (i, a) in agreement_ids.iter().enumerate() {
        if agreement_ids[..i].contains(a) {
            return Err(StoreError::Invalid(format!(
                "agreement {a} is listed twice in one reservation"
            )));
        }
    }
    let e = units(eps.units())?;
    let d = units(delta.units())?;
    let job_exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM jobs WHERE id = ?")
        .bind(job_id)
        .fetch_optional(&mut *conn)
        .await?;
    if job_exists.is_none() {
        return Err(StoreError::NotFound(format!("job {job_id}")));
    }
    let earlier: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM spends WHERE job_id = ?")
        .bind(job_id)
        .fetch_one(&mut *conn)
        .await?;
    if earlier > 0 {
        return Err(StoreError::Conflict(format!(
            "a reservation for job {job_id}"
        )));
    }
    if let Some(short) = shortfalls(conn, charge).await?.into_iter().next() {
        return Err(match short {
            Shortfall::UserGrant(dataset) | Shortfall::DatasetCap(dataset) => {
                StoreError::BudgetExhausted { dataset }
            }
            Shortfall::Agreement(agreement) => StoreError::AgreementBudgetExhausted { agreement },
            Shortfall::BelowMinimum { minimum, set_by } => StoreError::BelowMinimum {
                epsilon: eps,
                minimum,
                set_by,
            },
        });
    }

    audit::append(
        conn,
        actor,
        "ledger.reserve",
        job_id,
        &serde_json::json!({"user": user_id, "datasets": dataset_ids, "agreements": agreement_ids, "epsilon_units": eps.units(), "delta_units": delta.units()}),
    )
    .await?;
    let now = sluice_types::time::now_rfc3339();
    for ds in dataset_ids {
        sqlx::query(
            "INSERT INTO spends (job_id, dataset_id, user_id, epsilon_units, delta_units, state, created_at)
             VALUES (?, ?, ?, ?, ?, 'reserved', ?)",
        )
        .bind(job_id)
        .bind(ds)
        .bind(user_id)
        .bind(e)
        .bind(d)
        .bind(&now)
        .execute(&mut *conn)
        .await?;
        adjust_usage(conn, ds, user_id, e, d).await?;
    }
    for a in agreement_ids {
        sqlx::query(
            "INSERT INTO agreement_spends (job_id, agreement_id, epsilon_units, state, created_at)
             VALUES (?, ?, ?, 'reserved', ?)",
        )
        .bind(job_id)
        .bind(a)
        .bind(e)
        .bind(&now)
        .execute(&mut *conn)
        .await?;
        adjust_agreement(conn, a, e).await?;
    }
    Ok(())
}

async fn adjust_usage(
    conn: &mut SqliteConnection,
    ds: &str,
    user_id: &str,
    e: i64,
    d: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO user_usage (dataset_id, user_id, epsilon_units, delta_units) VALUES (?, ?, ?, ?)
         ON CONFLICT (dataset_id, user_id) DO UPDATE SET
           epsilon_units = epsilon_units + excluded.epsilon_units, delta_units = delta_units + excluded.delta_units",
    )
    .bind(ds)
    .bind(user_id)
    .bind(e)
    .bind(d)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO dataset_usage (dataset_id, epsilon_units, delta_units) VALUES (?, ?, ?)
         ON CONFLICT (dataset_id) DO UPDATE SET
           epsilon_units = epsilon_units + excluded.epsilon_units, delta_units = delta_units + excluded.delta_units",
    )
    .bind(ds)
    .bind(e)
    .bind(d)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Moves a job's spends between states, keeping the running totals: only a
/// refund (reserved → refunded) gives budget back.
pub(crate) async fn move_spend(
    conn: &mut SqliteConnection,
    job_id: &str,
    from: &str,
    to: &str,
) -> Result<(), StoreError> {
    let rows = sqlx::query("SELECT dataset_id, user_id, epsilon_units, delta_units FROM spends WHERE job_id = ? AND state = ?")
        .bind(job_id)
        .bind(from)
        .fetch_all(&mut *conn)
        .await?;
    if rows.is_empty() {
        return Err(StoreError::Invalid(format!(
            "job {job_id} has no {from} spend"
        )));
    }
    let agreements = sqlx::query(
        "SELECT agreement_id, epsilon_units FROM agreement_spends WHERE job_id = ? AND state = ?",
    )
    .bind(job_id)
    .bind(from)
    .fetch_all(&mut *conn)
    .await?;
    set_spend_state(conn, job_id, from, to).await?;
    if to == "refunded" {
        for r in rows {
            let (ds, user): (String, String) = (r.get("dataset_id"), r.get("user_id"));
            let (e, d): (i64, i64) = (r.get("epsilon_units"), r.get("delta_units"));
            // An UPDATE, not `adjust_usage`: SQLite checks the upsert's
            // candidate row (negative totals) before resolving the conflict.
            sqlx::query(
                "UPDATE user_usage SET epsilon_units = epsilon_units - ?, delta_units = delta_units - ?
                 WHERE dataset_id = ? AND user_id = ?",
            )
            .bind(e)
            .bind(d)
            .bind(&ds)
            .bind(&user)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "UPDATE dataset_usage SET epsilon_units = epsilon_units - ?, delta_units = delta_units - ? WHERE dataset_id = ?",
            )
            .bind(e)
            .bind(d)
            .bind(&ds)
            .execute(&mut *conn)
            .await?;
        }
        for r in agreements {
            let a: String = r.get("agreement_id");
            adjust_agreement(conn, &a, -r.get::<i64, _>("epsilon_units")).await?;
        }
    }
    Ok(())
}

/// Sets the state of a job's dataset and agreement spends that are in
/// `from` to `to`; the running totals are the caller's business.
pub(crate) async fn set_spend_state(
    conn: &mut SqliteConnection,
    job_id: &str,
    from: &str,
    to: &str,
) -> Result<(), StoreError> {
    for table in ["spends", "agreement_spends"] {
        sqlx::query(&format!(
            "UPDATE {table} SET state = ? WHERE job_id = ? AND state = ?"
        ))
        .bind(to)
        .bind(job_id)
        .bind(from)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Adds `e` units (negative for a refund) to an agreement's spent total.
async fn adjust_agreement(
    conn: &mut SqliteConnection,
    agreement_id: &str,
    e: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE agreements SET epsilon_spent_units = epsilon_spent_units + ? WHERE id = ?")
        .bind(e)
        .bind(agreement_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// One user's budget on one dataset, and the dataset's cap.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Budget {
    pub user_granted: Epsilon,
    /// Committed and reserved.
    pub user_spent: Epsilon,
    /// δ committed and reserved (spent on selecting group keys).
    pub user_delta_spent: Delta,
    pub dataset_cap: Epsilon,
    pub dataset_spent: Epsilon,
}

impl Store {
    async fn ledger_op(&self, op: Op) -> Result<(), StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.ledger
            .send(Request { op, reply })
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
        self.ledger_op(Op::Reserve {
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
        let charge = Charge {
            user_id,
            dataset_ids,
            agreement_ids,
            eps,
            delta,
        };
        shortfalls(&mut conn, &charge).await
    }

    /// The least ε one job of `user_id` under `agreement_ids` may spend,
    /// and who set it.
    pub async fn minimum_epsilon(
        &self,
        user_id: &str,
        agreement_ids: &[String],
    ) -> Result<(Epsilon, String), StoreError> {
        let mut conn = self.pool.acquire().await?;
        minimum_epsilon(&mut conn, user_id, agreement_ids).await
    }

    /// Reserved → committed: noise was (or may have been) drawn.
    pub async fn commit_spend(&self, actor: &str, job_id: &str) -> Result<(), StoreError> {
        self.ledger_op(Op::Commit {
            actor: actor.to_owned(),
            job_id: job_id.to_owned(),
        })
        .await
    }

    /// Reserved → refunded: only for jobs rejected before touching data.
    /// A committed spend is never refunded.
    pub async fn refund(&self, actor: &str, job_id: &str) -> Result<(), StoreError> {
        self.ledger_op(Op::Refund {
            actor: actor.to_owned(),
            job_id: job_id.to_owned(),
        })
        .await
    }

    /// What `user_id` has spent of its grant on a dataset, and all users of
    /// its cap, from the running totals.
    pub async fn budget(&self, user_id: &str, dataset_id: &str) -> Result<Budget, StoreError> {
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
        Ok(Budget {
            user_granted: Epsilon::from_units(from_units(row.get("user_epsilon_units"))?),
            user_spent: Epsilon::from_units(from_units(row.get("user_spent"))?),
            user_delta_spent: Delta::from_units(from_units(row.get("user_delta"))?),
            dataset_cap: Epsilon::from_units(from_units(row.get("epsilon_cap_units"))?),
            dataset_spent: Epsilon::from_units(from_units(row.get("all_spent"))?),
        })
    }

    /// Ledger consistency, for crash tests: releases whose job has no
    /// committed spend (must be none).
    #[cfg(feature = "testing")]
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

    /// Total committed ε units across all spends, for crash tests (never
    /// falls) and exactness tests.
    #[cfg(feature = "testing")]
    pub async fn committed_epsilon_units(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(epsilon_units), 0) FROM spends WHERE state = 'committed'",
        )
        .fetch_one(&self.pool)
        .await?;
        from_units(n)
    }
}
