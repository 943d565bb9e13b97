//! The worker registry: a NATS KV bucket where each worker keeps an entry about itself
//! (tags, capacity, builds running) fresh with a heartbeat. Entries expire with the bucket's
//! TTL, so a worker that dies vanishes from `ocelot workers` within [`WORKER_TTL`].

use super::{Bus, QueueError};
use async_nats::jetstream::kv;
use futures::TryStreamExt;
use std::time::Duration;

pub const WORKERS_BUCKET: &str = "OCELOT_WORKERS";
/// The stream that holds [`WORKERS_BUCKET`] (`KV_<bucket>`).
pub(super) const BUCKET_STREAM: &str = "KV_OCELOT_WORKERS";
/// How long a worker's entry outlives its last heartbeat.
pub const WORKER_TTL: Duration = Duration::from_secs(30);
/// How often a worker refreshes its entry.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

/// What a worker says about itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkerInfo {
    pub id: String,
    pub tags: Vec<String>,
    /// Builds it runs at once (`--concurrency`).
    pub capacity: u32,
    /// Builds it runs now.
    pub running: u32,
    /// `docker` or `host`.
    pub executor: String,
    pub host: String,
    pub version: String,
    pub started_at_ms: i64,
    /// When the entry was last written.
    pub seen_at_ms: i64,
    /// Why the worker takes no new jobs now (low disk, a dependency down); `None` when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<String>,
}

/// A KV key for a worker id: its characters outside `[-_=.a-zA-Z0-9]` become `_`.
fn key(worker_id: &str) -> String {
    worker_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '=' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Opens the worker bucket, creating it with `replicas` copies when missing.
pub(super) async fn open_bucket(
    jetstream: &async_nats::jetstream::Context,
    replicas: usize,
) -> Result<kv::Store, QueueError> {
    if let Ok(store) = jetstream.get_key_value(WORKERS_BUCKET).await {
        return Ok(store);
    }
    jetstream
        .create_key_value(kv::Config {
            bucket: WORKERS_BUCKET.to_string(),
            description: "Ocelot workers: one entry per live worker".to_string(),
            history: 1,
            max_age: WORKER_TTL,
            storage: async_nats::jetstream::stream::StorageType::Memory,
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| {
            QueueError::Setup(format!(
                "bucket {WORKERS_BUCKET}: {e}{}",
                super::replicas::hint(replicas)
            ))
        })
}

impl Bus {
    /// Writes (or refreshes) a worker's entry. The bucket is kept in memory by NATS: after
    /// a NATS restart it is gone, so a failed write creates it again and retries once (the
    /// other handles find it again by name).
    pub async fn announce_worker(&self, info: &WorkerInfo) -> Result<(), QueueError> {
        let value: bytes::Bytes = serde_json::to_vec(info)
            .map_err(|e| QueueError::Publish(e.to_string()))?
            .into();
        if self
            .workers()?
            .put(key(&info.id), value.clone())
            .await
            .is_ok()
        {
            return Ok(());
        }
        open_bucket(&self.jetstream, self.replicas)
            .await?
            .put(key(&info.id), value)
            .await
            .map_err(|e| QueueError::Publish(format!("worker entry: {e}")))?;
        Ok(())
    }

    /// Removes a worker's entry (at a clean shutdown).
    pub async fn withdraw_worker(&self, worker_id: &str) -> Result<(), QueueError> {
        self.workers()?
            .purge(key(worker_id))
            .await
            .map_err(|e| QueueError::Publish(format!("worker entry: {e}")))?;
        Ok(())
    }

    /// The live workers, by id.
    pub async fn list_workers(&self) -> Result<Vec<WorkerInfo>, QueueError> {
        let keys: Vec<String> = self
            .workers()?
            .keys()
            .await
            .map_err(|e| QueueError::Consume(format!("worker entries: {e}")))?
            .try_collect()
            .await
            .map_err(|e| QueueError::Consume(format!("worker entries: {e}")))?;
        let mut workers = Vec::with_capacity(keys.len());
        for name in keys {
            let entry = self
                .workers()?
                .get(&name)
                .await
                .map_err(|e| QueueError::Consume(format!("worker entry {name}: {e}")))?;
            let Some(bytes) = entry else { continue };
            match serde_json::from_slice::<WorkerInfo>(&bytes) {
                Ok(info) => workers.push(info),
                Err(error) => {
                    tracing::warn!(key = %name, %error, "skipping a malformed worker entry")
                }
            }
        }
        workers.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(workers)
    }
}

#[cfg(test)]
mod tests {
    use super::{BUCKET_STREAM, WORKERS_BUCKET, key};

    #[test]
    fn the_bucket_lives_in_its_kv_stream() {
        assert_eq!(BUCKET_STREAM, format!("KV_{WORKERS_BUCKET}"));
    }

    #[test]
    fn worker_ids_become_valid_keys() {
        assert_eq!(key("ci-host-1a2b3c4d"), "ci-host-1a2b3c4d");
        assert_eq!(key("host one/w:2"), "host_one_w_2");
    }
}
