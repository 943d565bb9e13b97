//! WatchBuild: a finished build is replayed from Postgres (its stored events, page by page);
//! a queued or running one is
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
/// How many stored events a replay reads at once.
const REPLAY_PAGE: i64 = 1000;

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
            replay_final(&state.store, &build, resume_after, &sender).await
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
                return replay_final(&state.store, &current, last, sender).await;
            }
        }
    }
}

/// Sends what the client does not have of the final attempt, from Postgres, ending with its
/// result: the stored one (a worker's), or the build row's when no worker recorded one (a
/// build that ended before or without a worker: cancelled while queued, out of attempts).
async fn replay_final(
    store: &Store,
    build: &Build,
    resume_after: Position,
    sender: &mpsc::Sender<Result<pb::BuildEvent, Status>>,
) -> Result<(), Status> {
    let attempt = u32::try_from(build.attempt).unwrap_or(0);
    if resume_after.attempt > attempt {
        return Ok(());
    }
    let after = if resume_after.attempt == attempt {
        resume_after.seq
    } else {
        0
    };
    let sent = if attempt == 0 {
        Sent::nothing(after)
    } else {
        match send_stored(store, build.id, attempt, after, sender).await? {
            Some(sent) => sent,
            None => return Ok(()),
        }
    };
    if !sent.result {
        let _ = send(sender, &result_event(build, attempt, sent.last_seq + 1)).await;
    }
    Ok(())
}

/// The result of a build whose attempt stored none, from its row.
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

/// What [`send_stored`] sent.
#[derive(Debug, Clone, Copy)]
struct Sent {
    /// The sequence number of the last event sent, or where sending started.
    last_seq: u64,
    last_at_ms: i64,
    /// Whether the attempt's result was among them.
    result: bool,
}

impl Sent {
    fn nothing(after: u64) -> Self {
        Sent {
            last_seq: after,
            last_at_ms: 0,
            result: false,
        }
    }
}

/// Sends the stored events of `attempt` after `after`, in order, one page at a time (never
/// the whole log in memory). `None` when the client left.
async fn send_stored(
    store: &Store,
    build_id: i64,
    attempt: u32,
    after: u64,
    sender: &mpsc::Sender<Result<pb::BuildEvent, Status>>,
) -> Result<Option<Sent>, Status> {
    let attempt_i32 = i32::try_from(attempt).unwrap_or(i32::MAX);
    let mut sent = Sent::nothing(after);
    loop {
        let page = store
            .events(
                build_id,
                attempt_i32,
                i64::try_from(sent.last_seq).unwrap_or(i64::MAX),
                i64::MAX,
                REPLAY_PAGE,
            )
            .await
            .map_err(AdminError::from)?;
        let full_page = i64::try_from(page.len()).unwrap_or(i64::MAX) >= REPLAY_PAGE;
        for event in &page {
            if send(sender, event).await.is_err() {
                return Ok(None);
            }
            sent.last_seq = event.seq;
            sent.last_at_ms = event.at_ms;
            sent.result |= event.is_result();
        }
        if !full_page {
            return Ok(Some(sent));
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
    if resume_after.attempt > attempt {
        return Ok(());
    }
    let after = if resume_after.attempt == attempt {
        resume_after.seq
    } else {
        0
    };
    let Some(sent) = send_stored(store, build.id, attempt, after, sender).await? else {
        return Ok(());
    };
    let ended = BuildEvent {
        build_id: build.id,
        attempt,
        seq: sent.last_seq + 1,
        at_ms: sent.last_at_ms,
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
    let _ = send(sender, &ended).await;
    Ok(())
}

/// The events between `last` and `next` that the bus lost (published while NATS was away),
/// from Postgres. The worker stores events a moment after it publishes them, so a gap is
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
    let missing = next.seq.saturating_sub(after + 1);
    let attempt = i32::try_from(next.attempt).unwrap_or(i32::MAX);
    let deadline = tokio::time::Instant::now() + GAP_WAIT;
    loop {
        let events = store
            .events(
                build.id,
                attempt,
                i64::try_from(after).unwrap_or(i64::MAX),
                i64::try_from(next.seq).unwrap_or(i64::MAX),
                i64::try_from(missing).unwrap_or(i64::MAX),
            )
            .await
            .map_err(AdminError::from)?;
        let found = u64::try_from(events.len()).unwrap_or(u64::MAX);
        if found >= missing || tokio::time::Instant::now() >= deadline {
            if found < missing {
                tracing::warn!(
                    build_id = build.id,
                    attempt = next.attempt,
                    missing = missing - found,
                    "events lost from the log bus are not in Postgres either"
                );
            }
            return Ok(events);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
