//! Runs one build attempt: claim (the attempt number fences every later write) → set-up
//! ([`prepare`]: workspace, credentials, checkout of the exact commit, `ocelot.yml`,
//! environment) → [`stages`] in order, stopping at the first failure and honouring timeouts →
//! result ([`AttemptLog::finish`]). The environment and the workspace are removed whatever
//! happened. What the build is told and given is in [`messages`], as pure functions.
//! [`local`] runs a checkout's build the same way with no server (`ocelot exec`).

mod cancel;
pub(crate) mod local;
mod messages;
mod prepare;
mod schedule;
mod services;
mod stages;

use crate::attempt_log::{AttemptLog, Finished};
use crate::cache::{self, CacheJob};
use crate::context::{Engine, WorkerContext};
use crate::executor::Environment;
use crate::file_secrets::FileSecrets;
use ocelot_core::build_state::BuildState;
use ocelot_core::events::EventKind;
use ocelot_core::ids::BuildId;
use ocelot_core::model::Build;
use ocelot_core::store::{ClaimOutcome, StoreError, Superseded, retrying};
use prepare::{Setup, SetupFailure};
use stages::StageInputs;
use std::time::Instant;
use tracing::Instrument;

pub(crate) use crate::attempt_log::SETUP_STAGE;

/// The final state of an attempt, and why, before it is recorded.
#[derive(Debug)]
struct Verdict {
    state: BuildState,
    reason: Option<String>,
}

impl Verdict {
    fn errored(reason: impl Into<String>) -> Self {
        Verdict::new(BuildState::Errored, Some(reason.into()))
    }

    fn new(state: BuildState, reason: Option<String>) -> Self {
        Verdict { state, reason }
    }
}

/// How an attempt ended.
#[derive(Debug)]
enum Outcome {
    /// The build reached a final state, to be recorded.
    Final(Verdict),
    /// The worker stopped the build to shut down: nothing is recorded, the job goes back.
    HandedBack,
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

/// Claims `build_id` and runs it to a final state. `job_trace_id`: the trace id its job
/// carried (the job's span has it), `None` for a job of an earlier release.
pub(crate) async fn run_build(
    context: &WorkerContext,
    build_id: BuildId,
    redelivered: bool,
    job_trace_id: Option<&str>,
) -> JobDisposition {
    let claim = context
        .store
        .claim(
            build_id,
            &context.engine.worker_id,
            context.max_attempts,
            redelivered,
        )
        .await;
    let superseded = claim.as_ref().ok().and_then(|c| c.superseded.clone());
    let claimed = match claim.map(|c| c.outcome) {
        Ok(ClaimOutcome::Claimed(build)) => build,
        Ok(ClaimOutcome::AlreadyFinal(build)) => {
            tracing::info!(build_id = build_id.get(), state = %build.state, "build already final: job dropped");
            return JobDisposition::Done;
        }
        Ok(ClaimOutcome::HeldByAnother(build)) => {
            tracing::warn!(build_id = build_id.get(), attempt = build.attempt.get(), worker = ?build.worker,
                "duplicate job for a build another attempt runs: dropped");
            return JobDisposition::Done;
        }
        Ok(ClaimOutcome::AttemptsExhausted(build)) => {
            tracing::warn!(build_id = build_id.get(), reason = ?build.reason, "build out of attempts: errored");
            return JobDisposition::Done;
        }
        Err(StoreError::NotFound(_)) => {
            tracing::warn!(
                build_id = build_id.get(),
                "job for an unknown build (repo removed?): dropped"
            );
            return JobDisposition::Done;
        }
        Err(error) => {
            tracing::warn!(build_id = build_id.get(), %error, "cannot claim the build: job handed back");
            return JobDisposition::Retry;
        }
    };
    // a job of an earlier release carried no trace id: the job's span gets the row's
    if job_trace_id.is_none()
        && let Some(trace_id) = claimed.trace_id.as_deref()
    {
        tracing::Span::current().record("trace_id", tracing::field::display(trace_id));
    }
    // from queued to this claim (not for a take-over: that build ran before)
    if superseded.is_none()
        && let Some(started) = claimed.started_at
        && let Ok(waited) = started.duration_since(claimed.queued_at)
    {
        ocelot_core::metrics::build_waited(&claimed.tag, waited);
    }
    let span = tracing::info_span!(
        "build",
        build_id = build_id.get(),
        attempt = claimed.attempt.get()
    );
    run_claimed(context, &claimed, superseded)
        .instrument(span)
        .await
}

async fn run_claimed(
    context: &WorkerContext,
    build: &Build,
    superseded: Option<Superseded>,
) -> JobDisposition {
    tracing::info!(repo = %build.repo_name, commit = %build.commit, "build claimed");
    let _running = ocelot_core::metrics::build_running();
    let started = Instant::now();
    let mut log = AttemptLog::new(
        context.bus.clone(),
        context.store.clone(),
        build.id,
        build.attempt,
        crate::log_limit::LogLimit::new(context.engine.max_log_bytes, context.engine.max_log_lines),
        context.store_outage_budget,
    );
    // watchers learn of a lost worker the moment its build is taken over
    if let Some(Superseded {
        attempt,
        lost_worker: Some(worker),
    }) = &superseded
    {
        tracing::warn!(lost_worker = %worker, lost_attempt = attempt.get(), "took over the build of a lost worker");
        log.system(
            SETUP_STAGE,
            messages::worker_lost(worker, *attempt, build.attempt, &context.engine.worker_id),
        )
        .await;
    }
    let (outcome, leftover) = attempt(context, build, &mut log).await;
    let verdict = match outcome {
        Outcome::Final(verdict) => verdict,
        Outcome::HandedBack => {
            log.flush().await;
            let recorded = retrying(
                "recording the hand-back",
                context.store_outage_budget,
                || context.store.hand_back(build.id, build.attempt),
            )
            .await;
            if let Err(error) = recorded {
                tracing::warn!(%error, "the hand-back was not recorded: it counts as a lost attempt");
            }
            tracing::info!("build stopped by the worker's shutdown: job handed back");
            return JobDisposition::HandBack;
        }
    };
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let finished = log
        .finish(verdict.state, verdict.reason.as_deref(), duration_ms)
        .await;
    if let Some(environment) = leftover {
        environment.cleanup().await;
    }
    match finished {
        Finished::Recorded => {
            tracing::info!(state = %verdict.state, duration_ms, "build finished");
            ocelot_core::metrics::build_finished(verdict.state, &build.trigger);
            ocelot_core::metrics::build_ran(verdict.state, started.elapsed());
            JobDisposition::Done
        }
        Finished::FencedOut => JobDisposition::Done,
        // the build is still `running` in Postgres: the job must come back
        Finished::NotRecorded => JobDisposition::Retry,
    }
}

/// Runs the attempt: its outcome, and the environment it ran in when that is still to be
/// removed (after the result is recorded, so that `ocelot build` does not wait for Docker to
/// remove a container; a cancelled build's goes first: `ocelot kill` returns when it is gone).
async fn attempt(
    context: &WorkerContext,
    build: &Build,
    log: &mut AttemptLog,
) -> (Outcome, Option<Environment>) {
    // the worker's shutdown stops the build too (and hands it back)
    let cancel = context.hand_back.child_token();
    let _watcher = cancel::watch(context, build.id, cancel.clone()).await;
    // made while the commit is checked out; dropped (and removed) if the build cannot start
    let network = prepare::start_network(&context.engine, build);
    let setup = match prepare::set_up(context, build, log).await {
        Ok(setup) => setup,
        Err(failure) => {
            announce(&context.engine, build, log, Vec::new(), Vec::new()).await;
            return (fail(log, failure).await, None);
        }
    };
    let Setup {
        workspace,
        credentials,
        masker,
        pipeline,
        commit,
    } = setup;
    let stage_names = pipeline.stages.iter().map(|s| s.name.clone()).collect();
    announce(
        &context.engine,
        build,
        log,
        stage_names,
        stages::needs(&pipeline),
    )
    .await;
    log.system(
        SETUP_STAGE,
        messages::banner(build, &context.engine.worker_id),
    )
    .await;
    let credentials = if build.withhold_secrets {
        log.system(
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
        log.system(
            SETUP_STAGE,
            format!("secrets in the environment: {}", names.join(", ")),
        )
        .await;
    }
    let files = match FileSecrets::new(&credentials) {
        Ok(files) => files,
        Err(error) => return (fail(log, SetupFailure::new(error.to_string())).await, None),
    };
    if let Some(line) = files.announcement() {
        log.system(SETUP_STAGE, line).await;
    }
    let registry_login = pipeline
        .image
        .as_deref()
        .and_then(|image| credentials.registry_login(image));
    let opened = prepare::open_environment(
        context,
        build,
        &pipeline,
        registry_login.as_ref(),
        workspace.path(),
        network,
    )
    .await;
    let mut environment = match opened {
        Ok(environment) => environment,
        Err(failure) => return (fail(log, failure).await, None),
    };
    let services_job = services::ServicesJob {
        engine: &context.engine,
        build,
        pipeline: &pipeline,
        credentials: &credentials,
        workspace: workspace.path(),
        masker: &masker,
        cancel: &cancel,
    };
    if let Err(failure) = services::start(&services_job, &mut environment, log).await {
        return (fail(log, failure).await, Some(environment));
    }
    let previous = context
        .store
        .previous_successful_commit(build.repo_id, &build.branch, build.id)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    // Ocelot's variables, then the file's, then the build's parameters, then the secrets
    // (a parameter named like a secret is left out; a stage's own come last)
    let mut env = messages::build_env(build, &environment.workspace(), &previous);
    env.extend(
        pipeline
            .env
            .iter()
            .map(|e| format!("{}={}", e.key, e.value)),
    );
    let secret_names: Vec<&str> = secret_env.iter().map(|(name, _)| name.as_str()).collect();
    let (param_env, param_lines) = messages::params(build, &secret_names);
    for line in param_lines {
        log.system(SETUP_STAGE, line).await;
    }
    env.extend(param_env);
    env.extend(
        secret_env
            .iter()
            .map(|(name, value)| format!("{name}={}", value.expose())),
    );
    let cache_job = CacheJob {
        context,
        build,
        environment: &environment,
        cancel: &cancel,
    };
    let caches = cache::restore_all(&cache_job, &pipeline, workspace.path(), log).await;
    let inputs = StageInputs {
        env,
        masker,
        cancel,
        files,
    };
    let stages_job = stages::StagesJob {
        engine: &context.engine,
        artifacts: Some(stages::ArtifactTarget {
            store: &context.store,
            storage: &context.storage,
            limits: context.artifact_limits,
        }),
        build,
        pipeline: &pipeline,
        commit: &commit,
    };
    let outcome = match stages::run_stages(&stages_job, &inputs, &environment, log).await {
        stages::StagesOutcome::Final(verdict) => Outcome::Final(verdict),
        stages::StagesOutcome::Cancelled => stages::cancelled(context, build, log).await,
    };
    // before the environment is read (caches) or removed
    let files_removed = match inputs.files.remove_all(&environment).await {
        Ok(_) => true,
        Err(error) => {
            tracing::warn!(%error, "at the end of the build");
            false
        }
    };
    let passed = matches!(&outcome, Outcome::Final(verdict) if verdict.state == BuildState::Passed);
    if passed && !files_removed {
        log.system(
            SETUP_STAGE,
            "cache: nothing saved: the build's file credentials could not be removed first",
        )
        .await;
    } else if passed {
        let cache_job = CacheJob {
            context,
            build,
            environment: &environment,
            cancel: &inputs.cancel,
        };
        cache::save_all(&cache_job, &caches, log).await;
    }
    services::append_logs(&environment, &inputs.masker, log).await;
    match &outcome {
        Outcome::Final(verdict) if verdict.state != BuildState::Cancelled => {
            (outcome, Some(environment))
        }
        _ => {
            environment.cleanup().await;
            (outcome, None)
        }
    }
}

/// The attempt's first event: who runs it, and its stages (none when it cannot start) with
/// what each needs (none when they run in order).
async fn announce(
    engine: &Engine,
    build: &Build,
    log: &mut AttemptLog,
    stages: Vec<String>,
    needs: Vec<Vec<String>>,
) {
    log.emit(EventKind::AttemptStarted {
        worker: engine.worker_id.clone(),
        commit: build.commit.clone(),
        branch: build.branch.clone(),
        stages,
        needs,
    })
    .await;
}

/// A build that cannot start: its lines, then `errored` with its reason.
async fn fail(log: &mut AttemptLog, failure: SetupFailure) -> Outcome {
    Outcome::Final(failed(log, failure).await)
}

/// [`fail`]'s verdict.
async fn failed(log: &mut AttemptLog, failure: SetupFailure) -> Verdict {
    for line in failure.lines {
        log.system(SETUP_STAGE, line).await;
    }
    Verdict::errored(failure.reason)
}
