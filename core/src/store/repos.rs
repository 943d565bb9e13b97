//! The `repos` table.

use super::webhook_secrets::{SECRET_COLUMNS, stored_from_row};
use super::{SealedWebhookSecret, StoredWebhookSecret};
use super::{Store, StoreError};
use crate::ids::RepoId;
use crate::model::Repo;
use ocelot_domain::repo_url::normalize_url;
use tokio_postgres::Row;

const COLUMNS: &str = "id, name, url, default_branch, secrets_for_forks, allow_host, forge, forge_api_url, created_at";

fn repo_from_row(row: &Row) -> Result<Repo, StoreError> {
    Ok(Repo {
        id: RepoId::from_db(row.get("id"))?,
        name: row.get("name"),
        url: row.get("url"),
        default_branch: row.get("default_branch"),
        secrets_for_forks: row.get("secrets_for_forks"),
        allow_host: row.get("allow_host"),
        forge: row.get("forge"),
        forge_api_url: row.get("forge_api_url"),
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

    /// Whether builds of the repo that name no image may run on `--executor host` workers.
    pub async fn set_repo_allow_host(&self, name: &str, allowed: bool) -> Result<Repo, StoreError> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("UPDATE repos SET allow_host = $2 WHERE name = $1 RETURNING {COLUMNS}"),
                &[&name, &allowed],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("repo `{name}`")))
            .and_then(|row| repo_from_row(&row))
    }

    /// The forge of the repo named `name` and its API's base URL (`None`: from the URL's host,
    /// the forge's public API).
    pub async fn set_repo_forge(
        &self,
        name: &str,
        forge: Option<&str>,
        api_url: Option<&str>,
    ) -> Result<Repo, StoreError> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!(
                    "UPDATE repos SET forge = $2, forge_api_url = $3 WHERE name = $1
                     RETURNING {COLUMNS}"
                ),
                &[&name, &forge, &api_url],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("repo `{name}`")))
            .and_then(|row| repo_from_row(&row))
    }

    /// Whether an admin let the repo's builds run on `--executor host` workers (read when a
    /// build opens its environment, so turning it off applies to queued builds too).
    pub async fn repo_allows_host(&self, id: RepoId) -> Result<bool, StoreError> {
        let client = self.client().await?;
        client
            .query_opt("SELECT allow_host FROM repos WHERE id = $1", &[&id.get()])
            .await?
            .map(|row| row.get::<_, bool>("allow_host"))
            .ok_or_else(|| StoreError::NotFound(format!("repo {}", id.get())))
    }

    pub async fn add_repo(
        &self,
        name: &str,
        url: &str,
        default_branch: &str,
        webhook_secret: Option<&SealedWebhookSecret>,
    ) -> Result<Repo, StoreError> {
        let client = self.client().await?;
        let (key_id, nonce, ciphertext) = match webhook_secret {
            Some(sealed) => (
                Some(sealed.key_id.as_str()),
                Some(sealed.nonce.as_slice()),
                Some(sealed.ciphertext.as_slice()),
            ),
            None => (None, None, None),
        };
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO repos (name, url, default_branch, webhook_key_id, webhook_nonce,
                                        webhook_ciphertext)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     RETURNING {COLUMNS}"
                ),
                &[&name, &url, &default_branch, &key_id, &nonce, &ciphertext],
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
    /// `owner/repo`, at the end of a registered URL), with its webhook secret. Cheap enough
    /// for unauthenticated requests: Postgres returns only the repos whose URL contains the
    /// last part of a name or URL given, and those are compared here.
    pub async fn find_repo_for_hook(
        &self,
        full_name: Option<&str>,
        urls: &[String],
    ) -> Result<(Repo, Option<StoredWebhookSecret>), StoreError> {
        let not_found = || {
            StoreError::NotFound(format!(
                "repo {} (no registered repo has this URL or name)",
                full_name.unwrap_or_else(|| urls.first().map(String::as_str).unwrap_or("?"))
            ))
        };
        let patterns = hook_candidate_patterns(full_name, urls);
        if patterns.is_empty() {
            return Err(not_found());
        }
        let client = self.client().await?;
        // every webhook delivery asks: prepared once per connection
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS}, {SECRET_COLUMNS} FROM repos
                 WHERE lower(url) LIKE ANY($1) ORDER BY id"
            ))
            .await?;
        let rows = client.query(&statement, &[&patterns]).await?;
        let candidates: Vec<(Repo, Option<StoredWebhookSecret>)> = rows
            .iter()
            .map(|row| Ok((repo_from_row(row)?, stored_from_row(row))))
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
        by_url.or_else(by_name).cloned().ok_or_else(not_found)
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

/// `LIKE` patterns (lowercase) that every registered URL a webhook may mean matches: it
/// contains the last part of the payload's full name or of one of its URLs. A superset, for
/// the exact comparison to narrow.
fn hook_candidate_patterns(full_name: Option<&str>, urls: &[String]) -> Vec<String> {
    let mut patterns: Vec<String> = Vec::new();
    let names = full_name.into_iter().chain(urls.iter().map(String::as_str));
    for name in names {
        let last = normalize_url(name)
            .rsplit(['/', ':'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if last.is_empty() {
            continue;
        }
        let escaped: String = last
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        let pattern = format!("%{escaped}%");
        if !patterns.contains(&pattern) {
            patterns.push(pattern);
        }
    }
    patterns
}

#[cfg(test)]
mod tests {
    use super::hook_candidate_patterns;

    #[test]
    fn hook_lookups_match_on_the_last_part_of_names_and_urls_escaped() {
        let urls = vec![
            "https://github.com/Team/App.git".to_string(),
            "git@github.com:team/app.git".to_string(),
            "https://h/".to_string(),
        ];
        assert_eq!(
            hook_candidate_patterns(Some("team/my_app%"), &urls),
            vec![
                "%my\\_app\\%%".to_string(),
                "%app%".to_string(),
                "%h%".to_string()
            ]
        );
        assert!(hook_candidate_patterns(None, &[]).is_empty());
        assert!(hook_candidate_patterns(Some("/"), &[]).is_empty());
    }
}
