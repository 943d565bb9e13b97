//! The resume bookkeeping of `ocelot watch`, free of I/O: the last event shown (where a new
//! stream starts), which failures are retried and how often, the delays between tries, and
//! when a broken stream is given up.

use crate::client::{self, CliError};
use crate::exit::ExitStatus;
use ocelot_domain::BuildState;
use ocelot_domain::events::Position;
use ocelot_domain::ids::{Attempt, BuildId};
use ocelot_proto::v1::build_event::Kind;
use ocelot_proto::v1::{BuildEvent, WatchBuildRequest};
use std::time::Duration;
use tokio::time::Instant;

/// How long a broken stream is retried before `ocelot watch` gives up.
pub(super) const RECONNECT_FOR: Duration = Duration::from_secs(300);
/// A stream open this long counts as a recovery, even if its build was quiet.
pub(super) const STABLE_AFTER: Duration = Duration::from_secs(10);
/// `Internal` or `Unknown` answers in a row that are retried: a dropped connection shows
/// as one, a server-side fault as many.
pub(super) const DOUBTFUL_TRIES: u32 = 5;
/// The delay between tries should the delays run out.
const LAST_DELAY: Duration = Duration::from_secs(5);

/// Why a stream stopped before the build's result.
#[derive(Debug)]
pub(super) enum Broken {
    /// Worth another try: the admin or the connection went away.
    Retry(String),
    /// A dropped connection, or a fault of the admin's: worth a few tries.
    Doubtful(CliError),
    /// The admin refused: retrying cannot help.
    Fatal(CliError),
}

/// How a failed WatchBuild call or stream is retried, by its status code.
pub(super) fn broken(status: tonic::Status) -> Broken {
    use tonic::Code;
    match status.code() {
        Code::Unavailable
        | Code::Cancelled
        | Code::Aborted
        | Code::DeadlineExceeded
        | Code::ResourceExhausted => Broken::Retry(client::from_status(status).message),
        Code::Unknown | Code::Internal => Broken::Doubtful(client::from_status(status)),
        _ => Broken::Fatal(client::from_status(status)),
    }
}

/// How a failed connection is retried: an admin that is down (or another one not yet
/// found) is waited for; bad settings are not.
pub(super) fn not_connected(error: CliError) -> Broken {
    if error.status == ExitStatus::Unreachable {
        Broken::Retry(error.message)
    } else {
        Broken::Fatal(error)
    }
}

/// What an event received means for the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen {
    /// Already shown (a resumed stream repeating itself): skipped, never shown twice.
    Again,
    /// Next to show; `reconnected` when it ends an outage.
    New { reconnected: bool },
}

/// What to do after a stream broke (and was not given up at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NextTry {
    /// This break began an outage (the first since the stream last worked).
    pub(super) outage_began: bool,
    /// How long to wait before the next try; `None`: the outage lasted too long, give up.
    pub(super) delay: Option<Duration>,
}

/// The state of one `ocelot watch` across its streams. `new_delays` makes the delays
/// between tries, from the first, each time an outage ends.
pub(super) struct Resume<D> {
    /// The last event shown: a new stream starts right after it.
    last: Position,
    /// When the current outage began.
    outage: Option<Instant>,
    doubtful_in_a_row: u32,
    delays: D,
    new_delays: fn() -> D,
}

impl<D: Iterator<Item = Duration>> Resume<D> {
    pub(super) fn new(new_delays: fn() -> D) -> Self {
        Resume {
            last: Position::default(),
            outage: None,
            doubtful_in_a_row: 0,
            delays: new_delays(),
            new_delays,
        }
    }

    /// The request for the next stream of `build_id`'s `attempt` (`0`: the current one):
    /// after the last event shown.
    pub(super) fn request(&self, build_id: BuildId, attempt: Attempt) -> WatchBuildRequest {
        WatchBuildRequest {
            id: build_id.into(),
            after_attempt: self.last.attempt.into(),
            after_seq: self.last.seq.into(),
            attempt: attempt.into(),
        }
    }

    /// The last event shown (`(0, 0)`: none yet).
    pub(super) fn last(&self) -> Position {
        self.last
    }

    /// Takes in an event at `position`: new ones end any outage.
    pub(super) fn seen(&mut self, position: Position) -> Seen {
        if position <= self.last {
            return Seen::Again;
        }
        self.last = position;
        self.doubtful_in_a_row = 0;
        let reconnected = self.outage.take().is_some();
        if reconnected {
            self.delays = (self.new_delays)();
        }
        Seen::New { reconnected }
    }

    /// Takes in why a stream stopped (`opened`: when it was opened, if it was). A stream
    /// that stayed open [`STABLE_AFTER`] was a recovery, even without events. `Ok` with
    /// the reason when it is worth another try, else the error to end with.
    pub(super) fn stopped(
        &mut self,
        opened: Option<Instant>,
        why: Broken,
    ) -> Result<String, CliError> {
        if opened.is_some_and(|at| at.elapsed() >= STABLE_AFTER) {
            self.outage = None;
            self.delays = (self.new_delays)();
            self.doubtful_in_a_row = 0;
        }
        match why {
            Broken::Fatal(error) => Err(error),
            Broken::Doubtful(error) => {
                self.doubtful_in_a_row += 1;
                if self.doubtful_in_a_row > DOUBTFUL_TRIES {
                    return Err(error);
                }
                Ok(error.message)
            }
            Broken::Retry(reason) => Ok(reason),
        }
    }

    /// After a stream stopped and is worth another try: whether this began an outage, and
    /// the delay before the next try, unless the outage would then last past
    /// [`RECONNECT_FOR`].
    pub(super) fn next_try(&mut self) -> NextTry {
        let outage_began = self.outage.is_none();
        let began = *self.outage.get_or_insert_with(Instant::now);
        let delay = self.delays.next().unwrap_or(LAST_DELAY);
        NextTry {
            outage_began,
            delay: (began.elapsed() + delay <= RECONNECT_FOR).then_some(delay),
        }
    }
}

/// Refuses a result that would end the watch successfully without the log checksum that
/// every result of a build that ran carries (a forged or damaged one): the watch ends
/// errored, never PASSED. A build skipped before it ran (attempt 0) has no log to check.
pub(super) fn check_result(build_id: BuildId, event: &BuildEvent) -> Result<(), CliError> {
    let Some(Kind::Result(result)) = &event.kind else {
        return Ok(());
    };
    if !result.log_sha256.is_empty() {
        return Ok(());
    }
    let state = ocelot_domain::wire::build_state_from_i32(result.state).ok();
    let never_ran = Attempt::from(event.attempt) == Attempt::NONE;
    let success = state.is_some_and(|state| ExitStatus::of_build(state) == ExitStatus::Passed);
    if !success || (never_ran && state == Some(BuildState::Skipped)) {
        return Ok(());
    }
    Err(CliError::new(
        ExitStatus::Errored,
        format!(
            "build {build_id}: a result without a log checksum came in (attempt {}); it is not trusted, so the build is not reported passed: `ocelot status {build_id}` shows what the server recorded",
            event.attempt
        ),
    ))
}

/// The error of a watch that gave up on a broken stream.
pub(super) fn gave_up(build_id: BuildId, reason: &str) -> CliError {
    CliError::new(
        ExitStatus::Unreachable,
        format!(
            "the log stream of build {build_id} broke and the admin was not reachable for {} s ({reason}); \
             `ocelot watch {build_id}` resumes it",
            RECONNECT_FOR.as_secs()
        ),
    )
}

/// 200 ms, doubling up to 5 s, each with up to as much again of jitter.
pub(super) fn reconnect_delays() -> impl Iterator<Item = Duration> {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Status;

    fn at(attempt: u32, seq: u64) -> Position {
        Position {
            attempt: attempt.into(),
            seq: seq.into(),
        }
    }

    fn result_event(attempt: u32, state: BuildState, sha: &str) -> BuildEvent {
        BuildEvent {
            attempt,
            seq: 9,
            kind: Some(Kind::Result(ocelot_proto::v1::BuildResult {
                state: ocelot_proto::v1::BuildState::from(state) as i32,
                log_sha256: sha.into(),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn a_passed_result_without_a_checksum_is_not_trusted() {
        let Err(error) = check_result(BuildId::from(7), &result_event(1, BuildState::Passed, ""))
        else {
            panic!("a passed result without a checksum was accepted");
        };
        assert_eq!(error.status, ExitStatus::Errored);
        assert!(
            error.message.contains("without a log checksum"),
            "{}",
            error.message
        );
        assert!(
            error.message.contains("ocelot status 7"),
            "{}",
            error.message
        );
        // skipped after running is a success too: it needs its checksum
        assert!(check_result(BuildId::from(7), &result_event(2, BuildState::Skipped, "")).is_err());
    }

    #[test]
    fn results_with_a_checksum_or_that_are_no_success_pass_through() {
        let sha = "ab".repeat(32);
        assert!(check_result(BuildId::from(7), &result_event(1, BuildState::Passed, &sha)).is_ok());
        // no success: shown as it is, the exit status is not 0 anyway
        assert!(check_result(BuildId::from(7), &result_event(1, BuildState::Failed, "")).is_ok());
        assert!(
            check_result(
                BuildId::from(7),
                &result_event(0, BuildState::Cancelled, "")
            )
            .is_ok()
        );
        assert!(check_result(BuildId::from(7), &result_event(2, BuildState::Errored, "")).is_ok());
        // skipped before any worker ran it: no log, no checksum
        assert!(check_result(BuildId::from(7), &result_event(0, BuildState::Skipped, "")).is_ok());
        // not a result
        let line = BuildEvent::default();
        assert!(check_result(BuildId::from(7), &line).is_ok());
    }

    /// One second between tries, every time.
    fn every_second() -> std::iter::Repeat<Duration> {
        std::iter::repeat(Duration::from_secs(1))
    }

    /// 1 s, 2 s, 3 s, ...: shows when the delays start over.
    fn growing() -> impl Iterator<Item = Duration> {
        (1..).map(Duration::from_secs)
    }

    /// Breaks with `status` and waits as told until giving up; the tries and the time
    /// waited.
    async fn retry_until_given_up<D: Iterator<Item = Duration>>(
        resume: &mut Resume<D>,
        status: fn() -> Status,
    ) -> (u32, Duration) {
        let began = Instant::now();
        let mut tries = 0;
        loop {
            let reason = match resume.stopped(None, broken(status())) {
                Ok(reason) => reason,
                Err(error) => panic!("not retried: {}", error.message),
            };
            assert!(!reason.is_empty());
            match resume.next_try() {
                NextTry {
                    delay: Some(delay), ..
                } => {
                    tokio::time::sleep(delay).await;
                    tries += 1;
                }
                NextTry { delay: None, .. } => return (tries, began.elapsed()),
            }
        }
    }

    #[test]
    fn the_first_stream_starts_at_the_beginning() {
        let resume = Resume::new(every_second);
        let request = resume.request(BuildId::from(12), Attempt::NONE);
        assert_eq!(request.id, 12);
        assert_eq!((request.after_attempt, request.after_seq), (0, 0));
        assert_eq!(request.attempt, 0);
        // an earlier attempt asked for by number is asked for on every stream
        assert_eq!(
            resume.request(BuildId::from(12), Attempt::from(2)).attempt,
            2
        );
    }

    #[test]
    fn a_new_stream_resumes_after_the_last_event_shown() {
        let mut resume = Resume::new(every_second);
        assert_eq!(resume.seen(at(1, 1)), Seen::New { reconnected: false });
        assert_eq!(resume.seen(at(1, 2)), Seen::New { reconnected: false });
        let request = resume.request(BuildId::from(12), Attempt::NONE);
        assert_eq!((request.after_attempt, request.after_seq), (1, 2));
        // the admin repeats what the client has: never shown twice
        assert_eq!(resume.seen(at(1, 1)), Seen::Again);
        assert_eq!(resume.seen(at(1, 2)), Seen::Again);
        assert_eq!(resume.seen(at(1, 3)), Seen::New { reconnected: false });
        // a new attempt starts at seq 1
        assert_eq!(resume.seen(at(2, 1)), Seen::New { reconnected: false });
        // an attempt the new one replaced is over, however far it got
        assert_eq!(resume.seen(at(1, 50)), Seen::Again);
        let request = resume.request(BuildId::from(12), Attempt::NONE);
        assert_eq!((request.after_attempt, request.after_seq), (2, 1));
    }

    #[test]
    fn a_build_that_never_ran_resumes_at_attempt_0() {
        let mut resume = Resume::new(every_second);
        // the made-up result of a build cancelled while queued
        assert_eq!(resume.seen(at(0, 1)), Seen::New { reconnected: false });
        assert_eq!(resume.seen(at(0, 1)), Seen::Again);
        let request = resume.request(BuildId::from(12), Attempt::NONE);
        assert_eq!((request.after_attempt, request.after_seq), (0, 1));
        // before anything arrived, the position is (0, 0): even (0, 0) itself is not new
        let mut fresh = Resume::new(every_second);
        assert_eq!(fresh.seen(Position::default()), Seen::Again);
    }

    #[test]
    fn status_codes_are_retried_by_what_they_mean() {
        use tonic::Code;
        for code in [
            Code::Unavailable,
            Code::Cancelled,
            Code::Aborted,
            Code::DeadlineExceeded,
            Code::ResourceExhausted,
        ] {
            assert!(
                matches!(broken(Status::new(code, "gone")), Broken::Retry(reason) if reason == "gone"),
                "{code:?}"
            );
        }
        for code in [Code::Unknown, Code::Internal] {
            assert!(
                matches!(broken(Status::new(code, "")), Broken::Doubtful(_)),
                "{code:?}"
            );
        }
        for code in [
            Code::NotFound,
            Code::InvalidArgument,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::FailedPrecondition,
            Code::Unimplemented,
        ] {
            assert!(
                matches!(broken(Status::new(code, "no")), Broken::Fatal(_)),
                "{code:?}"
            );
        }
    }

    #[test]
    fn an_admin_that_is_down_is_waited_for_bad_settings_are_not() {
        let down = CliError::new(ExitStatus::Unreachable, "cannot reach the admin");
        assert!(
            matches!(not_connected(down), Broken::Retry(reason) if reason == "cannot reach the admin")
        );
        let bad = CliError::new(ExitStatus::Usage, "invalid admin address");
        assert!(matches!(not_connected(bad), Broken::Fatal(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_ends_the_watch_at_once() {
        let mut resume = Resume::new(every_second);
        let Err(error) = resume.stopped(None, broken(Status::not_found("no build 12"))) else {
            panic!("a missing build was retried");
        };
        assert_eq!(error.status, ExitStatus::Rejected);
        assert_eq!(error.message, "no build 12");
        let Err(error) = resume.stopped(None, broken(Status::permission_denied("read"))) else {
            panic!("a refusal was retried");
        };
        assert_eq!(error.status, ExitStatus::NotAllowed);
    }

    #[tokio::test(start_paused = true)]
    async fn internal_is_retried_only_a_few_times_in_a_row() {
        let mut resume = Resume::new(every_second);
        for _ in 0..DOUBTFUL_TRIES {
            let reason = resume.stopped(None, broken(Status::internal("h2 protocol error")));
            assert_eq!(reason.ok().as_deref(), Some("h2 protocol error"));
            let next = resume.next_try();
            assert!(next.delay.is_some());
        }
        let Err(error) = resume.stopped(None, broken(Status::internal("h2 protocol error"))) else {
            panic!("internal retried more than {DOUBTFUL_TRIES} times");
        };
        assert_eq!(error.status, ExitStatus::Errored);
        assert_eq!(error.message, "h2 protocol error");
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_and_internal_share_one_budget() {
        let mut resume = Resume::new(every_second);
        for n in 0..DOUBTFUL_TRIES {
            let status = if n % 2 == 0 {
                Status::unknown("")
            } else {
                Status::internal("")
            };
            assert!(resume.stopped(None, broken(status)).is_ok());
        }
        assert!(resume.stopped(None, broken(Status::unknown(""))).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_restores_the_internal_budget() {
        let mut resume = Resume::new(every_second);
        for _ in 0..DOUBTFUL_TRIES {
            assert!(resume.stopped(None, broken(Status::internal(""))).is_ok());
        }
        assert_eq!(resume.seen(at(1, 1)), Seen::New { reconnected: false });
        for _ in 0..DOUBTFUL_TRIES {
            assert!(resume.stopped(None, broken(Status::internal(""))).is_ok());
        }
        assert!(resume.stopped(None, broken(Status::internal(""))).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stable_stream_restores_the_internal_budget() {
        let mut resume = Resume::new(every_second);
        for _ in 0..DOUBTFUL_TRIES {
            assert!(resume.stopped(None, broken(Status::internal(""))).is_ok());
        }
        let opened = Instant::now();
        tokio::time::advance(STABLE_AFTER).await;
        assert!(
            resume
                .stopped(Some(opened), broken(Status::internal("")))
                .is_ok()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_stream_does_not_restore_the_internal_budget() {
        let mut resume = Resume::new(every_second);
        for _ in 0..DOUBTFUL_TRIES {
            assert!(resume.stopped(None, broken(Status::internal(""))).is_ok());
        }
        let opened = Instant::now();
        tokio::time::advance(STABLE_AFTER - Duration::from_millis(1)).await;
        assert!(
            resume
                .stopped(Some(opened), broken(Status::internal("")))
                .is_err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unavailable_is_retried_until_the_deadline() {
        let mut resume = Resume::new(every_second);
        let (tries, waited) = retry_until_given_up(&mut resume, || Status::unavailable("")).await;
        // far more than the doubtful budget: every second for five minutes
        assert_eq!(waited, RECONNECT_FOR);
        assert_eq!(u64::from(tries), RECONNECT_FOR.as_secs());
        assert!(tries > DOUBTFUL_TRIES);
    }

    #[tokio::test(start_paused = true)]
    async fn unavailable_is_retried_until_the_deadline_with_the_real_delays() {
        let mut resume = Resume::new(reconnect_delays);
        let (tries, waited) =
            retry_until_given_up(&mut resume, || Status::unavailable("connection refused")).await;
        // the next delay would have gone past the deadline; delays stay under 10 s
        assert!(waited <= RECONNECT_FOR, "{waited:?}");
        assert!(
            waited + Duration::from_secs(10) > RECONNECT_FOR,
            "{waited:?}"
        );
        assert!(tries > DOUBTFUL_TRIES, "{tries}");
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_first_break_of_an_outage_begins_it() {
        let mut resume = Resume::new(every_second);
        assert!(
            resume
                .stopped(None, broken(Status::unavailable("")))
                .is_ok()
        );
        assert_eq!(
            resume.next_try(),
            NextTry {
                outage_began: true,
                delay: Some(Duration::from_secs(1)),
            }
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(
            resume
                .stopped(None, broken(Status::unavailable("")))
                .is_ok()
        );
        assert_eq!(
            resume.next_try(),
            NextTry {
                outage_began: false,
                delay: Some(Duration::from_secs(1)),
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_ends_the_outage_and_restarts_the_delays() {
        let mut resume = Resume::new(growing);
        for expected in 1..=3 {
            assert!(
                resume
                    .stopped(None, broken(Status::unavailable("")))
                    .is_ok()
            );
            let next = resume.next_try();
            assert_eq!(next.delay, Some(Duration::from_secs(expected)));
            assert_eq!(next.outage_began, expected == 1);
            tokio::time::advance(Duration::from_secs(expected)).await;
        }
        assert_eq!(resume.seen(at(1, 4)), Seen::New { reconnected: true });
        // the next event is no news
        assert_eq!(resume.seen(at(1, 5)), Seen::New { reconnected: false });
        assert!(
            resume
                .stopped(None, broken(Status::unavailable("")))
                .is_ok()
        );
        assert_eq!(
            resume.next_try(),
            NextTry {
                outage_began: true,
                delay: Some(Duration::from_secs(1)),
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stable_stream_restarts_the_give_up_clock() {
        let mut resume = Resume::new(every_second);
        // 290 s of outage
        assert!(
            resume
                .stopped(None, broken(Status::unavailable("")))
                .is_ok()
        );
        assert!(resume.next_try().outage_began);
        tokio::time::advance(Duration::from_secs(290)).await;
        // a stream opens and stays up, quiet, for STABLE_AFTER, then breaks
        let opened = Instant::now();
        tokio::time::advance(STABLE_AFTER).await;
        assert!(
            resume
                .stopped(Some(opened), broken(Status::unavailable("")))
                .is_ok()
        );
        let next = resume.next_try();
        assert!(next.outage_began);
        assert_eq!(next.delay, Some(Duration::from_secs(1)));
        // a new outage: another five minutes from now
        let (_, waited) = retry_until_given_up(&mut resume, || Status::unavailable("")).await;
        assert_eq!(waited, RECONNECT_FOR);
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_stream_keeps_the_give_up_clock() {
        let mut resume = Resume::new(every_second);
        assert!(
            resume
                .stopped(None, broken(Status::unavailable("")))
                .is_ok()
        );
        assert!(resume.next_try().outage_began);
        tokio::time::advance(Duration::from_secs(290)).await;
        // a stream that opens but breaks before it is stable (and shows nothing)
        let opened = Instant::now();
        tokio::time::advance(STABLE_AFTER - Duration::from_secs(1)).await;
        assert!(
            resume
                .stopped(Some(opened), broken(Status::unavailable("")))
                .is_ok()
        );
        let next = resume.next_try();
        assert!(!next.outage_began);
        // 299 s into the outage: one more second is the last wait
        assert_eq!(next.delay, Some(Duration::from_secs(1)));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(
            resume
                .stopped(None, broken(Status::unavailable("")))
                .is_ok()
        );
        assert_eq!(
            resume.next_try(),
            NextTry {
                outage_began: false,
                delay: None,
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_delay_that_would_pass_the_deadline_gives_up_before_waiting() {
        fn long() -> std::iter::Repeat<Duration> {
            std::iter::repeat(Duration::from_secs(200))
        }
        let mut resume = Resume::new(long);
        assert!(
            resume
                .stopped(None, broken(Status::unavailable("")))
                .is_ok()
        );
        assert_eq!(resume.next_try().delay, Some(Duration::from_secs(200)));
        tokio::time::advance(Duration::from_secs(200)).await;
        assert!(
            resume
                .stopped(None, broken(Status::unavailable("")))
                .is_ok()
        );
        // 200 s + 200 s > 300 s: no use waiting
        assert_eq!(resume.next_try().delay, None);
    }

    #[tokio::test(start_paused = true)]
    async fn delays_that_run_out_fall_back_to_five_seconds() {
        fn none() -> std::iter::Empty<Duration> {
            std::iter::empty()
        }
        let mut resume = Resume::new(none);
        assert!(
            resume
                .stopped(None, broken(Status::unavailable("")))
                .is_ok()
        );
        assert_eq!(resume.next_try().delay, Some(LAST_DELAY));
    }

    #[test]
    fn reconnect_delays_double_from_200_ms_up_to_5_s_with_jitter() {
        // backon computes in f32: a little rounding either way
        let slack = Duration::from_millis(1);
        let mut base = Duration::from_millis(200);
        for delay in reconnect_delays().take(40) {
            assert!(
                delay + slack >= base && delay <= base * 2 + slack,
                "{delay:?} for {base:?}"
            );
            base = (base * 2).min(Duration::from_secs(5));
        }
    }

    #[test]
    fn giving_up_says_how_to_resume() {
        let error = gave_up(BuildId::from(12), "connection refused");
        assert_eq!(error.status, ExitStatus::Unreachable);
        assert_eq!(
            error.message,
            "the log stream of build 12 broke and the admin was not reachable for 300 s \
             (connection refused); `ocelot watch 12` resumes it"
        );
    }
}
