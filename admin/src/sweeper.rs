//! Re-publishes queued builds whose job never reached NATS (the publish failed or the admin
//! died between the insert and the publish), so that no build is lost.

use crate::state::AppState;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Builds younger than this are still being published by their trigger.
const GRACE: Duration = Duration::from_secs(3);

pub(crate) async fn run(state: AppState, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(SWEEP_EVERY) => {}
        }
        match state.store.unpublished_builds(GRACE).await {
            Ok(builds) => {
                for build in builds {
                    if ocelot_core::trigger::publish(&state.store, &state.bus, &build).await {
                        tracing::info!(
                            build_id = build.id.get(),
                            "sweeper published a stranded job"
                        );
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "sweeper cannot read queued builds"),
        }
    }
}
