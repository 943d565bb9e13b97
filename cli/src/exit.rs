//! The exit codes of `ocelot`, one table (also in README.md).

use ocelot_domain::BuildState;
use std::process::ExitCode;

/// | code | meaning |
/// |---|---|
/// | 0 | the build passed (or was skipped); the command succeeded |
/// | 1 | the build failed or timed out; `validate` found errors |
/// | 2 | usage error (bad flags or arguments, not in a git checkout, an ambiguous commit prefix) |
/// | 3 | the build errored (it could not run: bad ocelot.yml, missing image, ...) |
/// | 4 | the build was cancelled |
/// | 5 | the admin server cannot be reached |
/// | 6 | the server refused the request (unknown repo or build, invalid input) |
/// | 7 | not allowed: no API token, an unknown or revoked one, or one without the scope |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Passed = 0,
    Failed = 1,
    Usage = 2,
    Errored = 3,
    Cancelled = 4,
    Unreachable = 5,
    Rejected = 6,
    NotAllowed = 7,
}

impl ExitStatus {
    pub fn code(self) -> ExitCode {
        ExitCode::from(self as u8)
    }

    /// The exit status that reports a build's final state.
    pub fn of_build(state: BuildState) -> ExitStatus {
        match state {
            BuildState::Passed | BuildState::Skipped => ExitStatus::Passed,
            BuildState::Failed | BuildState::TimedOut => ExitStatus::Failed,
            BuildState::Errored => ExitStatus::Errored,
            BuildState::Cancelled => ExitStatus::Cancelled,
            // not final: the stream ended early
            BuildState::Queued | BuildState::Running => ExitStatus::Unreachable,
        }
    }
}
