//! While a build is queued, why it waits: the admin tells it with the build (`GetBuild`'s
//! pending reason: no live worker serves its tag, all are busy or paused, the queue is
//! unreachable). A task asks every [`LOOK_EVERY`] until the build leaves the queue and
//! hands each reason to the watch loop, which shows it (the renderer shows a reason only
//! when it changed, and none once the build's log has begun).

use crate::client::Client;
use ocelot_domain::BuildState;
use ocelot_domain::ids::BuildId;
use ocelot_proto::v1 as pb;
use std::time::Duration;
use tokio::sync::mpsc;

/// The first look: most builds are taken by a worker before it, and then nothing is said.
const FIRST_LOOK_AFTER: Duration = Duration::from_secs(1);
/// How often a queued build is looked at again.
const LOOK_EVERY: Duration = Duration::from_secs(2);

/// The reasons a queued build waits, as they are read; dropping it stops the asking.
#[derive(Debug)]
pub(super) struct Waiting {
    /// Each reason read (the same one again, too); closed once the build is not queued.
    reasons: mpsc::Receiver<String>,
    /// The asking task, stopped when the watch ends.
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Waiting {
    /// Starts asking why `build_id` waits, over `client` (a clone of the watch's).
    pub(super) fn start(client: Client, build_id: BuildId) -> Self {
        let (sender, reasons) = mpsc::channel(1);
        let task = tokio::spawn(ask(client, build_id, sender));
        Waiting { reasons, task }
    }
}

/// The next reason `waiting` reads; never returns once there are no more (the build left
/// the queue), so that it can stand in a `select!` beside the log stream.
pub(super) async fn next_reason(waiting: &mut Option<Waiting>) -> String {
    if let Some(current) = waiting.as_mut()
        && let Some(reason) = current.reasons.recv().await
    {
        return reason;
    }
    *waiting = None;
    std::future::pending().await
}

async fn ask(mut client: Client, build_id: BuildId, reasons: mpsc::Sender<String>) {
    tokio::time::sleep(FIRST_LOOK_AFTER).await;
    loop {
        // a failed look is not this task's to report: the log stream says what is wrong
        if let Ok(detail) = client
            .get_build(pb::GetBuildRequest {
                id: build_id.into(),
            })
            .await
        {
            let detail = detail.into_inner();
            let state = detail
                .build
                .as_ref()
                .and_then(|b| ocelot_domain::wire::build_state_from_i32(b.state).ok());
            if state != Some(BuildState::Queued) {
                return;
            }
            if !detail.pending_reason.is_empty()
                && reasons.send(detail.pending_reason).await.is_err()
            {
                return;
            }
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
}
