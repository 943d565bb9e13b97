//! The `repos` table.

use super::{Store, StoreError};
use crate::ids::RepoId;
use crate::model::Repo;
use ocelot_domain::repo_url::normalize_url;
use tokio_postgres::Row;

const COLUMNS: &str = "id, name, url, default_branch, secrets_for_forks, created_at";

fn repo_from_row(row: &Row) -> Result<Repo, StoreError> {
    Ok(Repo {
        id: RepoId::from_db(row.get("id"))?,
        name: row.get("name"),
        url: row.get("url"),
        default_branch: row.get("default_branch"),
        secrets_for_forks: row.get("secrets_for_forks"),
        created_at: row.get("created_at"),
    })
}

impl Store {
    /// Whether builds of pull requests from forks get the repo's build secrets.
    pub async fn set_repo_secrets_for_forks(
        &self,
        name: &str,
        allowed: bool,
    ) -> Result<Repo, StoreError> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!(
                    "UPDATE repos SET secrets_for_forks = $2 WHERE name = $1 RETURNING {COLUMNS}"
                ),
                &[&name, &allowed],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("repo `{name}`")))
            .and_then(|row| repo_from_row(&row))
    }

    pub async fn add_repo(
        &self,
        name: &str,
        url: &str,
        default_branch: &str,
        webhook_secret: Option<&str>,
    ) -> Result<Repo, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO repos (name, url, default_branch, webhook_secret) VALUES ($1, $2, $3, $4)
                     RETURNING {COLUMNS}"
                ),
                &[&name, &url, &default_branch, &webhook_secret],
            )
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("repo `{name}` already exists"))
                }
                other => other,
            })?;
        repo_from_row(&row)
    }

    /// The repo a webhook payload names (by one of its URLs, else by its full name, e.g.
    /// `owner/repo`, at the end of a registered URL), with its webhook secret.
    pub async fn find_repo_for_hook(
        &self,
        full_name: Option<&str>,
        urls: &[String],
    ) -> Result<(Repo, Option<String>), StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {COLUMNS}, webhook_secret FROM repos ORDER BY id"),
                &[],
            )
            .await?;
        let candidates: Vec<(Repo, Option<String>)> = rows
            .iter()
            .map(|row| Ok((repo_from_row(row)?, row.get("webhook_secret"))))
            .collect::<Result<_, StoreError>>()?;
        let wanted: Vec<String> = urls
            .iter()
            .map(|u| normalize_url(u).to_ascii_lowercase())
            .collect();
        let by_url = candidates
            .iter()
            .find(|(repo, _)| wanted.contains(&normalize_url(&repo.url).to_ascii_lowercase()));
        let by_name = || {
            let name = full_name?.trim_matches('/').to_ascii_lowercase();
            if name.is_empty() {
                return None;
            }
            candidates.iter().find(|(repo, _)| {
                let url = normalize_url(&repo.url).to_ascii_lowercase();
                url.ends_with(&format!("/{name}")) || url.ends_with(&format!(":{name}"))
            })
        };
        by_url.or_else(by_name).cloned().ok_or_else(|| {
            StoreError::NotFound(format!(
                "repo {} (no registered repo has this URL or name)",
                full_name.unwrap_or_else(|| urls.first().map(String::as_str).unwrap_or("?"))
            ))
        })
    }

    pub async fn list_repos(&self) -> Result<Vec<Repo>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(&format!("SELECT {COLUMNS} FROM repos ORDER BY name"), &[])
            .await?;
        rows.iter().map(repo_from_row).collect()
    }

    /// Finds a repo by its name, or by its URL (ignoring a trailing `/` or `.git`).
    pub async fn find_repo(&self, name_or_url: &str) -> Result<Repo, StoreError> {
        let client = self.client().await?;
        if let Some(row) = client
            .query_opt(
                &format!("SELECT {COLUMNS} FROM repos WHERE name = $1"),
                &[&name_or_url],
            )
            .await?
        {
            return repo_from_row(&row);
        }
        let wanted = normalize_url(name_or_url);
        let rows = client
            .query(&format!("SELECT {COLUMNS} FROM repos"), &[])
            .await?;
        for row in &rows {
            let repo = repo_from_row(row)?;
            if normalize_url(&repo.url) == wanted {
                return Ok(repo);
            }
        }
        Err(StoreError::NotFound(format!("repo `{name_or_url}`")))
    }

    /// Removes a repo and, with it, its builds and logs.
    pub async fn remove_repo(&self, name: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        let removed = client
            .execute("DELETE FROM repos WHERE name = $1", &[&name])
            .await?;
        if removed == 0 {
            return Err(StoreError::NotFound(format!("repo `{name}`")));
        }
        Ok(())
    }
}
