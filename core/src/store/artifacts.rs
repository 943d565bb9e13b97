//! The `artifacts` table: what a build kept in the object storage (its bytes are the object
//! `object_key`), and the queue of objects whose rows are gone (filled by a trigger, see
//! `V14__artifacts.sql`) for the admin's retention task to delete from the storage.

use super::{Store, StoreError};
use crate::ids::{Attempt, BuildId};
use std::time::SystemTime;

/// One stored artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub build_id: BuildId,
    pub attempt: Attempt,
    /// The stage that kept it.
    pub stage: String,
    /// Its path relative to the workspace, `/`-separated.
    pub path: String,
    pub size: u64,
    /// Lower-case hex SHA-256 of its bytes.
    pub sha256: String,
    pub object_key: String,
    pub created_at: SystemTime,
    pub expires_at: Option<SystemTime>,
}

/// An artifact just uploaded, to be recorded.
#[derive(Debug, Clone)]
pub struct NewArtifact<'a> {
    pub build_id: BuildId,
    pub attempt: Attempt,
    pub stage: &'a str,
    pub path: &'a str,
    pub size: u64,
    pub sha256: &'a str,
    pub object_key: &'a str,
    pub expires_at: Option<SystemTime>,
}

fn size_to_db(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

fn artifact_from_row(row: &tokio_postgres::Row) -> Result<Artifact, StoreError> {
    let size: i64 = row.get("size");
    Ok(Artifact {
        build_id: BuildId::from_db(row.get("build_id"))?,
        attempt: Attempt::from_db(row.get("attempt"))?,
        stage: row.get("stage"),
        path: row.get("path"),
        size: u64::try_from(size)
            .map_err(|_| StoreError::Corrupt(format!("artifact size {size}")))?,
        sha256: row.get("sha256"),
        object_key: row.get("object_key"),
        created_at: row.get("created_at"),
        expires_at: row.get("expires_at"),
    })
}

const COLUMNS: &str =
    "build_id, attempt, stage, path, size, sha256, object_key, created_at, expires_at";

impl Store {
    /// Records an uploaded artifact; one of the same build and path (an earlier stage's or
    /// attempt's) is replaced, its object queued for deletion.
    pub async fn record_artifact(&self, artifact: &NewArtifact<'_>) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO artifacts (build_id, attempt, stage, path, size, sha256, object_key, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (build_id, path) DO UPDATE SET
                     attempt = EXCLUDED.attempt, stage = EXCLUDED.stage, size = EXCLUDED.size,
                     sha256 = EXCLUDED.sha256, object_key = EXCLUDED.object_key,
                     created_at = now(), expires_at = EXCLUDED.expires_at",
                &[
                    &artifact.build_id.to_db(),
                    &artifact.attempt.to_db(),
                    &artifact.stage,
                    &artifact.path,
                    &size_to_db(artifact.size),
                    &artifact.sha256,
                    &artifact.object_key,
                    &artifact.expires_at,
                ],
            )
            .await?;
        Ok(())
    }

    /// The artifacts of `build_id`, in the order they were kept.
    pub async fn artifacts(&self, build_id: BuildId) -> Result<Vec<Artifact>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {COLUMNS} FROM artifacts WHERE build_id = $1 ORDER BY id"),
                &[&build_id.to_db()],
            )
            .await?;
        rows.iter().map(artifact_from_row).collect()
    }

    /// Deletes the rows of the artifacts that expired before `now` (their objects are
    /// queued for deletion); returns how many.
    pub async fn expire_artifacts(&self, now: SystemTime) -> Result<u64, StoreError> {
        let client = self.client().await?;
        Ok(client
            .execute(
                "DELETE FROM artifacts WHERE expires_at IS NOT NULL AND expires_at <= $1",
                &[&now],
            )
            .await?)
    }

    /// Deletes the rows of every artifact of `build_id` (their objects are queued for
    /// deletion); returns how many.
    pub async fn delete_artifacts(&self, build_id: BuildId) -> Result<u64, StoreError> {
        let client = self.client().await?;
        Ok(client
            .execute(
                "DELETE FROM artifacts WHERE build_id = $1",
                &[&build_id.to_db()],
            )
            .await?)
    }

    /// Takes up to `limit` keys of objects to delete off the queue (another admin never
    /// gets the same ones); the caller deletes them, and gives back those it could not
    /// with [`Store::queue_artifact_objects`].
    pub async fn take_artifact_objects(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "DELETE FROM artifact_objects_to_delete WHERE object_key IN (
                     SELECT object_key FROM artifact_objects_to_delete
                     ORDER BY queued_at LIMIT $1 FOR UPDATE SKIP LOCKED)
                 RETURNING object_key",
                &[&limit],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Queues the objects `keys` for deletion (again).
    pub async fn queue_artifact_objects(&self, keys: &[String]) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO artifact_objects_to_delete (object_key)
                 SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
                &[&keys],
            )
            .await?;
        Ok(())
    }
}
