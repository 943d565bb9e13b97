//! WatchBuild: a finished build is replayed from Postgres; a queued or running one is
//! replayed from the first event of its log subject, then followed live until its result.
//! A spawned producer feeds an mpsc channel; a failed send means the client left.
//! A client that lost its stream passes the last event it received ([`Position`]): the new
//! stream starts right after it.

use crate::AppState;
use crate::error::AdminError;
use ocelot_core::events::{BuildEvent, EventKind, Position};
use ocelot_core::model::{Build, unix_ms};
use ocelot_core::store::Store;
use ocelot_proto::v1 as pb;
use std::pin::Pin;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Response, Status};

pub(crate) type EventStream =
    Pin<Box<dyn futures::Stream<Item = Result<pb::BuildEvent, Status>> + Send + 'static>>;

/// How long the live view waits for an event before it checks the build in Postgres.
const IDLE_CHECK: Duration = Duration::from_secs(2);
/// How long events missing from the bus are waited for in Postgres.
const GAP_WAIT: Duration = Duration::from_secs(5);

/// Whether `event` comes after `position` (a later attempt, or later in this one).
fn comes_after(event: &BuildEvent, position: Position) -> bool {
    event.position() > position
}

/// Streams `build_id`'s events after `resume_after`: of its current attempt, or of the
/// earlier `attempt` when one is asked for (not 0).
pub(crate) async fn watch(
    state: &AppState,
    build_id: i64,
    attempt: u32,
    resume_after: Position,
) -> Result<Response<EventStream>, Status> {
    let build = state
        .store
        .get_build(build_id)
        .await
        .map_err(AdminError::from)?;
    let current = u32::try_from(build.attempt).unwrap_or(0);
    if attempt > current {
        return Err(Status::not_found(format!(
            "build {build_id} has no attempt {attempt} (it had {current})"
        )));
    }
    let earlier = attempt != 0 && attempt < current;
    let (sender, receiver) = mpsc::channel::<Result<pb::BuildEvent, Status>>(256);
    let state = state.clone();
    tokio::spawn(async move {
        let outcome = if earlier {
            replay_earlier_attempt(&state.store, &build, attempt, resume_after, &sender).await
        } else if build.state.is_final() {
            replay_from_store(&state.store, &build, resume_after, &sender).await
        } else {
            follow_live(&state, &build, resume_after, &sender).await
        };
        if let Err(status) = outcome {
            let _ = sender.send(Err(status)).await;
        }
    });
    Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
}

/// Sends an event; `Err(())` means the client went away.
async fn send(
    sender: &mpsc::Sender<Result<pb::BuildEvent, Status>>,
    event: &BuildEvent,
) -> Result<(), ()> {
    sender
        .send(Ok(pb::BuildEvent::from(event)))
        .await
        .map_err(|_| ())
}

async fn follow_live(
    state: &AppState,
    build: &Build,
    resume_after: Position,
    sender: &mpsc::Sender<Result<pb::BuildEvent, Status>>,
) -> Result<(), Status> {
    let mut subscription = state
        .bus
        .subscribe_events(build.id)
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    // the last event sent (or, resuming, received by the client before)
    let mut last = resume_after;
    let mut final_in_store = false;
    loop {
        let next = tokio::select! {
            // the client left: stop following
            () = sender.closed() => return Ok(()),
            next = tokio::time::timeout(IDLE_CHECK, subscription.next()) => next,
        };
        match next {
            Ok(Some(Ok(event))) => {
                // events of an attempt that a newer one replaced are not part of the log,
                // and what the client has is not sent again
                if !comes_after(&event, last) {
                    continue;
                }
                // events the bus lost (published while NATS was away) come from Postgres
                let first_of_attempt = if event.attempt == last.attempt {
                    last.seq + 1
                } else {
                    1
                };
                if event.seq > first_of_attempt {
                    for missed in fill_gap(&state.store, build, last, &event).await? {
                        if send(sender, &missed).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                last = event.position();
                let is_result = event.is_result();
                if send(sender, &event).await.is_err() || is_result {
                    return Ok(());
                }
            }
            Ok(Some(Err(error))) => return Err(Status::unavailable(error.to_string())),
            Ok(None) => return Err(Status::unavailable("the log stream ended")),
            Err(_idle) => {
                // a build can end without a result on the bus (errored before any worker
                // ran it, or the publish failed): after one more quiet period, answer from
                // Postgres
                let current = state
                    .store
                    .get_build(build.id)
                    .await
                    .map_err(AdminError::from)?;
                if !current.state.is_final() {
                    final_in_store = false;
                    continue;
                }
                if !final_in_store {
                    final_in_store = true;
                    continue;
                }
                return finish_from_store(&state.store, &current, last, sender).await;
            }
        }
    }
}

/// Sends what the bus did not deliver of the final attempt (from Postgres), then its result.
async fn finish_from_store(
    store: &Store,
    build: &Build,
    last: Position,
    sender: &mpsc::Sender<Result<pb::BuildEvent, Status>>,
) -> Result<(), Status> {
    let attempt = u32::try_from(build.attempt).unwrap_or(0);
    let after = if last.attempt == attempt { last.seq } else { 0 };
    let mut next_seq = after + 1;
    if attempt > 0 {
        for event in stored_events(store, build, attempt, after, None).await? {
            next_seq = next_seq.max(event.seq + 1);
            if send(sender, &event).await.is_err() {
                return Ok(());
            }
        }
    }
    let _ = send(sender, &result_event(build, attempt, next_seq)).await;
    Ok(())
}

fn result_event(build: &Build, attempt: u32, seq: u64) -> BuildEvent {
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

/// Rebuilds the final attempt's events from Postgres, in sequence order.
async fn replay_from_store(
    store: &Store,
    build: &Build,
    resume_after: Position,
    sender: &mpsc::Sender<Result<pb::BuildEvent, Status>>,
) -> Result<(), Status> {
    let attempt = u32::try_from(build.attempt).unwrap_or(0);
    if attempt == 0 {
        let result = result_event(build, 0, 1);
        if comes_after(&result, resume_after) {
            let _ = send(sender, &result).await;
        }
        return Ok(());
    }
    let events = stored_events(store, build, attempt, 0, None).await?;
    let result = result_event(build, attempt, end_seq(&events, attempt, resume_after));
    send_replay(sender, &events, &result, resume_after).await;
    Ok(())
}

/// The sequence number of an attempt's closing result: after its last stored event, and
/// after whatever the client already has of it (it may have seen events Postgres lost).
fn end_seq(events: &[BuildEvent], attempt: u32, resume_after: Position) -> u64 {
    let stored = events.last().map(|e| e.seq).unwrap_or(0);
    let seen = if resume_after.attempt == attempt {
        resume_after.seq
    } else {
        0
    };
    stored.max(seen) + 1
}

/// Sends `events`, then `end`, leaving out what the client has (up to `resume_after`).
async fn send_replay(
    sender: &mpsc::Sender<Result<pb::BuildEvent, Status>>,
    events: &[BuildEvent],
    end: &BuildEvent,
    resume_after: Position,
) {
    for event in events
        .iter()
        .chain(std::iter::once(end))
        .filter(|e| comes_after(e, resume_after))
    {
        if send(sender, event).await.is_err() {
            return;
        }
    }
}

/// Replays an attempt that a later one replaced, then a result saying it was replaced.
async fn replay_earlier_attempt(
    store: &Store,
    build: &Build,
    attempt: u32,
    resume_after: Position,
    sender: &mpsc::Sender<Result<pb::BuildEvent, Status>>,
) -> Result<(), Status> {
    let events = stored_events(store, build, attempt, 0, None).await?;
    let ended = BuildEvent {
        build_id: build.id,
        attempt,
        seq: end_seq(&events, attempt, resume_after),
        at_ms: events.last().map(|e| e.at_ms).unwrap_or(0),
        kind: EventKind::Result {
            state: ocelot_core::BuildState::Errored,
            reason: format!(
                "attempt {attempt} ended without a result (its worker was lost or handed the build back); attempt {} followed",
                attempt + 1
            ),
            duration_ms: 0,
            line_count: 0,
            log_sha256: String::new(),
        },
    };
    send_replay(sender, &events, &ended, resume_after).await;
    Ok(())
}

/// The events of `attempt` after `after` (and before `before`, when given) rebuilt from
/// Postgres, in sequence order: the attempt's start, its stages' starts and ends, its lines.
/// The result is not among them (it is the build row's).
async fn stored_events(
    store: &Store,
    build: &Build,
    attempt: u32,
    after: u64,
    before: Option<u64>,
) -> Result<Vec<BuildEvent>, Status> {
    let attempt_i32 = i32::try_from(attempt).unwrap_or(i32::MAX);
    let stages = store
        .stages(build.id, attempt_i32)
        .await
        .map_err(AdminError::from)?;
    let after_i64 = i64::try_from(after).unwrap_or(i64::MAX);
    let before_i64 = before.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
    let lines = store
        .lines_between(build.id, attempt_i32, after_i64, before_i64)
        .await
        .map_err(AdminError::from)?;
    // the build row knows only its current attempt's worker and start
    let current = build.attempt == attempt_i32;
    let started_at = if current {
        build.started_at
    } else {
        let first_stage = stages.iter().filter_map(|s| s.started_at).min();
        let first_line = lines.first().map(|l| l.at);
        first_stage.into_iter().chain(first_line).min()
    };
    let event = |seq: i64, at: Option<SystemTime>, kind: EventKind| BuildEvent {
        build_id: build.id,
        attempt,
        seq: u64::try_from(seq).unwrap_or(0),
        at_ms: at.map(unix_ms).unwrap_or(0),
        kind,
    };
    let mut events = vec![event(
        1,
        started_at,
        EventKind::AttemptStarted {
            worker: if current {
                build.worker.clone().unwrap_or_default()
            } else {
                String::new()
            },
            commit: build.commit.clone(),
            branch: build.branch.clone(),
            stages: stages.iter().map(|s| s.name.clone()).collect(),
        },
    )];
    for stage in &stages {
        let index = u32::try_from(stage.index).unwrap_or(0);
        if let Some(seq) = stage.start_seq {
            events.push(event(
                seq,
                stage.started_at,
                EventKind::StageStarted {
                    index,
                    name: stage.name.clone(),
                },
            ));
        }
        if let Some(seq) = stage.end_seq {
            let duration_ms = match (stage.started_at, stage.finished_at) {
                (Some(start), Some(end)) => unix_ms(end) - unix_ms(start),
                _ => 0,
            };
            events.push(event(
                seq,
                stage.finished_at,
                EventKind::StageFinished {
                    index,
                    name: stage.name.clone(),
                    state: stage.state,
                    exit_code: stage.exit_code,
                    duration_ms,
                },
            ));
        }
    }
    for line in lines {
        events.push(event(
            line.seq,
            Some(line.at),
            EventKind::Line {
                stage: line.stage,
                stream: line.stream,
                text: line.text,
            },
        ));
    }
    events.retain(|e| e.seq > after && before.is_none_or(|before| e.seq < before));
    events.sort_by_key(|e| e.seq);
    Ok(events)
}

/// The events between `last` and `next` that the bus lost (published while NATS was away),
/// from Postgres. The worker stores lines a moment after it publishes them, so a gap is
/// waited for up to [`GAP_WAIT`]; what is still missing then stays missing (the CLI's log
/// check reports it).
async fn fill_gap(
    store: &Store,
    build: &Build,
    last: Position,
    next: &BuildEvent,
) -> Result<Vec<BuildEvent>, Status> {
    let after = if last.attempt == next.attempt {
        last.seq
    } else {
        0
    };
    let missing = usize::try_from(next.seq.saturating_sub(after + 1)).unwrap_or(usize::MAX);
    let deadline = tokio::time::Instant::now() + GAP_WAIT;
    // the build as it is now: its worker and start are the gap's attempt's
    let build = store.get_build(build.id).await.map_err(AdminError::from)?;
    loop {
        let events = stored_events(store, &build, next.attempt, after, Some(next.seq)).await?;
        if events.len() >= missing || tokio::time::Instant::now() >= deadline {
            if events.len() < missing {
                tracing::warn!(
                    build_id = build.id,
                    attempt = next.attempt,
                    missing = missing - events.len(),
                    "events lost from the log bus are not in Postgres either"
                );
            }
            return Ok(events);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
