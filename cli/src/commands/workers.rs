//! `ocelot workers`: the live workers, from the registry.

use crate::client::{self, AdminTarget, CliError};
use crate::exit::ExitStatus;
use ocelot_proto::v1 as pb;
use serde_json::json;
use std::time::{SystemTime, UNIX_EPOCH};

fn seconds_ago(at_ms: i64) -> i64 {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    (now_ms - at_ms).max(0) / 1000
}

pub(crate) async fn run(admin: &AdminTarget, json: bool) -> Result<ExitStatus, CliError> {
    let mut client = client::connect(admin).await?;
    let workers = client
        .list_workers(pb::ListWorkersRequest {})
        .await
        .map_err(client::from_status)?
        .into_inner()
        .workers;
    if json {
        let list: Vec<_> = workers
            .iter()
            .map(|w| {
                json!({"id": w.id, "tags": w.tags, "capacity": w.capacity, "running": w.running,
                       "executor": w.executor, "host": w.host, "version": w.version,
                       "started_at_ms": w.started_at_ms, "seen_at_ms": w.seen_at_ms,
                       "paused": (!w.paused.is_empty()).then_some(&w.paused)})
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else if workers.is_empty() {
        eprintln!(
            "no live workers: start one with `ocelot-worker` (builds wait in the queue meanwhile)"
        );
    } else {
        println!(
            "{:<28} {:<20} {:<8} {:<9} {:<8} STATE",
            "ID", "TAGS", "RUNNING", "EXECUTOR", "SEEN"
        );
        for worker in &workers {
            let state = if worker.paused.is_empty() {
                "taking jobs".to_string()
            } else {
                format!("paused: {}", worker.paused)
            };
            println!(
                "{:<28} {:<20} {:<8} {:<9} {:<8} {state}",
                worker.id,
                worker.tags.join(","),
                format!("{}/{}", worker.running, worker.capacity),
                worker.executor,
                format!("{}s ago", seconds_ago(worker.seen_at_ms))
            );
        }
    }
    Ok(ExitStatus::Passed)
}
