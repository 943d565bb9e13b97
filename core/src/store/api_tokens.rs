//! The `api_tokens` table: names, scopes, repo patterns and hashes of API tokens (never the
//! tokens).
//!
//! Checking a token only reads: a wrong token costs no write, and a right one updates its
//! `last_used_at` at most once per [`LAST_USED_EVERY`].

use super::{Store, StoreError};
use crate::auth::{self, RepoScope, TokenScope};
use std::time::{Duration, SystemTime};
use tokio_postgres::Row;

/// How stale a token's `last_used_at` may get before a call updates it.
const LAST_USED_EVERY: Duration = Duration::from_secs(60);

/// A token as listed: never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub name: String,
    pub scope: TokenScope,
    /// The repos the token may see (every repo unless it was made with `--repos`).
    pub repos: RepoScope,
    pub created_at: SystemTime,
    pub last_used_at: Option<SystemTime>,
    pub revoked_at: Option<SystemTime>,
}

fn token_from_row(row: &Row) -> Result<ApiToken, StoreError> {
    let scope: String = row.get("scope");
    let repos: Vec<String> = row.get("repos");
    Ok(ApiToken {
        name: row.get("name"),
        scope: scope
            .parse()
            .map_err(|e: auth::UnknownScope| StoreError::Corrupt(e.to_string()))?,
        // a pattern that no longer parses fails closed: the token is refused, not widened
        repos: RepoScope::new(&repos).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created_at: row.get("created_at"),
        last_used_at: row.get("last_used_at"),
        revoked_at: row.get("revoked_at"),
    })
}

impl Store {
    /// Creates a token named `name` for every repo; returns the token itself (shown once,
    /// stored hashed).
    pub async fn create_token(&self, name: &str, scope: TokenScope) -> Result<String, StoreError> {
        self.create_scoped_token(name, scope, &RepoScope::all())
            .await
    }

    /// Creates a token named `name` that sees only the repos of `repos`; returns the token
    /// itself (shown once, stored hashed).
    pub async fn create_scoped_token(
        &self,
        name: &str,
        scope: TokenScope,
        repos: &RepoScope,
    ) -> Result<String, StoreError> {
        let token = auth::generate_token()
            .map_err(|e| StoreError::Config(format!("no random numbers: {e}")))?;
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO api_tokens (name, scope, token_hash, repos) VALUES ($1, $2, $3, $4)",
                &[
                    &name,
                    &scope.as_str(),
                    &auth::hash_token(&token),
                    &repos.patterns(),
                ],
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
            .query(
                "SELECT name, scope, repos, created_at, last_used_at, revoked_at
                 FROM api_tokens ORDER BY name",
                &[],
            )
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

    /// The active (not revoked) token with this value. Only reads, unless the token's
    /// `last_used_at` is older than [`LAST_USED_EVERY`]: then it is brought up to date (so a
    /// stream of calls, right or wrong, cannot make a write each).
    pub async fn authenticate(&self, token: &str) -> Result<Option<ApiToken>, StoreError> {
        let client = self.client().await?;
        let stale_after = interval_seconds(LAST_USED_EVERY);
        let Some(row) = client
            .query_opt(
                "SELECT id, name, scope, repos, created_at, last_used_at, revoked_at,
                        (last_used_at IS NULL
                         OR last_used_at < now() - make_interval(secs => $2)) AS stale
                 FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
                &[&auth::hash_token(token), &stale_after],
            )
            .await?
        else {
            return Ok(None);
        };
        let mut found = token_from_row(&row)?;
        if row.get::<_, bool>("stale") {
            let id: i64 = row.get("id");
            // the condition again: of concurrent calls, one writes
            let updated = client
                .query_opt(
                    "UPDATE api_tokens SET last_used_at = now()
                     WHERE id = $1 AND (last_used_at IS NULL
                                        OR last_used_at < now() - make_interval(secs => $2))
                     RETURNING last_used_at",
                    &[&id, &stale_after],
                )
                .await?;
            if let Some(updated) = updated {
                found.last_used_at = updated.get("last_used_at");
            }
        }
        Ok(Some(found))
    }
}

fn interval_seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}
