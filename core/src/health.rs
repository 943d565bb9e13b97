//! Readiness: whether the dependencies every service needs answer now. The admin's gRPC
//! health service, the hookhandler's `/readyz` and the worker's back-pressure report it.

use crate::queue::Bus;
use crate::store::Store;
use std::time::Duration;

/// What is wrong with Postgres and NATS now, one entry per problem (empty: ready).
pub async fn dependency_problems(store: &Store, bus: &Bus, timeout: Duration) -> Vec<String> {
    let mut problems = Vec::new();
    match tokio::time::timeout(timeout, store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => problems.push(format!("Postgres unreachable: {error}")),
        Err(_) => problems.push(format!("Postgres does not answer within {timeout:?}")),
    }
    if !bus.is_connected() {
        problems.push("NATS disconnected".to_string());
    }
    problems
}
