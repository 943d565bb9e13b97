//! The `repos` table.

use super::{Store, StoreError};
use crate::model::Repo;
use tokio_postgres::Row;

const COLUMNS: &str = "id, name, url, default_branch, created_at";

fn repo_from_row(row: &Row) -> Repo {
    Repo {
        id: row.get("id"),
        name: row.get("name"),
        url: row.get("url"),
        default_branch: row.get("default_branch"),
        created_at: row.get("created_at"),
    }
}

/// A URL reduced to what identifies a repository: no trailing `/` or `.git`.
pub fn normalize_url(url: &str) -> &str {
    let trimmed = url.trim().trim_end_matches('/');
    trimmed.strip_suffix(".git").unwrap_or(trimmed)
}

impl Store {
    pub async fn add_repo(
        &self,
        name: &str,
        url: &str,
        default_branch: &str,
    ) -> Result<Repo, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO repos (name, url, default_branch) VALUES ($1, $2, $3) RETURNING {COLUMNS}"
                ),
                &[&name, &url, &default_branch],
            )
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("repo `{name}` already exists")),
                other => other,
            })?;
        Ok(repo_from_row(&row))
    }

    pub async fn list_repos(&self) -> Result<Vec<Repo>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(&format!("SELECT {COLUMNS} FROM repos ORDER BY name"), &[])
            .await?;
        Ok(rows.iter().map(repo_from_row).collect())
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
            return Ok(repo_from_row(&row));
        }
        let wanted = normalize_url(name_or_url);
        let rows = client
            .query(&format!("SELECT {COLUMNS} FROM repos"), &[])
            .await?;
        rows.iter()
            .map(repo_from_row)
            .find(|repo| normalize_url(&repo.url) == wanted)
            .ok_or_else(|| StoreError::NotFound(format!("repo `{name_or_url}`")))
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

#[cfg(test)]
mod tests {
    use super::normalize_url;

    #[test]
    fn urls_compare_without_trailing_git_or_slash() {
        assert_eq!(normalize_url("git://h/r.git"), "git://h/r");
        assert_eq!(normalize_url("git://h/r/"), "git://h/r");
        assert_eq!(normalize_url(" https://h/r "), "https://h/r");
    }
}
