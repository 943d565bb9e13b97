//! Recording deliveries durably and fast: the deliveries of concurrent requests are recorded
//! by group commit (`group_commit`), one `INSERT` of many rows in one transaction, and a
//! request is answered only once its group's transaction committed (or with an error when it
//! did not: then none of the group was recorded and every sender is asked to deliver again).

use crate::group_commit::{GroupCommit, GroupError, Limits};
use ocelot_core::ids::RepoId;
use ocelot_core::store::{NewDelivery, Recorded, Store, StoreError};

/// Groups written at once: while they are, new deliveries gather into the next group (two:
/// one commit waiting for its WAL flush does not hold up the next group; with
/// `bench-webhooks`, 1 and 2 do alike, 4 makes smaller groups and a higher p99).
const IN_FLIGHT: usize = 2;
/// Deliveries in one `INSERT`.
const MAX_GROUP: usize = 256;
/// Deliveries waiting for a writer before requests wait for room.
const QUEUE: usize = 4096;

/// A delivery to record, owned while it waits for its group.
#[derive(Debug, Clone)]
pub(crate) struct PendingDelivery {
    pub(crate) provider: &'static str,
    pub(crate) delivery_id: String,
    pub(crate) repo_id: RepoId,
    pub(crate) event: &'static str,
    pub(crate) request: serde_json::Value,
}

/// Records deliveries by group commit; cheap to clone.
pub(crate) type Recorder = GroupCommit<PendingDelivery, Recorded, StoreError>;

/// Why a delivery was not recorded.
pub(crate) type RecordError = GroupError<StoreError>;

/// Starts recording deliveries into `store` (on the current runtime).
pub(crate) fn start(store: Store) -> Recorder {
    let limits = Limits {
        in_flight: IN_FLIGHT,
        max_group: MAX_GROUP,
        queue: QUEUE,
    };
    GroupCommit::start(limits, move |group: Vec<PendingDelivery>| {
        let store = store.clone();
        async move {
            let deliveries: Vec<NewDelivery<'_>> = group
                .iter()
                .map(|pending| NewDelivery {
                    provider: pending.provider,
                    delivery_id: &pending.delivery_id,
                    repo_id: pending.repo_id,
                    event: pending.event,
                    request: &pending.request,
                })
                .collect();
            let recorded = store.record_deliveries(&deliveries).await;
            if let Err(error) = &recorded {
                tracing::error!(%error, deliveries = group.len(),
                    "a group of webhook deliveries was not recorded: each is answered 503");
            }
            recorded
        }
    })
}
