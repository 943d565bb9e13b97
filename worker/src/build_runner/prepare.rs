//! Before the first stage: a workspace, the repo's credentials, the exact commit checked out,
//! its `ocelot.yml` read and validated, and the environment (container or host) opened.

use super::messages;
use crate::attempt_log::AttemptLog;
use crate::context::{Engine, WorkerContext};
use crate::executor::Environment;
use crate::executor::ExecutorKind;
use crate::executor::docker::network::PendingNetwork;
use crate::executor::docker::{BuildContainer, ContainerSpec, container_labels, container_name};
use crate::executor::host::HostEnvironment;
use ocelot_core::git::{CommitInfo, TreeFileError};
use ocelot_core::model::Build;
use ocelot_core::pipeline::{self, Pipeline};
use ocelot_core::secrets::mask::Masker;
use ocelot_core::secrets::{BuildCredentials, RegistryLogin, SecretStore};
use std::time::Duration;
use tempfile::TempDir;

/// The pipeline file, at the root of the commit.
const PIPELINE_FILE: &str = pipeline::FILE_NAME;
/// The largest `ocelot.yml` a worker reads (1 MiB).
const MAX_PIPELINE_BYTES: u64 = pipeline::MAX_FILE_BYTES;

/// How long fetching and checking out the commit may take.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(600);

/// Why a build could not start: its reason, and the log lines that say it.
#[derive(Debug)]
pub(super) struct SetupFailure {
    pub(super) reason: String,
    pub(super) lines: Vec<String>,
}

impl SetupFailure {
    /// A failure told in one line, `error: REASON`.
    pub(super) fn new(reason: String) -> Self {
        SetupFailure {
            lines: vec![format!("error: {reason}")],
            reason,
        }
    }
}

/// What a build starts from.
pub(super) struct Setup {
    /// Removed (the directory and what is in it) when dropped, whatever happened.
    pub(super) workspace: TempDir,
    pub(super) credentials: BuildCredentials,
    pub(super) masker: Masker,
    pub(super) pipeline: Pipeline,
    pub(super) commit: CommitInfo,
}

/// Creates the workspace, reads the credentials (from then on the log masks them), checks
/// the commit out and reads its `ocelot.yml`.
pub(super) async fn set_up(
    context: &WorkerContext,
    build: &Build,
    log: &mut AttemptLog,
) -> Result<Setup, SetupFailure> {
    let workspace = tempfile::Builder::new()
        .prefix(&format!("build-{}-{}-", build.id, build.attempt))
        .tempdir_in(&context.workspaces)
        .map_err(|error| {
            SetupFailure::new(format!(
                "cannot create a workspace in {}: {error}",
                context.workspaces.display()
            ))
        })?;
    let credentials = context
        .secrets
        .for_repo(&build.repo_name)
        .await
        .map(BuildCredentials::new)
        .map_err(|error| {
            SetupFailure::new(format!(
                "cannot read the credentials of {}: {error}",
                build.repo_name
            ))
        })?;
    // every value is masked (each line of a file too), also those this build does not get
    let masker = Masker::new(credentials.masked_texts());
    log.set_masker(masker.clone());
    let commit = check_out(context, build, &credentials, &workspace).await?;
    let pipeline = read_pipeline(context, build, &commit).await?;
    check_pipeline(&context.engine, build, &pipeline)?;
    Ok(Setup {
        workspace,
        credentials,
        masker,
        pipeline,
        commit,
    })
}

/// What the engine checks of a valid `ocelot.yml` before anything runs: the stage asked
/// for (`--stage`) is one of its stages, and its matrix makes no more jobs than the engine
/// runs per build (`--max-matrix-jobs`).
pub(super) fn check_pipeline(
    engine: &Engine,
    build: &Build,
    pipeline: &Pipeline,
) -> Result<(), SetupFailure> {
    super::stages::selection(build, pipeline)
        .map_err(|unknown| SetupFailure::new(unknown.to_string()))?;
    let jobs = pipeline
        .stages
        .iter()
        .filter(|s| s.matrix.is_some())
        .count();
    let max_jobs = usize::from(engine.stage_settings.max_matrix_jobs);
    if jobs > max_jobs {
        return Err(SetupFailure::new(format!(
            "ocelot.yml's matrix makes {jobs} jobs; worker {} runs at most {max_jobs} per build \
             (--max-matrix-jobs): fewer axis values, or `exclude:` combinations",
            engine.worker_id
        )));
    }
    Ok(())
}

async fn check_out(
    context: &WorkerContext,
    build: &Build,
    credentials: &BuildCredentials,
    workspace: &TempDir,
) -> Result<CommitInfo, SetupFailure> {
    let mirrors = context.mirrors.clone();
    let url = build.repo_url.clone();
    let commit = build.commit.clone();
    let previous = build.previous_commit.clone();
    let dest = workspace.path().to_path_buf();
    let auth = credentials.git_auth(&url);
    let checkout = tokio::time::timeout(
        CHECKOUT_TIMEOUT,
        tokio::task::spawn_blocking(move || {
            mirrors.checkout(&url, auth.as_ref(), &commit, previous.as_deref(), &dest)
        }),
    )
    .await;
    match checkout {
        Err(_) => Err(SetupFailure::new(format!(
            "checkout failed: {} did not answer within {} s",
            build.repo_url,
            CHECKOUT_TIMEOUT.as_secs()
        ))),
        Ok(Ok(Ok(info))) => Ok(info),
        Ok(Ok(Err(error))) => Err(SetupFailure::new(format!("checkout failed: {error}"))),
        Ok(Err(error)) => Err(SetupFailure::new(format!("checkout task failed: {error}"))),
    }
}

/// Reads `ocelot.yml` from the git objects of the commit (the mirror's), never from the
/// checkout: a committed symbolic link is refused instead of followed on the worker's host,
/// and so is a file over [`MAX_PIPELINE_BYTES`].
async fn read_pipeline(
    context: &WorkerContext,
    build: &Build,
    commit: &CommitInfo,
) -> Result<Pipeline, SetupFailure> {
    let mirrors = context.mirrors.clone();
    let url = build.repo_url.clone();
    let full = commit.commit.clone();
    let read = tokio::task::spawn_blocking(move || {
        mirrors.read_regular_file(&url, &full, PIPELINE_FILE, MAX_PIPELINE_BYTES)
    })
    .await;
    let text = match read {
        Ok(Ok(text)) => text,
        Ok(Err(TreeFileError::Missing { .. })) => {
            return Err(SetupFailure::new(format!(
                "no ocelot.yml at the root of commit {}",
                messages::short(&build.commit)
            )));
        }
        Ok(Err(error)) => {
            return Err(SetupFailure::new(format!(
                "cannot read ocelot.yml: {error}"
            )));
        }
        Err(error) => {
            return Err(SetupFailure::new(format!(
                "cannot read ocelot.yml: reading task failed: {error}"
            )));
        }
    };
    pipeline::parse(&text).map_err(|errors| {
        let (lines, reason) = messages::invalid_pipeline(&errors);
        SetupFailure { reason, lines }
    })
}

/// On a Docker worker every build runs in a container: its network is made (after the
/// containers of its earlier attempts on this host are gone) while the commit is checked
/// out. `None` on a host worker, which learns only from `ocelot.yml` whether it needs one.
pub(super) fn start_network(engine: &Engine, build: &Build) -> Option<PendingNetwork> {
    if engine.executor != ExecutorKind::Docker {
        return None;
    }
    let docker = engine.docker.clone()?;
    // a warm container (with its own network) will likely serve the build
    if engine.warm.as_ref().is_some_and(|warm| warm.has_any()) {
        return None;
    }
    let labels = container_labels(build.id, build.attempt, &engine.worker_id, &engine.instance);
    let sweep = {
        let docker = docker.clone();
        let instance = engine.instance.clone();
        let (build_id, attempt) = (build.id, build.attempt);
        async move {
            crate::sweeper::remove_earlier_attempts(&docker, &instance, build_id, attempt).await;
        }
    };
    Some(PendingNetwork::start(
        docker,
        container_name(build.id, build.attempt),
        labels,
        engine.sandbox.host_access,
        sweep,
    ))
}

/// The container (or, on a host worker for a file naming no image, the host) the stages
/// run in; `network`: the one [`start_network`] began, if any.
pub(super) async fn open_environment(
    context: &WorkerContext,
    build: &Build,
    pipeline: &Pipeline,
    registry_login: Option<&RegistryLogin>,
    workspace: &std::path::Path,
    network: Option<PendingNetwork>,
) -> Result<Environment, SetupFailure> {
    match (&pipeline.image, context.engine.executor) {
        (Some(image), _) => {
            let container = ContainerJob {
                build,
                image,
                pipeline,
                registry_login,
                workspace,
            };
            open_container(&context.engine, &container, network).await
        }
        (None, ExecutorKind::Host) => open_host(context, build, workspace).await,
        (None, ExecutorKind::Docker) => Err(SetupFailure::new(format!(
            "ocelot.yml names no image: only a worker started with `--executor host` runs builds \
             outside a container (this build was routed by machineTag `{}`)",
            build.tag
        ))),
    }
}

/// What a build's container is made from.
pub(super) struct ContainerJob<'a> {
    pub(super) build: &'a Build,
    /// The pipeline's `image`.
    pub(super) image: &'a str,
    pub(super) pipeline: &'a Pipeline,
    /// The login for the image's registry, if the build has one.
    pub(super) registry_login: Option<&'a RegistryLogin>,
    /// Copied into the container.
    pub(super) workspace: &'a std::path::Path,
}

/// The build's container, from its image, within the engine's limits lowered by the
/// pipeline's `resources`; `network`: the one [`start_network`] began, if any.
pub(super) async fn open_container(
    engine: &Engine,
    job: &ContainerJob<'_>,
    network: Option<PendingNetwork>,
) -> Result<Environment, SetupFailure> {
    let (build, image, pipeline) = (job.build, job.image, job.pipeline);
    let Some(docker) = &engine.docker else {
        return Err(SetupFailure::new(format!(
            "ocelot.yml names the image `{image}` but worker {} has no Docker Engine",
            engine.worker_id
        )));
    };
    // a lost attempt's container may still run its script on this Docker host: it
    // goes before this attempt's starts, so two attempts never run at once here
    // (an early network did so before it was made)
    if network.is_none() {
        crate::sweeper::remove_earlier_attempts(docker, &engine.instance, build.id, build.attempt)
            .await;
    }
    let (limits, clamped) = pipeline.resources.within(engine.sandbox.limits);
    for clamped in &clamped {
        tracing::info!(build_id = build.id.get(), "{clamped}");
    }
    // the services' shares come out of the build's limits
    let (limits, _) =
        pipeline::share_limits(limits, &pipeline.services).map_err(SetupFailure::new)?;
    let container = BuildContainer::start(
        docker,
        ContainerSpec {
            image,
            build_id: build.id,
            attempt: build.attempt,
            worker_id: &engine.worker_id,
            instance: &engine.instance,
            workspace: job.workspace,
            pull_timeout: engine.pull_timeout,
            registry_login: job.registry_login,
            sandbox: &engine.sandbox,
            limits,
            network,
        },
        engine.warm.as_deref(),
    )
    .await
    .map_err(|e| SetupFailure::new(e.to_string()))?;
    Ok(Environment::Container(Box::new(container)))
}

/// The host, for a build naming no image on a host worker: only for repos an admin opted in
/// and never for a pull request; the scripts run as a uid of their own.
async fn open_host(
    context: &WorkerContext,
    build: &Build,
    workspace: &std::path::Path,
) -> Result<Environment, SetupFailure> {
    if build.pull_request.is_some() {
        return Err(SetupFailure::new(format!(
            "pull-request builds never run on the host: ocelot.yml names no image and worker {} \
             runs such builds directly on its host, where a pull request's unreviewed code \
             (from a fork or not) must not run; name an `image` in ocelot.yml so that the \
             build runs in a container",
            context.engine.worker_id
        )));
    }
    let allowed = context
        .store
        .repo_allows_host(build.repo_id)
        .await
        .map_err(|error| {
            SetupFailure::new(format!(
                "cannot read whether repo {} may run builds on the host: {error}",
                build.repo_name
            ))
        })?;
    if !allowed {
        return Err(SetupFailure::new(format!(
            "repo {repo} may not run builds on the host: ocelot.yml names no image and worker \
             {worker} runs such builds directly on its host; an admin can allow it with \
             `ocelot repos set {repo} --allow-host true`, or name an `image` in ocelot.yml so \
             that the build runs in a container",
            repo = build.repo_name,
            worker = context.engine.worker_id
        )));
    }
    let Some(users) = &context.host_users else {
        return Err(SetupFailure::new(format!(
            "worker {} has no build users (--host-build-uids)",
            context.engine.worker_id
        )));
    };
    let Some(user) = users.take() else {
        return Err(SetupFailure::new(format!(
            "every build uid of worker {} (--host-build-uids {}) is busy or still runs a process",
            context.engine.worker_id,
            users.range()
        )));
    };
    let prefix = format!("build-{}-{}-home-", build.id, build.attempt);
    let host = HostEnvironment::open(user, workspace, &context.workspaces, &prefix)
        .await
        .map_err(|error| SetupFailure::new(format!("cannot prepare the host build: {error}")))?;
    tracing::info!(uid = host.uid(), "host build runs as its own uid");
    Ok(Environment::Host(host))
}
