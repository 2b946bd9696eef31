//! The audit log over HTTP: the whole log (admin) and signed checkpoints
//! (anyone with a token) to keep elsewhere.

use axum::Json;
use axum::extract::State;

use crate::SharedState;
use crate::access::Caller;
use crate::error::ApiError;

pub(crate) async fn audit_log(
    State(state): State<SharedState>,
    Caller(_caller): Caller,
) -> Result<Json<Vec<sluice_store::AuditEntry>>, ApiError> {
    Ok(Json(state.store.audit_entries().await?))
}

/// The log's current length and head, signed: keep it elsewhere to detect
/// later truncation or rewriting.
pub(crate) async fn audit_checkpoint(
    State(state): State<SharedState>,
    Caller(_caller): Caller,
) -> Result<Json<sluice_types::audit::SignedCheckpoint>, ApiError> {
    let (length, head) = state.store.audit_head().await?;
    let checkpoint = sluice_types::audit::AuditCheckpoint {
        length,
        head,
        created_at: sluice_types::time::now_rfc3339(),
    };
    Ok(Json(sluice_crypto::sign_checkpoint(
        &state.keys,
        &checkpoint,
    )))
}
