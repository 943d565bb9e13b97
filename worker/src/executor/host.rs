//! The host executor: scripts of builds that name no image run directly on the worker's host
//! (the original Ocelot's non-Docker workers, e.g. for macOS builds), in the build's own
//! temporary workspace, each in its own process group so that a timeout stops all of it.

use super::{ExecutorError, ScriptOutcome, ScriptRun};
use crate::log_sink::LogSink;
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
        sink: &mut impl LogSink,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::shell_script;
    use crate::log_sink::testing::VecSink;
    use ocelot_core::secrets::mask::Masker;
    use tokio_util::sync::CancellationToken;

    /// Runs `script` in a fresh workspace on this host into a sink keeping `max_bytes`.
    async fn on_host(
        script: &[&str],
        masker: Masker,
        deadline: Option<std::time::Duration>,
        max_bytes: u64,
    ) -> (ScriptOutcome, VecSink, tempfile::TempDir) {
        let workspace = tempfile::tempdir().unwrap();
        let mut host = HostEnvironment::new(workspace.path().to_path_buf());
        let mut sink = VecSink::new(max_bytes);
        let lines: Vec<String> = script.iter().map(|l| l.to_string()).collect();
        let run = ScriptRun {
            stage: "test",
            script: shell_script(&lines),
            env: vec!["GREETING=hello".into()],
            deadline: deadline.map(|d| std::time::Instant::now() + d),
            masker,
            cancel: CancellationToken::new(),
        };
        let outcome = host.run(run, &mut sink).await.unwrap();
        (outcome, sink, workspace)
    }

    #[tokio::test]
    async fn a_script_s_lines_reach_the_sink_in_order_with_their_streams() {
        let script = [
            "echo $GREETING",
            "echo oops >&2",
            "printf 'no newline'",
            "exit 3",
        ];
        let (outcome, sink, _workspace) = on_host(&script, Masker::default(), None, 1 << 20).await;
        assert_eq!(outcome, ScriptOutcome::Exited(3));
        assert_eq!(sink.texts(), ["hello", "oops", "no newline"]);
        assert_eq!(sink.lines[0].1, LogStream::Stdout);
        assert_eq!(sink.lines[1].1, LogStream::Stderr);
    }

    #[tokio::test]
    async fn secrets_are_masked_once_even_split_over_two_lines() {
        let masker = Masker::new(["hunter2-secret", "line one\nline two"]);
        let script = [
            "echo token=hunter2-secret",
            "printf 'line one\\nline two\\n'",
        ];
        let (_, sink, _workspace) = on_host(&script, masker, None, 1 << 20).await;
        let all = sink.texts().join("\n");
        assert!(
            !all.contains("hunter2-secret") && !all.contains("line one"),
            "{all}"
        );
        assert!(all.contains("token=***"), "{all}");
    }

    #[tokio::test]
    async fn output_past_the_limit_is_cut_with_one_marker_while_the_script_goes_on() {
        let script = ["seq 1 10000", "echo done > finished"];
        let (outcome, sink, workspace) = on_host(&script, Masker::default(), None, 1024).await;
        assert_eq!(outcome, ScriptOutcome::Exited(0));
        assert!(
            workspace.path().join("finished").exists(),
            "the script ran to its end"
        );
        let markers = sink
            .lines
            .iter()
            .filter(|(_, stream, _)| *stream == LogStream::System)
            .count();
        assert_eq!(markers, 1);
        let kept: usize = sink.texts().iter().map(|t| t.len() + 1).sum();
        assert!(kept < 1024 + 200, "{kept} bytes kept");
        assert!(sink.limit.report().is_some());
    }

    #[tokio::test]
    async fn a_deadline_stops_the_script() {
        let deadline = Some(std::time::Duration::from_millis(300));
        let script = ["echo start", "sleep 30"];
        let (outcome, sink, _workspace) =
            on_host(&script, Masker::default(), deadline, 1 << 20).await;
        assert_eq!(outcome, ScriptOutcome::TimedOut);
        assert_eq!(sink.texts(), ["start"]);
    }
}
