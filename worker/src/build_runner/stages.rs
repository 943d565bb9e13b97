//! The stages of a build, scheduled by what they need ([`schedule`](super::schedule)): in a
//! file without `needs:` each stage needs the one before it, so they run in order and the
//! first failure, timeout or cancel stops the build; in a graph (`needs:`) every stage whose
//! needs have passed starts at once (up to `--max-parallel-stages`; one at a time on the
//! host), each as its own process in the build's one environment (they share the
//! workspace), and a failed or timed-out stage skips only what depends on it while the rest
//! finishes (the build fails). A cancel, the build's own timeout, an error or a newer attempt
//! stops every stage. A stage skipped by its triggers, or not asked for (`--stage`: a stage
//! and what it needs run), counts as passed for what needs it.
//!
//! Each stage: its script under its deadline, its result, then its artifacts
//! ([`crate::artifacts`]: kept when its `when` says so, within the build's limits). The file
//! credentials are written before a stage runs; before artifacts are read they are removed
//! when no other stage runs, else left in place for the running ones and skipped by the
//! artifact reader, which never reads them (they are written again before the next stage).
//! Running stages write their lines through one channel ([`crate::stage_log`]) to the
//! scheduler, which owns the attempt's log: each stage's lines stay in order, every one
//! before its `stage_finished` event.

use super::messages::{self, TimeLimit};
use super::schedule::{Decision, Ended, Schedule};
use super::{Outcome, SETUP_STAGE, Verdict};
use crate::artifacts::{self, ArtifactLimits, Budget, Collection};
use crate::attempt_log::AttemptLog;
use crate::context::{Engine, WorkerContext};
use crate::executor::docker::{container_labels, container_name};
use crate::executor::{Environment, ScriptOutcome, ScriptRun, shell_script};
use crate::file_secrets::FileSecrets;
use crate::log_sink::SystemLog;
use crate::stage_log::{StageLog, StageLogs};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use ocelot_core::build_state::{BuildState, StageState};
use ocelot_core::events::EventKind;
use ocelot_core::git::CommitInfo;
use ocelot_core::model::Build;
use ocelot_core::pipeline::{Pipeline, Stage, TriggerContext, UnknownStage};
use ocelot_core::secrets::mask::Masker;
use ocelot_core::storage::Storage;
use ocelot_core::store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tokio::sync::{Mutex, RwLock};
use tokio_util::sync::CancellationToken;

/// What each stage needs, by name, for the attempt's first event: empty when the stages run
/// in order (a file without `needs:`).
pub(super) fn needs(pipeline: &Pipeline) -> Vec<Vec<String>> {
    if !pipeline.is_graph() {
        return Vec::new();
    }
    pipeline
        .stages
        .iter()
        .map(|stage| stage.needed().to_vec())
        .collect()
}

/// What every stage of an attempt gets besides the pipeline: the variables (Ocelot's, the
/// file's, the secrets'), what hides the secrets in the output, the cancel signal, and the
/// file credentials (written before a stage runs, removed before its artifacts are read).
pub(super) struct StageInputs {
    pub(super) env: Vec<String>,
    pub(super) masker: Masker,
    pub(super) cancel: CancellationToken,
    pub(super) files: FileSecrets,
}

/// Where the artifacts of a build's stages go: the worker's storage, recorded in Postgres.
pub(super) struct ArtifactTarget<'a> {
    pub(super) store: &'a Store,
    pub(super) storage: &'a Storage,
    pub(super) limits: ArtifactLimits,
}

/// The build whose stages run, and what runs them.
pub(super) struct StagesJob<'a> {
    pub(super) engine: &'a Engine,
    /// Where artifacts go; `None` (`ocelot exec`): a stage's are not collected, a line says so.
    pub(super) artifacts: Option<ArtifactTarget<'a>>,
    pub(super) build: &'a Build,
    pub(super) pipeline: &'a Pipeline,
    pub(super) commit: &'a CommitInfo,
}

/// How a build's stages ended.
#[derive(Debug)]
pub(super) enum StagesOutcome {
    /// Every stage ran (or was skipped), or the build stopped: its final state.
    Final(Verdict),
    /// The build's cancel signal stopped it (who asked decides what it means: see
    /// [`cancelled`]).
    Cancelled,
}

/// How one stage ended.
struct StageEnd {
    state: StageState,
    exit_code: Option<i32>,
    duration_ms: i64,
    /// Set when the stage did not pass.
    stop: Option<Stop>,
}

/// What a stage that did not pass means for the build.
enum Stop {
    /// It failed or ran out of its own time: the build's result; in a graph only what
    /// needs it is skipped, else the build stops.
    Failure(Verdict),
    /// The build stops at once (an error, the build's own timeout, a newer attempt).
    Now(Verdict),
    /// The build was cancelled or is handed back.
    Cancelled,
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

/// What the stages running at once share.
struct Shared<'a> {
    engine: &'a Engine,
    artifacts: Option<&'a ArtifactTarget<'a>>,
    build: &'a Build,
    pipeline: &'a Pipeline,
    inputs: &'a StageInputs,
    environment: &'a Environment,
    build_deadline: Option<Instant>,
    /// Cancelled to stop every running stage (a child of the build's cancel).
    stop: CancellationToken,
    /// Set once a newer attempt owns the build.
    fenced_out: Arc<AtomicBool>,
    /// The build's artifact limits (one stage collects at a time).
    budget: Mutex<Budget>,
    /// Held (shared) while a stage's script runs: the file credentials are removed before
    /// artifacts are read only when it can be held alone.
    files_in_use: RwLock<()>,
    /// One stage writes the file credentials at a time.
    writing_files: Mutex<()>,
}

pub(super) async fn run_stages(
    job: &StagesJob<'_>,
    inputs: &StageInputs,
    environment: &Environment,
    log: &mut AttemptLog,
) -> StagesOutcome {
    let (engine, build, pipeline, commit) = (job.engine, job.build, job.pipeline, job.commit);
    let trigger_context = TriggerContext {
        branch: &build.branch,
        commit_messages: &commit.messages,
        changed_paths: &commit.changed_paths,
    };
    // checked while setting up: an unknown stage never gets here (and would run nothing)
    let selected = selection(build, pipeline).unwrap_or(Some(Vec::new()));
    let count = pipeline.stages.len();
    let mut schedule = Schedule::new(
        (0..count).map(|i| pipeline.dependencies(i)).collect(),
        (0..count)
            .map(|i| selected.as_ref().is_none_or(|s| s.contains(&i)))
            .collect(),
    );
    let graph = pipeline.is_graph();
    // a host build's stages share one uid, whose processes end with each stage
    let at_once = match environment {
        Environment::Container(_) => usize::from(engine.stage_settings.max_parallel_stages),
        Environment::Host(_) => 1,
    };
    let shared = Shared {
        engine,
        artifacts: job.artifacts.as_ref(),
        build,
        pipeline,
        inputs,
        environment,
        build_deadline: pipeline.timeout.map(|timeout| Instant::now() + timeout),
        stop: inputs.cancel.child_token(),
        fenced_out: log.fence(),
        budget: Mutex::new(Budget::new(
            &job.artifacts.as_ref().map(|a| a.limits).unwrap_or_default(),
        )),
        files_in_use: RwLock::new(()),
        writing_files: Mutex::new(()),
    };
    let mut logs = StageLogs::new();
    let mut running = FuturesUnordered::new();
    // the result of the first stage that failed in a graph (the others went on)
    let mut failure: Option<Verdict> = None;
    // set when the build stops: no stage starts any more, the running ones are stopped
    let mut stop: Option<Stop> = None;
    loop {
        logs.write_pending(log).await;
        if stop.is_none() && inputs.cancel.is_cancelled() {
            stop = Some(Stop::Cancelled);
        }
        if stop.is_none() && log.fenced_out() {
            tracing::warn!(
                build_id = build.id.get(),
                "a newer attempt owns the build: no further stage runs here"
            );
            stop = Some(Stop::Now(Verdict::errored("superseded by a newer attempt")));
        }
        if stop.is_some() {
            shared.stop.cancel();
        } else {
            // deciding a stage (a skip) can make others decidable
            loop {
                let mut decided = false;
                for (index, decision) in schedule.decidable() {
                    let Some(stage) = pipeline.stages.get(index) else {
                        continue;
                    };
                    let skipped = match decision {
                        Decision::NotSelected => {
                            let asked = build.params.stage.as_deref().unwrap_or_default();
                            Some((messages::not_selected(&stage.name, asked), Ended::Done))
                        }
                        Decision::Blocked { need, root } => {
                            let name =
                                |i: usize| pipeline.stages.get(i).map_or("?", |s| s.name.as_str());
                            let line = messages::blocked(&stage.name, name(need), name(root));
                            Some((line, Ended::Blocked(root)))
                        }
                        Decision::Ready if !stage.should_run(&trigger_context) => Some((
                            format!("stage {} skipped: its triggers are not met", stage.name),
                            Ended::Done,
                        )),
                        Decision::Ready => None,
                    };
                    if let Some((line, ended)) = skipped {
                        log.system(&stage.name, line).await;
                        finished(log, index, stage, StageState::Skipped, None, 0).await;
                        schedule.end(index, ended);
                        decided = true;
                    } else if schedule.running() < at_once {
                        let started = Instant::now();
                        log.emit(EventKind::StageStarted {
                            index: stage_index(index),
                            name: stage.name.clone(),
                        })
                        .await;
                        schedule.start(index);
                        running.push(run_stage(&shared, index, stage, started, logs.stage_log()));
                    }
                }
                if !decided {
                    break;
                }
            }
        }
        if running.is_empty() {
            break;
        }
        let next = tokio::select! {
            biased;
            Some(entry) = logs.next() => Err(entry),
            Some(ended) = running.next() => Ok(ended),
        };
        let (index, end) = match next {
            Ok(ended) => ended,
            Err(entry) => {
                logs.write(log, entry).await;
                continue;
            }
        };
        // every line of the stage goes before its end
        logs.write_pending(log).await;
        if let Some(stage) = pipeline.stages.get(index) {
            finished(log, index, stage, end.state, end.exit_code, end.duration_ms).await;
        }
        let passed = end.state == StageState::Passed;
        let allowed = !passed
            && matches!(end.stop, Some(Stop::Failure(_)))
            && pipeline
                .stages
                .get(index)
                .and_then(|s| s.matrix.as_ref())
                .is_some_and(|m| m.allow_failure);
        if allowed {
            if let Some(stage) = pipeline.stages.get(index) {
                log.system(
                    &stage.name,
                    format!(
                        "matrix job {} did not pass; it may fail (allow_failure): the build goes on",
                        stage.name
                    ),
                )
                .await;
            }
            schedule.end(index, Ended::Done);
            continue;
        }
        schedule.end(index, if passed { Ended::Done } else { Ended::Failed });
        match end.stop {
            None => {}
            Some(Stop::Failure(verdict)) if graph => {
                failure.get_or_insert(verdict);
            }
            Some(reason) => {
                stop.get_or_insert(reason);
            }
        }
    }
    logs.close(log).await;
    match stop.map(Ok).or(failure.map(Err)) {
        Some(Ok(Stop::Cancelled)) => StagesOutcome::Cancelled,
        Some(Ok(Stop::Now(verdict) | Stop::Failure(verdict))) | Some(Err(verdict)) => {
            StagesOutcome::Final(verdict)
        }
        None => StagesOutcome::Final(Verdict::new(BuildState::Passed, None)),
    }
}

fn stage_index(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

/// The stage's `stage_finished` event (and its log line and duration metric, for a stage
/// that ran).
async fn finished(
    log: &mut AttemptLog,
    index: usize,
    stage: &Stage,
    state: StageState,
    exit_code: Option<i32>,
    duration_ms: i64,
) {
    if state != StageState::Skipped {
        tracing::info!(stage = %stage.name, %state, ?exit_code, duration_ms, "stage finished");
        let took = std::time::Duration::from_millis(u64::try_from(duration_ms).unwrap_or(0));
        ocelot_core::metrics::stage_ran(state, took);
    }
    log.emit(EventKind::StageFinished {
        index: stage_index(index),
        name: stage.name.clone(),
        state,
        exit_code,
        duration_ms,
    })
    .await;
}

/// Where a stage runs: the build's environment, or a matrix job's own container.
struct Place<'p> {
    environment: &'p Environment,
    files: &'p FileSecrets,
    /// The job's own container: no other stage runs in it.
    own: bool,
}

/// Runs one stage that has started: the file credentials, its script, its artifacts; a
/// matrix job in a container of its own, removed after it.
async fn run_stage(
    shared: &Shared<'_>,
    index: usize,
    stage: &Stage,
    started: Instant,
    mut log: StageLog,
) -> (usize, StageEnd) {
    if stage.matrix.is_some() {
        return (index, run_job(shared, stage, started, &mut log).await);
    }
    let place = Place {
        environment: shared.environment,
        files: &shared.inputs.files,
        own: false,
    };
    let end = run_in(shared, &place, stage, started, &mut log).await;
    (index, end)
}

/// A matrix job: a fresh container made like the build's (its workspace copied in as it is
/// now), its script and artifacts there, then the container goes. On the host a job runs
/// in the build's own workspace.
async fn run_job(
    shared: &Shared<'_>,
    stage: &Stage,
    started: Instant,
    log: &mut StageLog,
) -> StageEnd {
    let (build, engine) = (shared.build, shared.engine);
    let labels = container_labels(build.id, build.attempt, &engine.worker_id, &engine.instance);
    let name = container_name(build.id, build.attempt);
    let job = tokio::select! {
        job = shared.environment.start_job(&name, labels) => job,
        () = shared.stop.cancelled() => {
            return StageEnd {
                state: StageState::Cancelled,
                exit_code: None,
                duration_ms: 0,
                stop: Some(Stop::Cancelled),
            };
        }
    };
    match job {
        Ok(Some(environment)) => {
            let files = shared.inputs.files.fresh();
            let place = Place {
                environment: &environment,
                files: &files,
                own: true,
            };
            let end = run_in(shared, &place, stage, started, log).await;
            environment.cleanup().await;
            end
        }
        Ok(None) => {
            let place = Place {
                environment: shared.environment,
                files: &shared.inputs.files,
                own: false,
            };
            run_in(shared, &place, stage, started, log).await
        }
        Err(error) => {
            let reason = format!("matrix job `{}` could not start: {error}", stage.name);
            log.system(&stage.name, format!("error: {reason}")).await;
            StageEnd {
                state: StageState::Failed,
                exit_code: None,
                duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
                stop: Some(Stop::Now(Verdict::errored(reason))),
            }
        }
    }
}

/// The stage's script, then its artifacts, in `place`.
async fn run_in(
    shared: &Shared<'_>,
    place: &Place<'_>,
    stage: &Stage,
    started: Instant,
    log: &mut StageLog,
) -> StageEnd {
    let mut end = if place.own {
        run_script(shared, place, stage, log).await
    } else {
        let _in_use = shared.files_in_use.read().await;
        run_script(shared, place, stage, log).await
    };
    end.duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    keep_artifacts(shared, place, stage, end.state, log).await;
    end
}

/// Collects the stage's artifacts when it has some and its result asks for them (never
/// after a cancel, a skip, or when a newer attempt owns the build). The file credentials are
/// removed first when no other stage runs (else they stay for the running ones); either way
/// the reader skips them. A cancel stops it.
async fn keep_artifacts(
    shared: &Shared<'_>,
    place: &Place<'_>,
    stage: &Stage,
    state: StageState,
    log: &mut StageLog,
) {
    let Some(artifacts) = &stage.artifacts else {
        return;
    };
    let passed = match state {
        StageState::Passed => true,
        StageState::Failed | StageState::TimedOut => false,
        _ => return,
    };
    if !artifacts.when.applies(passed) || shared.fenced_out.load(Ordering::Relaxed) {
        return;
    }
    let Some(target) = shared.artifacts else {
        log.system(
            &stage.name,
            "artifacts: not collected: nowhere to keep them (ocelot exec keeps no artifacts)",
        )
        .await;
        return;
    };
    let (files, environment) = (place.files, place.environment);
    let mut budget = shared.budget.lock().await;
    // held while collecting: no stage writes the files again meanwhile (a job's own
    // container has no other stage)
    let held = if place.own {
        None
    } else {
        shared.files_in_use.try_write().ok()
    };
    if (place.own || held.is_some())
        && let Err(error) = files.remove_all(environment).await
    {
        log.system(&stage.name, format!("artifacts: not collected: {error}"))
            .await;
        return;
    }
    let secret_paths = files.workspace_paths(environment);
    let job = Collection {
        store: target.store,
        storage: target.storage,
        build_id: shared.build.id,
        attempt: shared.build.attempt,
        stage: &stage.name,
        artifacts,
        default_expiry: target.limits.expire_in,
        skipped: &secret_paths,
    };
    let stopped = tokio::select! {
        () = artifacts::collect(&job, environment, &mut budget, log) => false,
        () = shared.stop.cancelled() => true,
    };
    if stopped {
        log.system(
            &stage.name,
            "artifacts: collection stopped: the build was cancelled",
        )
        .await;
    }
}

/// The stage's script under its deadline, with the file credentials in place.
async fn run_script(
    shared: &Shared<'_>,
    place: &Place<'_>,
    stage: &Stage,
    log: &mut StageLog,
) -> StageEnd {
    let (inputs, environment) = (shared.inputs, place.environment);
    // (again, when an earlier stage's artifacts were collected)
    let written = {
        let _writing = shared.writing_files.lock().await;
        place.files.write_all(environment, &inputs.env).await
    };
    let ended = |state, exit_code, stop| StageEnd {
        state,
        exit_code,
        duration_ms: 0,
        stop,
    };
    if let Err(reason) = written {
        log.system(&stage.name, format!("error: {reason}")).await;
        let stop = Stop::Now(Verdict::errored(reason));
        return ended(StageState::Failed, None, Some(stop));
    }
    let stage_deadline = stage.timeout.map(|timeout| Instant::now() + timeout);
    let deadline = match (shared.build_deadline, stage_deadline) {
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
                cancel: shared.stop.clone(),
            },
            log,
        )
        .await;
    match outcome {
        Ok(ScriptOutcome::Exited(0)) => ended(StageState::Passed, Some(0), None),
        Ok(ScriptOutcome::Exited(code)) => {
            log.system(
                &stage.name,
                format!("stage {} failed: exit code {code}", stage.name),
            )
            .await;
            let reason = messages::stage_failed(&stage.name, code);
            let verdict = Verdict::new(BuildState::Failed, Some(reason));
            ended(StageState::Failed, Some(code), Some(Stop::Failure(verdict)))
        }
        Ok(ScriptOutcome::TimedOut) => {
            let own = deadline == stage_deadline;
            let limit = if own {
                TimeLimit::Stage(stage.timeout)
            } else {
                TimeLimit::Build(shared.pipeline.timeout)
            };
            let reason = messages::timed_out(&stage.name, limit);
            log.system(&stage.name, format!("{reason}: stopped")).await;
            let verdict = Verdict::new(BuildState::TimedOut, Some(reason));
            // the stage's own limit is its failure; the build's stops every stage
            let stop = if own {
                Stop::Failure(verdict)
            } else {
                Stop::Now(verdict)
            };
            ended(StageState::TimedOut, None, Some(stop))
        }
        Ok(ScriptOutcome::Cancelled) => ended(StageState::Cancelled, None, Some(Stop::Cancelled)),
        Err(error) => {
            let reason = format!("stage `{}` could not run: {error}", stage.name);
            log.system(&stage.name, format!("error: {reason}")).await;
            let stop = Stop::Now(Verdict::errored(reason));
            ended(StageState::Failed, None, Some(stop))
        }
    }
}

/// A cancelled build, with a line saying who cancelled it; or, when the worker's shutdown
/// stopped it, a hand-back.
pub(super) async fn cancelled(
    context: &WorkerContext,
    build: &Build,
    log: &mut AttemptLog,
) -> Outcome {
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
                context.engine.worker_id
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
