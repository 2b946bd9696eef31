//! Users and their bearer tokens: only a token's hash is stored.

use serde::{Deserialize, Serialize};
use sluice_types::Role;
use sluice_types::time::now_rfc3339;
use sqlx::Row;

use crate::{Store, StoreError, audit, commit, corrupt};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: String,
}

pub(crate) fn user_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<UserRecord, StoreError> {
    let role: String = row.get("role");
    Ok(UserRecord {
        id: row.get("id"),
        name: row.get("name"),
        role: Role::parse(&role).ok_or_else(|| corrupt(format!("role {role}")))?,
        created_at: row.get("created_at"),
    })
}

impl Store {
    pub async fn user_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    /// Creates a user; returns the record and its bearer token (shown once;
    /// only its hash is stored).
    pub async fn create_user(
        &self,
        actor: &str,
        name: &str,
        role: Role,
    ) -> Result<(UserRecord, String), StoreError> {
        let id = sluice_crypto::random_id("usr");
        let (token, hash) = sluice_crypto::new_token();
        let now = now_rfc3339();
        let mut tx = self.write().await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(StoreError::Conflict(format!("user {name}")));
        }
        audit::append(
            &mut tx,
            actor,
            "user.create",
            &id,
            &serde_json::json!({"name": name, "role": role.as_str()}),
        )
        .await?;
        sqlx::query(
            "INSERT INTO users (id, name, role, token_hash, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(name)
        .bind(role.as_str())
        .bind(&hash)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        commit(tx).await?;
        Ok((
            UserRecord {
                id,
                name: name.to_owned(),
                role,
                created_at: now,
            },
            token,
        ))
    }

    /// Every user, oldest first.
    pub async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let rows =
            sqlx::query("SELECT id, name, role, created_at FROM users ORDER BY created_at, id")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// The user whose `column` (a unique one) holds `value`.
    async fn user_where(
        &self,
        column: &str,
        value: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let sql = format!("SELECT id, name, role, created_at FROM users WHERE {column} = ?");
        let row = sqlx::query(&sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn user_by_token(&self, token: &str) -> Result<Option<UserRecord>, StoreError> {
        self.user_where("token_hash", &sluice_crypto::token_hash(token))
            .await
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        self.user_where("id", id).await
    }

    pub async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        self.user_where("name", name).await
    }
}
