//! Turns recorded deliveries into builds: claim one (Postgres, `SKIP LOCKED`, leased),
//! queue its build through `core::trigger::queue_build` (idempotent), mark it done; on a
//! failure try again with back-off, and give up after [`MAX_ATTEMPTS`] with the error kept
//! on the delivery.

use crate::trigger::StoredTrigger;
use ocelot_core::store::{Delivery, Store};
use ocelot_core::trigger::{Trigger, TriggerError, TriggerRequest};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const LEASE: Duration = Duration::from_secs(300);
const MAX_ATTEMPTS: i32 = 5;
/// How often the processors look for deliveries recorded by other hookhandlers.
const IDLE_POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub(crate) struct Processor {
    pub(crate) store: Store,
    pub(crate) trigger: Trigger,
    pub(crate) recorded: Arc<Notify>,
}

pub(crate) async fn run(processor: Processor, stop: CancellationToken) {
    loop {
        if stop.is_cancelled() {
            return;
        }
        match processor.store.claim_delivery(LEASE).await {
            Ok(Some(delivery)) => {
                process(&processor, delivery).await;
                continue;
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "cannot claim webhook deliveries"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = processor.recorded.notified() => {}
            () = tokio::time::sleep(IDLE_POLL) => {}
        }
    }
}

async fn process(processor: &Processor, delivery: Delivery) {
    let provider = delivery.provider.clone();
    let id = delivery.delivery_id.clone();
    // a delivery whose claims keep expiring (its processing hangs or kills the process) is
    // given up rather than claimed forever
    if delivery.attempts > MAX_ATTEMPTS {
        let error = format!("given up after {MAX_ATTEMPTS} attempts whose claims expired");
        if let Err(store_error) = processor.store.fail_delivery(&delivery, &error, None).await {
            tracing::warn!(%provider, delivery = %id, error = %store_error, "cannot give up the delivery");
        }
        return;
    }
    let outcome = match serde_json::from_value::<StoredRequest>(delivery.request.clone()) {
        Ok(stored) => {
            let request = TriggerRequest {
                trace_id: stored.trace_id,
                ..stored.trigger.into_request(stored.repo)
            };
            processor
                .trigger
                .queue(request)
                .await
                .map(|inserted| (inserted.build.id, inserted.build.trace_id))
                .map_err(|error| (retryable(&error), error.to_string()))
        }
        Err(error) => Err((false, format!("unreadable stored trigger: {error}"))),
    };
    let recorded = match outcome {
        Ok((build_id, trace_id)) => {
            tracing::info!(trace_id = %trace_id.as_deref().unwrap_or("-"), %provider, delivery = %id,
                build_id = build_id.get(), "webhook delivery queued a build");
            processor
                .store
                .finish_delivery(&delivery, Some(build_id))
                .await
        }
        Err((retry, error)) => {
            let retry_after = (retry && delivery.attempts < MAX_ATTEMPTS).then(|| {
                Duration::from_secs(
                    2u64.saturating_pow(u32::try_from(delivery.attempts).unwrap_or(10)),
                )
            });
            tracing::warn!(%provider, delivery = %id, attempts = delivery.attempts, ?retry_after, %error,
                "webhook delivery could not queue its build");
            processor
                .store
                .fail_delivery(&delivery, &error, retry_after)
                .await
        }
    };
    if let Err(error) = recorded {
        tracing::warn!(%provider, delivery = %id, %error, "cannot record the delivery's outcome (retried after its lease)");
    }
}

/// Whether trying again may help (an unknown branch or commit will not appear by itself,
/// but a pushed commit may not have reached every mirror yet).
fn retryable(error: &TriggerError) -> bool {
    !matches!(
        error,
        TriggerError::Store(ocelot_core::store::StoreError::NotFound(_))
            | TriggerError::NotOnBranch { .. }
    )
}

/// A delivery's stored request: the repo's name, what to build and the build's trace id.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredRequest {
    pub(crate) repo: String,
    pub(crate) trigger: StoredTrigger,
    /// Made at the delivery's receipt; absent in deliveries of earlier releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) trace_id: Option<String>,
}
