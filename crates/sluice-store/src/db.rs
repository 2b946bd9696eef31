//! Helpers more than one area uses: privacy amounts to and from SQL
//! integers, whose records a listing shows, and the one query behind
//! deadline lists.

use sqlx::SqlitePool;

use crate::{StoreError, corrupt};

pub(crate) fn units(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Invalid("privacy amount too large".into()))
}

pub(crate) fn size(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Invalid("size too large".into()))
}

pub(crate) fn from_units(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| corrupt("negative privacy amount"))
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
    pub(crate) fn filter<'p>(
        &self,
        provider_pred: &'p str,
        user_pred: &'p str,
    ) -> (&'p str, String) {
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
pub(crate) async fn rows_with_deadline(
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
