//! Runs one build attempt: claim (the attempt number fences every later write) → checkout of
//! the exact commit → `ocelot.yml` → environment (container or host) → stages in order,
//! stopping at the first failure and honouring timeouts → result. The environment and the
//! workspace are removed whatever happened.

use crate::ExecutorKind;
use crate::WorkerContext;
use crate::event_sink::{EventSink, STORE_OUTAGE_BUDGET};
use crate::executor::docker::{BuildContainer, ContainerSpec};
use crate::executor::host::HostEnvironment;
use crate::executor::{Environment, ScriptOutcome, ScriptRun, shell_script};
use ocelot_core::build_state::{BuildState, StageState};
use ocelot_core::events::EventKind;
use ocelot_core::git::CommitInfo;
use ocelot_core::model::Build;
use ocelot_core::pipeline::{self, Pipeline, TriggerContext};
use ocelot_core::secrets::mask::Masker;
use ocelot_core::secrets::{BuildCredentials, RegistryLogin, SecretStore};
use ocelot_core::store::ClaimOutcome;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How long fetching and checking out the commit may take.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(600);

/// The system lines before the first stage belong to this pseudo-stage.
pub(crate) const SETUP_STAGE: &str = "setup";

/// What every stage of an attempt gets besides the pipeline: the secrets (`NAME=value` for
/// its environment, and what hides them in logs) and the cancel signal.
struct StageInputs {
    env: Vec<String>,
    masker: Masker,
    cancel: CancellationToken,
}

/// How an attempt ended, before it is recorded.
#[derive(Debug)]
struct Verdict {
    state: BuildState,
    reason: Option<String>,
    /// The worker stopped the build to shut down: nothing is recorded, the job goes back.
    handed_back: bool,
}

impl Verdict {
    fn errored(reason: impl Into<String>) -> Self {
        Verdict::new(BuildState::Errored, Some(reason.into()))
    }

    fn new(state: BuildState, reason: Option<String>) -> Self {
        Verdict {
            state,
            reason,
            handed_back: false,
        }
    }
}

/// What happened to a job, for the job loop.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JobDisposition {
    /// The build is final (now or before): acknowledge the job.
    Done,
    /// The claim could not be made (e.g. Postgres down): hand the job back.
    Retry,
    /// The worker is shutting down and stopped the build: another worker runs it now.
    HandBack,
}

/// Claims `build_id` and runs it to a final state.
pub(crate) async fn run_build(
    context: &WorkerContext,
    build_id: i64,
    redelivered: bool,
) -> JobDisposition {
    let claimed = match context
        .store
        .claim_build(
            build_id,
            &context.worker_id,
            context.max_attempts,
            redelivered,
        )
        .await
    {
        Ok(ClaimOutcome::Claimed(build)) => build,
        Ok(ClaimOutcome::AlreadyFinal(build)) => {
            tracing::info!(build_id, state = %build.state, "build already final: job dropped");
            return JobDisposition::Done;
        }
        Ok(ClaimOutcome::HeldByAnother(build)) => {
            tracing::warn!(build_id, attempt = build.attempt, worker = ?build.worker,
                "duplicate job for a build another attempt runs: dropped");
            return JobDisposition::Done;
        }
        Ok(ClaimOutcome::AttemptsExhausted(build)) => {
            tracing::warn!(build_id, reason = ?build.reason, "build out of attempts: errored");
            return JobDisposition::Done;
        }
        Err(ocelot_core::store::StoreError::NotFound(_)) => {
            tracing::warn!(
                build_id,
                "job for an unknown build (repo removed?): dropped"
            );
            return JobDisposition::Done;
        }
        Err(error) => {
            tracing::warn!(build_id, %error, "cannot claim the build: job handed back");
            return JobDisposition::Retry;
        }
    };
    let span = tracing::info_span!("build", build_id, attempt = claimed.attempt);
    async {
        tracing::info!(repo = %claimed.repo_name, commit = %claimed.commit, "build claimed");
        let started = Instant::now();
        let mut sink = EventSink::new(
            context.bus.clone(),
            context.store.clone(),
            build_id,
            claimed.attempt,
            context.max_log_bytes,
        );
        let verdict = attempt(context, &claimed, &mut sink).await;
        if verdict.handed_back {
            sink.flush().await;
            let recorded = ocelot_core::store::retrying("recording the hand-back", STORE_OUTAGE_BUDGET, || {
                context.store.hand_back(build_id, claimed.attempt)
            })
            .await;
            if let Err(error) = recorded {
                tracing::warn!(%error, "the hand-back was not recorded: it counts as a lost attempt");
            }
            tracing::info!("build stopped by the worker's shutdown: job handed back");
            return JobDisposition::HandBack;
        }
        match finish(context, &claimed, &mut sink, verdict, started).await {
            Finished::Recorded | Finished::FencedOut => JobDisposition::Done,
            // the build is still `running` in Postgres: the job must come back
            Finished::NotRecorded => JobDisposition::Retry,
        }
    }
    .instrument(span)
    .await
}

/// Whether the result of an attempt made it into Postgres.
#[derive(Debug, PartialEq, Eq)]
enum Finished {
    Recorded,
    /// A newer attempt (or a final state) owns the build.
    FencedOut,
    /// Postgres could not be reached: the job is handed back.
    NotRecorded,
}

/// Cancels `cancel` when `ocelot kill` asks for the build: a request on the bus, or one
/// already recorded in Postgres (checked once the subscription is in place, so none is
/// missed). The task ends with the returned guard.
async fn watch_cancel(
    context: &WorkerContext,
    build_id: i64,
    cancel: CancellationToken,
) -> Option<tokio::task::AbortHandle> {
    let requests = context.bus.cancel_requests(build_id).await;
    let recorded = context
        .store
        .get_build(build_id)
        .await
        .ok()
        .and_then(|b| b.cancel_requested_by);
    if recorded.is_some() {
        cancel.cancel();
        return None;
    }
    match requests {
        Ok(mut requests) => {
            let task = tokio::spawn(async move {
                if requests.next().await.is_some() {
                    cancel.cancel();
                }
            });
            Some(task.abort_handle())
        }
        Err(error) => {
            tracing::warn!(build_id, %error, "cannot listen for cancel requests (they are checked between stages)");
            None
        }
    }
}

/// Aborts the cancel watcher when the attempt ends.
struct AbortOnDrop(Option<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = &self.0 {
            handle.abort();
        }
    }
}

async fn attempt(context: &WorkerContext, build: &Build, sink: &mut EventSink) -> Verdict {
    // the worker's shutdown stops the build too (and hands it back)
    let cancel = context.hand_back.child_token();
    let _watcher = AbortOnDrop(watch_cancel(context, build.id, cancel.clone()).await);
    let workspace = match tempfile::Builder::new()
        .prefix(&format!("build-{}-{}-", build.id, build.attempt))
        .tempdir_in(&context.workspaces)
    {
        Ok(dir) => dir,
        Err(error) => {
            announce(context, build, sink, &[]).await;
            let reason = format!(
                "cannot create a workspace in {}: {error}",
                context.workspaces.display()
            );
            sink.system(SETUP_STAGE, format!("error: {reason}")).await;
            return Verdict::errored(reason);
        }
    };
    let credentials = match context.secrets.for_repo(&build.repo_name).await {
        Ok(credentials) => BuildCredentials::new(credentials),
        Err(error) => {
            announce(context, build, sink, &[]).await;
            let reason = format!(
                "cannot read the credentials of {}: {error}",
                build.repo_name
            );
            sink.system(SETUP_STAGE, format!("error: {reason}")).await;
            return Verdict::errored(reason);
        }
    };
    // every value is masked, also those this build does not get
    let masker = Masker::new(credentials.all().iter().map(|c| c.value.expose()));
    sink.set_masker(masker.clone());
    // the TempDir removes the workspace when dropped, whatever happens below
    let prepared = prepare(context, build, &credentials, workspace.path(), sink).await;
    let (pipeline, commit_info) = match prepared {
        Ok(prepared) => prepared,
        Err(verdict) => return verdict,
    };
    let credentials = if build.withhold_secrets {
        sink.system(
            SETUP_STAGE,
            "pull request from a fork: build secrets withheld (the repo does not give forks its secrets)",
        )
        .await;
        credentials.without_build_secrets()
    } else {
        credentials
    };
    let secret_env = credentials.env();
    if !secret_env.is_empty() {
        let names: Vec<&str> = secret_env.iter().map(|(name, _)| name.as_str()).collect();
        sink.system(
            SETUP_STAGE,
            format!("secrets in the environment: {}", names.join(", ")),
        )
        .await;
    }
    let inputs = StageInputs {
        env: secret_env
            .iter()
            .map(|(name, value)| format!("{name}={}", value.expose()))
            .collect(),
        masker,
        cancel,
    };
    let registry_login = pipeline
        .image
        .as_deref()
        .and_then(|image| credentials.registry_login(image));
    let opened = open_environment(
        context,
        build,
        &pipeline,
        registry_login.as_ref(),
        workspace.path(),
    )
    .await;
    let environment = match opened {
        Ok(environment) => environment,
        Err(reason) => {
            sink.system(SETUP_STAGE, format!("error: {reason}")).await;
            return Verdict::errored(reason);
        }
    };
    let mut environment = environment;
    let verdict = run_stages(
        context,
        build,
        &pipeline,
        &commit_info,
        &inputs,
        &mut environment,
        sink,
    )
    .await;
    environment.cleanup().await;
    verdict
}

/// Emits the attempt's first event.
async fn announce(context: &WorkerContext, build: &Build, sink: &mut EventSink, stages: &[String]) {
    sink.emit(EventKind::AttemptStarted {
        worker: context.worker_id.clone(),
        commit: build.commit.clone(),
        branch: build.branch.clone(),
        stages: stages.to_vec(),
    })
    .await;
}

/// Checks the commit out and reads its `ocelot.yml`.
async fn prepare(
    context: &WorkerContext,
    build: &Build,
    credentials: &BuildCredentials,
    workspace: &std::path::Path,
    sink: &mut EventSink,
) -> Result<(Pipeline, CommitInfo), Verdict> {
    let mirrors = context.mirrors.clone();
    let url = build.repo_url.clone();
    let commit = build.commit.clone();
    let previous = build.previous_commit.clone();
    let dest = workspace.to_path_buf();
    let auth = credentials.git_auth(&url);
    let checkout = tokio::time::timeout(
        CHECKOUT_TIMEOUT,
        tokio::task::spawn_blocking(move || {
            mirrors.checkout(&url, auth.as_ref(), &commit, previous.as_deref(), &dest)
        }),
    )
    .await;
    let checkout = match checkout {
        Err(_) => {
            announce(context, build, sink, &[]).await;
            let reason = format!(
                "checkout failed: {} did not answer within {} s",
                build.repo_url,
                CHECKOUT_TIMEOUT.as_secs()
            );
            sink.system(SETUP_STAGE, format!("error: {reason}")).await;
            return Err(Verdict::errored(reason));
        }
        Ok(checkout) => checkout,
    };
    let commit_info = match checkout {
        Ok(Ok(info)) => info,
        Ok(Err(error)) => {
            announce(context, build, sink, &[]).await;
            let reason = format!("checkout failed: {error}");
            sink.system(SETUP_STAGE, format!("error: {reason}")).await;
            return Err(Verdict::errored(reason));
        }
        Err(error) => {
            announce(context, build, sink, &[]).await;
            return Err(Verdict::errored(format!("checkout task failed: {error}")));
        }
    };
    let text = match tokio::fs::read_to_string(workspace.join("ocelot.yml")).await {
        Ok(text) => text,
        Err(error) => {
            announce(context, build, sink, &[]).await;
            let reason = if error.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "no ocelot.yml at the root of commit {}",
                    short(&build.commit)
                )
            } else {
                format!("cannot read ocelot.yml: {error}")
            };
            sink.system(SETUP_STAGE, format!("error: {reason}")).await;
            return Err(Verdict::errored(reason));
        }
    };
    match pipeline::parse(&text) {
        Ok(pipeline) => {
            let names: Vec<String> = pipeline.stages.iter().map(|s| s.name.clone()).collect();
            let attempt = build.attempt;
            if let Err(error) = context.store.init_stages(build.id, attempt, &names).await {
                tracing::warn!(build_id = build.id, %error, "recording the stages failed");
            }
            announce(context, build, sink, &names).await;
            sink.system(
                SETUP_STAGE,
                format!(
                    "build {} #{} of {} at {} ({}) on worker {}",
                    build.id,
                    build.number,
                    build.repo_name,
                    short(&build.commit),
                    build.branch,
                    context.worker_id
                ),
            )
            .await;
            Ok((pipeline, commit_info))
        }
        Err(errors) => {
            announce(context, build, sink, &[]).await;
            sink.system(
                SETUP_STAGE,
                format!("error: ocelot.yml is invalid ({} error(s)):", errors.len()),
            )
            .await;
            for error in errors.iter() {
                sink.system(SETUP_STAGE, format!("  ocelot.yml {error}"))
                    .await;
            }
            const SHOWN: usize = 5;
            let mut listed: Vec<String> =
                errors.iter().take(SHOWN).map(|e| e.to_string()).collect();
            if errors.len() > SHOWN {
                listed.push(format!("and {} more", errors.len() - SHOWN));
            }
            Err(Verdict::errored(format!(
                "invalid ocelot.yml: {}",
                listed.join("; ")
            )))
        }
    }
}

async fn open_environment(
    context: &WorkerContext,
    build: &Build,
    pipeline: &Pipeline,
    registry_login: Option<&RegistryLogin>,
    workspace: &std::path::Path,
) -> Result<Environment, String> {
    match (&pipeline.image, context.executor) {
        (Some(image), _) => {
            let Some(docker) = &context.docker else {
                return Err(format!(
                    "ocelot.yml names the image `{image}` but worker {} has no Docker Engine",
                    context.worker_id
                ));
            };
            // a lost attempt's container may still run its script on this Docker host: it
            // goes before this attempt's starts, so two attempts never run at once here
            crate::sweeper::remove_earlier_attempts(
                docker,
                &context.instance,
                build.id,
                build.attempt,
            )
            .await;
            let container = BuildContainer::start(
                docker,
                ContainerSpec {
                    image,
                    build_id: build.id,
                    attempt: build.attempt,
                    worker_id: &context.worker_id,
                    instance: &context.instance,
                    workspace,
                    pull_timeout: context.pull_timeout,
                    registry_login,
                },
            )
            .await
            .map_err(|e| e.to_string())?;
            Ok(Environment::Container(container))
        }
        (None, ExecutorKind::Host) => Ok(Environment::Host(HostEnvironment::new(
            workspace.to_path_buf(),
        ))),
        (None, ExecutorKind::Docker) => Err(format!(
            "ocelot.yml names no image: only a worker started with `--executor host` runs builds \
             outside a container (this build was routed by machineTag `{}`)",
            build.tag
        )),
    }
}

fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

/// The variables every stage gets (the original's, then Ocelot's own).
fn build_env(build: &Build, workspace: &str, previous: &str) -> Vec<String> {
    let mut env = vec![
        format!("BUILD_ID={}", build.id),
        format!("BUILD_NUMBER={}", build.number),
        format!("GIT_HASH={}", build.commit),
        format!("GIT_HASH_SHORT={}", short(&build.commit)),
        format!("GIT_BRANCH={}", build.branch),
        format!("WORKSPACE={workspace}"),
        format!("GIT_PREVIOUS_SUCCESSFUL_COMMIT={previous}"),
        format!("OCELOT_REPO={}", build.repo_name),
        format!("OCELOT_TRIGGER={}", build.trigger),
        "CI=true".to_string(),
        "OCELOT=true".to_string(),
    ];
    if let Some(tag) = &build.git_tag {
        env.push(format!("GIT_TAG={tag}"));
    }
    if let Some(pr) = &build.pull_request {
        env.push(format!("OCELOT_PR_NUMBER={}", pr.number));
        env.push(format!("OCELOT_PR_BASE_BRANCH={}", pr.base_branch));
    }
    env
}

async fn run_stages(
    context: &WorkerContext,
    build: &Build,
    pipeline: &Pipeline,
    commit: &CommitInfo,
    inputs: &StageInputs,
    environment: &mut Environment,
    sink: &mut EventSink,
) -> Verdict {
    let build_deadline = pipeline.timeout.map(|timeout| Instant::now() + timeout);
    let previous = context
        .store
        .previous_successful_commit(build.repo_id, &build.branch, build.id)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let mut base_env = build_env(build, &environment.workspace(), &previous);
    base_env.extend(
        pipeline
            .env
            .iter()
            .map(|e| format!("{}={}", e.key, e.value)),
    );
    // the secrets come after the file's env, before the stage's
    base_env.extend(inputs.env.iter().cloned());
    let trigger_context = TriggerContext {
        branch: &build.branch,
        commit_messages: &commit.messages,
        changed_paths: &commit.changed_paths,
    };
    for (index, stage) in pipeline.stages.iter().enumerate() {
        if inputs.cancel.is_cancelled() {
            return cancelled_verdict(context, build, sink).await;
        }
        if sink.fenced_out() {
            tracing::warn!(
                build_id = build.id,
                "a newer attempt owns the build: no further stage runs here"
            );
            return Verdict::errored("superseded by a newer attempt");
        }
        let index_u32 = u32::try_from(index).unwrap_or(u32::MAX);
        let index_i32 = i32::try_from(index).unwrap_or(i32::MAX);
        if !stage.should_run(&trigger_context) {
            sink.system(
                &stage.name,
                format!("stage {} skipped: its triggers are not met", stage.name),
            )
            .await;
            let seq = sink
                .emit(EventKind::StageFinished {
                    index: index_u32,
                    name: stage.name.clone(),
                    state: StageState::Skipped,
                    exit_code: None,
                    duration_ms: 0,
                })
                .await;
            record_stage_finished(context, build, index_i32, StageState::Skipped, None, seq).await;
            continue;
        }
        let seq = sink
            .emit(EventKind::StageStarted {
                index: index_u32,
                name: stage.name.clone(),
            })
            .await;
        let recorded =
            ocelot_core::store::retrying("recording a stage start", STORE_OUTAGE_BUDGET, || {
                context.store.stage_started(
                    build.id,
                    build.attempt,
                    index_i32,
                    i64::try_from(seq).unwrap_or(0),
                )
            })
            .await;
        if let Err(error) = recorded {
            tracing::warn!(build_id = build.id, %error, "recording the stage start failed");
        }
        let stage_started = Instant::now();
        let stage_deadline = stage.timeout.map(|timeout| stage_started + timeout);
        let deadline = match (build_deadline, stage_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut env = base_env.clone();
        env.extend(stage.env.iter().map(|e| format!("{}={}", e.key, e.value)));
        let outcome = environment
            .run(
                ScriptRun {
                    stage: &stage.name,
                    script: shell_script(&stage.script),
                    env,
                    deadline,
                    masker: inputs.masker.clone(),
                    cancel: inputs.cancel.clone(),
                },
                sink,
            )
            .await;
        let duration_ms = i64::try_from(stage_started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (stage_state, exit_code, verdict) = match outcome {
            Ok(ScriptOutcome::Exited(0)) => (StageState::Passed, Some(0), None),
            Ok(ScriptOutcome::Exited(code)) => {
                sink.system(
                    &stage.name,
                    format!("stage {} failed: exit code {code}", stage.name),
                )
                .await;
                let reason = format!("stage `{}` failed with exit code {code}", stage.name);
                (
                    StageState::Failed,
                    Some(code),
                    Some(Verdict::new(BuildState::Failed, Some(reason))),
                )
            }
            Ok(ScriptOutcome::TimedOut) => {
                let limit = if deadline == stage_deadline {
                    stage.timeout
                } else {
                    pipeline.timeout
                };
                let what = if deadline == stage_deadline {
                    "stage timeout"
                } else {
                    "build timeout"
                };
                let limit = limit
                    .map(|d| humantime::format_duration(d).to_string())
                    .unwrap_or_default();
                let reason = format!("stage `{}` timed out ({what} {limit})", stage.name);
                sink.system(&stage.name, format!("{reason}: stopped")).await;
                (
                    StageState::TimedOut,
                    None,
                    Some(Verdict::new(BuildState::TimedOut, Some(reason))),
                )
            }
            Ok(ScriptOutcome::Cancelled) => {
                let verdict = cancelled_verdict(context, build, sink).await;
                (StageState::Cancelled, None, Some(verdict))
            }
            Err(error) => {
                let reason = format!("stage `{}` could not run: {error}", stage.name);
                sink.system(&stage.name, format!("error: {reason}")).await;
                (StageState::Failed, None, Some(Verdict::errored(reason)))
            }
        };
        let seq = sink
            .emit(EventKind::StageFinished {
                index: index_u32,
                name: stage.name.clone(),
                state: stage_state,
                exit_code,
                duration_ms,
            })
            .await;
        record_stage_finished(context, build, index_i32, stage_state, exit_code, seq).await;
        if let Some(verdict) = verdict {
            return verdict;
        }
    }
    Verdict::new(BuildState::Passed, None)
}

/// The verdict of a cancelled build, with a line saying who cancelled it; or, when the
/// worker's shutdown stopped it, a hand-back.
async fn cancelled_verdict(
    context: &WorkerContext,
    build: &Build,
    sink: &mut EventSink,
) -> Verdict {
    let requested_by = context
        .store
        .get_build(build.id)
        .await
        .ok()
        .and_then(|b| b.cancel_requested_by);
    if requested_by.is_none() && context.hand_back.is_cancelled() {
        sink.system(
            SETUP_STAGE,
            format!(
                "worker {} is shutting down: build stopped and handed back to the queue (another worker runs it)",
                context.worker_id
            ),
        )
        .await;
        return Verdict {
            handed_back: true,
            ..Verdict::new(BuildState::Cancelled, None)
        };
    }
    let by = requested_by.unwrap_or_else(|| "a user".to_string());
    let reason = format!("cancelled by {by}");
    sink.system(SETUP_STAGE, format!("{reason}: stopped")).await;
    Verdict::new(BuildState::Cancelled, Some(reason))
}

async fn record_stage_finished(
    context: &WorkerContext,
    build: &Build,
    index: i32,
    state: StageState,
    exit_code: Option<i32>,
    seq: u64,
) {
    let seq = i64::try_from(seq).unwrap_or(0);
    let recorded =
        ocelot_core::store::retrying("recording a stage result", STORE_OUTAGE_BUDGET, || {
            context
                .store
                .stage_finished(build.id, build.attempt, index, state, exit_code, seq)
        })
        .await;
    if let Err(error) = recorded {
        tracing::warn!(build_id = build.id, %error, "recording the stage result failed");
    }
}

/// Persists the verdict (fenced), then publishes the result event.
async fn finish(
    context: &WorkerContext,
    build: &Build,
    sink: &mut EventSink,
    verdict: Verdict,
    started: Instant,
) -> Finished {
    sink.report_truncation().await;
    sink.flush().await;
    let line_count = sink.digest().count();
    let log_sha256 = sink.digest().hex();
    let recorded =
        ocelot_core::store::retrying("recording the result", STORE_OUTAGE_BUDGET, || {
            context.store.finish_build(
                build.id,
                build.attempt,
                verdict.state,
                verdict.reason.as_deref(),
                i64::try_from(line_count).unwrap_or(i64::MAX),
                &log_sha256,
            )
        })
        .await;
    match recorded {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(
                build_id = build.id,
                attempt = build.attempt,
                "the build is no longer this attempt's (a newer attempt, or it was ended): result dropped"
            );
            return Finished::FencedOut;
        }
        Err(error) => {
            tracing::error!(build_id = build.id, %error, "the result could not be recorded");
            return Finished::NotRecorded;
        }
    }
    if sink.fenced_out() {
        return Finished::FencedOut;
    }
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    sink.emit(EventKind::Result {
        state: verdict.state,
        reason: verdict.reason.clone().unwrap_or_default(),
        duration_ms,
        line_count,
        log_sha256,
    })
    .await;
    sink.flush().await;
    tracing::info!(state = %verdict.state, duration_ms, "build finished");
    Finished::Recorded
}
