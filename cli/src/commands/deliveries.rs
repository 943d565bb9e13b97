//! The messages about a build (notifications) in `ocelot status BUILD`.

use crate::render::terminal::plain;
use ocelot_proto::v1 as pb;
use serde_json::json;

/// `status` as people read it.
fn status_text(status: &str) -> &str {
    match status {
        "gave_up" => "gave up",
        other => other,
    }
}

/// One line per message: `  notify slack team-chat  sent (1 try)`, then its last error.
pub(super) fn lines(deliveries: &[pb::Delivery]) -> Vec<String> {
    let mut out = Vec::new();
    for delivery in deliveries {
        let tries = match delivery.attempts {
            1 => "1 try".to_string(),
            n => format!("{n} tries"),
        };
        let target = format!("{} {}", delivery.kind, plain(&delivery.target));
        out.push(format!(
            "  notify {target:<28} {:<10} ({tries})",
            status_text(&delivery.status)
        ));
        if !delivery.last_error.is_empty() {
            out.push(format!(
                "         last error: {}",
                plain(&delivery.last_error)
            ));
        }
    }
    out
}

/// The `deliveries` of `status BUILD --json`.
pub(super) fn json(deliveries: &[pb::Delivery]) -> serde_json::Value {
    deliveries
        .iter()
        .map(|d| {
            json!({
                "kind": d.kind,
                "target": d.target,
                "status": d.status,
                "attempts": d.attempts,
                "last_error": (!d.last_error.is_empty()).then_some(&d.last_error),
                "next_attempt_at_ms": (d.next_attempt_at_ms > 0).then_some(d.next_attempt_at_ms),
                "done_at_ms": (d.done_at_ms > 0).then_some(d.done_at_ms),
            })
        })
        .collect()
}
