//! The messages about a build, as `ocelot status BUILD` shows them.

use ocelot_core::model::unix_ms;
use ocelot_core::store::DeliveryRecord;
use ocelot_proto::v1 as pb;

pub(super) fn to_wire(record: &DeliveryRecord) -> pb::Delivery {
    pb::Delivery {
        kind: record.kind.clone(),
        target: record.target.clone(),
        status: record.status.clone(),
        attempts: record.attempts,
        last_error: record.last_error.clone().unwrap_or_default(),
        next_attempt_at_ms: record.next_attempt_at.map(unix_ms).unwrap_or_default(),
        done_at_ms: record.done_at.map(unix_ms).unwrap_or_default(),
    }
}
