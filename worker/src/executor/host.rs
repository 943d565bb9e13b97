//! The host executor: scripts of builds that name no image run directly on the worker's host
//! (the original Ocelot's non-Docker workers, e.g. for macOS builds), in the build's own
//! temporary workspace, each in its own process group so that a timeout stops all of it.

use super::{ExecutorError, ScriptOutcome, ScriptRun};
use crate::event_sink::EventSink;
use crate::lines::LineSplitter;
use ocelot_core::model::LogStream;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

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
        let (sender, mut receiver) = mpsc::channel::<(LogStream, Vec<u8>)>(64);
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(pump(stdout, LogStream::Stdout, sender.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(pump(stderr, LogStream::Stderr, sender.clone()));
        }
        drop(sender);
        let mut stdout = LineSplitter::default();
        let mut stderr = LineSplitter::default();
        loop {
            let next = match run.deadline {
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline.into(), receiver.recv()).await {
                        Ok(next) => next,
                        Err(_) => {
                            kill_group(&mut child).await;
                            return Ok(ScriptOutcome::TimedOut);
                        }
                    }
                }
                None => receiver.recv().await,
            };
            let Some((stream, chunk)) = next else { break };
            let splitter = if stream == LogStream::Stderr {
                &mut stderr
            } else {
                &mut stdout
            };
            for line in splitter.push(&chunk) {
                sink.line(run.stage, stream, line).await;
            }
        }
        if let Some(line) = stdout.finish() {
            sink.line(run.stage, LogStream::Stdout, line).await;
        }
        if let Some(line) = stderr.finish() {
            sink.line(run.stage, LogStream::Stderr, line).await;
        }
        let status = child
            .wait()
            .await
            .map_err(|e| ExecutorError::Io(format!("waiting for the script: {e}")))?;
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

/// Kills the script's whole process group, then reaps the shell.
async fn kill_group(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = tokio::process::Command::new("kill")
            .arg("-KILL")
            .arg(format!("-{pid}"))
            .status()
            .await;
    }
    let _ = child.kill().await;
}
