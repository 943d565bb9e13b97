//! Small jobs of a host build besides its stages (e.g. writing its file credentials): a
//! short `sh` script run as the build's uid, so that it can touch nothing the build could
//! not (a symbolic link the build made leads nowhere else), its input given on stdin.

use super::{HostEnvironment, INHERITED_VARIABLES, no_new_privileges};
use crate::executor::{ExecutorError, HelperOutput};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How long a helper script may take.
const HELPER_TIMEOUT: Duration = Duration::from_secs(60);

impl HostEnvironment {
    /// The build's `HOME`.
    pub(crate) fn home(&self) -> String {
        self.private
            .path()
            .join("home")
            .to_string_lossy()
            .into_owned()
    }

    /// Runs `script` with `args` (`$1`, ...) as the build's uid in its workspace, `input` on
    /// its standard input, and waits for it (at most [`HELPER_TIMEOUT`]).
    pub(crate) async fn run_helper(
        &self,
        script: &str,
        args: &[String],
        input: &[u8],
    ) -> Result<HelperOutput, ExecutorError> {
        let uid = self.user.uid();
        let mut command = tokio::process::Command::new("/bin/sh");
        command.env_clear();
        for key in INHERITED_VARIABLES {
            if let Some(value) = std::env::var_os(key) {
                command.env(key, value);
            }
        }
        if std::env::var_os("PATH").is_none() {
            command.env("PATH", super::DEFAULT_PATH);
        }
        command
            .env("HOME", self.home())
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(args)
            .current_dir(&self.workspace)
            .uid(uid)
            .gid(uid)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        no_new_privileges(&mut command);
        let mut child = command
            .spawn()
            .map_err(|e| ExecutorError::Io(format!("starting /bin/sh as uid {uid}: {e}")))?;
        let mut stdin = child.stdin.take();
        let run = async {
            if let Some(stdin) = stdin.as_mut() {
                // a script that stopped early (and so stopped reading) says why on stderr
                let _ = stdin.write_all(input).await;
            }
            // end of input
            drop(stdin.take());
            child
                .wait_with_output()
                .await
                .map_err(|e| ExecutorError::Io(format!("waiting for a helper script: {e}")))
        };
        let output = tokio::time::timeout(HELPER_TIMEOUT, run)
            .await
            .map_err(|_| {
                ExecutorError::Io(format!(
                    "a helper script did not end within {} s",
                    HELPER_TIMEOUT.as_secs()
                ))
            })??;
        Ok(HelperOutput {
            exit_code: i64::from(output.status.code().unwrap_or(-1)),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}
