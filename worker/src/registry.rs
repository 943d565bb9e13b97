//! Keeps this worker's entry in the registry (NATS KV with a TTL) fresh, with the number of
//! builds it runs, and removes it at a clean shutdown.

use ocelot_core::model::unix_ms;
use ocelot_core::queue::{Bus, HEARTBEAT_EVERY, WorkerInfo};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// Writes the entry every [`HEARTBEAT_EVERY`], and at once when `changed` is notified (a
/// build started or ended) or the worker pauses or resumes (`paused`).
pub(crate) async fn run(
    bus: Bus,
    mut info: WorkerInfo,
    running: Arc<AtomicUsize>,
    changed: Arc<Notify>,
    mut paused: watch::Receiver<Option<String>>,
    stop: CancellationToken,
) {
    loop {
        info.running = u32::try_from(running.load(Ordering::SeqCst)).unwrap_or(u32::MAX);
        info.paused = paused.borrow_and_update().clone();
        info.seen_at_ms = unix_ms(SystemTime::now());
        if let Err(error) = bus.announce_worker(&info).await {
            tracing::warn!(%error, "cannot refresh this worker's registry entry");
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(HEARTBEAT_EVERY) => {}
            () = changed.notified() => {}
            // the checks' task ends only at shutdown: then the heartbeat alone goes on
            Ok(()) = paused.changed() => {}
        }
    }
    if let Err(error) = bus.withdraw_worker(&info.id).await {
        tracing::warn!(%error, "cannot remove this worker's registry entry (it expires by itself)");
    }
}
