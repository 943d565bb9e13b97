//! Conversions between the domain types and the `ocelot.v1` protobuf types: the only place
//! that maps states and events to and from the wire.

use crate::build_params::ParamError;
use crate::build_state::{BuildState, StageState};
use crate::cancel::CancelOutcome;
use crate::events::{BuildEvent, EventKind};
use crate::ids::BuildId;
use crate::model::{Build, LogStream, Poll, PollSchedule, Repo, StageRecord, unix_ms};
use ocelot_proto::v1 as pb;
use std::collections::BTreeMap;

impl From<BuildState> for pb::BuildState {
    fn from(state: BuildState) -> Self {
        match state {
            BuildState::Queued => pb::BuildState::Queued,
            BuildState::Running => pb::BuildState::Running,
            BuildState::Passed => pb::BuildState::Passed,
            BuildState::Failed => pb::BuildState::Failed,
            BuildState::Errored => pb::BuildState::Errored,
            BuildState::Cancelled => pb::BuildState::Cancelled,
            BuildState::TimedOut => pb::BuildState::TimedOut,
            BuildState::Skipped => pb::BuildState::Skipped,
        }
    }
}

/// A proto build state that names no state.
#[derive(Debug, thiserror::Error)]
#[error("unspecified or unknown build state {0}")]
pub struct UnspecifiedState(pub i32);

impl TryFrom<pb::BuildState> for BuildState {
    type Error = UnspecifiedState;
    fn try_from(state: pb::BuildState) -> Result<Self, Self::Error> {
        Ok(match state {
            pb::BuildState::Unspecified => return Err(UnspecifiedState(0)),
            pb::BuildState::Queued => BuildState::Queued,
            pb::BuildState::Running => BuildState::Running,
            pb::BuildState::Passed => BuildState::Passed,
            pb::BuildState::Failed => BuildState::Failed,
            pb::BuildState::Errored => BuildState::Errored,
            pb::BuildState::Cancelled => BuildState::Cancelled,
            pb::BuildState::TimedOut => BuildState::TimedOut,
            pb::BuildState::Skipped => BuildState::Skipped,
        })
    }
}

/// Reads the `i32` of a proto enum field as a build state.
impl From<CancelOutcome> for pb::CancelOutcome {
    fn from(outcome: CancelOutcome) -> Self {
        match outcome {
            CancelOutcome::Cancelled => pb::CancelOutcome::Cancelled,
            CancelOutcome::AlreadyFinal => pb::CancelOutcome::AlreadyFinal,
            CancelOutcome::FinishedFirst => pb::CancelOutcome::FinishedFirst,
            CancelOutcome::NotConfirmed => pb::CancelOutcome::NotConfirmed,
        }
    }
}

/// The outcome a `CancelBuildResponse` carries; `None` for a value this client does not
/// know (a newer admin) or none at all.
pub fn cancel_outcome_from_i32(value: i32) -> Option<CancelOutcome> {
    match pb::CancelOutcome::try_from(value).ok()? {
        pb::CancelOutcome::Unspecified => None,
        pb::CancelOutcome::Cancelled => Some(CancelOutcome::Cancelled),
        pb::CancelOutcome::AlreadyFinal => Some(CancelOutcome::AlreadyFinal),
        pb::CancelOutcome::FinishedFirst => Some(CancelOutcome::FinishedFirst),
        pb::CancelOutcome::NotConfirmed => Some(CancelOutcome::NotConfirmed),
    }
}

pub fn build_state_from_i32(value: i32) -> Result<BuildState, UnspecifiedState> {
    pb::BuildState::try_from(value)
        .map_err(|_| UnspecifiedState(value))
        .and_then(BuildState::try_from)
}

impl From<StageState> for pb::StageState {
    fn from(state: StageState) -> Self {
        match state {
            StageState::Pending => pb::StageState::Pending,
            StageState::Running => pb::StageState::Running,
            StageState::Passed => pb::StageState::Passed,
            StageState::Failed => pb::StageState::Failed,
            StageState::Skipped => pb::StageState::Skipped,
            StageState::TimedOut => pb::StageState::TimedOut,
            StageState::Cancelled => pb::StageState::Cancelled,
        }
    }
}

/// Reads the `i32` of a proto enum field as a stage state (unknown: pending).
pub fn stage_state_from_i32(value: i32) -> StageState {
    match pb::StageState::try_from(value) {
        Ok(pb::StageState::Running) => StageState::Running,
        Ok(pb::StageState::Passed) => StageState::Passed,
        Ok(pb::StageState::Failed) => StageState::Failed,
        Ok(pb::StageState::Skipped) => StageState::Skipped,
        Ok(pb::StageState::TimedOut) => StageState::TimedOut,
        Ok(pb::StageState::Cancelled) => StageState::Cancelled,
        _ => StageState::Pending,
    }
}

impl From<LogStream> for pb::LogStream {
    fn from(stream: LogStream) -> Self {
        match stream {
            LogStream::Stdout => pb::LogStream::Stdout,
            LogStream::Stderr => pb::LogStream::Stderr,
            LogStream::System => pb::LogStream::System,
        }
    }
}

/// Reads the `i32` of a proto enum field as a log stream (unknown: system).
pub fn log_stream_from_i32(value: i32) -> LogStream {
    match pb::LogStream::try_from(value) {
        Ok(pb::LogStream::Stdout) => LogStream::Stdout,
        Ok(pb::LogStream::Stderr) => LogStream::Stderr,
        _ => LogStream::System,
    }
}

impl From<&Repo> for pb::Repo {
    fn from(repo: &Repo) -> Self {
        let forge = crate::forge::resolve(
            repo.forge.as_deref(),
            repo.forge_api_url.as_deref(),
            &repo.url,
        )
        .ok()
        .flatten();
        pb::Repo {
            id: repo.id.into(),
            name: repo.name.clone(),
            url: repo.url.clone(),
            default_branch: repo.default_branch.clone(),
            created_at_ms: unix_ms(repo.created_at),
            secrets_for_forks: repo.secrets_for_forks,
            allow_host: repo.allow_host,
            forge: forge
                .as_ref()
                .map(|(forge, _)| forge.to_string())
                .unwrap_or_default(),
            forge_api_url: forge.and_then(|(_, url)| url).unwrap_or_default(),
        }
    }
}

impl From<&Build> for pb::Build {
    fn from(build: &Build) -> Self {
        pb::Build {
            id: build.id.into(),
            repo: build.repo_name.clone(),
            number: build.number,
            commit: build.commit.clone(),
            branch: build.branch.clone(),
            trigger: build.trigger.clone(),
            state: pb::BuildState::from(build.state).into(),
            attempt: build.attempt.into(),
            worker: build.worker.clone().unwrap_or_default(),
            tag: build.tag.clone(),
            reason: build.reason.clone().unwrap_or_default(),
            queued_at_ms: unix_ms(build.queued_at),
            started_at_ms: build.started_at.map(unix_ms).unwrap_or(0),
            finished_at_ms: build.finished_at.map(unix_ms).unwrap_or(0),
            previous_commit: build.previous_commit.clone().unwrap_or_default(),
            pr_number: build.pull_request.as_ref().map(|pr| pr.number).unwrap_or(0),
            base_branch: build
                .pull_request
                .as_ref()
                .map(|pr| pr.base_branch.clone())
                .unwrap_or_default(),
            git_tag: build.git_tag.clone().unwrap_or_default(),
            env: env_params_to_pb(&build.params.env),
            force: build.params.force,
            stage: build.params.stage.clone().unwrap_or_default(),
        }
    }
}

/// A build's `--env` parameters on the wire, by name.
pub fn env_params_to_pb(env: &BTreeMap<String, String>) -> Vec<pb::EnvParam> {
    env.iter()
        .map(|(name, value)| pb::EnvParam {
            name: name.clone(),
            value: value.clone(),
        })
        .collect()
}

/// `--env` parameters from the wire, checked ([`crate::build_params::env_params`]).
pub fn env_params_from_pb(env: &[pb::EnvParam]) -> Result<BTreeMap<String, String>, ParamError> {
    crate::build_params::env_params(env.iter().map(|p| (p.name.as_str(), p.value.as_str())))
}

impl From<&Poll> for pb::Poll {
    fn from(poll: &Poll) -> Self {
        let (every, cron) = match &poll.schedule {
            PollSchedule::Every(every) => (
                humantime::format_duration(*every).to_string(),
                String::new(),
            ),
            PollSchedule::Cron(cron) => (String::new(), cron.clone()),
        };
        pb::Poll {
            repo: poll.repo_name.clone(),
            branches: poll.branches.clone(),
            every,
            cron,
            build_now: poll.build_now,
            next_due_ms: unix_ms(poll.next_due),
            last_polled_at_ms: poll.last_polled_at.map(unix_ms).unwrap_or(0),
            last_error: poll.last_error.clone().unwrap_or_default(),
            failures: poll.failures,
            heads: poll
                .heads
                .clone()
                .map(|heads| heads.into_iter().collect())
                .unwrap_or_default(),
        }
    }
}

impl From<&StageRecord> for pb::Stage {
    fn from(stage: &StageRecord) -> Self {
        pb::Stage {
            index: u32::try_from(stage.index).unwrap_or(0),
            name: stage.name.clone(),
            state: pb::StageState::from(stage.state).into(),
            exit_code: stage.exit_code,
            started_at_ms: stage.started_at.map(unix_ms).unwrap_or(0),
            finished_at_ms: stage.finished_at.map(unix_ms).unwrap_or(0),
            needs: stage.needs.clone(),
        }
    }
}

impl From<&BuildEvent> for pb::BuildEvent {
    fn from(event: &BuildEvent) -> Self {
        use pb::build_event::Kind;
        let kind = match &event.kind {
            EventKind::AttemptStarted {
                worker,
                commit,
                branch,
                stages,
                needs,
            } => Kind::AttemptStarted(pb::AttemptStarted {
                worker: worker.clone(),
                commit: commit.clone(),
                branch: branch.clone(),
                stages: stages.clone(),
                needs: needs
                    .iter()
                    .map(|names| pb::StageNeeds {
                        names: names.clone(),
                    })
                    .collect(),
            }),
            EventKind::Line {
                stage,
                stream,
                text,
            } => Kind::Line(pb::LogLine {
                stage: stage.clone(),
                stream: pb::LogStream::from(*stream).into(),
                text: text.clone(),
            }),
            EventKind::Lines {
                stage,
                stream,
                text,
            } => Kind::Lines(pb::LogLines {
                stage: stage.clone(),
                stream: pb::LogStream::from(*stream).into(),
                text: text.clone(),
            }),
            EventKind::StageStarted { index, name } => Kind::StageStarted(pb::StageStarted {
                index: *index,
                name: name.clone(),
            }),
            EventKind::StageFinished {
                index,
                name,
                state,
                exit_code,
                duration_ms,
            } => Kind::StageFinished(pb::StageFinished {
                index: *index,
                name: name.clone(),
                state: pb::StageState::from(*state).into(),
                exit_code: *exit_code,
                duration_ms: *duration_ms,
            }),
            EventKind::Result {
                state,
                reason,
                duration_ms,
                line_count,
                log_sha256,
            } => Kind::Result(pb::BuildResult {
                state: pb::BuildState::from(*state).into(),
                reason: reason.clone(),
                duration_ms: *duration_ms,
                line_count: *line_count,
                log_sha256: log_sha256.clone(),
            }),
        };
        pb::BuildEvent {
            attempt: event.attempt.into(),
            seq: event.seq.into(),
            at_ms: event.at_ms,
            kind: Some(kind),
        }
    }
}

/// Reads a proto event as a domain event of `build_id`; `None` when it carries no kind.
pub fn event_from_proto(build_id: BuildId, event: &pb::BuildEvent) -> Option<BuildEvent> {
    use pb::build_event::Kind;
    let kind = match event.kind.as_ref()? {
        Kind::AttemptStarted(started) => EventKind::AttemptStarted {
            worker: started.worker.clone(),
            commit: started.commit.clone(),
            branch: started.branch.clone(),
            stages: started.stages.clone(),
            needs: started.needs.iter().map(|n| n.names.clone()).collect(),
        },
        Kind::Line(line) => EventKind::Line {
            stage: line.stage.clone(),
            stream: log_stream_from_i32(line.stream),
            text: line.text.clone(),
        },
        Kind::Lines(lines) => EventKind::Lines {
            stage: lines.stage.clone(),
            stream: log_stream_from_i32(lines.stream),
            text: lines.text.clone(),
        },
        Kind::StageStarted(stage) => EventKind::StageStarted {
            index: stage.index,
            name: stage.name.clone(),
        },
        Kind::StageFinished(stage) => EventKind::StageFinished {
            index: stage.index,
            name: stage.name.clone(),
            state: stage_state_from_i32(stage.state),
            exit_code: stage.exit_code,
            duration_ms: stage.duration_ms,
        },
        Kind::Result(result) => EventKind::Result {
            state: build_state_from_i32(result.state).ok()?,
            reason: result.reason.clone(),
            duration_ms: result.duration_ms,
            line_count: result.line_count,
            log_sha256: result.log_sha256.clone(),
        },
    };
    Some(BuildEvent {
        build_id,
        attempt: event.attempt.into(),
        seq: event.seq.into(),
        at_ms: event.at_ms,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_build_state_crosses_the_wire_and_back() {
        for state in BuildState::ALL {
            let wire: i32 = pb::BuildState::from(state).into();
            assert_eq!(build_state_from_i32(wire).unwrap(), state);
        }
        assert!(build_state_from_i32(0).is_err());
        assert!(build_state_from_i32(99).is_err());
    }
}
