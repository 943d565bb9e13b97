//! Cancel requests: `ocelot kill` of a running build is a core NATS message on
//! `cancel.<build id>`, which the worker running the build listens to. The request is also
//! recorded in Postgres (`cancel_requested_by`), so a worker that subscribes late, or takes
//! the build over after a crash, still sees it.

use super::{Bus, QueueError};
use crate::ids::BuildId;
use futures::StreamExt;

fn subject(build_id: BuildId) -> String {
    format!("ocelot.cancel.{build_id}")
}

/// The cancel requests of one build.
#[derive(Debug)]
pub struct CancelRequests {
    subscriber: async_nats::Subscriber,
}

impl CancelRequests {
    /// Resolves at the next request; `None` when the subscription ended.
    pub async fn next(&mut self) -> Option<()> {
        self.subscriber.next().await.map(|_| ())
    }
}

impl Bus {
    pub async fn publish_cancel(&self, build_id: BuildId) -> Result<(), QueueError> {
        self.client
            .publish(subject(build_id), bytes::Bytes::new())
            .await
            .map_err(|e| QueueError::Publish(e.to_string()))?;
        self.client
            .flush()
            .await
            .map_err(|e| QueueError::Publish(e.to_string()))
    }

    pub async fn cancel_requests(&self, build_id: BuildId) -> Result<CancelRequests, QueueError> {
        let subscriber = self
            .client
            .subscribe(subject(build_id))
            .await
            .map_err(|e| QueueError::Consume(e.to_string()))?;
        // the subscription is in place on the server before the caller checks Postgres
        self.client
            .flush()
            .await
            .map_err(|e| QueueError::Consume(e.to_string()))?;
        Ok(CancelRequests { subscriber })
    }
}
