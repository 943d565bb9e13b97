//! Log retention: the events of builds that finished long ago are deleted, in batches; the
//! build rows (state, result, line count, checksum) stay. A build's log is first claimed
//! (`logs_pruned_at`: from then on a replay says it was pruned), then its events are deleted
//! a batch at a time, then it is marked done (`logs_pruned`). Claims skip rows another admin
//! holds (`SKIP LOCKED`), and a claim left unfinished (its admin died) is taken again after
//! [`STALE_CLAIM`]; deleting twice deletes nothing twice, so several admins are safe.

use super::{Store, StoreError};
use crate::ids::BuildId;
use std::time::{Duration, SystemTime};

/// How long a claimed log may stay half-deleted before another pass takes it over.
pub const STALE_CLAIM: Duration = Duration::from_secs(15 * 60);

impl Store {
    /// Claims up to `limit` builds that finished before `cutoff` and whose log is not
    /// pruned (or whose pruning was claimed more than [`STALE_CLAIM`] ago and never
    /// finished); returns them, oldest first.
    pub async fn claim_logs_to_prune(
        &self,
        cutoff: SystemTime,
        limit: i64,
    ) -> Result<Vec<BuildId>, StoreError> {
        let client = self.client().await?;
        let stale = STALE_CLAIM.as_secs_f64();
        let rows = client
            .query(
                "UPDATE builds SET logs_pruned_at = now()
                 WHERE id IN (
                     SELECT id FROM builds
                     WHERE NOT logs_pruned AND finished_at < $1
                       AND (logs_pruned_at IS NULL
                            OR logs_pruned_at < now() - make_interval(secs => $2))
                     ORDER BY finished_at LIMIT $3
                     FOR UPDATE SKIP LOCKED)
                 RETURNING id, finished_at",
                &[&cutoff, &stale, &limit],
            )
            .await?;
        let mut claimed: Vec<(SystemTime, BuildId)> = Vec::with_capacity(rows.len());
        for row in &rows {
            claimed.push((row.get("finished_at"), BuildId::from_db(row.get("id"))?));
        }
        claimed.sort();
        Ok(claimed.into_iter().map(|(_, id)| id).collect())
    }

    /// Deletes up to `limit` events of `build_id`; returns how many it deleted.
    pub async fn delete_events_batch(
        &self,
        build_id: BuildId,
        limit: i64,
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        Ok(client
            .execute(
                "DELETE FROM build_events WHERE (build_id, attempt, seq) IN (
                     SELECT build_id, attempt, seq FROM build_events
                     WHERE build_id = $1 LIMIT $2)",
                &[&build_id.to_db(), &limit],
            )
            .await?)
    }

    /// Marks `build_id`'s log as pruned: none of its events is left.
    pub async fn finish_log_pruning(&self, build_id: BuildId) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE builds SET logs_pruned = true WHERE id = $1",
                &[&build_id.to_db()],
            )
            .await?;
        Ok(())
    }

    /// When `build_id`'s log was pruned (claimed for deletion); `None` while it is kept.
    pub async fn log_pruned_at(&self, build_id: BuildId) -> Result<Option<SystemTime>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT logs_pruned_at FROM builds WHERE id = $1",
                &[&build_id.to_db()],
            )
            .await?;
        Ok(row.and_then(|row| row.get("logs_pruned_at")))
    }
}
