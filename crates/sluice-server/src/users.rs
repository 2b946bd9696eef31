//! Accounts: who the caller is, creating users (admin), the platform's
//! public key.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use sluice_store::UserRecord;
use sluice_types::api::{CreateUser, CreatedUser, PublicKey, UserView};

use crate::SharedState;
use crate::access::Caller;
use crate::error::{ApiError, ApiJson};

pub(crate) fn user_view(u: &UserRecord) -> UserView {
    UserView {
        id: u.id.clone(),
        name: u.name.clone(),
        role: u.role,
    }
}

pub(crate) async fn public_key(State(state): State<SharedState>) -> Json<PublicKey> {
    Json(PublicKey {
        key_id: state.keys.key_id(),
        public_key_hex: state.keys.public_key_hex(),
    })
}

pub(crate) async fn me(Caller(caller): Caller) -> Json<UserView> {
    Json(user_view(&caller))
}

pub(crate) async fn list_users(
    State(state): State<SharedState>,
) -> Result<Json<Vec<UserView>>, ApiError> {
    Ok(Json(
        state.store.users().await?.iter().map(user_view).collect(),
    ))
}

pub(crate) async fn create_user(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    ApiJson(req): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<CreatedUser>), ApiError> {
    let name = sluice_types::text::check_name(&req.name, sluice_types::text::MAX_USER_NAME_BYTES)
        .map_err(|e| ApiError::bad_request(format!("user name {e}")))?;
    let (user, token) = state.store.create_user(&caller.id, name, req.role).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            user: user_view(&user),
            token,
        }),
    ))
}
