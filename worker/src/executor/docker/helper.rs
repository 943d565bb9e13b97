//! Small jobs in a build container besides its stages: a short command whose output is
//! read (not logged), and copying a tar archive of files in.

use super::BuildContainer;
use crate::executor::{ExecutorError, HelperOutput};
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::UploadToContainerOptionsBuilder;
use futures::StreamExt;
use std::time::Duration;

/// How long a helper command may take.
const HELPER_TIMEOUT: Duration = Duration::from_secs(60);
/// The output of a helper command kept (more is dropped).
const HELPER_OUTPUT_BYTES: usize = 64 * 1024;

fn keep(into: &mut Vec<u8>, bytes: &[u8]) {
    let room = HELPER_OUTPUT_BYTES.saturating_sub(into.len());
    into.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

impl BuildContainer {
    /// Runs `cmd` with `env` in the container as the scripts' user, in the workspace, and
    /// waits for it (at most [`HELPER_TIMEOUT`]).
    pub(crate) async fn run_helper(
        &self,
        cmd: Vec<String>,
        env: Vec<String>,
    ) -> Result<HelperOutput, ExecutorError> {
        let exec = self
            .docker
            .create_exec(
                &self.id,
                CreateExecOptions {
                    cmd: Some(cmd),
                    env: Some(env),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    working_dir: Some(super::CONTAINER_WORKSPACE.to_string()),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| ExecutorError::Docker(format!("creating a helper exec: {e}")))?;
        let run = async {
            let started = self
                .docker
                .start_exec(&exec.id, Some(StartExecOptions::default()))
                .await
                .map_err(|e| ExecutorError::Docker(format!("starting a helper exec: {e}")))?;
            let StartExecResults::Attached { mut output, .. } = started else {
                return Err(ExecutorError::Docker(
                    "the helper exec started detached".into(),
                ));
            };
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            while let Some(next) = output.next().await {
                match next {
                    Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                        keep(&mut stdout, &message);
                    }
                    Ok(LogOutput::StdErr { message }) => keep(&mut stderr, &message),
                    Ok(LogOutput::StdIn { .. }) => {}
                    Err(error) => {
                        return Err(ExecutorError::Docker(format!(
                            "reading a helper exec's output: {error}"
                        )));
                    }
                }
            }
            let exit_code = self.exit_code(&exec.id).await?;
            Ok(HelperOutput {
                exit_code: i64::from(exit_code),
                stdout: String::from_utf8_lossy(&stdout).into_owned(),
                stderr: String::from_utf8_lossy(&stderr).into_owned(),
            })
        };
        tokio::time::timeout(HELPER_TIMEOUT, run)
            .await
            .map_err(|_| {
                ExecutorError::Docker(format!(
                    "a helper exec did not end within {} s",
                    HELPER_TIMEOUT.as_secs()
                ))
            })?
    }

    /// Extracts `archive` (a tar whose names are absolute paths without their leading `/`)
    /// at the container's root, keeping each entry's mode and owner.
    pub(crate) async fn copy_in(
        &self,
        archive: bytes::Bytes,
        what: &str,
    ) -> Result<(), ExecutorError> {
        self.docker
            .upload_to_container(
                &self.id,
                Some(UploadToContainerOptionsBuilder::new().path("/").build()),
                bollard::body_full(archive),
            )
            .await
            .map_err(|e| ExecutorError::Docker(format!("copying {what} into the container: {e}")))
    }
}
