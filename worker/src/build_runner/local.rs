//! A build of a checkout run on this machine with no server (`ocelot exec`): the same steps
//! as a worker's attempt, through the same code (the `ocelot.yml` checks, the container and
//! its sandbox, services, the environment, the stage scheduler with its triggers, timeouts,
//! matrix and `needs:` graph, masking, the attempt log and its limits), with what only a
//! server has left out: no credentials (so no secrets and no registry logins), no caches and
//! no artifacts (a line says so), no previous successful commit, no warm containers. The
//! log's events go to a channel instead of the log bus and Postgres.
//!
//! Everything it makes on the Docker host is labelled with an installation id of its own
//! (`ocelot-exec-…`), so no worker's sweeper touches it and [`LocalRunner::remove_leftovers`]
//! finds all of it, whatever stopped the build.

use super::prepare::{self, ContainerJob, SetupFailure};
use super::stages::{self, StageInputs, StagesJob, StagesOutcome};
use super::{SETUP_STAGE, Verdict, announce, failed, messages, services};
use crate::attempt_log::AttemptLog;
use crate::context::Engine;
use crate::executor::docker::{self, HostAccess, LABEL_INSTANCE, Sandbox, SandboxArgs};
use crate::executor::{Environment, ExecutorKind};
use crate::file_secrets::FileSecrets;
use crate::log_limit::LogLimit;
use crate::stage_settings::StageSettings;
use bollard::Docker;
use bollard::query_parameters::ListNetworksOptionsBuilder;
use ocelot_core::BuildState;
use ocelot_core::build_params::BuildParams;
use ocelot_core::events::BuildEvent;
use ocelot_core::git::CommitInfo;
use ocelot_core::ids::{Attempt, BuildId, RepoId};
use ocelot_core::model::Build;
use ocelot_core::pipeline::{self, Pipeline};
use ocelot_core::secrets::BuildCredentials;
use ocelot_core::secrets::mask::Masker;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The worker id a local build names (its banner, its containers' labels).
const LOCAL_WORKER: &str = "local";
/// A local build's id and number: it is no server's build.
const LOCAL_BUILD_ID: i64 = 0;
/// What `OCELOT_TRIGGER` says in a local build.
const LOCAL_TRIGGER: &str = "exec";
/// How long pulling the build's image may take (a worker's default).
const PULL_TIMEOUT: Duration = Duration::from_secs(600);
/// The output a local build keeps, as a worker keeps by default (64 MiB, 1 000 000 lines).
const MAX_LOG_BYTES: u64 = 64 * 1024 * 1024;
const MAX_LOG_LINES: u64 = 1_000_000;

/// A checkout's build, as `ocelot exec` hands it over.
#[derive(Debug, Clone)]
pub struct LocalBuild {
    /// The repository's name (`OCELOT_REPO`, the banner).
    pub repo_name: String,
    /// Where the checkout comes from (its remote's URL, or its directory).
    pub repo_url: String,
    /// The checkout's branch (what `branches` and `\branch` stage triggers see).
    pub branch: String,
    /// The checkout's HEAD commit, full.
    pub commit: String,
    /// What `\text` and `\filepath` stage triggers see: commit messages and changed paths.
    pub commit_messages: Vec<String>,
    pub changed_paths: Vec<String>,
    /// The `ocelot.yml` to run, as text.
    pub pipeline: String,
    /// `--env`, `--force`, `--stage`, as `ocelot build` gives them.
    pub params: BuildParams,
    /// The directory copied into the build's container as its workspace.
    pub workspace: PathBuf,
}

/// Why no local build can run here.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{0}")]
    Docker(String),
    #[error("cannot prepare the local build: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs checkouts' builds on this machine's Docker Engine, as a worker with its default
/// settings would (limits, host access, pulls, stages at once, log limits), and removes what
/// they leave.
#[derive(Debug)]
pub struct LocalRunner {
    docker: Docker,
    engine: Engine,
    /// Why builds may reach this host's own addresses, when the firewall rule that keeps
    /// them off could not be checked or installed.
    host_access_warning: Option<String>,
    /// The engine's scratch directory (its record of private images, empty).
    _scratch: tempfile::TempDir,
}

impl LocalRunner {
    /// Connects to the Docker Engine (`DOCKER_HOST` or the local socket) and makes sure, as
    /// a worker does, that build networks cannot reach this host (it needs root for the
    /// firewall rule; without, the build still runs and
    /// [`LocalRunner::host_access_warning`] says so).
    pub async fn connect() -> Result<Self, LocalError> {
        let docker = docker::connect()
            .await
            .map_err(|e| LocalError::Docker(e.to_string()))?;
        let access = HostAccess::Deny;
        let host_access_warning =
            match tokio::task::spawn_blocking(move || docker::firewall::ensure(access)).await {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(error.to_string()),
                Err(error) => Some(format!("checking the host firewall failed: {error}")),
            };
        let scratch = tempfile::Builder::new().prefix("ocelot-exec-").tempdir()?;
        let sandbox = Sandbox::new(&SandboxArgs::default(), scratch.path())?;
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let engine = Engine {
            worker_id: LOCAL_WORKER.to_string(),
            instance: format!("ocelot-exec-{}", &suffix[..12]),
            docker: Some(docker.clone()),
            executor: ExecutorKind::Docker,
            pull_timeout: PULL_TIMEOUT,
            sandbox: Arc::new(sandbox),
            warm: None,
            stage_settings: StageSettings::default(),
            max_log_bytes: MAX_LOG_BYTES,
            max_log_lines: MAX_LOG_LINES,
        };
        Ok(LocalRunner {
            docker,
            engine,
            host_access_warning,
            _scratch: scratch,
        })
    }

    /// Set when builds may reach this host's own addresses: why.
    pub fn host_access_warning(&self) -> Option<&str> {
        self.host_access_warning.as_deref()
    }

    /// Runs `build` to its result. Its log's events go to `events`, in order, the result
    /// last (also when it cannot start: an invalid `ocelot.yml`, a missing image). Once
    /// `interrupted` resolves the build is cancelled as `ocelot kill` cancels one: its
    /// script is stopped, its containers removed. Returns once they are.
    pub async fn run(
        &self,
        build: LocalBuild,
        events: mpsc::Sender<BuildEvent>,
        interrupted: impl Future<Output = ()> + Send + 'static,
    ) {
        let engine = &self.engine;
        let record = record(&build);
        let mut log = AttemptLog::to_channel(
            record.id,
            record.attempt,
            LogLimit::new(engine.max_log_bytes, engine.max_log_lines),
            events,
        );
        let started = Instant::now();
        // what the server decides before a worker gets the build
        if let Some(verdict) = routed(&build) {
            log.finish(verdict.state, verdict.reason.as_deref(), 0)
                .await;
            return;
        }
        let cancel = CancellationToken::new();
        let watcher = {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                interrupted.await;
                cancel.cancel();
            })
        };
        let (verdict, environment) = attempt(engine, &record, &build, &mut log, &cancel).await;
        watcher.abort();
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        log.finish(verdict.state, verdict.reason.as_deref(), duration_ms)
            .await;
        if let Some(environment) = environment {
            environment.cleanup().await;
        }
    }

    /// Removes every container and network a build of this runner made and left (a build
    /// dropped mid-way, a network whose removal was left to the background); returns once
    /// they are gone, or Docker refused (logged).
    pub async fn remove_leftovers(&self) {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{LABEL_INSTANCE}={}", self.engine.instance)],
        )]);
        match crate::sweeper::all_containers(&self.docker, &filters).await {
            Ok(containers) => {
                for id in containers.into_iter().filter_map(|c| c.id) {
                    if let Err(error) = crate::sweeper::force_remove(&self.docker, &id).await {
                        tracing::warn!(container = %id, %error, "cannot remove a build container");
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot list the build's containers"),
        }
        let listed = self
            .docker
            .list_networks(Some(
                ListNetworksOptionsBuilder::new().filters(&filters).build(),
            ))
            .await;
        match listed {
            Ok(networks) => {
                for id in networks.into_iter().filter_map(|n| n.id) {
                    docker::network::remove(&self.docker, &id).await;
                }
            }
            Err(error) => tracing::warn!(%error, "cannot list the build's networks"),
        }
    }
}

/// The build row a server would have for `build`.
fn record(build: &LocalBuild) -> Build {
    let now = SystemTime::now();
    Build {
        id: BuildId::from(LOCAL_BUILD_ID),
        repo_id: RepoId::from(0),
        repo_name: build.repo_name.clone(),
        repo_url: build.repo_url.clone(),
        number: LOCAL_BUILD_ID,
        commit: build.commit.clone(),
        branch: build.branch.clone(),
        trigger: LOCAL_TRIGGER.to_string(),
        state: BuildState::Running,
        attempt: Attempt::FIRST,
        worker: Some(LOCAL_WORKER.to_string()),
        tag: ocelot_core::queue::DEFAULT_TAG.to_string(),
        reason: None,
        queued_at: now,
        started_at: Some(now),
        finished_at: None,
        line_count: None,
        log_sha256: None,
        previous_commit: None,
        pull_request: None,
        git_tag: None,
        withhold_secrets: false,
        cancel_requested_by: None,
        params: build.params.clone(),
        trace_id: None,
    }
}

/// What the trigger decides before any worker runs a build (and says as it does): a
/// `--stage` the file does not have errors it, a branch its `branches` do not match skips it
/// (unless `--force`). An invalid file goes on, to be reported like a worker reports it.
fn routed(build: &LocalBuild) -> Option<Verdict> {
    let pipeline = pipeline::parse(&build.pipeline).ok()?;
    if let Some(Err(unknown)) = build
        .params
        .stage
        .as_deref()
        .map(|s| pipeline.select_stage(s))
    {
        return Some(Verdict::errored(unknown.to_string()));
    }
    if !build.params.force && !pipeline.branch_matches(&build.branch) {
        return Some(Verdict::new(
            BuildState::Skipped,
            Some(format!(
                "branch `{}` does not match the `branches` of ocelot.yml",
                build.branch
            )),
        ));
    }
    None
}

/// A build that cannot start: the attempt's first event names no stage, then its lines.
async fn not_started(
    engine: &Engine,
    record: &Build,
    log: &mut AttemptLog,
    failure: SetupFailure,
) -> Verdict {
    announce(engine, record, log, Vec::new(), Vec::new()).await;
    failed(log, failure).await
}

/// The attempt, as a worker's (`super::attempt`) with what only a server has left out: its
/// verdict, and the environment still to be removed.
async fn attempt(
    engine: &Engine,
    record: &Build,
    local: &LocalBuild,
    log: &mut AttemptLog,
    cancel: &CancellationToken,
) -> (Verdict, Option<Environment>) {
    let pipeline = match pipeline::parse(&local.pipeline) {
        Ok(pipeline) => pipeline,
        Err(errors) => {
            let (lines, reason) = messages::invalid_pipeline(&errors);
            let failure = SetupFailure { reason, lines };
            return (not_started(engine, record, log, failure).await, None);
        }
    };
    if let Err(failure) = prepare::check_pipeline(engine, record, &pipeline) {
        return (not_started(engine, record, log, failure).await, None);
    }
    let stage_names = pipeline.stages.iter().map(|s| s.name.clone()).collect();
    announce(engine, record, log, stage_names, stages::needs(&pipeline)).await;
    log.system(SETUP_STAGE, messages::banner(record, &engine.worker_id))
        .await;
    // no credentials: nothing to mask, no secrets, no files, no logins (the same code path)
    let credentials = BuildCredentials::new(Vec::new());
    let masker = Masker::default();
    let files = match FileSecrets::new(&credentials) {
        Ok(files) => files,
        Err(error) => {
            return (
                failed(log, SetupFailure::new(error.to_string())).await,
                None,
            );
        }
    };
    let mut environment = match open(engine, record, &pipeline, local).await {
        Ok(environment) => environment,
        Err(failure) => return (failed(log, failure).await, None),
    };
    let services_job = services::ServicesJob {
        engine,
        build: record,
        pipeline: &pipeline,
        credentials: &credentials,
        workspace: &local.workspace,
        masker: &masker,
        cancel,
    };
    if let Err(failure) = services::start(&services_job, &mut environment, log).await {
        return (failed(log, failure).await, Some(environment));
    }
    // Ocelot's variables, then the file's, then the build's parameters (no previous
    // successful commit: none is known here)
    let mut env = messages::build_env(record, &environment.workspace(), "");
    env.extend(
        pipeline
            .env
            .iter()
            .map(|e| format!("{}={}", e.key, e.value)),
    );
    let (param_env, param_lines) = messages::params(record, &[]);
    for line in param_lines {
        log.system(SETUP_STAGE, line).await;
    }
    env.extend(param_env);
    if !pipeline.cache.is_empty() {
        log.system(
            SETUP_STAGE,
            "cache: none restored or saved (ocelot exec keeps no caches)",
        )
        .await;
    }
    let commit = CommitInfo {
        commit: local.commit.clone(),
        messages: local.commit_messages.clone(),
        changed_paths: local.changed_paths.clone(),
    };
    let inputs = StageInputs {
        env,
        masker,
        cancel: cancel.clone(),
        files,
    };
    let job = StagesJob {
        engine,
        artifacts: None,
        build: record,
        pipeline: &pipeline,
        commit: &commit,
    };
    let verdict = match stages::run_stages(&job, &inputs, &environment, log).await {
        StagesOutcome::Final(verdict) => verdict,
        StagesOutcome::Cancelled => {
            let reason = "cancelled by Ctrl-C";
            log.system(SETUP_STAGE, format!("{reason}: stopped")).await;
            Verdict::new(BuildState::Cancelled, Some(reason.to_string()))
        }
    };
    if let Err(error) = inputs.files.remove_all(&environment).await {
        tracing::warn!(%error, "at the end of the build");
    }
    services::append_logs(&environment, &inputs.masker, log).await;
    (verdict, Some(environment))
}

/// The build's container (made with its network here: nothing to hide its cost behind).
async fn open(
    engine: &Engine,
    record: &Build,
    pipeline: &Pipeline,
    local: &LocalBuild,
) -> Result<Environment, SetupFailure> {
    let Some(image) = pipeline.image.as_deref() else {
        return Err(SetupFailure::new(
            "ocelot.yml names no image: ocelot exec runs builds only in a container (name an \
             `image` in ocelot.yml)"
                .to_string(),
        ));
    };
    let job = ContainerJob {
        build: record,
        image,
        pipeline,
        registry_login: None,
        workspace: &local.workspace,
    };
    prepare::open_container(engine, &job, None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(pipeline: &str, branch: &str, params: BuildParams) -> LocalBuild {
        LocalBuild {
            repo_name: "app".into(),
            repo_url: "/src/app".into(),
            branch: branch.into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            commit_messages: vec!["a commit".into()],
            changed_paths: Vec::new(),
            pipeline: pipeline.into(),
            params,
            workspace: PathBuf::from("/nonexistent"),
        }
    }

    const YML: &str = "image: x\nbranches: [main]\nstages:\n  - name: build\n    script: [x]\n";

    #[test]
    fn the_trigger_s_decisions_come_first() {
        assert!(routed(&local(YML, "main", BuildParams::default())).is_none());
        let skipped = routed(&local(YML, "dev", BuildParams::default())).unwrap();
        assert_eq!(skipped.state, BuildState::Skipped);
        assert_eq!(
            skipped.reason.as_deref(),
            Some("branch `dev` does not match the `branches` of ocelot.yml")
        );
        let forced = BuildParams {
            force: true,
            ..BuildParams::default()
        };
        assert!(routed(&local(YML, "dev", forced)).is_none());
        let unknown = BuildParams {
            stage: Some("deploy".into()),
            ..BuildParams::default()
        };
        let errored = routed(&local(YML, "main", unknown)).unwrap();
        assert_eq!(errored.state, BuildState::Errored);
        assert!(routed(&local("not: [valid", "main", BuildParams::default())).is_none());
    }

    #[test]
    fn a_local_build_is_the_checkout_s_on_its_branch() {
        let build = record(&local(YML, "main", BuildParams::default()));
        assert_eq!(build.attempt, Attempt::FIRST);
        assert_eq!(build.trigger, "exec");
        assert_eq!(
            messages::banner(&build, LOCAL_WORKER),
            "build 0 #0 of app at 0123456 (main) on worker local"
        );
    }
}
