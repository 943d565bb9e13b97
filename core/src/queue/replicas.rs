//! How many copies JetStream keeps of each stream (`--nats-replicas`): 1 on one server, 3 in
//! a 3-node cluster, so that the death of the node leading a stream loses nothing. Streams
//! are created with the count; an existing stream with another count is updated in place by
//! the admin (its messages stay; its durable consumers inherit the count, `num_replicas: 0`,
//! and the server scales them with the stream). A worker only warns: its NATS user may not
//! update streams, and the admin does it when it starts.

use super::QueueError;
use async_nats::jetstream::{self, stream};

/// Whether a service may change an existing stream to its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Updates {
    /// The admin: it brings existing streams to its settings.
    Apply,
    /// A worker: it leaves existing streams to the admin, with a warning.
    LeaveToAdmin,
}

/// What to add to a JetStream error when `replicas` may be why the server refused a stream.
pub(super) fn hint(replicas: usize) -> String {
    if replicas > 1 {
        format!(
            " (--nats-replicas {replicas} needs a NATS cluster with at least {replicas} JetStream servers up; one server takes 1)"
        )
    } else {
        String::new()
    }
}

/// Brings stream `name` (whose config is `current`) to `wanted` replicas, or warns that the
/// admin will; an update the server refuses is an error that says how to fix it.
pub(super) async fn reconcile(
    jetstream: &jetstream::Context,
    current: &stream::Config,
    wanted: usize,
    updates: Updates,
) -> Result<(), QueueError> {
    let name = current.name.as_str();
    // a stream created without a count has one copy
    let had = current.num_replicas.max(1);
    if had == wanted {
        return Ok(());
    }
    if updates == Updates::LeaveToAdmin {
        tracing::warn!(
            stream = name,
            replicas = had,
            wanted,
            "the stream keeps another replica count than --nats-replicas: the admin changes it when it starts with the same --nats-replicas (a worker may not)"
        );
        return Ok(());
    }
    let mut updated = current.clone();
    updated.num_replicas = wanted;
    match jetstream.update_stream(&updated).await {
        Ok(_) => {
            tracing::info!(
                stream = name,
                was = had,
                now = wanted,
                "changed the stream's replica count (its messages stay; its consumers follow)"
            );
            Ok(())
        }
        Err(e) => Err(QueueError::Replicas {
            stream: name.to_string(),
            had,
            wanted,
            message: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::hint;

    #[test]
    fn only_several_replicas_get_a_hint() {
        assert_eq!(hint(1), "");
        assert!(hint(3).contains("--nats-replicas 3"), "{}", hint(3));
    }
}
