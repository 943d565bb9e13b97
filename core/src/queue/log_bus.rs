//! The log bus: every event of a build goes to `logs.<build id>`; a watcher replays the
//! subject from its first event with an ordered consumer, then follows it live.

use super::{Bus, LOGS_STREAM, QueueError};
use crate::events::BuildEvent;
use crate::ids::BuildId;
use async_nats::jetstream::{self, consumer};
use futures::StreamExt;

impl Bus {
    /// Publishes one event; the returned future resolves when JetStream stored it.
    pub async fn publish_event(
        &self,
        event: &BuildEvent,
    ) -> Result<jetstream::context::PublishAckFuture, QueueError> {
        let payload = serde_json::to_vec(event).map_err(|e| QueueError::Publish(e.to_string()))?;
        self.jetstream
            .publish(format!("logs.{}", event.build_id), payload.into())
            .await
            .map_err(|e| QueueError::Publish(e.to_string()))
    }

    /// Every event of `build_id` from the first, then new ones as they arrive.
    pub async fn subscribe_events(
        &self,
        build_id: BuildId,
    ) -> Result<EventSubscription, QueueError> {
        let stream = self
            .jetstream
            .get_stream(LOGS_STREAM)
            .await
            .map_err(|e| QueueError::Setup(e.to_string()))?;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: format!("logs.{build_id}"),
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| QueueError::Consume(e.to_string()))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| QueueError::Consume(e.to_string()))?;
        Ok(EventSubscription { messages })
    }
}

/// A replaying, then live, view of one build's events.
pub struct EventSubscription {
    messages: consumer::pull::Ordered,
}

impl std::fmt::Debug for EventSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSubscription").finish_non_exhaustive()
    }
}

impl EventSubscription {
    /// The next event; `None` when the subscription ended.
    pub async fn next(&mut self) -> Option<Result<BuildEvent, QueueError>> {
        let message = match self.messages.next().await? {
            Ok(message) => message,
            Err(e) => return Some(Err(QueueError::Consume(e.to_string()))),
        };
        Some(
            serde_json::from_slice::<BuildEvent>(&message.payload).map_err(|e| {
                QueueError::Malformed {
                    subject: message.subject.to_string(),
                    message: e.to_string(),
                }
            }),
        )
    }
}
