//! The hash-chained audit log. Each entry's hash covers the previous hash
//! and the canonical JSON of the entry, so changing, deleting, inserting or
//! reordering any entry breaks the chain from that point on.

use serde::{Deserialize, Serialize};
use sqlx::{Row, SqliteConnection, SqlitePool};

use crate::{Store, StoreError, Tx, commit};

/// The previous hash of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub object: String,
    /// Canonical JSON; never contains data values.
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuditError {
    #[error("audit entry {seq}: expected sequence number {expected}")]
    Sequence { seq: i64, expected: i64 },
    #[error("audit entry {seq}: previous-hash link is broken")]
    Link { seq: i64 },
    #[error("audit entry {seq}: hash does not match its content")]
    Hash { seq: i64 },
}

impl AuditError {
    /// The sequence number of the first bad entry.
    pub fn seq(&self) -> i64 {
        match self {
            AuditError::Sequence { seq, .. }
            | AuditError::Link { seq }
            | AuditError::Hash { seq } => *seq,
        }
    }
}

/// `sha256_hex(prev_hash || canonical_json({seq, at, actor, action, object, details}))`,
/// where `details` is the entry's canonical-JSON string.
pub fn entry_hash(
    prev_hash: &str,
    seq: i64,
    at: &str,
    actor: &str,
    action: &str,
    object: &str,
    details: &str,
) -> String {
    let body = sluice_crypto::canonical_json(&serde_json::json!({
        "seq": seq, "at": at, "actor": actor, "action": action, "object": object, "details": details,
    }));
    let mut bytes = prev_hash.as_bytes().to_vec();
    bytes.extend_from_slice(&body);
    sluice_crypto::sha256_hex(&bytes)
}

/// The last entry's sequence number and hash; `(0, GENESIS)` for an empty log.
async fn head<'e>(
    conn: impl sqlx::Executor<'e, Database = sqlx::Sqlite>,
) -> Result<(i64, String), StoreError> {
    let last: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(conn)
            .await?;
    Ok(last.unwrap_or_else(|| (0, GENESIS.to_owned())))
}

pub(crate) async fn append(
    tx: &mut SqliteConnection,
    actor: &str,
    action: &str,
    object: &str,
    details: &serde_json::Value,
) -> Result<(), StoreError> {
    let (last, prev_hash) = head(&mut *tx).await?;
    let seq = last + 1;
    let at = sluice_types::time::now_rfc3339();
    let details = sluice_crypto::canonical_json_string(details);
    let hash = entry_hash(&prev_hash, seq, &at, actor, action, object, &details);
    sqlx::query(
        "INSERT INTO audit_log (seq, at, actor, action, object, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(seq)
    .bind(&at)
    .bind(actor)
    .bind(action)
    .bind(object)
    .bind(&details)
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub(crate) async fn entries(pool: &SqlitePool) -> Result<Vec<AuditEntry>, StoreError> {
    let rows = sqlx::query("SELECT * FROM audit_log ORDER BY seq")
        .fetch_all(pool)
        .await?;
    Ok(rows
        .iter()
        .map(|r| AuditEntry {
            seq: r.get("seq"),
            at: r.get("at"),
            actor: r.get("actor"),
            action: r.get("action"),
            object: r.get("object"),
            details: r.get("details"),
            prev_hash: r.get("prev_hash"),
            hash: r.get("hash"),
        })
        .collect())
}

/// Recomputes the chain from the genesis hash; names the first bad entry.
pub fn verify_audit_chain(entries: &[AuditEntry]) -> Result<u64, AuditError> {
    let mut prev = GENESIS.to_owned();
    for (i, e) in entries.iter().enumerate() {
        let expected = i as i64 + 1;
        if e.seq != expected {
            return Err(AuditError::Sequence {
                seq: e.seq,
                expected,
            });
        }
        if e.prev_hash != prev {
            return Err(AuditError::Link { seq: e.seq });
        }
        if entry_hash(
            &e.prev_hash,
            e.seq,
            &e.at,
            &e.actor,
            &e.action,
            &e.object,
            &e.details,
        ) != e.hash
        {
            return Err(AuditError::Hash { seq: e.seq });
        }
        prev = e.hash.clone();
    }
    Ok(entries.len() as u64)
}

/// A refused request (401, 402, 403, or 404 on a matched route), as the
/// audit log records it: never the raw URL, query string or body.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Denial {
    /// The caller's user id; for a token that matches no user, the first 12
    /// hex characters of its SHA-256; `anonymous` without a token.
    pub actor: String,
    /// The method and the matched path template, `GET /v1/jobs/{id}`.
    pub route: String,
    /// The stable error code answered.
    pub code: String,
    pub status: u16,
}

/// What to append for denials: the first of its kind in a minute
/// (`count` 1, written at once), or the `count` further ones of that minute
/// (written once the minute is over).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenialEntry {
    pub denial: Denial,
    /// Unix minute the denials fell in.
    pub minute: i64,
    pub count: u64,
    pub repeated: bool,
}

/// Distinct (actor, route, code) kinds written at once per minute; beyond
/// that, denials are counted per (route, code) under the actor `*`, so a
/// flood of made-up tokens writes a bounded number of entries.
pub const MAX_DENIAL_KINDS_PER_MINUTE: usize = 1000;

/// Aggregates denials per (actor, route, code) and minute, so that a flood
/// of refused requests writes at most one entry per kind and minute plus
/// one summary with its count.
#[derive(Debug, Default)]
pub struct DenialWindow {
    minute: i64,
    /// Kinds seen this minute, with the denials counted after the first.
    seen: std::collections::BTreeMap<Denial, u64>,
    /// Denials beyond [`MAX_DENIAL_KINDS_PER_MINUTE`], by (route, code, status).
    overflow: std::collections::BTreeMap<(String, String, u16), u64>,
}

impl DenialWindow {
    /// Counts one denial at `minute`; returns what to append now: the
    /// summaries of an earlier minute, and this denial if it is the first of
    /// its kind in its minute.
    pub fn record(&mut self, denial: Denial, minute: i64) -> Vec<DenialEntry> {
        let mut out = self.roll(minute);
        if let Some(n) = self.seen.get_mut(&denial) {
            *n += 1;
        } else if self.seen.len() >= MAX_DENIAL_KINDS_PER_MINUTE {
            *self
                .overflow
                .entry((denial.route, denial.code, denial.status))
                .or_default() += 1;
        } else {
            self.seen.insert(denial.clone(), 0);
            out.push(DenialEntry {
                denial,
                minute: self.minute,
                count: 1,
                repeated: false,
            });
        }
        out
    }

    /// Closes the window if `minute` is later: returns the summaries of the
    /// denials counted in it. A clock that steps back keeps the window.
    pub fn roll(&mut self, minute: i64) -> Vec<DenialEntry> {
        if minute <= self.minute {
            return Vec::new();
        }
        let closed = std::mem::replace(&mut self.minute, minute);
        let seen = std::mem::take(&mut self.seen);
        let overflow = std::mem::take(&mut self.overflow);
        let summary = |denial, count| DenialEntry {
            denial,
            minute: closed,
            count,
            repeated: true,
        };
        seen.into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(d, n)| summary(d, n))
            .chain(overflow.into_iter().map(|((route, code, status), n)| {
                let actor = "*".to_owned();
                summary(
                    Denial {
                        actor,
                        route,
                        code,
                        status,
                    },
                    n,
                )
            }))
            .collect()
    }
}

impl Store {
    /// Appends an audit entry on its own (for actions with no other state change).
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        object: &str,
        details: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let tx = self.write_audited(actor, action, object, details).await?;
        commit(tx).await
    }

    /// A write transaction whose first write is the audit entry of the
    /// change the caller then makes in it: if either fails, neither stays.
    pub(crate) async fn write_audited(
        &self,
        actor: &str,
        action: &str,
        object: &str,
        details: &serde_json::Value,
    ) -> Result<Tx, StoreError> {
        let mut tx = self.write().await?;
        append(&mut tx, actor, action, object, details).await?;
        Ok(tx)
    }

    pub async fn audit_entries(&self) -> Result<Vec<AuditEntry>, StoreError> {
        entries(&self.pool).await
    }

    /// Length and head hash of the audit log, for a signed checkpoint.
    pub async fn audit_head(&self) -> Result<(u64, String), StoreError> {
        let (seq, hash) = head(&self.pool).await?;
        Ok((seq as u64, hash))
    }

    /// Appends denial entries (see [`DenialWindow`]) in one transaction:
    /// `request.denied` for a first denial, `request.denied.repeated` with
    /// the count for the further ones of a minute. The object is the route.
    pub async fn audit_denials(&self, entries: &[DenialEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for e in entries {
            let d = &e.denial;
            let (action, details) = if e.repeated {
                (
                    "request.denied.repeated",
                    serde_json::json!({
                        "code": d.code, "status": d.status, "count": e.count,
                        "minute": sluice_types::time::rfc3339(e.minute * 60),
                    }),
                )
            } else {
                (
                    "request.denied",
                    serde_json::json!({"code": d.code, "status": d.status}),
                )
            };
            append(&mut tx, &d.actor, action, &d.route, &details).await?;
        }
        commit(tx).await
    }
}

#[cfg(test)]
mod denial_tests {
    use super::*;

    fn denial(actor: &str, code: &str) -> Denial {
        Denial {
            actor: actor.into(),
            route: "GET /v1/jobs/{id}".into(),
            code: code.into(),
            status: 404,
        }
    }

    #[test]
    fn repeats_in_a_minute_become_one_summary() {
        let mut w = DenialWindow::default();
        let first = w.record(denial("usr_a", "not_found"), 100);
        assert_eq!(first.len(), 1);
        assert_eq!(
            (first[0].count, first[0].repeated, first[0].minute),
            (1, false, 100)
        );
        for _ in 0..500 {
            assert!(w.record(denial("usr_a", "not_found"), 100).is_empty());
        }
        // Another kind is written at once.
        assert_eq!(w.record(denial("usr_a", "forbidden"), 100).len(), 1);
        assert_eq!(w.record(denial("usr_b", "not_found"), 100).len(), 1);
        // The next minute's first denial brings the summary of the last.
        let next = w.record(denial("usr_a", "not_found"), 101);
        assert_eq!(
            next,
            vec![
                DenialEntry {
                    denial: denial("usr_a", "not_found"),
                    minute: 100,
                    count: 500,
                    repeated: true
                },
                DenialEntry {
                    denial: denial("usr_a", "not_found"),
                    minute: 101,
                    count: 1,
                    repeated: false
                },
            ]
        );
        // A roll with nothing counted writes nothing; a clock stepping back
        // keeps the window.
        assert!(w.roll(102).is_empty());
        assert_eq!(w.record(denial("usr_a", "not_found"), 102).len(), 1);
        assert!(w.record(denial("usr_a", "not_found"), 90).is_empty());
        assert_eq!(w.roll(103)[0].count, 1);
    }

    #[test]
    fn a_flood_of_kinds_is_bounded() {
        let mut w = DenialWindow::default();
        let mut written = 0;
        for i in 0..5000 {
            written += w
                .record(denial(&format!("{i:012x}"), "unauthenticated"), 7)
                .len();
        }
        assert_eq!(written, MAX_DENIAL_KINDS_PER_MINUTE);
        let summary = w.roll(8);
        assert_eq!(summary.len(), 1);
        assert_eq!(summary[0].denial.actor, "*");
        assert_eq!(summary[0].count, 4000);
    }
}
