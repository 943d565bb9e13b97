//! Ocelot's services as real processes (the built binaries), for tests that kill, stop and
//! restart them: SIGKILL, SIGTERM, start again with the same arguments. Each service's
//! output is appended to one log file across its restarts. Each start leads a process
//! group of its own: [`ServiceProcess::kill`] ends the service alone (as a crash would),
//! and dropping the `ServiceProcess` kills every group it started and waits until no
//! process of them is left.

use crate::process::GroupChild;
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
    child: Option<GroupChild>,
    /// The process groups of earlier starts, whatever of them may still run (killed on drop).
    earlier: Vec<GroupChild>,
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
            earlier: Vec::new(),
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
        let child = GroupChild::spawn(
            &self.program.display().to_string(),
            tokio::process::Command::new(&self.program)
                .args(&self.args)
                .envs(self.env.iter().cloned())
                .env("OCELOT_LOG_FORMAT", "plain")
                .stdin(std::process::Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log),
        )?;
        self.child = Some(child);
        Ok(())
    }

    fn signal(&self, signal: rustix::process::Signal) -> anyhow::Result<()> {
        self.child
            .as_ref()
            .context("not running")?
            .signal_leader(signal)
    }

    /// The running service's pid (which leads its process group).
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(GroupChild::pid)
    }

    /// SIGKILL: the service dies at once, mid-work. What it started keeps running, as after
    /// a real crash, until this `ServiceProcess` is dropped.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.signal(rustix::process::Signal::KILL)?;
        if let Some(mut child) = self.child.take() {
            let waited = child.child_mut().wait().await;
            self.earlier.push(child);
            waited?;
        }
        Ok(())
    }

    /// SIGTERM, then waits up to `timeout` for the service to exit; its exit code.
    pub async fn terminate(&mut self, timeout: Duration) -> anyhow::Result<Option<i32>> {
        self.signal(rustix::process::Signal::TERM)?;
        let mut child = self.child.take().context("not running")?;
        let waited = tokio::time::timeout(timeout, child.child_mut().wait()).await;
        let outcome = match waited {
            Ok(status) => Ok(status?.code()),
            Err(_) => {
                child.kill_all()?;
                Err(anyhow::anyhow!(
                    "{} did not exit within {timeout:?} of SIGTERM",
                    self.name
                ))
            }
        };
        self.earlier.push(child);
        outcome
    }

    /// Whether the process has exited (e.g. it failed to start).
    pub fn has_exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.child_mut().try_wait().ok().flatten().is_some(),
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
