//! The log bus's stream, `OCELOT_LOGS`: bounded by age and by bytes. The bus only carries
//! logs to live watchers, Postgres keeps them: when the stream is full the oldest events go
//! (discard old, so a publishing worker is never refused), and a watcher that wanted them
//! gets them from Postgres (the admin fills the gap, page by page). One flooding build can
//! thus push other builds' events off the bus early, never out of their logs.
//!
//! JetStream reserves a stream's byte limit on its store: a server with less room gets a
//! smaller limit (1 GiB, then 256 MiB), with a warning. A stream created by an earlier
//! release (no byte limit) gets [`LOGS_MAX_BYTES`] when the admin starts, updated in place
//! (its events stay; a worker may not update streams and only warns). A byte limit an
//! operator set (`nats stream edit OCELOT_LOGS --max-bytes ...`) is kept. Its replica count
//! follows `--nats-replicas` like the job stream's ([`super::replicas`]).

use super::replicas::{self, Updates};
use super::{LOGS_STREAM, QueueError};
use async_nats::jetstream::{self, stream};
use std::time::Duration;

/// How long the bus keeps an event.
pub const LOGS_MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600);
/// How many bytes of events the bus keeps, all builds together: 4 GiB.
pub const LOGS_MAX_BYTES: i64 = 4 * 1024 * 1024 * 1024;
/// The byte limits tried in turn: JetStream reserves a stream's limit on its store, so a
/// server with less room than [`LOGS_MAX_BYTES`] refuses it; a smaller one is tried then.
const MAX_BYTES_TRIED: [i64; 3] = [LOGS_MAX_BYTES, 1024 * 1024 * 1024, 256 * 1024 * 1024];

fn config(max_bytes: i64, replicas: usize) -> stream::Config {
    stream::Config {
        name: LOGS_STREAM.to_string(),
        subjects: vec!["logs.>".to_string()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age: LOGS_MAX_AGE,
        max_bytes,
        discard: stream::DiscardPolicy::Old,
        num_replicas: replicas,
        ..Default::default()
    }
}

/// Whether a stream with `max_bytes` has no byte limit (the server says -1, or 0).
fn unbounded(max_bytes: i64) -> bool {
    max_bytes <= 0
}

/// Creates the stream with `replicas` copies when missing; bounds one that has no byte limit
/// and brings it to `replicas` when `updates` says so.
pub(super) async fn set_up(
    jetstream: &jetstream::Context,
    replicas: usize,
    updates: Updates,
) -> Result<(), QueueError> {
    let mut refused = Vec::new();
    let mut created = None;
    for max_bytes in MAX_BYTES_TRIED {
        match jetstream
            .get_or_create_stream(config(max_bytes, replicas))
            .await
        {
            Ok(stream) => {
                created = Some(stream);
                break;
            }
            Err(e) => refused.push(format!("{} MiB: {e}", max_bytes >> 20)),
        }
    }
    let Some(stream) = created else {
        return Err(QueueError::Setup(format!(
            "stream {LOGS_STREAM} could not be created ({}); give JetStream more room (free disk, `max_file_store`){}",
            refused.join("; "),
            replicas::hint(replicas)
        )));
    };
    if !refused.is_empty() {
        tracing::warn!(stream = LOGS_STREAM, refused = %refused.join("; "), "the log bus got a smaller byte limit than 4 GiB");
    }
    let mut current = stream.cached_info().config.clone();
    if unbounded(current.max_bytes) {
        match updates {
            // only the admin may update the stream: a worker leaves it to the admin
            Updates::LeaveToAdmin => tracing::warn!(
                stream = LOGS_STREAM,
                "the log bus has no byte limit (the admin bounds it on start-up)"
            ),
            Updates::Apply => {
                if let Some(bounded) = bound(jetstream, &current).await {
                    current = bounded;
                }
            }
        }
    }
    replicas::reconcile(jetstream, &current, replicas, updates).await
}

/// Gives the stream of `current` a byte limit, the largest the server takes; its config
/// then, or `None` when none was taken (warned).
async fn bound(jetstream: &jetstream::Context, current: &stream::Config) -> Option<stream::Config> {
    for max_bytes in MAX_BYTES_TRIED {
        let mut updated = current.clone();
        updated.max_bytes = max_bytes;
        updated.discard = stream::DiscardPolicy::Old;
        match jetstream.update_stream(&updated).await {
            Ok(info) => {
                tracing::info!(
                    stream = LOGS_STREAM,
                    max_bytes,
                    "the log bus had no byte limit: bounded (its events stay)"
                );
                return Some(info.config);
            }
            Err(e) => tracing::warn!(
                stream = LOGS_STREAM,
                max_bytes,
                error = %e,
                "the log bus has no byte limit and could not be bounded"
            ),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unbounded_stream_gets_a_limit_and_the_largest_is_tried_first() {
        assert!(unbounded(-1) && unbounded(0));
        assert!(!unbounded(1 << 20), "an operator's limit is kept");
        assert_eq!(MAX_BYTES_TRIED[0], LOGS_MAX_BYTES);
        assert!(MAX_BYTES_TRIED.windows(2).all(|w| w[0] > w[1]));
        assert_eq!(config(LOGS_MAX_BYTES, 1).max_bytes, LOGS_MAX_BYTES);
        assert_eq!(config(1, 1).discard, stream::DiscardPolicy::Old);
        assert_eq!(config(1, 3).num_replicas, 3);
    }
}
