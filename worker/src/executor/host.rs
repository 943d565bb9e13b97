//! The host executor: scripts of builds that name no image run directly on the worker's host
//! (the original Ocelot's non-Docker workers, e.g. for macOS builds), in the build's own
//! temporary workspace, each in its own process group so that a timeout stops all of it.

use super::{ExecutorError, ScriptOutcome, ScriptRun};
use crate::event_sink::EventSink;
use crate::output::ScriptOutput;
use ocelot_core::model::LogStream;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

/// Variables of the worker's environment that host builds see (the rest is cleared).
const INHERITED_VARIABLES: [&str; 7] = ["PATH", "HOME", "USER", "LANG", "LC_ALL", "TMPDIR", "TERM"];
/// How long output is still read after the script exited.
const DRAIN_AFTER_EXIT: std::time::Duration = std::time::Duration::from_millis(500);

async fn sleep_until_deadline(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[derive(Debug)]
pub(crate) struct HostEnvironment {
    workspace: PathBuf,
}

impl HostEnvironment {
    pub(crate) fn new(workspace: PathBuf) -> Self {
        HostEnvironment { workspace }
    }

    pub(crate) fn workspace(&self) -> String {
        self.workspace.to_string_lossy().into_owned()
    }

    pub(crate) async fn run(
        &mut self,
        run: ScriptRun<'_>,
        sink: &mut EventSink,
    ) -> Result<ScriptOutcome, ExecutorError> {
        let mut command = tokio::process::Command::new("/bin/sh");
        // the worker's own environment (database URL, ...) is not the build's business
        command.env_clear();
        for key in INHERITED_VARIABLES {
            if let Some(value) = std::env::var_os(key) {
                command.env(key, value);
            }
        }
        command
            .arg("-c")
            .arg(&run.script)
            .current_dir(&self.workspace)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        for pair in &run.env {
            if let Some((key, value)) = pair.split_once('=') {
                command.env(key, value);
            }
        }
        let mut child = command
            .spawn()
            .map_err(|e| ExecutorError::Io(format!("starting /bin/sh: {e}")))?;
        // the shell leads its own process group (process_group(0)): its pid names the group
        let process_group = child.id();
        let (sender, mut receiver) = mpsc::channel::<(LogStream, Vec<u8>)>(64);
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(pump(stdout, LogStream::Stdout, sender.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(pump(stderr, LogStream::Stderr, sender.clone()));
        }
        drop(sender);
        let mut output_lines = ScriptOutput::new(run.stage, &run.masker);
        let deadline = run.deadline.map(tokio::time::Instant::from_std);
        // a script may leave a background process holding its output open: once the shell
        // has exited, the output is drained for a moment, then the stage is over
        let mut exit_status = None;
        loop {
            let next = tokio::select! {
                next = receiver.recv() => next,
                status = child.wait(), if exit_status.is_none() => {
                    exit_status = Some(status.map_err(|e| ExecutorError::Io(format!("waiting for the script: {e}")))?);
                    continue;
                }
                () = tokio::time::sleep(DRAIN_AFTER_EXIT), if exit_status.is_some() => break,
                () = sleep_until_deadline(deadline) => {
                    kill_group(process_group, &mut child).await;
                    return Ok(ScriptOutcome::TimedOut);
                }
                () = run.cancel.cancelled() => {
                    kill_group(process_group, &mut child).await;
                    return Ok(ScriptOutcome::Cancelled);
                }
            };
            let Some((stream, chunk)) = next else { break };
            output_lines.chunk(sink, stream, &chunk).await;
        }
        output_lines.finish(sink).await;
        let status = match exit_status {
            Some(status) => status,
            None => child
                .wait()
                .await
                .map_err(|e| ExecutorError::Io(format!("waiting for the script: {e}")))?,
        };
        // whatever the script left running in the background ends with its stage
        kill_group(process_group, &mut child).await;
        Ok(ScriptOutcome::Exited(status.code().unwrap_or(-1)))
    }
}

async fn pump(
    mut reader: impl tokio::io::AsyncRead + Unpin,
    stream: LogStream,
    sender: mpsc::Sender<(LogStream, Vec<u8>)>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if sender.send((stream, buffer[..n].to_vec())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Kills the script's whole process group (the shell may be gone, its group not), then
/// reaps the shell.
///
/// A direct `killpg(2)`: never the `kill` command, whose procps-ng 4.0.2 (Debian 12) reads
/// `kill -KILL -PGID` as `kill -KILL -1` and so killed every process on the machine.
async fn kill_group(process_group: Option<u32>, child: &mut tokio::process::Child) {
    let group = process_group
        .and_then(|pid| i32::try_from(pid).ok())
        .filter(|pid| *pid > 1)
        .and_then(rustix::process::Pid::from_raw);
    if let Some(group) = group {
        // ESRCH (the group is gone) is the usual answer and fine
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
    let _ = child.kill().await;
}
