//! Log retention (`--keep-logs`): in the background, the events of builds that finished
//! longer ago than that are deleted, in batches; the builds' rows and results stay
//! (`ocelot status`), and a replay of a pruned build says its log was pruned. Several admins
//! may run passes at once: each claims its own builds (see the store's `log_retention`).
//!
//! Artifact retention ([`artifact_pass`]): the rows of expired artifacts are deleted, then
//! the objects of every row that went (expired, replaced, or removed with its build) are
//! deleted from the storage; caches unused for `--cache-expire-in` (the worker's) go the same
//! way. Several admins share the queue of objects (each takes its own).

use ocelot_core::storage::Storage;
use ocelot_core::store::{Store, StoreError};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// How often a pass runs (the first at start-up).
const PASS_EVERY: Duration = Duration::from_secs(3600);
/// Builds claimed at once.
const CLAIM_BATCH: i64 = 100;
/// Events deleted per statement (one short transaction each).
const DELETE_BATCH: i64 = 5000;

/// How long the log of a finished build is kept; `None`: forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepLogs(Option<Duration>);

impl Default for KeepLogs {
    /// 90 days.
    fn default() -> Self {
        KeepLogs(Some(Duration::from_secs(90 * 24 * 3600)))
    }
}

impl KeepLogs {
    /// Every log is kept.
    pub const FOREVER: KeepLogs = KeepLogs(None);

    /// How long logs are kept; `None`: forever.
    pub fn duration(self) -> Option<Duration> {
        self.0
    }
}

/// `90d`, `12h`, ...; `0` or `forever`: keep every log.
pub fn parse_keep_logs(text: &str) -> Result<KeepLogs, String> {
    let text = text.trim();
    if text == "0" || text.eq_ignore_ascii_case("forever") {
        return Ok(KeepLogs::FOREVER);
    }
    let duration = ocelot_core::pipeline::parse_duration(text)
        .map_err(|e| format!("{e} (e.g. `90d`; `0` or `forever` keeps every log)"))?;
    Ok(KeepLogs(Some(duration)))
}

/// What one pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Builds whose log is now gone.
    pub builds: u64,
    pub events: u64,
}

/// One pass: deletes the events of every build that finished more than `keep` ago, a
/// batch at a time.
pub async fn pass(store: &Store, keep: Duration) -> Result<Pruned, StoreError> {
    let mut pruned = Pruned::default();
    let Some(cutoff) = SystemTime::now().checked_sub(keep) else {
        return Ok(pruned);
    };
    loop {
        let claimed = store.claim_logs_to_prune(cutoff, CLAIM_BATCH).await?;
        for &build_id in &claimed {
            loop {
                let deleted = store.delete_events_batch(build_id, DELETE_BATCH).await?;
                pruned.events += deleted;
                if deleted < u64::try_from(DELETE_BATCH).unwrap_or(u64::MAX) {
                    break;
                }
            }
            store.finish_log_pruning(build_id).await?;
            pruned.builds += 1;
        }
        if i64::try_from(claimed.len()).unwrap_or(i64::MAX) < CLAIM_BATCH {
            return Ok(pruned);
        }
    }
}

/// Runs a pass at start-up and every [`PASS_EVERY`] until `stop` (nothing when logs are
/// kept forever). A pass cut short by `stop` leaves claimed builds that a later pass (of
/// any admin) finishes.
pub(crate) async fn run(store: Store, keep: KeepLogs, stop: CancellationToken) {
    let Some(keep) = keep.duration() else {
        tracing::info!("logs are kept forever (--keep-logs 0)");
        return;
    };
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            done = pass(&store, keep) => match done {
                Ok(pruned) if pruned.builds > 0 => tracing::info!(
                    builds = pruned.builds,
                    events = pruned.events,
                    "deleted the logs of builds that finished more than --keep-logs ago"
                ),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "log retention pass failed (retried at the next pass)"),
            },
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(PASS_EVERY) => {}
        }
    }
}

/// How often an artifact pass runs (the first at start-up).
const ARTIFACT_PASS_EVERY: Duration = Duration::from_secs(300);
/// Objects taken off the deletion queue at once.
const OBJECT_BATCH: i64 = 500;

/// What one artifact pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArtifactsPruned {
    /// Artifacts whose `expire_in` had passed.
    pub expired: u64,
    /// Caches unused for their `--cache-expire-in`.
    pub caches_expired: u64,
    /// Objects deleted from the storage.
    pub objects: u64,
    /// Objects that could not be deleted (queued again for the next pass).
    pub failed: u64,
}

/// Why an artifact pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactPassError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One artifact pass: deletes the expired artifacts' and caches' rows, then the queued
/// objects (of artifacts and caches).
pub async fn artifact_pass(
    store: &Store,
    storage: &Storage,
) -> Result<ArtifactsPruned, ArtifactPassError> {
    let mut pruned = ArtifactsPruned {
        expired: store.expire_artifacts(SystemTime::now()).await?,
        caches_expired: store.expire_caches(SystemTime::now()).await?,
        ..ArtifactsPruned::default()
    };
    loop {
        let keys = store.take_artifact_objects(OBJECT_BATCH).await?;
        let mut failed = Vec::new();
        for key in &keys {
            match storage.delete(key).await {
                Ok(()) => pruned.objects += 1,
                Err(error) => {
                    tracing::warn!(key, %error, "deleting an artifact's object (retried at the next pass)");
                    failed.push(key.clone());
                }
            }
        }
        if !failed.is_empty() {
            pruned.failed += failed.len() as u64;
            store.queue_artifact_objects(&failed).await?;
            // the storage fails now: the next pass tries again
            return Ok(pruned);
        }
        if i64::try_from(keys.len()).unwrap_or(i64::MAX) < OBJECT_BATCH {
            return Ok(pruned);
        }
    }
}

/// Runs an artifact pass at start-up and every [`ARTIFACT_PASS_EVERY`] until `stop`.
pub(crate) async fn run_artifacts(store: Store, storage: Storage, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            done = artifact_pass(&store, &storage) => match done {
                Ok(pruned) if pruned.expired > 0 || pruned.caches_expired > 0 || pruned.objects > 0 => tracing::info!(
                    expired = pruned.expired,
                    caches_expired = pruned.caches_expired,
                    objects = pruned.objects,
                    "deleted expired and removed artifacts and caches from the storage"
                ),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "artifact retention pass failed (retried at the next pass)"),
            },
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(ARTIFACT_PASS_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_logs_reads_durations_and_forever() {
        assert_eq!(
            parse_keep_logs("90d").map(KeepLogs::duration),
            Ok(Some(Duration::from_secs(90 * 24 * 3600)))
        );
        assert_eq!(
            parse_keep_logs("12h").map(KeepLogs::duration),
            Ok(Some(Duration::from_secs(12 * 3600)))
        );
        assert_eq!(parse_keep_logs("0"), Ok(KeepLogs::FOREVER));
        assert_eq!(parse_keep_logs("forever"), Ok(KeepLogs::FOREVER));
        assert!(
            parse_keep_logs("0s").is_err(),
            "only `0` and `forever` say forever"
        );
        assert_eq!(KeepLogs::default(), parse_keep_logs("90d").unwrap());
        let error = parse_keep_logs("soon").unwrap_err();
        assert!(error.contains("`0` or `forever`"), "{error}");
    }
}
