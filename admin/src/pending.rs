//! Why a queued build waits, from the worker registry: no live worker serves its tag, every
//! one that does is at capacity, or the queue cannot be read.

use crate::state::AppState;
use ocelot_core::queue::WorkerInfo;

/// The reason shown for a queued build routed to `tag`.
pub(crate) async fn reason(state: &AppState, tag: &str) -> String {
    reasons(state).await(tag)
}

/// The reasons for queued builds of any tag, from one look at the worker registry.
pub(crate) async fn reasons(state: &AppState) -> impl Fn(&str) -> String {
    let workers = state.bus.list_workers().await;
    move |tag| match &workers {
        Ok(workers) => explain(workers, tag),
        Err(error) => format!("the queue is unreachable: {error}"),
    }
}

fn explain(workers: &[WorkerInfo], tag: &str) -> String {
    let serving: Vec<&WorkerInfo> = workers
        .iter()
        .filter(|w| w.tags.iter().any(|t| t == tag))
        .collect();
    if serving.is_empty() {
        return format!(
            "no live worker serves tag `{tag}`: start one with `ocelot-worker --tags {tag}` ({} other live worker(s))",
            workers.len()
        );
    }
    let taking: Vec<&WorkerInfo> = serving
        .iter()
        .copied()
        .filter(|w| w.paused.is_none())
        .collect();
    if taking.is_empty() {
        let reasons: Vec<String> = serving
            .iter()
            .map(|w| format!("{}: {}", w.id, w.paused.as_deref().unwrap_or_default()))
            .collect();
        return format!(
            "all {} worker(s) with tag `{tag}` take no jobs now ({})",
            serving.len(),
            reasons.join("; ")
        );
    }
    let serving = taking;
    let capacity: u32 = serving.iter().map(|w| w.capacity).sum();
    let running: u32 = serving.iter().map(|w| w.running).sum();
    if running >= capacity {
        return format!(
            "all {} worker(s) with tag `{tag}` are busy ({running} of {capacity} build slots in use)",
            serving.len()
        );
    }
    format!(
        "waiting for a worker to take it: {} worker(s) with tag `{tag}` have {} free slot(s)",
        serving.len(),
        capacity - running
    )
}

#[cfg(test)]
mod tests {
    use super::explain;
    use ocelot_core::queue::WorkerInfo;

    fn worker(id: &str, tags: &[&str], capacity: u32, running: u32) -> WorkerInfo {
        WorkerInfo {
            id: id.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            capacity,
            running,
            executor: "docker".into(),
            host: "h".into(),
            version: "0".into(),
            started_at_ms: 0,
            seen_at_ms: 0,
            paused: None,
        }
    }

    #[test]
    fn each_reason_is_told_apart() {
        let workers = [worker("a", &["default"], 2, 2), worker("b", &["gpu"], 1, 0)];
        assert!(explain(&workers, "arm").starts_with("no live worker serves tag `arm`"));
        assert_eq!(
            explain(&workers, "default"),
            "all 1 worker(s) with tag `default` are busy (2 of 2 build slots in use)"
        );
        assert!(explain(&workers, "gpu").contains("1 free slot"));
        assert!(explain(&[], "default").contains("0 other live worker"));
        let mut low_disk = worker("c", &["small"], 2, 0);
        low_disk.paused = Some("free disk 10 MiB under 1024 MiB at /cache".into());
        assert_eq!(
            explain(&[low_disk], "small"),
            "all 1 worker(s) with tag `small` take no jobs now (c: free disk 10 MiB under 1024 MiB at /cache)"
        );
    }
}
