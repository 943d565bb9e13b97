//! WatchBuild: a finished build is replayed from Postgres (its stored events, page by page;
//! a pruned log, `--keep-logs`, as a line saying so and the result);
//! a queued or running one is
//! replayed from the first event of its log subject, then followed live until its result
//! (one subscription per build, shared by its watchers: [`live`]).
//! A spawned producer feeds an mpsc channel; a failed send means the client left.
//! A client that lost its stream passes the last event it received ([`Position`]): the new
//! stream starts right after it.
//!
//! The decisions (which stream, where a replay starts, what is new to the client, which
//! events a gap misses, the made-up results) are in `plan`, free of I/O; this module does
//! the reading and sending.

pub(crate) mod live;
mod plan;

use crate::error::AdminError;
use crate::state::AppState;
use ocelot_core::events::{BuildEvent, Position};
use ocelot_core::ids::{Attempt, BuildId, Seq};
use ocelot_core::model::Build;
use ocelot_core::store::Store;
use ocelot_proto::v1 as pb;
use plan::{
    Gap, GapFill, GapWait, QuietBus, REPLAY_PAGE, Sent, Stream, check_bus_result, comes_after,
    more_pages, new_part, pruned_log, replaced_result, replay_after, result_event, stream_for,
};
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Response, Status};

pub(crate) type EventStream =
    Pin<Box<dyn futures::Stream<Item = Result<pb::BuildEvent, Status>> + Send + 'static>>;

/// How long the live view waits for an event before it checks the build in Postgres.
const IDLE_CHECK: Duration = Duration::from_secs(2);

/// Streams `build_id`'s events after `resume_after`: of its current attempt, or of the
/// earlier `attempt` when one is asked for (not 0).
pub(crate) async fn watch(
    state: &AppState,
    build_id: BuildId,
    attempt: Attempt,
    resume_after: Position,
) -> Result<Response<EventStream>, Status> {
    let build = state
        .store
        .get_build(build_id)
        .await
        .map_err(AdminError::from)?;
    let stream = stream_for(build_id, attempt, build.attempt, build.state.is_final())?;
    let (sender, receiver) = mpsc::channel::<Result<pb::BuildEvent, Status>>(256);
    let state = state.clone();
    tokio::spawn(async move {
        let outcome = match stream {
            Stream::Earlier => {
                replay_earlier_attempt(&state.store, &build, attempt, resume_after, &sender).await
            }
            Stream::Final => replay_final(&state.store, &build, resume_after, &sender).await,
            Stream::Live => follow_live(&state, &build, resume_after, &sender).await,
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
    // shared with the build's other watchers: read from the bus and decoded once
    let mut subscription = state
        .live
        .follow(build.id)
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    // the last event sent (or, resuming, received by the client before)
    let mut last = resume_after;
    let mut quiet = QuietBus::default();
    loop {
        let next = tokio::select! {
            // the client left: stop following
            () = sender.closed() => return Ok(()),
            next = tokio::time::timeout(IDLE_CHECK, subscription.next()) => next,
        };
        match next {
            Ok(Ok(received)) => {
                // events of an attempt that a newer one replaced are not part of the log,
                // and what the client has is not sent again (a run of lines that a resume
                // position falls in goes on after it)
                let whole = comes_after(received.event.position(), last);
                let cut = if whole {
                    None
                } else {
                    match new_part(received.event.clone(), last) {
                        Some(cut) => Some(cut),
                        None => continue,
                    }
                };
                let event = cut.as_ref().unwrap_or(&received.event);
                // a result is relayed only when Postgres agrees with it (anyone who can
                // publish on the bus could forge one)
                if event.is_result() && !result_agrees(&state.store, event).await? {
                    continue;
                }
                // events the bus lost (published while NATS was away) come from Postgres
                if let Some(gap) = Gap::between(last, event.position())
                    && send_gap(&state.store, build.id, gap, sender)
                        .await?
                        .is_err()
                {
                    return Ok(());
                }
                last = event.last_position();
                let is_result = event.is_result();
                let message = match &cut {
                    Some(cut) => pb::BuildEvent::from(cut),
                    None => received.message.clone(),
                };
                if sender.send(Ok(message)).await.is_err() || is_result {
                    return Ok(());
                }
            }
            Ok(Err(ended)) => return Err(Status::unavailable(ended)),
            Err(_idle) => {
                // a build can end without a result on the bus (errored before any worker
                // ran it, or the publish failed): after one more quiet period, answer from
                // Postgres
                let current = state
                    .store
                    .get_build(build.id)
                    .await
                    .map_err(AdminError::from)?;
                if quiet.answer_from_store(current.state.is_final()) {
                    return replay_final(&state.store, &current, last, sender).await;
                }
            }
        }
    }
}

/// Whether a result event from the bus agrees with the build row; one that does not is
/// logged and dropped (the real result, or the row once final, ends the stream).
async fn result_agrees(store: &Store, event: &BuildEvent) -> Result<bool, Status> {
    let row = store
        .get_build(event.build_id)
        .await
        .map_err(AdminError::from)?;
    match check_bus_result(event, &row) {
        Ok(()) => Ok(true),
        Err(why) => {
            tracing::warn!(
                build_id = event.build_id.get(),
                attempt = event.attempt.get(),
                seq = event.seq.get(),
                %why,
                "dropped a result event from the log bus that disagrees with Postgres (forged?)"
            );
            Ok(false)
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
    let attempt = build.attempt;
    let Some(after) = replay_after(attempt, resume_after) else {
        return Ok(());
    };
    if attempt != Attempt::NONE && send_pruned(store, build, attempt, after, sender).await? {
        return Ok(());
    }
    let sent = if attempt == Attempt::NONE {
        Sent::nothing(after)
    } else {
        match send_stored(store, build.id, attempt, after, sender).await? {
            Some(sent) => sent,
            None => return Ok(()),
        }
    };
    if !sent.result {
        let _ = send(sender, &result_event(build, attempt, sent.next_seq())).await;
    }
    Ok(())
}

/// When the build's log was pruned (`--keep-logs`), sends a line saying so and the result
/// from the build row, and returns true; false (nothing sent) while the log is kept.
async fn send_pruned(
    store: &Store,
    build: &Build,
    attempt: Attempt,
    after: Seq,
    sender: &mpsc::Sender<Result<pb::BuildEvent, Status>>,
) -> Result<bool, Status> {
    let Some(pruned_at) = store
        .log_pruned_at(build.id)
        .await
        .map_err(AdminError::from)?
    else {
        return Ok(false);
    };
    for event in &pruned_log(build, attempt, after, pruned_at) {
        if send(sender, event).await.is_err() {
            break;
        }
    }
    Ok(true)
}

/// Sends the stored events of `attempt` after `after`, in order, one page at a time (never
/// the whole log in memory). `None` when the client left.
async fn send_stored(
    store: &Store,
    build_id: BuildId,
    attempt: Attempt,
    after: Seq,
    sender: &mpsc::Sender<Result<pb::BuildEvent, Status>>,
) -> Result<Option<Sent>, Status> {
    let mut sent = Sent::nothing(after);
    loop {
        let page = store
            .events(
                build_id,
                attempt,
                sent.last_seq,
                // no upper bound
                Seq::from(u64::MAX),
                REPLAY_PAGE,
            )
            .await
            .map_err(AdminError::from)?;
        for event in &page {
            if send(sender, event).await.is_err() {
                return Ok(None);
            }
            sent.record(event);
        }
        if !more_pages(page.len()) {
            return Ok(Some(sent));
        }
    }
}

/// Replays an attempt that a later one replaced, then a result saying it was replaced.
async fn replay_earlier_attempt(
    store: &Store,
    build: &Build,
    attempt: Attempt,
    resume_after: Position,
    sender: &mpsc::Sender<Result<pb::BuildEvent, Status>>,
) -> Result<(), Status> {
    let Some(after) = replay_after(attempt, resume_after) else {
        return Ok(());
    };
    if send_pruned(store, build, attempt, after, sender).await? {
        return Ok(());
    }
    let Some(sent) = send_stored(store, build.id, attempt, after, sender).await? else {
        return Ok(());
    };
    let _ = send(sender, &replaced_result(build.id, attempt, &sent)).await;
    Ok(())
}

/// Sends the events of `gap` that the bus lost (published while NATS was away, or
/// discarded by its limits), from Postgres, one page at a time (a gap may be most of a
/// long log). The worker stores events a moment after it publishes them, so a gap is waited
/// for up to [`plan::GAP_WAIT`]; what is still missing then stays missing (the CLI's log
/// check reports it). `Err(())` in the `Ok`: the client left.
async fn send_gap(
    store: &Store,
    build_id: BuildId,
    gap: Gap,
    sender: &mpsc::Sender<Result<pb::BuildEvent, Status>>,
) -> Result<Result<(), ()>, Status> {
    let wait = GapWait::start(&gap);
    let mut sent = Sent::nothing(gap.after);
    let mut found = 0u64;
    loop {
        let page = store
            .events(
                build_id,
                gap.attempt,
                sent.last_seq,
                gap.before,
                REPLAY_PAGE,
            )
            .await
            .map_err(AdminError::from)?;
        for event in &page {
            if send(sender, event).await.is_err() {
                return Ok(Err(()));
            }
            sent.record(event);
            found += plan::numbers_in(event);
        }
        if more_pages(page.len()) {
            continue;
        }
        match wait.check(found) {
            GapFill::Wait => tokio::time::sleep(plan::GAP_RETRY).await,
            GapFill::Complete => return Ok(Ok(())),
            GapFill::Incomplete { still_missing } => {
                tracing::warn!(
                    build_id = build_id.get(),
                    attempt = gap.attempt.get(),
                    missing = still_missing,
                    "events lost from the log bus are not in Postgres either"
                );
                return Ok(Ok(()));
            }
        }
    }
}
