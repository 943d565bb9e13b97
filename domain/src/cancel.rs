//! What a cancel request (`ocelot kill`) did to a build.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcome {
    /// It is cancelled now: a queued build before it started, a running one once its
    /// container is gone.
    Cancelled,
    /// It had finished before the request: nothing changed.
    AlreadyFinal,
    /// It was running and finished (passed, failed, ...) before the cancel reached it.
    FinishedFirst,
    /// Its worker did not stop it within the wait; the request stays recorded.
    NotConfirmed,
}

impl CancelOutcome {
    /// Its one text form (`--json` output).
    pub fn as_str(self) -> &'static str {
        match self {
            CancelOutcome::Cancelled => "cancelled",
            CancelOutcome::AlreadyFinal => "already_final",
            CancelOutcome::FinishedFirst => "finished_first",
            CancelOutcome::NotConfirmed => "not_confirmed",
        }
    }

    /// Whether the request did what was asked, or there was nothing to do.
    pub fn is_settled(self) -> bool {
        self != CancelOutcome::NotConfirmed
    }
}
