//! Where build scripts run: a fresh container per build ([`docker`]) or, for builds that name
//! no image on a worker started with `--executor host`, the host itself ([`host`]).

pub(crate) mod docker;
pub(crate) mod host;

use crate::log_sink::LogSink;
use ocelot_core::secrets::mask::Masker;
use std::time::Instant;

/// Where a worker runs build scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecutorKind {
    /// In a fresh container from the build's `image` (the default).
    Docker,
    /// Builds that name no image run directly on this host in a temporary workspace;
    /// builds with an image still run in a container.
    Host,
}

/// One stage's script and what it runs with.
#[derive(Debug)]
pub(crate) struct ScriptRun<'a> {
    pub(crate) stage: &'a str,
    /// The stage's lines as one shell script that stops at the first failing line.
    pub(crate) script: String,
    /// `KEY=value`, later entries override earlier ones.
    pub(crate) env: Vec<String>,
    pub(crate) deadline: Option<Instant>,
    /// Hides the build's secret values in its output.
    pub(crate) masker: Masker,
    /// Cancelled by `ocelot kill`: the script is stopped.
    pub(crate) cancel: tokio_util::sync::CancellationToken,
}

/// How a script ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScriptOutcome {
    Exited(i32),
    /// The deadline passed; the script was stopped.
    TimedOut,
    /// The build was cancelled; the script was stopped.
    Cancelled,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ExecutorError {
    #[error(
        "image `{image}` is not available on worker {worker} and could not be pulled ({message}); \
         build or import it on the worker's Docker host (e.g. `docker build -t {image} .` or \
         `docker import`), or push it to a registry that the worker can reach"
    )]
    ImageUnavailable {
        image: String,
        worker: String,
        message: String,
    },
    #[error(
        "authentication failed for registry {registry} pulling `{image}` ({message}); add a login \
         with `ocelot creds add registry NAME --registry {registry} --username USER`, or check it"
    )]
    RegistryAuthentication {
        image: String,
        registry: String,
        message: String,
    },
    #[error(
        "image `{image}` was pulled on this worker with another build's login for registry \
         {registry}, and this build has none: add one with `ocelot creds add registry NAME \
         --registry {registry} --username USER` (the worker then pulls it with this build's \
         login)"
    )]
    PrivateImage { image: String, registry: String },
    #[error("Docker Engine: {0}")]
    Docker(String),
    #[error("{0}")]
    Io(String),
}

/// How a helper command (a small job besides the stages, e.g. writing file credentials)
/// ended and what it printed.
#[derive(Debug)]
pub(crate) struct HelperOutput {
    pub(crate) exit_code: i64,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl HelperOutput {
    /// Its standard error in one line (or its exit code), for an error message.
    pub(crate) fn error_text(&self) -> String {
        let text = self.stderr.trim();
        if text.is_empty() {
            format!("exit code {}", self.exit_code)
        } else {
            text.lines().collect::<Vec<_>>().join("; ")
        }
    }
}

/// Joins a stage's lines into one script that stops at the first failing line.
pub(crate) fn shell_script(lines: &[String]) -> String {
    let mut script = String::from("set -e\n");
    for line in lines {
        script.push_str(line);
        script.push('\n');
    }
    script
}

/// A prepared place to run a build's scripts.
#[derive(Debug)]
pub(crate) enum Environment {
    /// Boxed: a build container (with its services, network and job template) is large.
    Container(Box<docker::BuildContainer>),
    Host(host::HostEnvironment),
}

impl Environment {
    /// The workspace path as the scripts see it (`$WORKSPACE`).
    pub(crate) fn workspace(&self) -> String {
        match self {
            Environment::Container(_) => docker::CONTAINER_WORKSPACE.to_string(),
            Environment::Host(host) => host.workspace(),
        }
    }

    pub(crate) async fn run(
        &self,
        run: ScriptRun<'_>,
        sink: &mut impl LogSink,
    ) -> Result<ScriptOutcome, ExecutorError> {
        match self {
            Environment::Container(container) => container.run(run, sink).await,
            Environment::Host(host) => host.run(run, sink).await,
        }
    }

    /// The workspace as a tar stream of `workspace/...` entries, never following a link:
    /// read from the container, or packed from the host's directory.
    pub(crate) fn workspace_archive(
        &self,
    ) -> std::pin::Pin<Box<dyn futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send>> {
        use futures::TryStreamExt;
        match self {
            Environment::Container(container) => Box::pin(
                container
                    .workspace_archive()
                    .map_err(|e| std::io::Error::other(e.to_string())),
            ),
            Environment::Host(host) => {
                Box::pin(crate::artifacts::pack_directory(host.workspace().into()))
            }
        }
    }

    /// Unpacks the tar file `archive` (workspace-relative names) into the workspace.
    pub(crate) async fn unpack_into_workspace(
        &self,
        archive: &std::path::Path,
    ) -> Result<(), ExecutorError> {
        match self {
            Environment::Container(container) => container.unpack_into_workspace(archive).await,
            Environment::Host(host) => host.unpack_into_workspace(archive).await,
        }
    }

    /// A fresh environment for a matrix job: a container made like this one, on its
    /// network, with the workspace copied in as it is now, named `name` with `labels`.
    /// `None` on the host, where a job runs in the build's own workspace.
    pub(crate) async fn start_job(
        &self,
        name: &str,
        labels: std::collections::HashMap<String, String>,
    ) -> Result<Option<Environment>, ExecutorError> {
        match self {
            Environment::Container(container) => container
                .start_job(name, labels)
                .await
                .map(|job| Some(Environment::Container(Box::new(job)))),
            Environment::Host(_) => Ok(None),
        }
    }

    /// Removes whatever the build left (the container); never fails, logs instead.
    pub(crate) async fn cleanup(self) {
        match self {
            Environment::Container(container) => container.remove().await,
            Environment::Host(host) => host.close().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shell_script;

    #[test]
    fn scripts_stop_at_the_first_failing_line() {
        let script = shell_script(&["echo a".into(), "false".into(), "echo b".into()]);
        assert_eq!(script, "set -e\necho a\nfalse\necho b\n");
        let output = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), "a\n");
        assert_eq!(output.status.code(), Some(1));
    }
}
