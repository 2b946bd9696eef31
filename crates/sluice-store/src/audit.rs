//! The hash-chained audit log. Each entry's hash covers the previous hash
//! and the canonical JSON of the entry, so changing, deleting, inserting or
//! reordering any entry breaks the chain from that point on.

use serde::{Deserialize, Serialize};
use sqlx::{Row, SqliteConnection, SqlitePool};

use crate::StoreError;

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

pub(crate) async fn append(
    tx: &mut SqliteConnection,
    actor: &str,
    action: &str,
    object: &str,
    details: &serde_json::Value,
) -> Result<(), StoreError> {
    let last: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
    let (seq, prev_hash) = match last {
        Some((s, h)) => (s + 1, h),
        None => (1, GENESIS.to_owned()),
    };
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
