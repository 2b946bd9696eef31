//! Who may do what: authentication (the bearer token), the role rule each
//! route declares (`crate::api`), enforced here before its handler runs,
//! and the object rules handlers apply (ownership and visibility: an object
//! a caller may not see answers 404, indistinguishable from an absent one).
//! Every refusal is audited.

use axum::extract::{FromRequestParts, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use sluice_store::{DatasetRecord, UserRecord};
use sluice_types::error::ErrorCode;
use sluice_types::{OpenCategory, Role};

use crate::error::ApiError;
use crate::{AppState, SharedState};

/// Who may call a route, declared with it in `crate::api`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Access {
    /// No token needed.
    Public,
    /// Any authenticated account; the handler applies object rules.
    Authenticated,
    /// Only these roles; `action` completes "role X may not ...".
    Roles(&'static [Role], &'static str),
}

impl Access {
    /// Whether an account of `role` passes the role rule.
    pub fn admits(self, role: Role) -> bool {
        match self {
            Access::Public | Access::Authenticated => true,
            Access::Roles(roles, _) => roles.contains(&role),
        }
    }

    /// In words, for the API document.
    pub fn describe(self) -> String {
        match self {
            Access::Public => "anyone, no token".into(),
            Access::Authenticated => "any authenticated role".into(),
            Access::Roles(roles, _) => roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// The caller a route's gate authenticated, for the handler.
#[derive(Clone)]
struct Authenticated(UserRecord);

/// A caller the console authenticated from its session cookie, attached
/// to the console's in-process request to the API (a request extension,
/// which nothing from the network can set). The API's routes then apply
/// their own role and object rules to this user exactly as to a bearer
/// token: the console has no authorization path of its own.
#[derive(Clone)]
pub(crate) struct ConsoleCaller(pub UserRecord);

/// Authenticates the caller (token, rate limit) and applies the route's
/// role rule before its handler runs: declared once, enforced here.
pub(crate) async fn gate(
    State((state, access)): State<(SharedState, Access)>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if access == Access::Public {
        return next.run(request).await;
    }
    let console = request.extensions().get::<ConsoleCaller>().cloned();
    let caller = match authenticate_request(&state, console, request.headers()).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if let Access::Roles(roles, action) = access
        && !roles.contains(&caller.role)
    {
        return ApiError::forbidden(format!("role {} may not {action}", caller.role.as_str()))
            .into_response();
    }
    request.extensions_mut().insert(Authenticated(caller));
    next.run(request).await
}

/// The caller of a request: the console's session user, or the bearer
/// token's.
async fn authenticate_request(
    state: &AppState,
    console: Option<ConsoleCaller>,
    headers: &axum::http::HeaderMap,
) -> Result<UserRecord, ApiError> {
    match console {
        Some(ConsoleCaller(user)) => admit(state, user),
        None => authenticate(state, headers).await,
    }
}

/// Applies the rate limit to an authenticated user.
fn admit(state: &AppState, user: UserRecord) -> Result<UserRecord, ApiError> {
    if state.allow(&user.id) {
        Ok(user)
    } else {
        Err(
            ApiError::new(ErrorCode::RateLimited, "too many requests for this user").hint(format!(
                "at most {} requests per second on average",
                state.config.rate_limit.per_second
            )),
        )
    }
}

async fn authenticate(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<UserRecord, ApiError> {
    let unauthenticated = || {
        ApiError::new(
            ErrorCode::Unauthenticated,
            "missing or invalid bearer token",
        )
        .hint("send Authorization: Bearer <token>")
    };
    let token = bearer_token(headers).ok_or_else(unauthenticated)?;
    match state.store.user_by_token(token).await? {
        Some(u) => admit(state, u),
        None => Err(unauthenticated()),
    }
}

/// The authenticated caller of a route: the one its gate admitted.
pub struct Caller(pub UserRecord);

impl FromRequestParts<SharedState> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        if let Some(Authenticated(user)) = parts.extensions.get::<Authenticated>() {
            return Ok(Caller(user.clone()));
        }
        // A route declared public has no gate: authenticate here.
        let console = parts.extensions.get::<ConsoleCaller>().cloned();
        authenticate_request(state, console, &parts.headers)
            .await
            .map(Caller)
    }
}

/// Writes an audit entry for each refusal on a matched route: 401, 402,
/// 403, and 404 (an object that is not the caller's answers exactly like
/// an absent one, so every 404 is recorded). The entry names the actor,
/// the method and path template (never the URL's ids, query or body) and
/// the error code; repeats within a minute are counted into one summary
/// (`sluice_store::DenialWindow`). A failure to write is logged, and the
/// refusal stands.
pub(crate) async fn audit_denials(
    State(state): State<SharedState>,
    matched: axum::extract::MatchedPath,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = format!("{} {}", request.method(), matched.as_str());
    let console_user = request
        .extensions()
        .get::<ConsoleCaller>()
        .map(|ConsoleCaller(u)| u.id.clone());
    let token = bearer_token(request.headers()).map(str::to_owned);
    let response = next.run(request).await;
    let status = response.status().as_u16();
    if !matches!(status, 401..=404) {
        return response;
    }
    let code = response
        .extensions()
        .get::<ErrorCode>()
        .map_or("unknown", |c| c.as_str());
    let actor = match (console_user, token) {
        (Some(user), _) => user,
        (None, None) => "anonymous".to_owned(),
        (None, Some(token)) => match state.store.user_by_token(&token).await {
            Ok(Some(user)) => user.id,
            _ => sluice_crypto::token_hash(&token)[..12].to_owned(),
        },
    };
    let denial = sluice_store::Denial {
        actor,
        route,
        code: code.to_owned(),
        status,
    };
    state.record_denial(denial).await;
    response
}

/// The bearer token of a request, trimmed; None when absent or malformed.
fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// A role rule that depends on the request's content (a route's own rule
/// is declared with it and enforced by [`gate`]).
pub(crate) fn require(caller: &UserRecord, roles: &[Role], action: &str) -> Result<(), ApiError> {
    if roles.contains(&caller.role) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "role {} may not {action}",
            caller.role.as_str()
        )))
    }
}

/// Whether `caller` may see that `record` exists.
pub(crate) fn visible(caller: &UserRecord, record: &DatasetRecord) -> bool {
    record.entry.open_category != OpenCategory::NotOpen || owns(caller, record)
}

/// Whether `caller` is one of an object's parties (its user ids), or the
/// authority, who sees everything: the rule for applications, agreements
/// and feedback.
pub(crate) fn party_to(caller: &UserRecord, parties: &[&str]) -> bool {
    caller.role == Role::Admin || parties.contains(&caller.id.as_str())
}

/// Whether `caller` provides `record` (or is the authority).
pub(crate) fn owns(caller: &UserRecord, record: &DatasetRecord) -> bool {
    record.owner_id == caller.id || caller.role == Role::Admin
}

pub(crate) async fn find_dataset(
    state: &AppState,
    caller: &UserRecord,
    name: &str,
) -> Result<DatasetRecord, ApiError> {
    state
        .store
        .dataset(name)
        .await?
        .filter(|d| visible(caller, d))
        .ok_or_else(|| ApiError::not_found(&format!("dataset {name}")))
}

/// Whose applications, agreements or feedback a caller's listing shows.
pub(crate) fn party_scope(caller: &UserRecord) -> sluice_store::PartyScope<'_> {
    match caller.role {
        Role::Admin => sluice_store::PartyScope::All,
        Role::Provider => sluice_store::PartyScope::Provider(&caller.id),
        _ => sluice_store::PartyScope::User(&caller.id),
    }
}

/// `?overdue=true`: only items past their deadline.
#[derive(serde::Deserialize)]
pub(crate) struct OverdueQuery {
    #[serde(default)]
    pub overdue: bool,
}

/// A required free-text field, trimmed: 1 to `max` bytes.
pub(crate) fn required_text<'a>(
    field: &str,
    value: &'a str,
    max: usize,
) -> Result<&'a str, ApiError> {
    let v = value.trim();
    if v.is_empty() || v.len() > max {
        return Err(ApiError::bad_request(format!(
            "{field} must be 1 to {max} bytes: it is recorded and shown"
        )));
    }
    Ok(v)
}
