//! Build and stage states: the only place that knows their text form (SQL, JSON, CLI) and
//! which transitions are allowed.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a build is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildState {
    Queued,
    Running,
    Passed,
    Failed,
    Errored,
    Cancelled,
    TimedOut,
    Skipped,
}

impl BuildState {
    pub const ALL: [BuildState; 8] = [
        BuildState::Queued,
        BuildState::Running,
        BuildState::Passed,
        BuildState::Failed,
        BuildState::Errored,
        BuildState::Cancelled,
        BuildState::TimedOut,
        BuildState::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BuildState::Queued => "queued",
            BuildState::Running => "running",
            BuildState::Passed => "passed",
            BuildState::Failed => "failed",
            BuildState::Errored => "errored",
            BuildState::Cancelled => "cancelled",
            BuildState::TimedOut => "timed_out",
            BuildState::Skipped => "skipped",
        }
    }

    /// A final state never changes again.
    pub fn is_final(self) -> bool {
        !matches!(self, BuildState::Queued | BuildState::Running)
    }

    /// Whether a build may move from `self` to `next`.
    pub fn can_become(self, next: BuildState) -> bool {
        match self {
            BuildState::Queued => next != BuildState::Queued,
            // a running build may start again (a new attempt after a lost worker)
            BuildState::Running => next != BuildState::Queued && next != BuildState::Skipped,
            _ => false,
        }
    }
}

impl fmt::Display for BuildState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is not one of [`BuildState`]'s.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown state `{0}` (expected one of: queued, running, passed, failed, errored, cancelled, timed_out, skipped)"
)]
pub struct UnknownState(pub String);

impl FromStr for BuildState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BuildState::ALL
            .into_iter()
            .find(|state| {
                state.as_str() == s || (s == "timed-out" && *state == BuildState::TimedOut)
            })
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

/// Where a stage is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageState {
    Pending,
    Running,
    Passed,
    Failed,
    Skipped,
    TimedOut,
    /// Stopped by `ocelot kill`.
    Cancelled,
}

impl StageState {
    const ALL: [StageState; 7] = [
        StageState::Pending,
        StageState::Running,
        StageState::Passed,
        StageState::Failed,
        StageState::Skipped,
        StageState::TimedOut,
        StageState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StageState::Pending => "pending",
            StageState::Running => "running",
            StageState::Passed => "passed",
            StageState::Failed => "failed",
            StageState::Skipped => "skipped",
            StageState::TimedOut => "timed_out",
            StageState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for StageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StageState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StageState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        for state in BuildState::ALL {
            assert_eq!(state.as_str().parse::<BuildState>().unwrap(), state);
        }
        for state in StageState::ALL {
            assert_eq!(state.as_str().parse::<StageState>().unwrap(), state);
        }
        assert!("bogus".parse::<BuildState>().is_err());
    }

    #[test]
    fn final_states_do_not_change() {
        for state in BuildState::ALL.into_iter().filter(|s| s.is_final()) {
            for next in BuildState::ALL {
                assert!(!state.can_become(next), "{state} -> {next}");
            }
        }
        assert!(BuildState::Queued.can_become(BuildState::Running));
        assert!(BuildState::Running.can_become(BuildState::Passed));
        assert!(!BuildState::Running.can_become(BuildState::Queued));
    }
}
