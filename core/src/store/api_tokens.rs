//! The `api_tokens` table: names, scopes and hashes of API tokens (never the tokens).

use super::{Store, StoreError};
use crate::auth::{self, TokenScope};
use std::time::SystemTime;
use tokio_postgres::Row;

/// A token as listed: never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub name: String,
    pub scope: TokenScope,
    pub created_at: SystemTime,
    pub last_used_at: Option<SystemTime>,
    pub revoked_at: Option<SystemTime>,
}

fn token_from_row(row: &Row) -> Result<ApiToken, StoreError> {
    let scope: String = row.get("scope");
    Ok(ApiToken {
        name: row.get("name"),
        scope: scope
            .parse()
            .map_err(|e: auth::UnknownScope| StoreError::Corrupt(e.to_string()))?,
        created_at: row.get("created_at"),
        last_used_at: row.get("last_used_at"),
        revoked_at: row.get("revoked_at"),
    })
}

impl Store {
    /// Creates a token named `name`; returns the token itself (shown once, stored hashed).
    pub async fn create_token(&self, name: &str, scope: TokenScope) -> Result<String, StoreError> {
        let token = auth::generate_token()
            .map_err(|e| StoreError::Config(format!("no random numbers: {e}")))?;
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO api_tokens (name, scope, token_hash) VALUES ($1, $2, $3)",
                &[&name, &scope.as_str(), &auth::hash_token(&token)],
            )
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("token `{name}` already exists"))
                }
                other => other,
            })?;
        Ok(token)
    }

    pub async fn list_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT name, scope, created_at, last_used_at, revoked_at FROM api_tokens ORDER BY name", &[])
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    pub async fn revoke_token(&self, name: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        let revoked = client
            .execute(
                "UPDATE api_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL",
                &[&name],
            )
            .await?;
        if revoked == 0 {
            return Err(StoreError::NotFound(format!("active token `{name}`")));
        }
        Ok(())
    }

    /// The active (not revoked) token with this value, marking it used.
    pub async fn authenticate(&self, token: &str) -> Result<Option<ApiToken>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "UPDATE api_tokens SET last_used_at = now()
                 WHERE token_hash = $1 AND revoked_at IS NULL
                 RETURNING name, scope, created_at, last_used_at, revoked_at",
                &[&auth::hash_token(token)],
            )
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }
}
