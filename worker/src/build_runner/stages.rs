//! The stages of a build, in order: each one's triggers, its script in the environment under
//! its deadline, its result, then its artifacts ([`crate::artifacts`]: kept when its `when`
//! says so, within the build's limits; later stages see the files anyway, in the shared
//! workspace); the first failure, timeout or cancel stops the build. A build asked for one
//! stage (`--stage`) runs only it and what it needs; the others are skipped.

use super::messages::{self, TimeLimit};
use super::{Outcome, SETUP_STAGE, Verdict};
use crate::artifacts::{self, Budget, Collection};
use crate::attempt_log::AttemptLog;
use crate::context::WorkerContext;
use crate::executor::{Environment, ScriptOutcome, ScriptRun, shell_script};
use crate::file_secrets::FileSecrets;
use ocelot_core::build_state::{BuildState, StageState};
use ocelot_core::events::EventKind;
use ocelot_core::git::CommitInfo;
use ocelot_core::model::Build;
use ocelot_core::pipeline::{Pipeline, Stage, TriggerContext, UnknownStage};
use ocelot_core::secrets::mask::Masker;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// What every stage of an attempt gets besides the pipeline: the variables (Ocelot's, the
/// file's, the secrets'), what hides the secrets in the output, the cancel signal, and the
/// file credentials (written before a stage runs, removed before its artifacts are read).
pub(super) struct StageInputs {
    pub(super) env: Vec<String>,
    pub(super) masker: Masker,
    pub(super) cancel: CancellationToken,
    pub(super) files: FileSecrets,
}

/// How one stage ended.
struct StageEnd {
    state: StageState,
    exit_code: Option<i32>,
    /// Set when the build stops here.
    stop: Option<Outcome>,
}

/// The indices of the stages the build runs when it was asked for one (`--stage`); `None`:
/// every stage.
pub(super) fn selection(
    build: &Build,
    pipeline: &Pipeline,
) -> Result<Option<Vec<usize>>, UnknownStage> {
    build
        .params
        .stage
        .as_deref()
        .map(|name| pipeline.select_stage(name))
        .transpose()
}

pub(super) async fn run_stages(
    context: &WorkerContext,
    build: &Build,
    pipeline: &Pipeline,
    commit: &CommitInfo,
    inputs: &StageInputs,
    environment: &mut Environment,
    log: &mut AttemptLog,
) -> Outcome {
    let build_deadline = pipeline.timeout.map(|timeout| Instant::now() + timeout);
    let mut budget = Budget::new(&context.artifact_limits);
    let trigger_context = TriggerContext {
        branch: &build.branch,
        commit_messages: &commit.messages,
        changed_paths: &commit.changed_paths,
    };
    // checked while setting up: an unknown stage never gets here (and would run nothing)
    let selected = selection(build, pipeline).unwrap_or(Some(Vec::new()));
    for (index, stage) in pipeline.stages.iter().enumerate() {
        if inputs.cancel.is_cancelled() {
            return cancelled(context, build, log).await;
        }
        if log.fenced_out() {
            tracing::warn!(
                build_id = build.id.get(),
                "a newer attempt owns the build: no further stage runs here"
            );
            return Outcome::Final(Verdict::errored("superseded by a newer attempt"));
        }
        let chosen = selected.as_ref().is_none_or(|s| s.contains(&index));
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        let started = Instant::now();
        let end = if !chosen {
            let asked = build.params.stage.as_deref().unwrap_or_default();
            log.system(&stage.name, messages::not_selected(&stage.name, asked))
                .await;
            StageEnd {
                state: StageState::Skipped,
                exit_code: None,
                stop: None,
            }
        } else if stage.should_run(&trigger_context) {
            log.emit(EventKind::StageStarted {
                index,
                name: stage.name.clone(),
            })
            .await;
            run_stage(
                context,
                build,
                stage,
                build_deadline,
                pipeline,
                inputs,
                environment,
                log,
            )
            .await
        } else {
            log.system(
                &stage.name,
                format!("stage {} skipped: its triggers are not met", stage.name),
            )
            .await;
            StageEnd {
                state: StageState::Skipped,
                exit_code: None,
                stop: None,
            }
        };
        let duration_ms = if end.state == StageState::Skipped {
            0
        } else {
            i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
        };
        keep_artifacts(
            context,
            build,
            stage,
            end.state,
            environment,
            &mut budget,
            inputs,
            log,
        )
        .await;
        log.emit(EventKind::StageFinished {
            index,
            name: stage.name.clone(),
            state: end.state,
            exit_code: end.exit_code,
            duration_ms,
        })
        .await;
        if let Some(outcome) = end.stop {
            return outcome;
        }
    }
    Outcome::Final(Verdict::new(BuildState::Passed, None))
}

/// Collects the stage's artifacts when it has some and its result asks for them (never
/// after a cancel, a skip, or when a newer attempt owns the build), the file credentials
/// removed first (and skipped by the reader); a cancel stops it.
#[allow(clippy::too_many_arguments)]
async fn keep_artifacts(
    context: &WorkerContext,
    build: &Build,
    stage: &Stage,
    state: StageState,
    environment: &Environment,
    budget: &mut Budget,
    inputs: &StageInputs,
    log: &mut AttemptLog,
) {
    let cancel = &inputs.cancel;
    let Some(artifacts) = &stage.artifacts else {
        return;
    };
    let passed = match state {
        StageState::Passed => true,
        StageState::Failed | StageState::TimedOut => false,
        _ => return,
    };
    if !artifacts.when.applies(passed) || log.fenced_out() {
        return;
    }
    if let Err(error) = inputs.files.remove_all(environment).await {
        log.system(&stage.name, format!("artifacts: not collected: {error}"))
            .await;
        return;
    }
    let secret_paths = inputs.files.workspace_paths(environment);
    let job = Collection {
        store: &context.store,
        storage: &context.storage,
        build_id: build.id,
        attempt: build.attempt,
        stage: &stage.name,
        artifacts,
        default_expiry: context.artifact_limits.expire_in,
        skipped: &secret_paths,
    };
    let stopped = tokio::select! {
        () = artifacts::collect(&job, environment, budget, log) => false,
        () = cancel.cancelled() => true,
    };
    if stopped {
        log.system(
            &stage.name,
            "artifacts: collection stopped: the build was cancelled",
        )
        .await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_stage(
    context: &WorkerContext,
    build: &Build,
    stage: &Stage,
    build_deadline: Option<Instant>,
    pipeline: &Pipeline,
    inputs: &StageInputs,
    environment: &mut Environment,
    log: &mut AttemptLog,
) -> StageEnd {
    // (again, when the previous stage's artifacts were collected)
    if let Err(reason) = inputs.files.write_all(environment, &inputs.env).await {
        log.system(&stage.name, format!("error: {reason}")).await;
        return StageEnd {
            state: StageState::Failed,
            exit_code: None,
            stop: Some(Outcome::Final(Verdict::errored(reason))),
        };
    }
    let stage_deadline = stage.timeout.map(|timeout| Instant::now() + timeout);
    let deadline = match (build_deadline, stage_deadline) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let mut env = inputs.env.clone();
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
            log,
        )
        .await;
    let stopped = |state, exit_code, verdict| StageEnd {
        state,
        exit_code,
        stop: Some(Outcome::Final(verdict)),
    };
    match outcome {
        Ok(ScriptOutcome::Exited(0)) => StageEnd {
            state: StageState::Passed,
            exit_code: Some(0),
            stop: None,
        },
        Ok(ScriptOutcome::Exited(code)) => {
            log.system(
                &stage.name,
                format!("stage {} failed: exit code {code}", stage.name),
            )
            .await;
            let reason = messages::stage_failed(&stage.name, code);
            stopped(
                StageState::Failed,
                Some(code),
                Verdict::new(BuildState::Failed, Some(reason)),
            )
        }
        Ok(ScriptOutcome::TimedOut) => {
            let limit = if deadline == stage_deadline {
                TimeLimit::Stage(stage.timeout)
            } else {
                TimeLimit::Build(pipeline.timeout)
            };
            let reason = messages::timed_out(&stage.name, limit);
            log.system(&stage.name, format!("{reason}: stopped")).await;
            stopped(
                StageState::TimedOut,
                None,
                Verdict::new(BuildState::TimedOut, Some(reason)),
            )
        }
        Ok(ScriptOutcome::Cancelled) => StageEnd {
            state: StageState::Cancelled,
            exit_code: None,
            stop: Some(cancelled(context, build, log).await),
        },
        Err(error) => {
            let reason = format!("stage `{}` could not run: {error}", stage.name);
            log.system(&stage.name, format!("error: {reason}")).await;
            stopped(StageState::Failed, None, Verdict::errored(reason))
        }
    }
}

/// A cancelled build, with a line saying who cancelled it; or, when the worker's shutdown
/// stopped it, a hand-back.
async fn cancelled(context: &WorkerContext, build: &Build, log: &mut AttemptLog) -> Outcome {
    let requested_by = context
        .store
        .get_build(build.id)
        .await
        .ok()
        .and_then(|b| b.cancel_requested_by);
    if requested_by.is_none() && context.hand_back.is_cancelled() {
        log.system(
            SETUP_STAGE,
            format!(
                "worker {} is shutting down: build stopped and handed back to the queue (another worker runs it)",
                context.worker_id
            ),
        )
        .await;
        return Outcome::HandedBack;
    }
    let by = requested_by.unwrap_or_else(|| "a user".to_string());
    let reason = format!("cancelled by {by}");
    log.system(SETUP_STAGE, format!("{reason}: stopped")).await;
    Outcome::Final(Verdict::new(BuildState::Cancelled, Some(reason)))
}
