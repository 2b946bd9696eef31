//! Helpers more than one area uses: privacy amounts to and from SQL
//! integers, whose records a listing shows, the one query behind those
//! listings, and the SQL that joins a user's or dataset's name onto a row.

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

/// Rows that `select` (`SELECT … FROM table`) and `filter` (SQL using
/// `?1`, bound to `who` unless empty) give, in `order`; with `overdue_at`,
/// only those still in `open_state` whose `due_at` is before that instant.
/// The one query behind every list by party scope or id (applications,
/// agreements, feedback).
pub(crate) async fn list_rows(
    pool: &SqlitePool,
    select: &str,
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
    let sql = format!("{select} WHERE {filter}{overdue} ORDER BY {order}");
    let mut q = sqlx::query(&sql);
    if !who.is_empty() || overdue_at.is_some() {
        q = q.bind(who);
    }
    if let Some(at) = overdue_at {
        q = q.bind(at).bind(open_state);
    }
    Ok(q.fetch_all(pool).await?)
}

/// SQL for the name of the user whose id is in `column` (qualified by its
/// table), or that id if the account is gone: names shown in lists, joined
/// in the list's own query rather than looked up row by row.
pub(crate) fn user_name(column: &str) -> String {
    format!("COALESCE((SELECT u.name FROM users u WHERE u.id = {column}), {column})")
}

/// SQL for the name of the dataset whose id is in `column`, or that id if
/// it is gone (NULL stays NULL).
pub(crate) fn dataset_name(column: &str) -> String {
    format!("COALESCE((SELECT d.name FROM datasets d WHERE d.id = {column}), {column})")
}
