//! Ocelot's services as real processes (the built binaries), for tests that kill, stop and
//! restart them: SIGKILL, SIGTERM, start again with the same arguments. Each service's
//! output is appended to one log file across its restarts.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug)]
pub struct ServiceProcess {
    pub name: String,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    pub log: PathBuf,
    child: Option<tokio::process::Child>,
}

impl ServiceProcess {
    /// Starts `program ARGS` with `env` added, its output appended to `log`.
    pub fn start(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        log: &Path,
    ) -> anyhow::Result<ServiceProcess> {
        let mut service = ServiceProcess {
            name: name.to_string(),
            program: program.to_path_buf(),
            args: args.to_vec(),
            env: env.to_vec(),
            log: log.to_path_buf(),
            child: None,
        };
        service.start_again()?;
        Ok(service)
    }

    /// Starts the stopped service again, with the same arguments.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "{} is running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().cloned())
            .env("OCELOT_LOG_FORMAT", "plain")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.program.display()))?;
        self.child = Some(child);
        Ok(())
    }

    fn signal(&self, signal: rustix::process::Signal) -> anyhow::Result<()> {
        let child = self.child.as_ref().context("not running")?;
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw)
            .context("no pid")?;
        rustix::process::kill_process(pid, signal)?;
        Ok(())
    }

    /// SIGKILL: the service dies at once, mid-work.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.signal(rustix::process::Signal::KILL)?;
        if let Some(mut child) = self.child.take() {
            child.wait().await?;
        }
        Ok(())
    }

    /// SIGTERM, then waits up to `timeout` for the service to exit; its exit code.
    pub async fn terminate(&mut self, timeout: Duration) -> anyhow::Result<Option<i32>> {
        self.signal(rustix::process::Signal::TERM)?;
        let mut child = self.child.take().context("not running")?;
        match tokio::time::timeout(timeout, child.wait()).await {
            Ok(status) => Ok(status?.code()),
            Err(_) => {
                child.kill().await?;
                anyhow::bail!("{} did not exit within {timeout:?} of SIGTERM", self.name)
            }
        }
    }

    /// Whether the process has exited (e.g. it failed to start).
    pub fn has_exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().ok().flatten().is_some(),
            None => true,
        }
    }

    /// The last `lines` lines of its log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}
