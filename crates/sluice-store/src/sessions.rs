//! Console sessions: created by signing in with a token, ended by signing
//! out or by expiry. Only the session cookie's hash is stored.

use sluice_types::time::{now_rfc3339, now_unix};
use sqlx::Row;

use crate::users::{UserRecord, user_from_row};
use crate::{Store, StoreError, audit, commit};

/// A signed-in browser: who, and the token its forms must carry.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: UserRecord,
    pub csrf_token: String,
    pub expires_at: i64,
}

impl Store {
    /// Starts a session for `user` lasting `ttl_secs`; returns the cookie
    /// value (shown once) and the session.
    pub async fn create_session(
        &self,
        user: &UserRecord,
        ttl_secs: i64,
    ) -> Result<(String, Session), StoreError> {
        let (cookie, hash) = sluice_crypto::new_token();
        let (csrf_token, _) = sluice_crypto::new_token();
        let now = now_unix();
        let expires_at = now + ttl_secs;
        let mut tx = self.write().await?;
        audit::append(
            &mut tx,
            &user.id,
            "session.start",
            &user.id,
            &serde_json::json!({"expires_at": sluice_types::time::rfc3339(expires_at)}),
        )
        .await?;
        // Expired sessions go as new ones come: the table stays small.
        sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&hash)
        .bind(&user.id)
        .bind(&csrf_token)
        .bind(now_rfc3339())
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        commit(tx).await?;
        Ok((
            cookie,
            Session {
                user: user.clone(),
                csrf_token,
                expires_at,
            },
        ))
    }

    /// The live session whose cookie is `cookie`, with its user.
    pub async fn session(&self, cookie: &str) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(
            "SELECT u.id, u.name, u.role, u.created_at, s.csrf_token, s.expires_at
             FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = ? AND s.expires_at > ?",
        )
        .bind(sluice_crypto::token_hash(cookie))
        .bind(now_unix())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(Session {
                user: user_from_row(&row)?,
                csrf_token: row.get("csrf_token"),
                expires_at: row.get("expires_at"),
            })
        })
        .transpose()
    }

    /// Ends the session whose cookie is `cookie`; false when there was none.
    pub async fn end_session(&self, cookie: &str) -> Result<bool, StoreError> {
        let hash = sluice_crypto::token_hash(cookie);
        let mut tx = self.write().await?;
        let user: Option<String> =
            sqlx::query_scalar("SELECT user_id FROM sessions WHERE token_hash = ?")
                .bind(&hash)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(user) = user else {
            return Ok(false);
        };
        audit::append(&mut tx, &user, "session.end", &user, &serde_json::json!({})).await?;
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
        commit(tx).await?;
        Ok(true)
    }
}
