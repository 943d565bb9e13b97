//! A NATS server with JetStream per test: a free port and its own storage directory. It
//! leads a process group of its own, killed and waited for on drop.

use crate::process::GroupChild;
use std::time::Duration;

#[derive(Debug)]
pub struct NatsServer {
    pub url: String,
    pub port: u16,
    ip: String,
    child: Option<GroupChild>,
    dir: tempfile::TempDir,
}

fn binary() -> String {
    if let Ok(path) = std::env::var("OCELOT_NATS_SERVER") {
        return path;
    }
    let path_file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.state/nats-server.path");
    if let Ok(path) = std::fs::read_to_string(path_file) {
        return path.trim().to_string();
    }
    "nats-server".to_string()
}

fn spawn(ip: &str, port: u16, dir: &std::path::Path) -> anyhow::Result<GroupChild> {
    GroupChild::spawn(
        "nats-server (scripts/setup.sh installs it; or set OCELOT_NATS_SERVER)",
        tokio::process::Command::new(binary())
            .args(["-a", ip, "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    )
}

impl NatsServer {
    pub async fn start() -> anyhow::Result<NatsServer> {
        NatsServer::start_on("127.0.0.1").await
    }

    /// A server listening on `ip` (e.g. a Docker network's gateway, for containers).
    pub async fn start_on(ip: &str) -> anyhow::Result<NatsServer> {
        let mut last_error = None;
        for _ in 0..3 {
            let dir = tempfile::tempdir()?;
            let port = crate::free_port()?;
            let child = spawn(ip, port, dir.path())?;
            match crate::wait_for_address(ip, port, Duration::from_secs(10)).await {
                Ok(()) => {
                    return Ok(NatsServer {
                        url: format!("nats://{ip}:{port}"),
                        port,
                        ip: ip.to_string(),
                        child: Some(child),
                        dir,
                    });
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("nats-server did not start")))
    }

    /// Kills the server (SIGKILL: nothing is flushed on the way out) and waits until it is
    /// gone.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill_all()?;
        }
        Ok(())
    }

    /// The server's pid (which leads its process group), while it runs.
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(GroupChild::pid)
    }

    /// Starts the server again on the same port and storage (streams and consumers kept).
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "nats-server is running");
        self.child = Some(spawn(&self.ip, self.port, self.dir.path())?);
        crate::wait_for_address(&self.ip, self.port, Duration::from_secs(20)).await
    }
}
