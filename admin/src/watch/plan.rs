//! The decisions of WatchBuild, free of I/O: which stream a request gets, where a replay
//! starts for a resume position, what the client already has, which events a live stream
//! missed and how long they are waited for, and the results the admin makes up.

use ocelot_core::BuildState;
use ocelot_core::events::{BuildEvent, EventKind, LogDigest, Position};
use ocelot_core::ids::{Attempt, BuildId, Seq};
use ocelot_core::model::{Build, LogStream, unix_ms};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tonic::Status;

/// How long events missing from the bus are waited for in Postgres.
pub(super) const GAP_WAIT: Duration = Duration::from_secs(5);
/// How often Postgres is asked again for events missing from the bus.
pub(super) const GAP_RETRY: Duration = Duration::from_millis(200);
/// How many stored events a replay reads at once (a run of lines is one, up to 64 KiB).
pub(super) const REPLAY_PAGE: i64 = 200;

/// Which stream a WatchBuild request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stream {
    /// An attempt that a later one replaced: its stored events, then a result saying so.
    Earlier,
    /// The last attempt of a finished build, from Postgres.
    Final,
    /// The current attempt of a queued or running build: the bus, gaps filled from Postgres.
    Live,
}

/// The stream for `asked` (an attempt, or 0: the current one) of a build now at attempt
/// `current`; NotFound for an attempt the build never had.
pub(super) fn stream_for(
    build_id: BuildId,
    asked: Attempt,
    current: Attempt,
    is_final: bool,
) -> Result<Stream, Status> {
    if asked > current {
        return Err(Status::not_found(format!(
            "build {build_id} has no attempt {asked} (it had {current})"
        )));
    }
    Ok(if asked != Attempt::NONE && asked < current {
        Stream::Earlier
    } else if is_final {
        Stream::Final
    } else {
        Stream::Live
    })
}

/// Where a replay of `attempt` starts for a client that has everything up to `resume_after`:
/// right after it in the same attempt, at the first event when the client has only earlier
/// attempts, and `None` (nothing to send) when the client is already in a later attempt.
pub(super) fn replay_after(attempt: Attempt, resume_after: Position) -> Option<Seq> {
    if resume_after.attempt > attempt {
        None
    } else if resume_after.attempt == attempt {
        Some(resume_after.seq)
    } else {
        Some(Seq::START)
    }
}

/// Whether `event` is new to a client that has everything up to `last`: a later attempt, or
/// later in this one. Events of an attempt that a newer one replaced are not part of the log.
pub(super) fn comes_after(event: Position, last: Position) -> bool {
    event > last
}

/// What of `event` is new to a client that has everything up to `last`: all of it, the
/// lines of a run after `last` (a resume position inside the run), or nothing.
pub(super) fn new_part(event: BuildEvent, last: Position) -> Option<BuildEvent> {
    if !comes_after(event.last_position(), last) {
        return None;
    }
    if comes_after(event.position(), last) {
        return Some(event);
    }
    event.between(last.seq, Seq::from(u64::MAX))
}

/// How many sequence numbers `event` covers: its lines for a run, one otherwise.
pub(super) fn numbers_in(event: &BuildEvent) -> u64 {
    event.last_seq().get() - event.seq.get() + 1
}

/// Events that a live stream did not get from the bus (published while NATS was away):
/// those of `attempt` strictly between `after` and `before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Gap {
    pub(super) attempt: Attempt,
    pub(super) after: Seq,
    pub(super) before: Seq,
    /// How many events the gap misses.
    pub(super) missing: u64,
}

impl Gap {
    /// The events missed between `last` (sent) and `next` (just received, new to the
    /// client); `None` when `next` follows `last` directly, or is the first of its attempt.
    pub(super) fn between(last: Position, next: Position) -> Option<Gap> {
        let after = if last.attempt == next.attempt {
            last.seq
        } else {
            Seq::START
        };
        let missing = next.seq.get().saturating_sub(after.next().get());
        (missing > 0).then_some(Gap {
            attempt: next.attempt,
            after,
            before: next.seq,
            missing,
        })
    }
}

/// Where filling a [`Gap`] from Postgres stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GapFill {
    /// Every missed event was found.
    Complete,
    /// Waited [`GAP_WAIT`]: what is still missing stays missing (the CLI's log check reports it).
    Incomplete { still_missing: u64 },
    /// Ask again after [`GAP_RETRY`]: the worker stores events a moment after it publishes them.
    Wait,
}

/// The clock of one gap's filling, started before Postgres is first asked.
#[derive(Debug, Clone, Copy)]
pub(super) struct GapWait {
    missing: u64,
    deadline: Instant,
}

impl GapWait {
    pub(super) fn start(gap: &Gap) -> Self {
        GapWait {
            missing: gap.missing,
            deadline: Instant::now() + GAP_WAIT,
        }
    }

    /// What to do after Postgres answered with `found` of the missed sequence numbers.
    pub(super) fn check(&self, found: u64) -> GapFill {
        if found >= self.missing {
            GapFill::Complete
        } else if Instant::now() >= self.deadline {
            GapFill::Incomplete {
                still_missing: self.missing - found,
            }
        } else {
            GapFill::Wait
        }
    }
}

/// The live view's look at the build row when the bus has been quiet: a build can end
/// without a result on the bus (errored before any worker ran it, or the publish failed).
/// Once the row is final, one more quiet period is waited for (a result on its way), then
/// the rest is answered from Postgres.
#[derive(Debug, Default)]
pub(super) struct QuietBus {
    final_seen: bool,
}

impl QuietBus {
    /// Whether to stop following the bus and answer from Postgres, after a quiet period in
    /// which the build row was (`row_is_final`) or was not final.
    pub(super) fn answer_from_store(&mut self, row_is_final: bool) -> bool {
        if !row_is_final {
            self.final_seen = false;
            return false;
        }
        if !self.final_seen {
            self.final_seen = true;
            return false;
        }
        true
    }
}

/// Whether a result event that came over the log bus agrees with the build row in
/// Postgres, where the worker recorded its result before publishing it: the same attempt,
/// final state, line count and log checksum. Anyone who can publish on the bus could forge
/// one; `Err` says how it disagrees, and the event is dropped, never relayed.
pub(super) fn check_bus_result(event: &BuildEvent, row: &Build) -> Result<(), String> {
    let EventKind::Result {
        state,
        line_count,
        log_sha256,
        ..
    } = &event.kind
    else {
        return Err("not a result".into());
    };
    if !row.state.is_final() {
        return Err(format!("the build is still {} in Postgres", row.state));
    }
    if event.attempt != row.attempt {
        return Err(format!(
            "attempt {} is not the build's last attempt ({})",
            event.attempt, row.attempt
        ));
    }
    if *state != row.state {
        return Err(format!("says {state}, Postgres says {}", row.state));
    }
    let stored_sha = row.log_sha256.as_deref().unwrap_or_default();
    if log_sha256.is_empty() || log_sha256 != stored_sha {
        return Err(format!(
            "log checksum `{log_sha256}` is not the stored `{stored_sha}`"
        ));
    }
    let stored_lines = row.line_count.and_then(|n| u64::try_from(n).ok());
    if stored_lines != Some(*line_count) {
        return Err(format!(
            "{line_count} lines, Postgres says {stored_lines:?}"
        ));
    }
    Ok(())
}

/// What a replay of stored events sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sent {
    /// The sequence number of the last event sent, or where sending started.
    pub(super) last_seq: Seq,
    pub(super) last_at_ms: i64,
    /// Whether the attempt's result was among them.
    pub(super) result: bool,
}

impl Sent {
    /// Nothing sent yet; the replay starts after `after`.
    pub(super) fn nothing(after: Seq) -> Self {
        Sent {
            last_seq: after,
            last_at_ms: 0,
            result: false,
        }
    }

    pub(super) fn record(&mut self, event: &BuildEvent) {
        self.last_seq = event.last_seq();
        self.last_at_ms = event.at_ms;
        self.result |= event.is_result();
    }

    /// The sequence number of a result the admin makes up after what was sent.
    pub(super) fn next_seq(&self) -> Seq {
        self.last_seq.next()
    }
}

/// Whether a page of `len` stored events may be followed by another (it was full).
pub(super) fn more_pages(len: usize) -> bool {
    i64::try_from(len).unwrap_or(i64::MAX) >= REPLAY_PAGE
}

/// What a replay of a build whose log was pruned (`--keep-logs`) sends after `after`: a
/// line saying so, then the result from the build row, its line count and checksum those of
/// that one line (the log they described is gone; the client checks what it printed).
pub(super) fn pruned_log(
    build: &Build,
    attempt: Attempt,
    after: Seq,
    pruned_at: SystemTime,
) -> [BuildEvent; 2] {
    let text = format!(
        "[ocelot: the log of this build was pruned on {} (the admin keeps logs for --keep-logs after a build finishes); its result stays]",
        humantime::format_rfc3339_seconds(pruned_at)
    );
    let mut digest = LogDigest::new();
    digest.add_line(&text);
    let note = BuildEvent {
        build_id: build.id,
        attempt,
        seq: after.next(),
        at_ms: unix_ms(pruned_at),
        kind: EventKind::Line {
            stage: "setup".to_string(),
            stream: LogStream::System,
            text,
        },
    };
    let mut result = result_event(build, attempt, after.next().next());
    if let EventKind::Result {
        line_count,
        log_sha256,
        ..
    } = &mut result.kind
    {
        *line_count = digest.count();
        *log_sha256 = digest.hex();
    }
    [note, result]
}

/// The result of a build whose attempt stored none, from its row.
pub(super) fn result_event(build: &Build, attempt: Attempt, seq: Seq) -> BuildEvent {
    let duration_ms = match (build.started_at, build.finished_at) {
        (Some(start), Some(end)) => unix_ms(end) - unix_ms(start),
        _ => 0,
    };
    BuildEvent {
        build_id: build.id,
        attempt,
        seq,
        at_ms: unix_ms(build.finished_at.unwrap_or_else(SystemTime::now)),
        kind: EventKind::Result {
            state: build.state,
            reason: build.reason.clone().unwrap_or_default(),
            duration_ms,
            line_count: build
                .line_count
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0),
            log_sha256: build.log_sha256.clone().unwrap_or_default(),
        },
    }
}

/// The result closing a replay of `attempt`, which a later attempt replaced, after `sent`.
pub(super) fn replaced_result(build_id: BuildId, attempt: Attempt, sent: &Sent) -> BuildEvent {
    BuildEvent {
        build_id,
        attempt,
        seq: sent.next_seq(),
        at_ms: sent.last_at_ms,
        kind: EventKind::Result {
            state: BuildState::Errored,
            reason: format!(
                "attempt {attempt} ended without a result (its worker was lost or handed the build back); attempt {} followed",
                attempt.next()
            ),
            duration_ms: 0,
            line_count: 0,
            log_sha256: String::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocelot_core::ids::RepoId;
    use ocelot_core::model::LogStream;
    use std::time::UNIX_EPOCH;

    fn a(attempt: u32) -> Attempt {
        Attempt::from(attempt)
    }

    /// The build the tests watch.
    fn b7() -> BuildId {
        BuildId::from(7)
    }

    fn s(seq: u64) -> Seq {
        Seq::from(seq)
    }

    fn at(attempt: u32, seq: u64) -> Position {
        Position {
            attempt: a(attempt),
            seq: s(seq),
        }
    }

    fn line(attempt: u32, seq: u64) -> BuildEvent {
        BuildEvent {
            build_id: b7(),
            attempt: a(attempt),
            seq: s(seq),
            at_ms: 1_000 + s(seq).to_db(),
            kind: EventKind::Line {
                stage: "test".into(),
                stream: LogStream::Stdout,
                text: format!("line {seq}"),
            },
        }
    }

    fn build(state: BuildState, attempt: u32) -> Build {
        Build {
            id: b7(),
            repo_id: RepoId::from(1),
            repo_name: "demo".into(),
            repo_url: "https://git.example/demo.git".into(),
            number: 3,
            commit: "c0ffee".into(),
            branch: "main".into(),
            trigger: "push".into(),
            state,
            attempt: a(attempt),
            worker: None,
            tag: "default".into(),
            reason: None,
            queued_at: UNIX_EPOCH,
            started_at: None,
            finished_at: None,
            line_count: None,
            log_sha256: None,
            previous_commit: None,
            pull_request: None,
            git_tag: None,
            withhold_secrets: false,
            cancel_requested_by: None,
            params: Default::default(),
            trace_id: None,
        }
    }

    #[test]
    fn the_current_attempt_is_followed_live_until_the_build_is_final() {
        assert_eq!(stream_for(b7(), a(0), a(0), false).ok(), Some(Stream::Live));
        assert_eq!(stream_for(b7(), a(0), a(2), false).ok(), Some(Stream::Live));
        assert_eq!(stream_for(b7(), a(0), a(2), true).ok(), Some(Stream::Final));
        // asking for the current attempt by number is asking for the current attempt
        assert_eq!(stream_for(b7(), a(2), a(2), false).ok(), Some(Stream::Live));
        assert_eq!(stream_for(b7(), a(2), a(2), true).ok(), Some(Stream::Final));
        // a build that ended before any worker ran it (cancelled while queued)
        assert_eq!(stream_for(b7(), a(0), a(0), true).ok(), Some(Stream::Final));
    }

    #[test]
    fn an_attempt_a_later_one_replaced_is_replayed_as_such() {
        assert_eq!(
            stream_for(b7(), a(1), a(2), false).ok(),
            Some(Stream::Earlier)
        );
        assert_eq!(
            stream_for(b7(), a(1), a(3), true).ok(),
            Some(Stream::Earlier)
        );
        assert_eq!(
            stream_for(b7(), a(2), a(3), true).ok(),
            Some(Stream::Earlier)
        );
    }

    #[test]
    fn an_attempt_the_build_never_had_is_not_found() {
        let Err(status) = stream_for(b7(), a(3), a(2), false) else {
            panic!("attempt 3 of 2 was found");
        };
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert_eq!(status.message(), "build 7 has no attempt 3 (it had 2)");
        let Err(status) = stream_for(b7(), a(1), a(0), false) else {
            panic!("attempt 1 of a queued build was found");
        };
        assert_eq!(status.code(), tonic::Code::NotFound);
    }

    #[test]
    fn a_replay_from_the_start_starts_at_the_first_event() {
        assert_eq!(replay_after(a(0), Position::default()), Some(s(0)));
        assert_eq!(replay_after(a(1), Position::default()), Some(s(0)));
        assert_eq!(replay_after(a(4), Position::default()), Some(s(0)));
    }

    #[test]
    fn a_resume_in_the_same_attempt_starts_right_after_it() {
        assert_eq!(replay_after(a(2), at(2, 17)), Some(s(17)));
        // a build that never ran: its made-up result is (0, 1)
        assert_eq!(replay_after(a(0), at(0, 1)), Some(s(1)));
    }

    #[test]
    fn a_resume_in_an_earlier_attempt_replays_this_one_whole() {
        assert_eq!(replay_after(a(2), at(1, 40)), Some(s(0)));
        assert_eq!(replay_after(a(3), at(0, 0)), Some(s(0)));
    }

    #[test]
    fn a_resume_in_a_later_attempt_sends_nothing() {
        // the client saw attempt 3 begin; attempt 2 (replaced) has nothing for it
        assert_eq!(replay_after(a(2), at(3, 1)), None);
        assert_eq!(replay_after(a(0), at(1, 1)), None);
    }

    #[test]
    fn a_resume_position_beyond_what_is_stored_gets_a_result_after_it() {
        // the client has up to seq 500 though fewer are stored: nothing stored is sent, and
        // the made-up result follows what the client has, so it is new to the client
        let after = replay_after(a(2), at(2, 500));
        assert_eq!(after, Some(s(500)));
        let sent = Sent::nothing(s(500));
        assert!(!sent.result);
        assert_eq!(sent.next_seq(), s(501));
        assert!(comes_after(at(2, sent.next_seq().get()), at(2, 500)));
    }

    #[test]
    fn what_the_client_has_is_not_sent_again() {
        let last = at(2, 5);
        assert!(comes_after(at(2, 6), last));
        assert!(comes_after(at(2, 9), last));
        assert!(comes_after(at(3, 1), last));
        assert!(!comes_after(at(2, 5), last));
        assert!(!comes_after(at(2, 4), last));
        // an attempt a newer one replaced, however far it got
        assert!(!comes_after(at(1, 900), last));
        // from the start, every event is new
        assert!(comes_after(at(0, 1), Position::default()));
        assert!(comes_after(at(1, 1), Position::default()));
    }

    fn run(attempt: u32, seq: u64, text: &str) -> BuildEvent {
        BuildEvent {
            kind: EventKind::Lines {
                stage: "test".into(),
                stream: LogStream::Stdout,
                text: text.into(),
            },
            ..line(attempt, seq)
        }
    }

    #[test]
    fn a_run_the_client_has_part_of_goes_on_after_that_part() {
        let event = run(2, 10, "a\nb\nc\n");
        assert_eq!(numbers_in(&event), 3);
        assert_eq!(new_part(event.clone(), at(2, 9)), Some(event.clone()));
        assert_eq!(new_part(event.clone(), at(1, 90)), Some(event.clone()));
        // the rest of the run keeps the run's time
        let rest = |seq: u64, text: &str| BuildEvent {
            at_ms: event.at_ms,
            ..run(2, seq, text)
        };
        assert_eq!(new_part(event.clone(), at(2, 10)), Some(rest(11, "b\nc\n")));
        assert_eq!(new_part(event.clone(), at(2, 11)), Some(rest(12, "c\n")));
        assert_eq!(new_part(event.clone(), at(2, 12)), None);
        assert_eq!(new_part(event, at(3, 1)), None);
        // what follows a run starts after its last line
        let mut sent = Sent::nothing(s(0));
        sent.record(&run(2, 1, "a\nb\n"));
        assert_eq!(sent.next_seq(), s(3));
        assert_eq!(Gap::between(at(2, 2), at(2, 3)), None);
    }

    #[test]
    fn consecutive_events_leave_no_gap() {
        assert_eq!(Gap::between(at(2, 5), at(2, 6)), None);
        assert_eq!(Gap::between(Position::default(), at(1, 1)), None);
        // the first event of a new attempt
        assert_eq!(Gap::between(at(1, 40), at(2, 1)), None);
    }

    #[test]
    fn a_gap_in_an_attempt_is_fetched_between_its_ends() {
        assert_eq!(
            Gap::between(at(2, 4), at(2, 7)),
            Some(Gap {
                attempt: a(2),
                after: s(4),
                before: s(7),
                missing: 2,
            })
        );
    }

    #[test]
    fn a_gap_at_the_start_of_a_new_attempt_is_fetched_from_its_first_event() {
        assert_eq!(
            Gap::between(at(1, 40), at(2, 3)),
            Some(Gap {
                attempt: a(2),
                after: s(0),
                before: s(3),
                missing: 2,
            })
        );
        // a live stream that starts mid-attempt (its start was published before it subscribed)
        assert_eq!(
            Gap::between(Position::default(), at(1, 5)),
            Some(Gap {
                attempt: a(1),
                after: s(0),
                before: s(5),
                missing: 4,
            })
        );
    }

    #[test]
    fn a_gap_after_a_resume_starts_after_the_resume_position() {
        assert_eq!(
            Gap::between(at(1, 10), at(1, 12)),
            Some(Gap {
                attempt: a(1),
                after: s(10),
                before: s(12),
                missing: 1,
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_gap_found_whole_is_complete_at_once() {
        let Some(gap) = Gap::between(at(1, 2), at(1, 6)) else {
            panic!("no gap");
        };
        let wait = GapWait::start(&gap);
        assert_eq!(wait.check(3), GapFill::Complete);
        assert_eq!(wait.check(4), GapFill::Complete);
    }

    #[tokio::test(start_paused = true)]
    async fn missing_events_are_waited_for_up_to_the_gap_wait() {
        let Some(gap) = Gap::between(at(1, 2), at(1, 6)) else {
            panic!("no gap");
        };
        let wait = GapWait::start(&gap);
        let began = Instant::now();
        let mut asked = 1;
        loop {
            match wait.check(1) {
                GapFill::Wait => {
                    tokio::time::sleep(GAP_RETRY).await;
                    asked += 1;
                }
                GapFill::Incomplete { still_missing } => {
                    assert_eq!(still_missing, 2);
                    break;
                }
                GapFill::Complete => panic!("one of three events is not the whole gap"),
            }
        }
        assert_eq!(began.elapsed(), GAP_WAIT);
        // asked at once, then every GAP_RETRY until the deadline
        assert_eq!(asked, 1 + GAP_WAIT.as_millis() / GAP_RETRY.as_millis());
    }

    #[tokio::test(start_paused = true)]
    async fn events_stored_late_complete_the_gap_before_the_deadline() {
        let Some(gap) = Gap::between(at(3, 0), at(3, 3)) else {
            panic!("no gap");
        };
        let wait = GapWait::start(&gap);
        assert_eq!(wait.check(0), GapFill::Wait);
        tokio::time::advance(GAP_WAIT - Duration::from_millis(1)).await;
        assert_eq!(wait.check(1), GapFill::Wait);
        assert_eq!(wait.check(2), GapFill::Complete);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(wait.check(0), GapFill::Incomplete { still_missing: 2 });
    }

    #[test]
    fn a_final_row_gets_one_more_quiet_period_before_the_store_answers() {
        let mut quiet = QuietBus::default();
        assert!(!quiet.answer_from_store(false));
        assert!(!quiet.answer_from_store(true));
        assert!(quiet.answer_from_store(true));
    }

    #[test]
    fn a_row_that_is_not_final_restarts_the_quiet_wait() {
        let mut quiet = QuietBus::default();
        assert!(!quiet.answer_from_store(true));
        assert!(!quiet.answer_from_store(false));
        assert!(!quiet.answer_from_store(true));
        assert!(quiet.answer_from_store(true));
    }

    #[test]
    fn sent_tracks_the_last_event_and_the_result() {
        let mut sent = Sent::nothing(s(3));
        assert_eq!(sent.next_seq(), s(4));
        sent.record(&line(1, 4));
        sent.record(&line(1, 5));
        assert_eq!(sent.last_seq, s(5));
        assert_eq!(sent.last_at_ms, 1_005);
        assert!(!sent.result);
        let mut result = result_event(&build(BuildState::Passed, 1), a(1), s(6));
        result.at_ms = 2_000;
        sent.record(&result);
        assert_eq!(sent.last_seq, s(6));
        assert_eq!(sent.last_at_ms, 2_000);
        assert!(sent.result);
    }

    #[test]
    fn only_a_full_page_may_have_a_next_one() {
        let page = usize::try_from(REPLAY_PAGE).unwrap_or(usize::MAX);
        assert!(!more_pages(0));
        assert!(!more_pages(page - 1));
        assert!(more_pages(page));
    }

    #[test]
    fn a_made_up_result_comes_from_the_build_row() {
        let mut row = build(BuildState::Failed, 2);
        row.reason = Some("stage test failed".into());
        row.started_at = Some(UNIX_EPOCH + Duration::from_secs(10));
        row.finished_at = Some(UNIX_EPOCH + Duration::from_millis(12_500));
        row.line_count = Some(42);
        row.log_sha256 = Some("ab".repeat(32));
        let event = result_event(&row, a(2), s(9));
        assert_eq!(event.build_id, b7());
        assert_eq!(event.position(), at(2, 9));
        assert_eq!(event.at_ms, 12_500);
        assert_eq!(
            event.kind,
            EventKind::Result {
                state: BuildState::Failed,
                reason: "stage test failed".into(),
                duration_ms: 2_500,
                line_count: 42,
                log_sha256: "ab".repeat(32),
            }
        );
    }

    #[test]
    fn a_build_that_never_ran_gets_an_empty_result() {
        // cancelled while queued: no worker, no times, attempt 0
        let row = build(BuildState::Cancelled, 0);
        let after = replay_after(a(0), Position::default());
        assert_eq!(after, Some(s(0)));
        let event = result_event(&row, a(0), Sent::nothing(s(0)).next_seq());
        assert_eq!(event.position(), at(0, 1));
        assert_eq!(
            event.kind,
            EventKind::Result {
                state: BuildState::Cancelled,
                reason: String::new(),
                duration_ms: 0,
                line_count: 0,
                log_sha256: String::new(),
            }
        );
        // a line count that cannot be one
        let mut row = build(BuildState::Errored, 1);
        row.line_count = Some(-1);
        let EventKind::Result { line_count, .. } = result_event(&row, a(1), s(1)).kind else {
            panic!("not a result");
        };
        assert_eq!(line_count, 0);
    }

    #[test]
    fn a_replaced_attempt_ends_with_an_errored_result_after_its_last_event() {
        let mut sent = Sent::nothing(s(0));
        sent.record(&line(1, 1));
        sent.record(&line(1, 2));
        let event = replaced_result(b7(), a(1), &sent);
        assert_eq!(event.position(), at(1, 3));
        assert_eq!(event.at_ms, 1_002);
        let EventKind::Result { state, reason, .. } = event.kind else {
            panic!("not a result");
        };
        assert_eq!(state, BuildState::Errored);
        assert!(
            reason.contains("attempt 1 ended without a result"),
            "{reason}"
        );
        assert!(reason.ends_with("attempt 2 followed"), "{reason}");
    }

    /// A result event of attempt 2 as its worker publishes it.
    fn bus_result(state: BuildState, sha: &str) -> BuildEvent {
        BuildEvent {
            build_id: b7(),
            attempt: a(2),
            seq: s(9),
            at_ms: 5_000,
            kind: EventKind::Result {
                state,
                reason: String::new(),
                duration_ms: 100,
                line_count: 42,
                log_sha256: sha.into(),
            },
        }
    }

    fn failed_row() -> Build {
        let mut row = build(BuildState::Failed, 2);
        row.line_count = Some(42);
        row.log_sha256 = Some("ab".repeat(32));
        row
    }

    #[test]
    fn a_result_that_matches_the_row_is_relayed() {
        let sha = "ab".repeat(32);
        assert_eq!(
            check_bus_result(&bus_result(BuildState::Failed, &sha), &failed_row()),
            Ok(())
        );
    }

    #[test]
    fn a_forged_result_is_dropped() {
        let sha = "ab".repeat(32);
        // another state than the stored one
        let Err(why) = check_bus_result(&bus_result(BuildState::Passed, &sha), &failed_row())
        else {
            panic!("a passed result of a failed build was relayed");
        };
        assert!(why.contains("says passed"), "{why}");
        // no checksum, or another one
        assert!(check_bus_result(&bus_result(BuildState::Failed, ""), &failed_row()).is_err());
        assert!(
            check_bus_result(
                &bus_result(BuildState::Failed, &"cd".repeat(32)),
                &failed_row()
            )
            .is_err()
        );
        // another attempt
        let mut event = bus_result(BuildState::Failed, &sha);
        event.attempt = a(1);
        assert!(check_bus_result(&event, &failed_row()).is_err());
        // another line count
        let mut event = bus_result(BuildState::Failed, &sha);
        event.kind = EventKind::Result {
            state: BuildState::Failed,
            reason: String::new(),
            duration_ms: 1,
            line_count: 41,
            log_sha256: sha.clone(),
        };
        assert!(check_bus_result(&event, &failed_row()).is_err());
        // a build still running has no result yet
        let mut running = failed_row();
        running.state = BuildState::Running;
        let Err(why) = check_bus_result(&bus_result(BuildState::Passed, &sha), &running) else {
            panic!("a result of a running build was relayed");
        };
        assert!(why.contains("still running"), "{why}");
    }

    #[test]
    fn a_pruned_log_replays_as_a_note_and_the_result() {
        let mut row = build(BuildState::Passed, 2);
        row.line_count = Some(300);
        row.log_sha256 = Some("ab".repeat(32));
        let pruned_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let [note, result] = pruned_log(&row, a(2), s(0), pruned_at);
        assert_eq!((note.attempt, note.seq, result.seq), (a(2), s(1), s(2)));
        let EventKind::Line { text, stream, .. } = &note.kind else {
            panic!("not a line: {note:?}");
        };
        assert_eq!(*stream, LogStream::System);
        assert!(
            text.starts_with("[ocelot: the log of this build was pruned on 2023-11-14T22:13:20Z"),
            "{text}"
        );
        let EventKind::Result {
            state,
            line_count,
            log_sha256,
            ..
        } = &result.kind
        else {
            panic!("not a result: {result:?}");
        };
        let mut digest = LogDigest::new();
        digest.add_line(text);
        assert_eq!(
            (*state, *line_count, log_sha256.as_str()),
            (BuildState::Passed, 1, digest.hex().as_str())
        );
        // a client resuming after the note gets the result after it
        let [note, _] = pruned_log(&row, a(2), s(1), pruned_at);
        assert_eq!(note.seq, s(2));
    }

    #[test]
    fn a_replaced_attempt_resumed_past_its_end_still_gets_its_result() {
        let after = replay_after(a(1), at(1, 30));
        assert_eq!(after, Some(s(30)));
        let event = replaced_result(b7(), a(1), &Sent::nothing(s(30)));
        assert_eq!(event.position(), at(1, 31));
        assert_eq!(event.at_ms, 0);
    }
}
