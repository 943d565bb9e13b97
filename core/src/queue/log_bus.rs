//! The log bus: every event of a build goes to `logs.<build id>`, several in one message (a
//! JSON array, in order: a flood costs per batch, not per line); a watcher replays the
//! subject from its first message with an ordered consumer, then follows it live, one event
//! at a time.

use super::{Bus, LOGS_STREAM, QueueError};
use crate::events::BuildEvent;
use crate::ids::BuildId;
use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use std::collections::VecDeque;

impl Bus {
    /// Publishes one event; the returned future resolves when JetStream stored it.
    pub async fn publish_event(
        &self,
        event: &BuildEvent,
    ) -> Result<jetstream::context::PublishAckFuture, QueueError> {
        self.publish_events(event.build_id, std::slice::from_ref(event))
            .await
    }

    /// Publishes events of `build_id`, in order, as one message; the returned future
    /// resolves when JetStream stored it.
    pub async fn publish_events(
        &self,
        build_id: BuildId,
        events: &[BuildEvent],
    ) -> Result<jetstream::context::PublishAckFuture, QueueError> {
        let payload = serde_json::to_vec(events).map_err(|e| QueueError::Publish(e.to_string()))?;
        self.jetstream
            .publish(format!("logs.{build_id}"), payload.into())
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
        Ok(EventSubscription {
            messages,
            pending: VecDeque::new(),
        })
    }
}

/// A replaying, then live, view of one build's events.
pub struct EventSubscription {
    messages: consumer::pull::Ordered,
    /// The rest of the last message's events.
    pending: VecDeque<BuildEvent>,
}

impl std::fmt::Debug for EventSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSubscription").finish_non_exhaustive()
    }
}

impl EventSubscription {
    /// The next event; `None` when the subscription ended. Cancel-safe: an event taken
    /// from a message is kept until it is returned.
    pub async fn next(&mut self) -> Option<Result<BuildEvent, QueueError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            let message = match self.messages.next().await? {
                Ok(message) => message,
                Err(e) => return Some(Err(QueueError::Consume(e.to_string()))),
            };
            match serde_json::from_slice::<Vec<BuildEvent>>(&message.payload) {
                Ok(events) => self.pending.extend(events),
                Err(e) => {
                    return Some(Err(QueueError::Malformed {
                        subject: message.subject.to_string(),
                        message: e.to_string(),
                    }));
                }
            }
        }
    }
}
