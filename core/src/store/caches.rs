//! The `caches` table: the saved caches of each repo, by scope and key (the bytes are the
//! object `object_key`), and the lookup that picks which one a build restores: its key in
//! its own scope, then the longest matching restore prefix there, then the same in the
//! default branch's scope; never a fork's entry for another build (see `V15__caches.sql`).

use super::{Store, StoreError};
use crate::ids::{BuildId, RepoId};
use std::time::SystemTime;

/// One saved cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub id: i64,
    pub repo_id: RepoId,
    /// The branch that saved it (`pr-N` for a fork's pull request).
    pub scope: String,
    pub from_fork: bool,
    pub key: String,
    pub size: u64,
    /// Lower-case hex SHA-256 of the object.
    pub sha256: String,
    pub object_key: String,
    /// The build that saved it, while that build exists.
    pub build_id: Option<BuildId>,
    pub created_at: SystemTime,
    pub used_at: SystemTime,
    pub expires_at: SystemTime,
}

/// A cache just uploaded, to be recorded.
#[derive(Debug, Clone)]
pub struct NewCache<'a> {
    pub repo_id: RepoId,
    pub scope: &'a str,
    pub from_fork: bool,
    pub key: &'a str,
    pub size: u64,
    pub sha256: &'a str,
    pub object_key: &'a str,
    pub build_id: BuildId,
    pub expires_at: SystemTime,
}

/// What a build looks for.
#[derive(Debug, Clone)]
pub struct CacheLookup<'a> {
    pub repo_id: RepoId,
    /// The build is a fork's pull request: only its own scope's fork entries are read.
    pub from_fork: bool,
    /// The scopes to read, in order of preference (the build's own, then the default
    /// branch's).
    pub scopes: &'a [String],
    pub key: &'a str,
    /// Prefixes to fall back to (`restore_keys`).
    pub restore_prefixes: &'a [String],
}

/// The entry a lookup found, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheHit {
    pub entry: CacheEntry,
    /// `None`: the key itself; `Some(prefix)`: the restore prefix that matched.
    pub prefix: Option<String>,
}

impl CacheHit {
    /// The key itself, in the build's own scope: nothing is saved after the build.
    pub fn is_exact_in(&self, scope: &str) -> bool {
        self.prefix.is_none() && self.entry.scope == scope
    }
}

const COLUMNS: &str = "id, repo_id, scope, from_fork, key, size, sha256, object_key, build_id, \
                       created_at, used_at, expires_at";

/// The most candidates a lookup reads (the newest first).
const MAX_CANDIDATES: i64 = 500;

fn entry_from_row(row: &tokio_postgres::Row) -> Result<CacheEntry, StoreError> {
    let size: i64 = row.get("size");
    let build_id: Option<i64> = row.get("build_id");
    Ok(CacheEntry {
        id: row.get("id"),
        repo_id: RepoId::from_db(row.get("repo_id"))?,
        scope: row.get("scope"),
        from_fork: row.get("from_fork"),
        key: row.get("key"),
        size: u64::try_from(size).map_err(|_| StoreError::Corrupt(format!("cache size {size}")))?,
        sha256: row.get("sha256"),
        object_key: row.get("object_key"),
        build_id: build_id.map(BuildId::from_db).transpose()?,
        created_at: row.get("created_at"),
        used_at: row.get("used_at"),
        expires_at: row.get("expires_at"),
    })
}

/// Picks the entry to restore among `candidates` (newest first): the key itself in each
/// scope in the lookup's order, then each restore prefix, longest first, in each scope (the
/// newest entry it matches). Only entries of the lookup's kind (fork or not) count.
pub(super) fn best_cache(
    candidates: Vec<CacheEntry>,
    lookup: &CacheLookup<'_>,
) -> Option<CacheHit> {
    let mut prefixes: Vec<&String> = lookup
        .restore_prefixes
        .iter()
        .filter(|p| !p.is_empty())
        .collect();
    // longest first; a stable sort keeps the file's order between equal lengths
    prefixes.sort_by_key(|p| std::cmp::Reverse(p.len()));
    let matchers = std::iter::once(None).chain(prefixes.into_iter().map(Some));
    for prefix in matchers {
        for scope in lookup.scopes {
            let found = candidates.iter().find(|entry| {
                entry.scope == *scope
                    && entry.from_fork == lookup.from_fork
                    && match prefix {
                        None => entry.key == lookup.key,
                        Some(prefix) => entry.key.starts_with(prefix.as_str()),
                    }
            });
            if let Some(entry) = found {
                return Some(CacheHit {
                    entry: entry.clone(),
                    prefix: prefix.cloned(),
                });
            }
        }
    }
    None
}

fn size_to_db(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

impl Store {
    /// The entry a build restores, if any (see [`best_cache`]).
    pub async fn find_cache(
        &self,
        lookup: &CacheLookup<'_>,
    ) -> Result<Option<CacheHit>, StoreError> {
        let client = self.client().await?;
        let prefixes: Vec<&str> = lookup
            .restore_prefixes
            .iter()
            .map(String::as_str)
            .filter(|p| !p.is_empty())
            .collect();
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM caches
                     WHERE repo_id = $1 AND from_fork = $2 AND scope = ANY($3)
                       AND (key = $4 OR EXISTS (
                           SELECT 1 FROM unnest($5::text[]) AS p WHERE starts_with(key, p)))
                     ORDER BY created_at DESC, id DESC LIMIT $6"
                ),
                &[
                    &lookup.repo_id.to_db(),
                    &lookup.from_fork,
                    &lookup.scopes,
                    &lookup.key,
                    &prefixes,
                    &MAX_CANDIDATES,
                ],
            )
            .await?;
        let candidates = rows
            .iter()
            .map(entry_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(best_cache(candidates, lookup))
    }

    /// Whether the key is saved in that scope already.
    pub async fn cache_exists(
        &self,
        repo_id: RepoId,
        from_fork: bool,
        scope: &str,
        key: &str,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT 1 FROM caches WHERE repo_id = $1 AND from_fork = $2 AND scope = $3 AND key = $4",
                &[&repo_id.to_db(), &from_fork, &scope, &key],
            )
            .await?;
        Ok(row.is_some())
    }

    /// Marks an entry as restored now; it expires at `expires_at` unless used again.
    pub async fn touch_cache(&self, id: i64, expires_at: SystemTime) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE caches SET used_at = now(), expires_at = GREATEST(expires_at, $2) WHERE id = $1",
                &[&id, &expires_at],
            )
            .await?;
        Ok(())
    }

    /// Records an uploaded cache: `false` when another build saved the key in that scope
    /// first (the caller deletes its own object).
    pub async fn record_cache(&self, cache: &NewCache<'_>) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "INSERT INTO caches (repo_id, scope, from_fork, key, size, sha256, object_key, build_id, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (repo_id, from_fork, scope, key) DO NOTHING
                 RETURNING id",
                &[
                    &cache.repo_id.to_db(),
                    &cache.scope,
                    &cache.from_fork,
                    &cache.key,
                    &size_to_db(cache.size),
                    &cache.sha256,
                    &cache.object_key,
                    &cache.build_id.to_db(),
                    &cache.expires_at,
                ],
            )
            .await?;
        Ok(row.is_some())
    }

    /// The caches of a repo, by scope and key.
    pub async fn caches(&self, repo_id: RepoId) -> Result<Vec<CacheEntry>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM caches WHERE repo_id = $1 ORDER BY from_fork, scope, key"
                ),
                &[&repo_id.to_db()],
            )
            .await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// Deletes a repo's caches (those whose key starts with `key_prefix` and, when given,
    /// of one scope); their objects are queued for deletion. Returns how many.
    pub async fn clear_caches(
        &self,
        repo_id: RepoId,
        key_prefix: &str,
        scope: Option<&str>,
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        Ok(client
            .execute(
                "DELETE FROM caches WHERE repo_id = $1 AND starts_with(key, $2)
                   AND ($3::text IS NULL OR scope = $3)",
                &[&repo_id.to_db(), &key_prefix, &scope],
            )
            .await?)
    }

    /// Deletes one entry (its object is queued for deletion).
    pub async fn delete_cache(&self, id: i64) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM caches WHERE id = $1", &[&id])
            .await?;
        Ok(())
    }

    /// Deletes the caches that expired before `now`; returns how many.
    pub async fn expire_caches(&self, now: SystemTime) -> Result<u64, StoreError> {
        let client = self.client().await?;
        Ok(client
            .execute("DELETE FROM caches WHERE expires_at <= $1", &[&now])
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(id: i64, scope: &str, from_fork: bool, key: &str) -> CacheEntry {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1000 - id as u64);
        CacheEntry {
            id,
            repo_id: RepoId::from_db(1).unwrap(),
            scope: scope.to_string(),
            from_fork,
            key: key.to_string(),
            size: 1,
            sha256: String::new(),
            object_key: format!("o{id}"),
            build_id: None,
            created_at: at,
            used_at: at,
            expires_at: at,
        }
    }

    fn pick(
        candidates: Vec<CacheEntry>,
        from_fork: bool,
        key: &str,
        prefixes: &[&str],
    ) -> Option<(i64, Option<String>)> {
        let scopes = vec!["feature".to_string(), "main".to_string()];
        let prefixes: Vec<String> = prefixes.iter().map(|p| p.to_string()).collect();
        let lookup = CacheLookup {
            repo_id: RepoId::from_db(1).unwrap(),
            from_fork,
            scopes: &scopes,
            key,
            restore_prefixes: &prefixes,
        };
        best_cache(candidates, &lookup).map(|hit| (hit.entry.id, hit.prefix))
    }

    #[test]
    fn the_key_beats_prefixes_and_the_longest_prefix_wins() {
        // newest first, as the query orders them
        let candidates = vec![
            entry(1, "feature", false, "cargo-zzz"),
            entry(2, "feature", false, "cargo-linux-old"),
            entry(3, "main", false, "cargo-linux-abc"),
        ];
        // the key itself, even in the default branch's scope, beats a prefix in the own one
        assert_eq!(
            pick(candidates.clone(), false, "cargo-linux-abc", &["cargo-"]),
            Some((3, None))
        );
        // the longest prefix wins, whatever order the file lists them in
        assert_eq!(
            pick(
                candidates.clone(),
                false,
                "cargo-linux-new",
                &["cargo-", "cargo-linux-"]
            ),
            Some((2, Some("cargo-linux-".to_string())))
        );
        // a prefix: the own scope's newest match first
        assert_eq!(
            pick(candidates.clone(), false, "cargo-mac", &["cargo-"]),
            Some((1, Some("cargo-".to_string())))
        );
        // the default branch's as the last resort
        assert_eq!(
            pick(
                vec![entry(3, "main", false, "cargo-linux-abc")],
                false,
                "cargo-x",
                &["cargo-"]
            ),
            Some((3, Some("cargo-".to_string())))
        );
        assert_eq!(pick(candidates, false, "npm-1", &["npm-"]), None);
    }

    #[test]
    fn a_fork_entry_is_never_read_by_another_kind_of_build() {
        let candidates = vec![entry(1, "feature", true, "k")];
        assert_eq!(pick(candidates.clone(), false, "k", &["k"]), None);
        assert_eq!(pick(candidates, true, "k", &[]), Some((1, None)));
        let protected = vec![entry(2, "main", false, "k")];
        assert_eq!(pick(protected, true, "k", &["k"]), None);
    }
}
