//! The one error type of the API: a stable code, a message that names what
//! failed and why, and an optional hint. Codes map to HTTP statuses here
//! and nowhere else.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sluice_store::StoreError;
use sluice_types::error::{ApiErrorBody, ErrorCode};

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub hint: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            hint: None,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn not_found(what: &str) -> Self {
        ApiError::new(ErrorCode::NotFound, format!("{what} not found"))
    }
    pub fn forbidden(why: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Forbidden, why)
    }
    pub fn bad_request(why: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::BadRequest, why)
    }
    pub fn internal() -> Self {
        ApiError::new(
            ErrorCode::Internal,
            "internal error; the operator log has the detail",
        )
    }
}

/// A code's HTTP status, from the one table (`ErrorCode::status`).
pub fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.status()).expect("the table holds valid statuses")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code;
        let body = ApiErrorBody {
            code,
            message: self.message,
            hint: self.hint,
        };
        let mut response = (status_of(code), Json(body)).into_response();
        // For the denial audit (access::audit_denials), which must not parse bodies.
        response.extensions_mut().insert(code);
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ApiError::new(ErrorCode::Conflict, format!("{what} already exists")),
            StoreError::Refused(why) => ApiError::new(ErrorCode::Conflict, why),
            StoreError::BudgetExhausted { dataset } => ApiError::new(
                ErrorCode::BudgetExhausted,
                format!("privacy budget exhausted: the job's epsilon exceeds what remains on dataset {dataset}"),
            )
            .hint("lower privacy.epsilon, or ask the provider for a larger grant"),
            StoreError::AgreementBudgetExhausted { agreement } => ApiError::new(
                ErrorCode::BudgetExhausted,
                format!("privacy budget exhausted: the job's epsilon exceeds what remains of agreement {agreement}'s budget"),
            )
            .hint("lower privacy.epsilon, or apply for a new agreement"),
            StoreError::BelowMinimum {
                epsilon,
                minimum,
                set_by,
            } => ApiError::new(
                ErrorCode::ManifestInvalid,
                format!(
                    "manifest invalid: privacy.epsilon {epsilon} is below the least a job may spend, {minimum} ({set_by})"
                ),
            )
            .hint("every job costs at least this much, which bounds how many jobs a budget allows; raise privacy.epsilon"),
            other => {
                tracing::error!(error = %other, "store failure");
                ApiError::internal()
            }
        }
    }
}

/// `axum::Json` whose rejections (malformed JSON, a wrong field, a missing
/// content type) are API errors like every other: JSON with a stable code.
pub struct ApiJson<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for ApiJson<T>
where
    Json<T>: axum::extract::FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                "request body larger than the limit",
            )),
            Err(e) => Err(ApiError::bad_request(format!(
                "request body invalid: {}",
                e.body_text()
            ))),
        }
    }
}

/// Unknown routes and methods answer like every other error.
pub async fn no_route() -> ApiError {
    ApiError::not_found("route")
}

pub async fn no_method() -> ApiError {
    ApiError::new(
        ErrorCode::BadRequest,
        "this route does not take that method",
    )
}
