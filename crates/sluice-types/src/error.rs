//! Stable error codes shown to API users. Each code maps to one HTTP status in
//! the server; the codes are documented in docs/api.md and never change meaning.

use serde::{Deserialize, Serialize};

/// Stable error codes shown to API users, each with its HTTP status and
/// meaning: the one table the server maps statuses from and docs/api.md's
/// table is checked against (a test reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    SchemaInvalid,
    ManifestInvalid,
    IngestRejected,
    QueryRejected,
    Unauthenticated,
    Forbidden,
    DatasetNotOpen,
    NotFound,
    Conflict,
    PayloadTooLarge,
    RateLimited,
    BudgetExhausted,
    Internal,
}

impl ErrorCode {
    /// Every code, in docs/api.md's order.
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::BadRequest,
        ErrorCode::SchemaInvalid,
        ErrorCode::ManifestInvalid,
        ErrorCode::IngestRejected,
        ErrorCode::QueryRejected,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::DatasetNotOpen,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::PayloadTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::BudgetExhausted,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        self.entry().0
    }

    /// The HTTP status the API answers with.
    pub fn status(self) -> u16 {
        self.entry().1
    }

    /// What it means, as docs/api.md says.
    pub fn meaning(self) -> &'static str {
        self.entry().2
    }

    fn entry(self) -> (&'static str, u16, &'static str) {
        match self {
            ErrorCode::BadRequest => (
                "bad_request",
                400,
                "malformed parameters or body, an unknown body field (named), a name that breaks the name rule",
            ),
            ErrorCode::SchemaInvalid => (
                "schema_invalid",
                400,
                "the dataset descriptor is invalid (all problems listed)",
            ),
            ErrorCode::ManifestInvalid => (
                "manifest_invalid",
                400,
                "the manifest is invalid (all problems listed), or its ε is below the least a job may spend",
            ),
            ErrorCode::IngestRejected => (
                "ingest_rejected",
                400,
                "an upload failed a check; nothing was stored",
            ),
            ErrorCode::QueryRejected => (
                "query_rejected",
                422,
                "the query is outside what can be released with DP (all reasons listed)",
            ),
            ErrorCode::Unauthenticated => {
                ("unauthenticated", 401, "missing or unknown token (audited)")
            }
            ErrorCode::Forbidden => (
                "forbidden",
                403,
                "the role or grant does not allow this (audited)",
            ),
            ErrorCode::DatasetNotOpen => (
                "dataset_not_open",
                403,
                "the dataset's open category forbids this (audited)",
            ),
            ErrorCode::NotFound => (
                "not_found",
                404,
                "absent, or not visible to the caller (audited on known routes)",
            ),
            ErrorCode::Conflict => (
                "conflict",
                409,
                "the name or version exists; a review decision on another digest, a second decision, or a job no longer awaiting review",
            ),
            ErrorCode::PayloadTooLarge => ("payload_too_large", 413, "body over the limit"),
            ErrorCode::RateLimited => (
                "rate_limited",
                429,
                "the token exceeded its request budget (`sluice serve --rate-limit`, default 100/s on average, bursts of 1,000)",
            ),
            ErrorCode::BudgetExhausted => (
                "budget_exhausted",
                402,
                "the job's ε exceeds what remains on a dataset (the user's grant or its cap) or of an agreement's budget; the message names which (audited)",
            ),
            ErrorCode::Internal => ("internal", 500, "the operator log has the detail"),
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

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    /// docs/api.md's error table is this table, row for row.
    #[test]
    fn the_api_doc_lists_every_code_with_its_status_and_meaning() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md"),
        )
        .unwrap();
        let section = &doc[doc.find("## Errors").expect("an Errors section")..];
        let rows: Vec<(String, u16, String)> = section
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
                (
                    cells[0].trim_matches('`').to_owned(),
                    cells[1].parse().unwrap(),
                    cells[2].to_owned(),
                )
            })
            .collect();
        let table: Vec<(String, u16, String)> = ErrorCode::ALL
            .iter()
            .map(|c| (c.as_str().to_owned(), c.status(), c.meaning().to_owned()))
            .collect();
        assert_eq!(rows, table);
        // Each code's wire form is its name.
        for c in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }
}
