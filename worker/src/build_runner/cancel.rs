//! `ocelot kill` reaching a running build: a request on the bus, or one already recorded in
//! Postgres (checked once the subscription is in place, so none is missed).

use crate::context::WorkerContext;
use ocelot_core::ids::BuildId;
use tokio_util::sync::CancellationToken;

/// Cancels `cancel` when the build is asked to stop, until the returned guard is dropped.
pub(super) async fn watch(
    context: &WorkerContext,
    build_id: BuildId,
    cancel: CancellationToken,
) -> AbortOnDrop {
    let requests = context.bus.cancel_requests(build_id).await;
    let recorded = context
        .store
        .get_build(build_id)
        .await
        .ok()
        .and_then(|b| b.cancel_requested_by);
    if recorded.is_some() {
        cancel.cancel();
        return AbortOnDrop(None);
    }
    match requests {
        Ok(mut requests) => {
            let task = tokio::spawn(async move {
                if requests.next().await.is_some() {
                    cancel.cancel();
                }
            });
            AbortOnDrop(Some(task.abort_handle()))
        }
        Err(error) => {
            tracing::warn!(build_id = build_id.get(), %error, "cannot listen for cancel requests (they are checked between stages)");
            AbortOnDrop(None)
        }
    }
}

/// Aborts the cancel watcher when the attempt ends.
pub(super) struct AbortOnDrop(Option<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = &self.0 {
            handle.abort();
        }
    }
}
