//! Signed checkpoints of the audit log: the log's length and head hash,
//! signed by the platform key. Kept elsewhere, a checkpoint lets anyone
//! detect that the log was later truncated or its prefix rewritten.

use serde::{Deserialize, Serialize};

pub const CHECKPOINT_PAYLOAD_TYPE: &str = "application/vnd.sluice.audit-checkpoint+json; version=1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditCheckpoint {
    /// Number of entries covered.
    pub length: u64,
    /// Hash of entry `length` (the genesis hash for an empty log).
    pub head: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SignedCheckpoint {
    pub checkpoint: AuditCheckpoint,
    pub key_id: String,
    /// Base64 Ed25519 signature over the DSSE encoding of the canonical checkpoint.
    pub signature: String,
}
