//! The host executor: scripts of builds that name no image run directly on the worker's host
//! (the original Ocelot's non-Docker workers, e.g. for macOS builds), for repos an admin
//! opted in, each build as its own unprivileged uid ([`users`]) in its own workspace, with
//! its own home and temporary directory, every process of that uid killed when a stage
//! ends ([`confine`]).

mod confine;
mod helper;
mod users;

pub use users::UidRange;
pub(crate) use users::{BuildUser, UidPool};

use super::{ExecutorError, ScriptOutcome, ScriptRun};
use crate::log_sink::LogSink;
use crate::output::ScriptOutput;
use ocelot_core::model::LogStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tempfile::TempDir;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

/// Variables of the worker's environment that host builds see (the rest is cleared; `HOME`
/// and `TMPDIR` are the build's own).
const INHERITED_VARIABLES: [&str; 4] = ["PATH", "LANG", "LC_ALL", "TERM"];
/// `PATH` when the worker has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// How long output is still read after the script exited.
const DRAIN_AFTER_EXIT: std::time::Duration = std::time::Duration::from_millis(500);

async fn sleep_until_deadline(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Runs blocking confinement work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, ExecutorError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ExecutorError::Io(format!("host confinement task failed: {e}")))?
        .map_err(ExecutorError::Io)
}

#[derive(Debug)]
pub(crate) struct HostEnvironment {
    workspace: PathBuf,
    /// The build's `HOME` (`home/`) and `TMPDIR` (`tmp/`), beside the workspace.
    private: TempDir,
    user: BuildUser,
}

impl HostEnvironment {
    /// Prepares `workspace` for scripts running as `user`: whatever still runs as that uid
    /// is killed and what it left in the shared temporary directories removed, then the
    /// workspace (never following a link) and a private directory named `private_prefix…`
    /// in `private_parent` become the uid's, mode 0700.
    pub(crate) async fn open(
        user: BuildUser,
        workspace: &Path,
        private_parent: &Path,
        private_prefix: &str,
    ) -> Result<Self, ExecutorError> {
        let uid = user.uid();
        let workspace = workspace.to_path_buf();
        let parent = private_parent.to_path_buf();
        let prefix = private_prefix.to_string();
        let (workspace, private) = blocking(move || {
            confine::kill_all(uid)?;
            confine::remove_leftovers(uid);
            let private = tempfile::Builder::new()
                .prefix(&prefix)
                .tempdir_in(&parent)
                .map_err(|e| format!("creating a home directory in {}: {e}", parent.display()))?;
            for name in ["home", "tmp"] {
                let dir = private.path().join(name);
                std::fs::create_dir(&dir)
                    .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            }
            confine::give_tree(private.path(), uid)?;
            confine::give_tree(&workspace, uid)?;
            Ok((workspace, private))
        })
        .await?;
        Ok(HostEnvironment {
            workspace,
            private,
            user,
        })
    }

    pub(crate) fn workspace(&self) -> String {
        self.workspace.to_string_lossy().into_owned()
    }

    /// Unpacks the tar file `archive` (workspace-relative names; nothing is written
    /// outside the workspace, whatever its names or the workspace's links say) into the
    /// workspace, then gives what it holds to the build's uid.
    pub(crate) async fn unpack_into_workspace(&self, archive: &Path) -> Result<(), ExecutorError> {
        let uid = self.user.uid();
        let workspace = self.workspace.clone();
        let archive = archive.to_path_buf();
        blocking(move || {
            let file = std::fs::File::open(&archive)
                .map_err(|e| format!("opening {}: {e}", archive.display()))?;
            let mut unpacker = tar::Archive::new(std::io::BufReader::new(file));
            unpacker.set_preserve_permissions(true);
            unpacker.set_preserve_mtime(true);
            unpacker.set_overwrite(true);
            unpacker.set_unpack_xattrs(false);
            unpacker
                .unpack(&workspace)
                .map_err(|e| format!("unpacking into {}: {e}", workspace.display()))?;
            confine::give_tree(&workspace, uid)
        })
        .await
    }

    /// The uid the scripts run as.
    pub(crate) fn uid(&self) -> u32 {
        self.user.uid()
    }

    /// Kills what still runs as the build's uid, removes what it left in the shared
    /// temporary directories and takes the workspace back (the uid goes back to the pool
    /// when `self` is dropped; the workspace is removed by its owner).
    pub(crate) async fn close(self) {
        let uid = self.user.uid();
        let workspace = self.workspace.clone();
        let closed = blocking(move || {
            let killed = confine::kill_all(uid);
            confine::take_back(&workspace)?;
            confine::remove_leftovers(uid);
            killed
        })
        .await;
        if let Err(error) = closed {
            tracing::warn!(uid, %error, "cleaning up after a host build");
        }
        drop(self.private);
    }

    pub(crate) async fn run(
        &self,
        run: ScriptRun<'_>,
        sink: &mut impl LogSink,
    ) -> Result<ScriptOutcome, ExecutorError> {
        let uid = self.user.uid();
        let mut command = tokio::process::Command::new("/bin/sh");
        // the worker's own environment (database URL, ...) is not the build's business
        command.env_clear();
        for key in INHERITED_VARIABLES {
            if let Some(value) = std::env::var_os(key) {
                command.env(key, value);
            }
        }
        if std::env::var_os("PATH").is_none() {
            command.env("PATH", DEFAULT_PATH);
        }
        command
            .env("HOME", self.private.path().join("home"))
            .env("TMPDIR", self.private.path().join("tmp"))
            .env("USER", format!("ocelot-build-{uid}"))
            .env("LOGNAME", format!("ocelot-build-{uid}"))
            .arg("-c")
            .arg(&run.script)
            .current_dir(&self.workspace)
            .uid(uid)
            .gid(uid)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        no_new_privileges(&mut command);
        for pair in &run.env {
            if let Some((key, value)) = pair.split_once('=') {
                command.env(key, value);
            }
        }
        let mut child = command
            .spawn()
            .map_err(|e| ExecutorError::Io(format!("starting /bin/sh as uid {uid}: {e}")))?;
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
                    end_stage(uid, process_group, &mut child).await;
                    return Ok(ScriptOutcome::TimedOut);
                }
                () = run.cancel.cancelled() => {
                    end_stage(uid, process_group, &mut child).await;
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
        // whatever the script left running (also daemonised, `setsid`) ends with its stage
        end_stage(uid, process_group, &mut child).await;
        Ok(ScriptOutcome::Exited(status.code().unwrap_or(-1)))
    }
}

/// The script (and what it runs) can never gain privileges: setuid programs (`sudo`, `su`)
/// run without them.
#[allow(unsafe_code)]
fn no_new_privileges(command: &mut tokio::process::Command) {
    // SAFETY: the closure runs in the forked child before exec and only makes one
    // `prctl(PR_SET_NO_NEW_PRIVS)` system call: no allocation, no lock, async-signal-safe.
    unsafe {
        command.pre_exec(|| rustix::thread::set_no_new_privs(true).map_err(std::io::Error::from));
    }
}

/// Ends a stage: its process group, then every process of the build's uid (one that left
/// the group with `setsid` too), then reaps the shell.
async fn end_stage(uid: u32, process_group: Option<u32>, child: &mut tokio::process::Child) {
    kill_group(process_group, child).await;
    let killed = tokio::task::spawn_blocking(move || confine::kill_all(uid)).await;
    match killed {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(uid, %error, "ending a host stage"),
        Err(error) => tracing::warn!(uid, %error, "ending a host stage"),
    }
}

/// Makes `dir` (the workspaces' parents) traversable but not listable by build users.
pub(crate) fn make_traversable(dir: &Path) -> Result<(), String> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
        .map_err(|e| format!("chmod 0711 {}: {e}", dir.display()))
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
    use std::sync::Arc;
    use tokio_util::sync::CancellationToken;

    /// Build uids of this test process (apart from other processes' by its pid).
    fn test_users() -> Arc<UidPool> {
        static POOL: std::sync::OnceLock<Arc<UidPool>> = std::sync::OnceLock::new();
        POOL.get_or_init(|| {
            let first = 3_000_000 + (std::process::id() % 50_000) * 16;
            UidPool::new(UidRange::parse(&format!("{first}-{}", first + 15)).unwrap())
        })
        .clone()
    }

    /// Runs `script` in a fresh workspace on this host, as a build uid, into a sink keeping
    /// `max_bytes`; also returns the environment (still open) and its private directories'
    /// parent.
    async fn on_host(
        script: &[&str],
        masker: Masker,
        deadline: Option<std::time::Duration>,
        max_bytes: u64,
    ) -> (ScriptOutcome, VecSink, tempfile::TempDir) {
        let (outcome, sink, workspace, host, _parent) =
            on_host_open(script, masker, deadline, max_bytes).await;
        host.close().await;
        (outcome, sink, workspace)
    }

    async fn on_host_open(
        script: &[&str],
        masker: Masker,
        deadline: Option<std::time::Duration>,
        max_bytes: u64,
    ) -> (
        ScriptOutcome,
        VecSink,
        tempfile::TempDir,
        HostEnvironment,
        tempfile::TempDir,
    ) {
        let workspace = tempfile::tempdir().unwrap();
        let parent = tempfile::tempdir().unwrap();
        make_traversable(parent.path()).unwrap();
        let user = test_users().take().unwrap();
        let host = HostEnvironment::open(user, workspace.path(), parent.path(), "build-1-1-home-")
            .await
            .unwrap();
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
        (outcome, sink, workspace, host, parent)
    }

    #[tokio::test]
    async fn scripts_run_as_the_build_uid_with_their_own_home_and_no_privileges() {
        let script = [
            "id -u",
            "echo \"home $HOME tmp $TMPDIR\"",
            "touch \"$HOME/h\" \"$TMPDIR/t\" ws-file",
            "grep NoNewPrivs /proc/self/status",
        ];
        let (outcome, sink, workspace, host, parent) =
            on_host_open(&script, Masker::default(), None, 1 << 20).await;
        assert_eq!(outcome, ScriptOutcome::Exited(0), "{:?}", sink.texts());
        let texts = sink.texts();
        assert_eq!(texts[0], host.uid().to_string());
        assert!(
            texts[1].starts_with(&format!("home {}", parent.path().display())),
            "{texts:?}"
        );
        assert!(texts[2].ends_with('1'), "{texts:?}");
        host.close().await;
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(workspace.path()).unwrap();
        assert_eq!(metadata.uid(), 0, "the workspace is taken back");
        assert_eq!(
            std::fs::read_dir(parent.path()).unwrap().count(),
            0,
            "the private directory is removed"
        );
    }

    #[tokio::test]
    async fn a_daemonised_process_ends_with_its_stage() {
        let script = [
            "setsid sleep 1000 >/dev/null 2>&1 < /dev/null &",
            "echo left",
        ];
        let (outcome, _sink, _workspace, host, _parent) =
            on_host_open(&script, Masker::default(), None, 1 << 20).await;
        assert_eq!(outcome, ScriptOutcome::Exited(0));
        assert!(
            !confine::runs_processes(host.uid()),
            "a process of the build's uid outlived its stage"
        );
        host.close().await;
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
