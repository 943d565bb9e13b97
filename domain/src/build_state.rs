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

    /// Whether a new build may start in `self`: queued, or a final state decided before any
    /// worker ran (skipped by `[skip ci]` or a branch filter, errored by a broken
    /// `ocelot.yml`).
    pub fn can_begin_as(self) -> bool {
        matches!(
            self,
            BuildState::Queued | BuildState::Skipped | BuildState::Errored
        )
    }

    /// Whether a build may move from `self` to `next`: the whole lifecycle after creation.
    ///
    /// - queued: a worker claims it (running), it is cancelled before any worker started
    ///   it, or it errors out of attempts;
    /// - running: a new attempt takes it over (running again, after a lost worker), its
    ///   attempt records a result (passed, failed, errored, cancelled, timed out), or it
    ///   errors out of attempts;
    /// - a final state never changes.
    pub fn can_become(self, next: BuildState) -> bool {
        use BuildState::*;
        matches!(
            (self, next),
            (Queued, Running | Cancelled | Errored)
                | (
                    Running,
                    Running | Passed | Failed | Errored | Cancelled | TimedOut
                )
        )
    }

    /// Every state that may become `to`, in [`BuildState::ALL`]'s order.
    pub fn allowed_sources(to: BuildState) -> Vec<BuildState> {
        BuildState::ALL
            .into_iter()
            .filter(|from| from.can_become(to))
            .collect()
    }
}

/// A change of a build's state, as the store makes it: the one way a state is written, so
/// that every write is checked against [`BuildState::can_become`] (and
/// [`BuildState::can_begin_as`]) before it reaches the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildTransition {
    /// A new build, in its first state.
    Create(BuildState),
    /// A worker claims the build for a new attempt: a queued build, or, when
    /// `take_over_running`, a running one (its job came back: the worker holding it went
    /// silent or handed it back).
    Claim { take_over_running: bool },
    /// The running attempt records its result, a final state.
    Finish(BuildState),
    /// A build no worker has started is cancelled.
    CancelQueued,
    /// A build that used up its attempts is errored, whether queued or running.
    ExhaustAttempts,
}

/// A [`BuildTransition`] that the state machine forbids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IllegalTransition {
    #[error("a new build cannot be `{0}` (it begins as one of: {list})", list = states(BuildState::ALL.into_iter().filter(|s| s.can_begin_as())))]
    Create(BuildState),
    #[error("an attempt cannot finish a build as `{0}` (a result is one of: {list})", list = states(BuildTransition::finish_targets()))]
    Finish(BuildState),
    /// A state the change leaves from may not become its target: the change and the machine
    /// disagree.
    #[error("{change}: a build cannot go from `{from}` to `{to}`")]
    Forbidden {
        change: &'static str,
        from: BuildState,
        to: BuildState,
    },
}

/// `a, b, c`.
fn states(states: impl Iterator<Item = BuildState>) -> String {
    states
        .map(BuildState::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl BuildTransition {
    /// The state the build is in after the change.
    pub fn target(self) -> BuildState {
        match self {
            BuildTransition::Create(state) | BuildTransition::Finish(state) => state,
            BuildTransition::Claim { .. } => BuildState::Running,
            BuildTransition::CancelQueued => BuildState::Cancelled,
            BuildTransition::ExhaustAttempts => BuildState::Errored,
        }
    }

    /// What the change is, for messages.
    pub fn name(self) -> &'static str {
        match self {
            BuildTransition::Create(_) => "create",
            BuildTransition::Claim { .. } => "claim",
            BuildTransition::Finish(_) => "finish",
            BuildTransition::CancelQueued => "cancel a queued build",
            BuildTransition::ExhaustAttempts => "error out of attempts",
        }
    }

    /// The states an attempt may finish a build in: the final states a running build may
    /// become.
    pub fn finish_targets() -> impl Iterator<Item = BuildState> {
        BuildState::ALL
            .into_iter()
            .filter(|state| state.is_final() && BuildState::Running.can_become(*state))
    }

    /// The states this kind of change applies to, before the machine is asked.
    fn departs_from(self) -> Vec<BuildState> {
        match self {
            BuildTransition::Create(_) => Vec::new(),
            BuildTransition::Claim {
                take_over_running: false,
            } => vec![BuildState::Queued],
            BuildTransition::Claim {
                take_over_running: true,
            } => vec![BuildState::Queued, BuildState::Running],
            // only the running attempt records a result (the attempt fences the rest)
            BuildTransition::Finish(_) => vec![BuildState::Running],
            BuildTransition::CancelQueued => vec![BuildState::Queued],
            // every state that may error: whatever is not final yet
            BuildTransition::ExhaustAttempts => BuildState::allowed_sources(BuildState::Errored),
        }
    }

    /// Checks the change against the machine and returns the states the build must be in
    /// for it to apply (empty for [`BuildTransition::Create`]: there is no build yet), each
    /// of which [`BuildState::can_become`] the target: the store's `WHERE state = ANY(..)`.
    pub fn sources(self) -> Result<Vec<BuildState>, IllegalTransition> {
        let to = self.target();
        match self {
            BuildTransition::Create(state) if !state.can_begin_as() => {
                return Err(IllegalTransition::Create(state));
            }
            BuildTransition::Finish(state) if !state.is_final() => {
                return Err(IllegalTransition::Finish(state));
            }
            _ => {}
        }
        let sources = self.departs_from();
        if let Some(from) = sources.iter().find(|from| !from.can_become(to)) {
            return Err(match self {
                BuildTransition::Finish(state) => IllegalTransition::Finish(state),
                _ => IllegalTransition::Forbidden {
                    change: self.name(),
                    from: *from,
                    to,
                },
            });
        }
        Ok(sources)
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

    /// The lifecycle, pair by pair: every one of the 64 (from, to) pairs is listed here as
    /// allowed or not, so a change to the machine shows up as a change to this table.
    #[test]
    fn every_pair_of_states_is_as_the_lifecycle_says() {
        use BuildState::*;
        let allowed = [
            (Queued, Running),
            (Queued, Cancelled),
            (Queued, Errored),
            (Running, Running),
            (Running, Passed),
            (Running, Failed),
            (Running, Errored),
            (Running, Cancelled),
            (Running, TimedOut),
        ];
        for from in BuildState::ALL {
            for to in BuildState::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
        assert_eq!(BuildState::allowed_sources(Queued), []);
        assert_eq!(BuildState::allowed_sources(Running), [Queued, Running]);
        assert_eq!(BuildState::allowed_sources(Errored), [Queued, Running]);
        assert_eq!(BuildState::allowed_sources(Cancelled), [Queued, Running]);
        assert_eq!(BuildState::allowed_sources(Passed), [Running]);
        assert_eq!(BuildState::allowed_sources(Skipped), []);
        for to in BuildState::ALL {
            for from in BuildState::allowed_sources(to) {
                assert!(from.can_become(to));
            }
        }
        let begins: Vec<_> = BuildState::ALL
            .into_iter()
            .filter(|s| s.can_begin_as())
            .collect();
        assert_eq!(begins, [Queued, Errored, Skipped]);
    }

    #[test]
    fn every_transition_leaves_only_from_states_that_may_become_its_target() {
        use BuildState::*;
        use BuildTransition::*;
        let mut transitions = vec![
            Claim {
                take_over_running: false,
            },
            Claim {
                take_over_running: true,
            },
            CancelQueued,
            ExhaustAttempts,
        ];
        for state in BuildState::ALL {
            transitions.push(Create(state));
            transitions.push(Finish(state));
        }
        for transition in transitions {
            if let Ok(sources) = transition.sources() {
                for from in sources {
                    assert!(from.can_become(transition.target()), "{transition:?}");
                }
            }
        }
        assert_eq!(
            Claim {
                take_over_running: false
            }
            .sources(),
            Ok(vec![Queued])
        );
        assert_eq!(
            Claim {
                take_over_running: true
            }
            .sources(),
            Ok(vec![Queued, Running])
        );
        assert_eq!(CancelQueued.sources(), Ok(vec![Queued]));
        assert_eq!(ExhaustAttempts.sources(), Ok(vec![Queued, Running]));
        assert_eq!(ExhaustAttempts.target(), Errored);
        assert_eq!(CancelQueued.target(), Cancelled);
    }

    #[test]
    fn a_finish_is_to_a_final_state_a_running_build_may_reach() {
        use BuildState::*;
        for state in BuildState::ALL {
            let finish = BuildTransition::Finish(state);
            if matches!(state, Passed | Failed | Errored | Cancelled | TimedOut) {
                assert_eq!(finish.sources(), Ok(vec![Running]), "{state}");
                assert_eq!(finish.target(), state);
            } else {
                assert_eq!(
                    finish.sources(),
                    Err(IllegalTransition::Finish(state)),
                    "{state}"
                );
            }
        }
        assert_eq!(
            BuildTransition::Finish(Queued)
                .sources()
                .unwrap_err()
                .to_string(),
            "an attempt cannot finish a build as `queued` \
             (a result is one of: passed, failed, errored, cancelled, timed_out)"
        );
    }

    #[test]
    fn a_new_build_begins_queued_skipped_or_errored() {
        use BuildState::*;
        for state in BuildState::ALL {
            let create = BuildTransition::Create(state);
            if matches!(state, Queued | Skipped | Errored) {
                assert_eq!(create.sources(), Ok(vec![]), "{state}");
            } else {
                assert_eq!(
                    create.sources(),
                    Err(IllegalTransition::Create(state)),
                    "{state}"
                );
            }
        }
        assert_eq!(
            BuildTransition::Create(Running)
                .sources()
                .unwrap_err()
                .to_string(),
            "a new build cannot be `running` (it begins as one of: queued, errored, skipped)"
        );
    }
}
