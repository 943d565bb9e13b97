//! The Docker executor (bollard): one container per build from the build's image, labelled
//! with the build id, attempt and worker id so that leftovers can be found, on a network of
//! its own ([`network`]), limited and with few capabilities ([`limits`]); the workspace is
//! copied in; each stage runs with `docker exec`; the container and its network are always
//! removed. [`image`] decides whether the image is pulled (private images), [`firewall`]
//! keeps builds off the host's own addresses.

pub(crate) mod firewall;
mod helper;
pub(crate) mod image;
pub(crate) mod limits;
pub(crate) mod network;
pub(crate) mod services;
pub(crate) mod settings;
pub(crate) mod warm;

pub use firewall::HostAccess;
pub use image::PullPolicy;
pub(crate) use settings::Sandbox;
pub use settings::SandboxArgs;

use super::{ExecutorError, ScriptOutcome, ScriptRun};
use crate::log_sink::LogSink;
use crate::output::ScriptOutput;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, RenameContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use futures::StreamExt;
use network::{BuildNetwork, PendingNetwork};
use ocelot_core::ids::{Attempt, BuildId};
use ocelot_core::model::LogStream;
use ocelot_core::pipeline::Limits;
use ocelot_core::secrets::RegistryLogin;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use warm::{WarmKey, WarmPool};

/// Where the workspace lives inside the container.
pub(crate) const CONTAINER_WORKSPACE: &str = "/workspace";

/// How often a running exec is asked whether it has exited.
const EXIT_CHECK_EVERY: Duration = Duration::from_millis(500);
/// How long output is still read after the exec exited.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_deadline(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

pub(crate) const LABEL_BUILD: &str = "io.ocelot.build-id";
pub(crate) const LABEL_ATTEMPT: &str = "io.ocelot.attempt";
pub(crate) const LABEL_WORKER: &str = "io.ocelot.worker-id";
/// The installation (database) the build belongs to: sweeps never touch another's.
pub(crate) const LABEL_INSTANCE: &str = "io.ocelot.instance";

/// The labels of the container of `build_id`'s `attempt`, by which the sweeper finds it
/// and tells whether an attempt still owns it.
pub fn container_labels(
    build_id: BuildId,
    attempt: Attempt,
    worker_id: &str,
    instance: &str,
) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_BUILD.to_string(), build_id.to_string()),
        (LABEL_ATTEMPT.to_string(), attempt.to_string()),
        (LABEL_WORKER.to_string(), worker_id.to_string()),
        (LABEL_INSTANCE.to_string(), instance.to_string()),
    ])
}

/// The name of a container of `build_id`'s `attempt`: `ocelot-build-BUILD-ATTEMPT-RANDOM`
/// (the random part keeps the containers of one attempt apart).
pub fn container_name(build_id: BuildId, attempt: Attempt) -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("ocelot-build-{build_id}-{attempt}-{}", &suffix[..6])
}

/// The build and attempt a container named `name` (as Docker lists it, with or without the
/// leading `/`) belongs to: see [`container_name`]. A warm container not taken yet has none.
pub fn container_owner(name: &str) -> Option<(BuildId, Attempt)> {
    let name = name.strip_prefix('/').unwrap_or(name);
    attempt_named(name, "ocelot-build-")
}

/// The build and attempt of a name `PREFIX<build>-<attempt>-<anything>` (containers,
/// workspaces).
pub(crate) fn attempt_named(name: &str, prefix: &str) -> Option<(BuildId, Attempt)> {
    let mut parts = name.strip_prefix(prefix)?.splitn(3, '-');
    let build_id = parts.next()?.parse().ok()?;
    let attempt = parts.next()?.parse::<u32>().ok()?.into();
    parts.next()?;
    Some((build_id, attempt))
}

/// The Docker name filter (a regular expression) of the containers of `build_id`'s attempts.
pub fn build_name_filter(build_id: BuildId) -> String {
    format!("^/ocelot-build-{build_id}-")
}

/// Connects to the local Docker Engine (`DOCKER_HOST` or the default socket) and agrees on an
/// API version with it.
pub(crate) async fn connect() -> Result<Docker, ExecutorError> {
    let docker = Docker::connect_with_local_defaults()
        .map_err(|e| ExecutorError::Docker(format!("cannot connect: {e}")))?;
    let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
        .await
        .map_err(|_| ExecutorError::Docker("no answer within 10 s".into()))?
        .map_err(|e| {
            ExecutorError::Docker(format!(
                "cannot reach the Docker Engine (is it running, and may this user use its socket?): {e}"
            ))
        })?;
    Ok(docker)
}

/// A running build container. Dropped without [`BuildContainer::remove`] (e.g. a build task
/// aborted at shutdown), it still has itself removed in the background.
#[derive(Debug)]
pub(crate) struct BuildContainer {
    docker: Docker,
    id: String,
    removed: bool,
    /// Removed after the container (dropped with it, removed in the background).
    network: Option<BuildNetwork>,
    /// Its service containers, removed with it (before the network).
    services: Option<services::Services>,
    /// What a matrix job's container copies: image, limits, network (`None` for an adopted
    /// container).
    template: Option<JobTemplate>,
}

/// How a build container was made: a matrix job's container is made the same way, on the
/// same network (its services are reachable from it).
#[derive(Debug, Clone)]
struct JobTemplate {
    image: String,
    limits: Limits,
    network_id: String,
}

impl Drop for BuildContainer {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        let docker = self.docker.clone();
        let id = std::mem::take(&mut self.id);
        let network = self.network.take();
        let services = self.services.take();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Some(services) = services {
                    services.remove().await;
                }
                let options = RemoveContainerOptionsBuilder::new().force(true).v(true).build();
                if let Err(error) = docker.remove_container(&id, Some(options)).await {
                    tracing::warn!(container = %id, %error, "removing an abandoned build container failed");
                }
                if let Some(network) = network {
                    network.remove_later();
                }
            });
        }
    }
}

/// What identifies a build's container.
#[derive(Debug)]
pub(crate) struct ContainerSpec<'a> {
    pub(crate) image: &'a str,
    pub(crate) build_id: BuildId,
    pub(crate) attempt: Attempt,
    pub(crate) worker_id: &'a str,
    pub(crate) instance: &'a str,
    pub(crate) workspace: &'a Path,
    pub(crate) pull_timeout: Duration,
    /// The login for the image's registry, if the build has one.
    pub(crate) registry_login: Option<&'a RegistryLogin>,
    /// The worker's sandbox settings.
    pub(crate) sandbox: &'a Sandbox,
    /// This build's limits (the worker's, lowered by its `resources`).
    pub(crate) limits: Limits,
    /// The build's network, when it was started early ([`PendingNetwork`]); else it is made
    /// here, with its earlier attempts' containers already removed by the caller.
    pub(crate) network: Option<PendingNetwork>,
}

fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn workspace_tar(workspace: &Path) -> Result<Vec<u8>, std::io::Error> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.append_dir_all(CONTAINER_WORKSPACE.trim_start_matches('/'), workspace)?;
    builder.into_inner()
}

impl BuildContainer {
    /// Makes the build's image ready (pulled if needed, while the workspace is packed), then
    /// takes a warm container of that image from `warm` if it has one, else creates the
    /// container (on the build's network) itself; names it after the build, copies the
    /// workspace in, and has `warm` start the next one.
    pub(crate) async fn start(
        docker: &Docker,
        mut spec: ContainerSpec<'_>,
        warm: Option<&WarmPool>,
    ) -> Result<Self, ExecutorError> {
        let labels = container_labels(spec.build_id, spec.attempt, spec.worker_id, spec.instance);
        let name = container_name(spec.build_id, spec.attempt);
        let workspace = spec.workspace.to_path_buf();
        let packing = tokio::task::spawn_blocking(move || workspace_tar(&workspace));
        // made early (while the commit was checked out) when no warm container was kept; a
        // network made for nothing goes (in the background) when dropped
        let pending = spec.network.take();
        let image_id = image::ensure_image(docker, &spec).await?;
        let key = WarmKey {
            image: spec.image.to_string(),
            limits: spec.limits,
        };
        let taken = match warm {
            Some(warm) => warm.take(&key, &image_id).await,
            None => None,
        };
        let archive = packing
            .await
            .map_err(|e| ExecutorError::Io(format!("packing the workspace: {e}")))?
            .map_err(|e| ExecutorError::Io(format!("packing the workspace: {e}")))
            .map(bytes::Bytes::from)?;
        let container = match taken {
            Some(container) => match container.claim(&name, archive.clone()).await {
                Ok(()) => Some(container),
                Err(error) => {
                    tracing::warn!(%error, "a warm container could not be used; starting one");
                    container.remove().await;
                    None
                }
            },
            None => None,
        };
        let container = match container {
            Some(container) => container,
            None => {
                let network = match pending {
                    Some(pending) => pending.ready().await?,
                    None => {
                        BuildNetwork::create(
                            docker,
                            &name,
                            labels.clone(),
                            spec.sandbox.host_access,
                        )
                        .await?
                    }
                };
                Self::create_started(
                    docker,
                    &name,
                    &image_id,
                    labels,
                    spec.limits,
                    network,
                    Some(archive),
                )
                .await?
            }
        };
        if let Some(warm) = warm {
            warm.refill(key, image_id);
        }
        Ok(container)
    }

    /// Creates the container `name` from `image` on `network`, copies `archive` in if
    /// given, and starts it; removed (with `network`) if any step fails.
    pub(crate) async fn create_started(
        docker: &Docker,
        name: &str,
        image: &str,
        labels: HashMap<String, String>,
        limits: Limits,
        network: BuildNetwork,
        archive: Option<bytes::Bytes>,
    ) -> Result<Self, ExecutorError> {
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
            cmd: Some(vec!["while :; do sleep 3600; done".into()]),
            labels: Some(labels),
            working_dir: Some(CONTAINER_WORKSPACE.to_string()),
            host_config: Some(limits::host_config(limits, &network.id)),
            ..Default::default()
        };
        let created = docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name(name).build()),
                body,
            )
            .await
            .map_err(|e| {
                ExecutorError::Docker(format!("creating a container from {image}: {e}"))
            })?;
        let container = BuildContainer {
            docker: docker.clone(),
            id: created.id,
            removed: false,
            template: Some(JobTemplate {
                image: image.to_string(),
                limits,
                network_id: network.id.clone(),
            }),
            network: Some(network),
            services: None,
        };
        if let Err(error) = container.prepare(archive).await {
            container.remove().await;
            return Err(error);
        }
        Ok(container)
    }

    async fn prepare(&self, archive: Option<bytes::Bytes>) -> Result<(), ExecutorError> {
        if let Some(archive) = archive {
            self.upload(archive).await?;
        }
        self.docker
            .start_container(&self.id, None)
            .await
            .map_err(|e| ExecutorError::Docker(format!("starting the container: {e}")))?;
        Ok(())
    }

    async fn upload(&self, archive: bytes::Bytes) -> Result<(), ExecutorError> {
        self.docker
            .upload_to_container(
                &self.id,
                Some(UploadToContainerOptionsBuilder::new().path("/").build()),
                bollard::body_full(archive),
            )
            .await
            .map_err(|e| {
                ExecutorError::Docker(format!("copying the workspace into the container: {e}"))
            })
    }

    /// A container found on the Docker host (without its network), to be removed.
    pub(crate) fn adopt(docker: &Docker, id: String) -> Self {
        BuildContainer {
            docker: docker.clone(),
            id,
            removed: false,
            network: None,
            services: None,
            template: None,
        }
    }

    /// A matrix job's container: made like this one (image, limits, sandbox) on its network,
    /// named `name` with `labels` (the build's, so that the sweeper finds it), with this
    /// container's workspace streamed in as it is now, started.
    pub(crate) async fn start_job(
        &self,
        name: &str,
        labels: HashMap<String, String>,
    ) -> Result<BuildContainer, ExecutorError> {
        let Some(template) = &self.template else {
            return Err(ExecutorError::Docker(
                "the build container cannot be copied for a matrix job".into(),
            ));
        };
        let body = ContainerCreateBody {
            image: Some(template.image.clone()),
            entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
            cmd: Some(vec!["while :; do sleep 3600; done".into()]),
            labels: Some(labels),
            working_dir: Some(CONTAINER_WORKSPACE.to_string()),
            host_config: Some(limits::host_config(template.limits, &template.network_id)),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name(name).build()),
                body,
            )
            .await
            .map_err(|e| {
                ExecutorError::Docker(format!("creating a matrix job's container: {e}"))
            })?;
        let job = BuildContainer {
            docker: self.docker.clone(),
            id: created.id,
            removed: false,
            network: None,
            services: None,
            template: None,
        };
        let workspace = self
            .workspace_archive()
            .map(|piece| piece.map_err(|e| std::io::Error::other(e.to_string())));
        let copied = self
            .docker
            .upload_to_container(
                &job.id,
                Some(UploadToContainerOptionsBuilder::new().path("/").build()),
                bollard::body_try_stream(workspace),
            )
            .await
            .map_err(|e| {
                ExecutorError::Docker(format!(
                    "copying the workspace into a matrix job's container: {e}"
                ))
            });
        let started = match copied {
            Ok(()) => self
                .docker
                .start_container(&job.id, None)
                .await
                .map_err(|e| {
                    ExecutorError::Docker(format!("starting a matrix job's container: {e}"))
                }),
            Err(error) => Err(error),
        };
        if let Err(error) = started {
            job.remove().await;
            return Err(error);
        }
        Ok(job)
    }

    /// Makes a warm container the build's: named after it (which the sweeper and the
    /// attempt fence go by), with its workspace copied in.
    async fn claim(&self, name: &str, archive: bytes::Bytes) -> Result<(), ExecutorError> {
        let rename = async {
            self.docker
                .rename_container(
                    &self.id,
                    RenameContainerOptionsBuilder::new().name(name).build(),
                )
                .await
                .map_err(|e| ExecutorError::Docker(format!("naming the warm container: {e}")))
        };
        let (renamed, uploaded) = tokio::join!(rename, self.upload(archive));
        renamed.and(uploaded)
    }

    pub(crate) async fn run(
        &self,
        run: ScriptRun<'_>,
        sink: &mut impl LogSink,
    ) -> Result<ScriptOutcome, ExecutorError> {
        let exec = self
            .docker
            .create_exec(
                &self.id,
                CreateExecOptions {
                    cmd: Some(vec!["/bin/sh".to_string(), "-c".to_string(), run.script]),
                    env: Some(run.env),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    working_dir: Some(CONTAINER_WORKSPACE.to_string()),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| ExecutorError::Docker(format!("creating the exec: {e}")))?;
        let started = self
            .docker
            .start_exec(
                &exec.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: Some(crate::lines::MAX_LINE_BYTES * 2),
                }),
            )
            .await
            .map_err(|e| ExecutorError::Docker(format!("starting the exec: {e}")))?;
        let StartExecResults::Attached { mut output, .. } = started else {
            return Err(ExecutorError::Docker("the exec started detached".into()));
        };
        let mut output_lines = ScriptOutput::new(run.stage, &run.masker);
        // a script may leave a background process holding its output open: once the exec
        // has exited, the output is drained for a moment, then the stage is over
        let mut exited = false;
        let mut exit_check = tokio::time::interval(EXIT_CHECK_EVERY);
        let deadline = run.deadline.map(tokio::time::Instant::from_std);
        loop {
            let next = tokio::select! {
                next = output.next() => next,
                () = sleep_until_deadline(deadline) => return Ok(ScriptOutcome::TimedOut),
                () = run.cancel.cancelled() => return Ok(ScriptOutcome::Cancelled),
                _ = exit_check.tick(), if !exited => {
                    exited = self.exec_finished(&exec.id).await;
                    continue;
                }
                () = tokio::time::sleep(DRAIN_AFTER_EXIT), if exited => break,
            };
            let (stream, message) = match next {
                None => break,
                Some(Err(error)) => {
                    return Err(ExecutorError::Docker(format!(
                        "reading the output: {error}"
                    )));
                }
                Some(Ok(LogOutput::StdErr { message })) => (LogStream::Stderr, message),
                Some(Ok(LogOutput::StdOut { message } | LogOutput::Console { message })) => {
                    (LogStream::Stdout, message)
                }
                Some(Ok(LogOutput::StdIn { .. })) => continue,
            };
            output_lines.chunk(sink, stream, &message).await;
        }
        output_lines.finish(sink).await;
        self.exit_code(&exec.id).await.map(ScriptOutcome::Exited)
    }

    async fn exec_finished(&self, exec_id: &str) -> bool {
        matches!(self.docker.inspect_exec(exec_id).await, Ok(inspected) if inspected.running == Some(false))
    }

    async fn exit_code(&self, exec_id: &str) -> Result<i32, ExecutorError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let inspected = self
                .docker
                .inspect_exec(exec_id)
                .await
                .map_err(|e| ExecutorError::Docker(format!("inspecting the exec: {e}")))?;
            if inspected.running != Some(true) {
                let code = inspected.exit_code.unwrap_or(-1);
                return Ok(i32::try_from(code).unwrap_or(-1));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ExecutorError::Docker(
                    "the exec did not report its exit code within 30 s".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The workspace as a tar stream read from the container (Docker archives the directory
    /// without following any link in it; entries are named `workspace/...`).
    pub(crate) fn workspace_archive(
        &self,
    ) -> impl futures::Stream<Item = Result<bytes::Bytes, bollard::errors::Error>> + Send + 'static
    {
        self.docker.download_from_container(
            &self.id,
            Some(
                bollard::query_parameters::DownloadFromContainerOptionsBuilder::new()
                    .path(CONTAINER_WORKSPACE)
                    .build(),
            ),
        )
    }

    /// Streams the tar file `archive` (workspace-relative names) into the workspace.
    pub(crate) async fn unpack_into_workspace(&self, archive: &Path) -> Result<(), ExecutorError> {
        let file = tokio::fs::File::open(archive)
            .await
            .map_err(|e| ExecutorError::Io(format!("opening {}: {e}", archive.display())))?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 1024 * 1024);
        self.docker
            .upload_to_container(
                &self.id,
                Some(
                    UploadToContainerOptionsBuilder::new()
                        .path(CONTAINER_WORKSPACE)
                        .build(),
                ),
                bollard::body_try_stream(stream),
            )
            .await
            .map_err(|e| ExecutorError::Docker(format!("copying into the workspace: {e}")))
    }

    /// Kills and removes the container (and its anonymous volumes), then its network in
    /// the background (nobody waits for it).
    pub(crate) async fn remove(mut self) {
        let services = self.services.take();
        let remove_services = async {
            if let Some(services) = services {
                services.remove().await;
            }
        };
        tokio::join!(self.remove_container(), remove_services);
        if let Some(network) = self.network.take() {
            network.remove_later();
        }
    }

    async fn remove_container(&mut self) {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        for attempt in 1..=3 {
            match self
                .docker
                .remove_container(&self.id, Some(options.clone()))
                .await
            {
                Ok(()) => {
                    self.removed = true;
                    return;
                }
                Err(error) if is_not_found(&error) => {
                    self.removed = true;
                    return;
                }
                Err(error) => {
                    tracing::warn!(container = %self.id, attempt, %error, "removing the build container failed");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
            }
        }
        tracing::error!(container = %self.id, "build container left behind (labelled {LABEL_BUILD})");
        self.removed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_name_their_attempt() {
        let name = container_name(BuildId::from(12), Attempt::from(3));
        assert_eq!(
            container_owner(&format!("/{name}")),
            Some((BuildId::from(12), Attempt::from(3)))
        );
        assert_eq!(
            container_owner(&name),
            Some((BuildId::from(12), Attempt::from(3)))
        );
        assert_eq!(container_owner("/ocelot-build-12-3"), None);
        assert_eq!(container_owner("/ocelot-warm-abc"), None);
        assert_eq!(container_owner("/ocelot-build-x-3-abc"), None);
        assert!(name.starts_with(&build_name_filter(BuildId::from(12))[2..]));
    }
}
