//! `ocelot_queue_depth{tag}`: every [`SAMPLE_EVERY`] the worker reads how many jobs wait for
//! each tag it serves (one NATS request per tag). Every worker of a tag reports the same
//! queue: aggregate with `max by (tag)`, not `sum`.

use ocelot_core::metrics::{self, BusOperation};
use ocelot_core::queue::Bus;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the queues are read: cheap for NATS, fresh enough for a dashboard.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(15);

/// Samples the queues of `tags` until `stop`.
pub(crate) async fn run(bus: Bus, tags: Vec<String>, every: Duration, stop: CancellationToken) {
    loop {
        for tag in &tags {
            match bus.waiting_jobs(tag).await {
                Ok(Some(waiting)) => metrics::queue_depth(tag, waiting),
                // the tag's consumer is made as its pull loop starts: read it next time
                Ok(None) => {}
                Err(error) => {
                    metrics::bus_error(BusOperation::QueueDepth);
                    tracing::debug!(%tag, %error, "cannot read the queue's depth");
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
