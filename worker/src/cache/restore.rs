//! Restoring one cache: the best saved entry is downloaded to a file next to the
//! workspaces (hashed on the way), checked against its recorded SHA-256, then unpacked into
//! the workspace. A missing or corrupt object is a miss (a corrupt entry is deleted, so that
//! this build saves a good one); nothing here fails the build.

use super::{CacheJob, CacheScope, PlannedCache, human_bytes, seconds};
use crate::attempt_log::{AttemptLog, SETUP_STAGE};
use futures::StreamExt;
use ocelot_core::store::{CacheHit, CacheLookup};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::{Instant, SystemTime};
use tokio::io::AsyncWriteExt;

/// Restores `plan`'s cache; `true` when the key itself was found and unpacked (nothing to
/// save after the build).
pub(super) async fn restore(
    job: &CacheJob<'_>,
    scope: &CacheScope,
    plan: &PlannedCache,
    log: &mut AttemptLog,
) -> bool {
    let started = Instant::now();
    let lookup = CacheLookup {
        repo_id: job.build.repo_id,
        from_fork: scope.from_fork,
        scopes: &scope.read,
        key: &plan.key,
        restore_prefixes: &plan.restore_prefixes,
    };
    let hit = match job.context.store.find_cache(&lookup).await {
        Ok(Some(hit)) => hit,
        Ok(None) => {
            log.system(
                SETUP_STAGE,
                format!(
                    "cache `{}`: miss (no saved cache has the key{}) in {}",
                    plan.key,
                    if plan.restore_prefixes.is_empty() {
                        String::new()
                    } else {
                        format!(" or starts with {}", quoted(&plan.restore_prefixes))
                    },
                    seconds(started.elapsed())
                ),
            )
            .await;
            return false;
        }
        Err(error) => {
            log.system(
                SETUP_STAGE,
                format!(
                    "cache `{}`: miss: the caches could not be read ({error})",
                    plan.key
                ),
            )
            .await;
            return false;
        }
    };
    match fetch_and_unpack(job, &hit).await {
        Ok(()) => {
            let expires_at = SystemTime::now() + job.context.cache_settings.cache_expire_in;
            if let Err(error) = job
                .context
                .store
                .touch_cache(hit.entry.id, expires_at)
                .await
            {
                tracing::warn!(%error, "marking a cache as used");
            }
            let how = match &hit.prefix {
                None if hit.entry.scope == scope.own => "hit".to_string(),
                None => format!("hit, saved by branch {}", hit.entry.scope),
                Some(prefix) => format!(
                    "miss; restored `{}` (restore key `{prefix}`, branch {})",
                    hit.entry.key, hit.entry.scope
                ),
            };
            log.system(
                SETUP_STAGE,
                format!(
                    "cache `{}`: {how}: {} restored in {}",
                    plan.key,
                    human_bytes(hit.entry.size),
                    seconds(started.elapsed())
                ),
            )
            .await;
            hit.prefix.is_none()
        }
        Err(Unusable { why, corrupt }) => {
            if corrupt && let Err(error) = job.context.store.delete_cache(hit.entry.id).await {
                tracing::warn!(%error, "deleting a corrupt cache entry");
            }
            log.system(
                SETUP_STAGE,
                format!(
                    "cache `{}`: miss: the saved cache `{}` {why}",
                    plan.key, hit.entry.key
                ),
            )
            .await;
            false
        }
    }
}

/// Why a found entry was not restored.
struct Unusable {
    why: String,
    /// The object is missing or damaged: the entry goes.
    corrupt: bool,
}

/// Downloads the entry's object, checks it, and unpacks it into the workspace.
async fn fetch_and_unpack(job: &CacheJob<'_>, hit: &CacheHit) -> Result<(), Unusable> {
    let download = tempfile::Builder::new()
        .prefix("cache-")
        .tempfile_in(&job.context.workspaces)
        .map_err(|e| Unusable {
            why: format!("could not be downloaded (no temporary file: {e})"),
            corrupt: false,
        })?;
    let sha256 = download_to(job, &hit.entry.object_key, download.path()).await?;
    if sha256 != hit.entry.sha256 {
        return Err(Unusable {
            why: format!(
                "is corrupt (its SHA-256 is {sha256}, {} was saved): deleted; this build saves a new one",
                hit.entry.sha256
            ),
            corrupt: true,
        });
    }
    job.environment
        .unpack_into_workspace(download.path())
        .await
        .map_err(|error| Unusable {
            why: format!("could not be unpacked into the workspace: {error}"),
            corrupt: false,
        })
}

/// Streams the object `key` into the file `path`; its SHA-256.
async fn download_to(job: &CacheJob<'_>, key: &str, path: &Path) -> Result<String, Unusable> {
    let reader = job
        .context
        .storage
        .get(key)
        .await
        .map_err(|error| Unusable {
            why: format!("could not be read from the storage ({error}): deleted"),
            corrupt: matches!(error, ocelot_core::storage::StorageError::NotFound(_)),
        })?;
    let mut file = tokio::fs::File::create(path).await.map_err(|e| Unusable {
        why: format!("could not be downloaded: {e}"),
        corrupt: false,
    })?;
    let mut hasher = Sha256::new();
    let mut stream = reader.stream;
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|error| Unusable {
            why: format!("could not be read from the storage ({error})"),
            corrupt: false,
        })?;
        hasher.update(&piece);
        file.write_all(&piece).await.map_err(|e| Unusable {
            why: format!("could not be downloaded: {e}"),
            corrupt: false,
        })?;
    }
    file.flush().await.map_err(|e| Unusable {
        why: format!("could not be downloaded: {e}"),
        corrupt: false,
    })?;
    Ok(hex::encode(hasher.finalize()))
}

fn quoted(prefixes: &[String]) -> String {
    prefixes
        .iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(" or ")
}
