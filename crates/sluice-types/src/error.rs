//! Stable error codes shown to API users. Each code maps to one HTTP status in
//! the server; the codes are documented in docs/api.md and never change meaning.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthenticated,
    Forbidden,
    NotFound,
    Conflict,
    PayloadTooLarge,
    SchemaInvalid,
    IngestRejected,
    ManifestInvalid,
    QueryRejected,
    DatasetNotOpen,
    BudgetExhausted,
    RateLimited,
    JobFailed,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::SchemaInvalid => "schema_invalid",
            ErrorCode::IngestRejected => "ingest_rejected",
            ErrorCode::ManifestInvalid => "manifest_invalid",
            ErrorCode::QueryRejected => "query_rejected",
            ErrorCode::DatasetNotOpen => "dataset_not_open",
            ErrorCode::BudgetExhausted => "budget_exhausted",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::JobFailed => "job_failed",
            ErrorCode::Internal => "internal",
        }
    }
}

/// The JSON body of every API error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}
