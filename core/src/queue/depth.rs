//! How many jobs wait in a routing tag's queue: the tag's durable consumer's count of
//! messages not yet delivered (one `CONSUMER.INFO` request, which a worker's NATS user may
//! make). Jobs being run (delivered, not yet acknowledged) are not counted.

use super::{Bus, JOBS_STREAM, QueueError, validate_tag};
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::consumer::{Consumer, pull};
use async_nats::jetstream::stream::ConsumerErrorKind;

impl Bus {
    /// Jobs of `tag` no worker has taken yet; `None` while no worker ever served the tag
    /// (its consumer does not exist yet).
    pub async fn waiting_jobs(&self, tag: &str) -> Result<Option<u64>, QueueError> {
        validate_tag(tag)?;
        let name = format!("jobs-{tag}");
        let found: Result<Consumer<pull::Config>, _> = self
            .jetstream
            .get_consumer_from_stream(&name, JOBS_STREAM)
            .await;
        match found {
            Ok(consumer) => Ok(Some(consumer.cached_info().num_pending)),
            Err(error) if not_found(&error.kind()) => Ok(None),
            Err(error) => Err(QueueError::Consume(format!("consumer {name}: {error}"))),
        }
    }
}

fn not_found(kind: &ConsumerErrorKind) -> bool {
    matches!(kind, ConsumerErrorKind::JetStream(error)
        if error.error_code() == ErrorCode::CONSUMER_NOT_FOUND
            || error.error_code() == ErrorCode::STREAM_NOT_FOUND)
}
