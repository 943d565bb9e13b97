//! The end-to-end harness: real Postgres (a fresh database per test), a NATS JetStream
//! server per test (free port, temp dir), `git daemon` repositories, the admin and workers
//! in-process through their `run()` functions, and the real `ocelot` binary.
//!
//! - [`postgres`]: `TestDatabase` on the server named by `OCELOT_TEST_DATABASE_URL`.
//! - [`nats`]: `NatsServer` spawned per test.
//! - [`nats_cluster`]: `NatsCluster`, three routed `nats-server`s with JetStream (kill a node,
//!   start it again).
//! - [`git`]: `GitServer` (`git daemon`) and repositories with commits.
//! - [`git_http`]: `PrivateHttpGit`, `git http-backend` behind HTTP Basic authentication.
//! - [`haproxy`]: `HaProxy`, HAProxy in front of admins (gRPC health checks, stats socket).
//! - [`registry`]: `PrivateRegistry`, a registry API v2 behind Basic auth serving a local image.
//! - [`sshd`]: `SshGitServer`, `sshd` on a loopback port running `git-shell` for one key.
//! - [`tls`]: a throwaway CA and a certificate for 127.0.0.1 (the admin over TLS).
//! - [`http`]: a minimal HTTP/1.1 client for webhook requests.
//! - [`s3`]: `S3Server`, moto's S3-compatible server on a loopback port (artifact storage).
//! - [`pg_server`]: `PostgresServer`, a Postgres of a test's own that it can stop and restart.
//! - [`services`]: `ServiceProcess`, a service binary run as a process (kill, SIGTERM, restart).
//! - [`process`]: `GroupChild`, how every server above runs: in a process group of its own,
//!   killed and waited for on drop, so that no process outlives its test.
//! - [`cluster`]: `Cluster` — admin + workers + the CLI, and `wait_until`.

pub mod browser;
pub mod cluster;
pub mod git;
pub mod git_http;
pub mod haproxy;
pub mod http;
pub mod nats;
pub mod nats_cluster;
pub mod pg_server;
pub mod postgres;
pub mod process;
pub mod receiver;
pub mod registry;
pub mod s3;
pub mod services;
pub mod smtp;
pub mod sshd;
pub mod tls;

use ocelot_core::ids::Attempt;
use std::time::Duration;

/// Attempt `n` of a build (tests name attempts by their number).
pub fn attempt(n: u32) -> Attempt {
    Attempt::from(n)
}

/// A free TCP port on 127.0.0.1 (bound, then released for the server that takes it).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Polls `check` until it returns `Some`, or fails after `timeout` naming `what`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub async fn wait_for_port(port: u16, timeout: Duration) -> anyhow::Result<()> {
    wait_for_address("127.0.0.1", port, timeout).await
}

/// Waits until something accepts connections on `ip`:`port`.
pub async fn wait_for_address(ip: &str, port: u16, timeout: Duration) -> anyhow::Result<()> {
    wait_until(
        &format!("{ip}:{port} to accept connections"),
        timeout,
        || async move {
            tokio::net::TcpStream::connect((ip, port))
                .await
                .ok()
                .map(|_| ())
        },
    )
    .await
}
