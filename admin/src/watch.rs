//! WatchBuild: a finished build is replayed from Postgres; a queued or running one is
//! replayed from the first event of its log subject, then followed live until its result.
//! A spawned producer feeds an mpsc channel; a failed send means the client left.

use crate::AppState;
use crate::error::AdminError;
use ocelot_core::events::{BuildEvent, EventKind};
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

pub(crate) async fn watch(
    state: &AppState,
    build_id: i64,
) -> Result<Response<EventStream>, Status> {
    let build = state
        .store
        .get_build(build_id)
        .await
        .map_err(AdminError::from)?;
    let (sender, receiver) = mpsc::channel::<Result<pb::BuildEvent, Status>>(256);
    let state = state.clone();
    tokio::spawn(async move {
        let outcome = if build.state.is_final() {
            replay_from_store(&state.store, &build, &sender).await
        } else {
            follow_live(&state, &build, &sender).await
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
    sender: &mpsc::Sender<Result<pb::BuildEvent, Status>>,
) -> Result<(), Status> {
    let mut subscription = state
        .bus
        .subscribe_events(build.id)
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    // the newest attempt seen and the last event sent of it
    let mut last: Option<(u32, u64)> = None;
    let mut final_in_store = false;
    loop {
        let next = tokio::select! {
            // the client left: stop following
            () = sender.closed() => return Ok(()),
            next = tokio::time::timeout(IDLE_CHECK, subscription.next()) => next,
        };
        match next {
            Ok(Some(Ok(event))) => {
                // events of an attempt that a newer one replaced are not part of the log
                if last.is_some_and(|(attempt, _)| event.attempt < attempt) {
                    continue;
                }
                last = Some((event.attempt, event.seq));
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
    last: Option<(u32, u64)>,
    sender: &mpsc::Sender<Result<pb::BuildEvent, Status>>,
) -> Result<(), Status> {
    let attempt = u32::try_from(build.attempt).unwrap_or(0);
    let (seen_attempt, seen_seq) = last.unwrap_or((0, 0));
    let after = if seen_attempt == attempt { seen_seq } else { 0 };
    let mut next_seq = after + 1;
    if attempt > 0 {
        let lines = store
            .lines(build.id, build.attempt)
            .await
            .map_err(AdminError::from)?;
        for line in lines
            .into_iter()
            .filter(|l| u64::try_from(l.seq).unwrap_or(0) > after)
        {
            let seq = u64::try_from(line.seq).unwrap_or(0);
            next_seq = next_seq.max(seq + 1);
            let event = BuildEvent {
                build_id: build.id,
                attempt,
                seq,
                at_ms: unix_ms(line.at),
                kind: EventKind::Line {
                    stage: line.stage,
                    stream: line.stream,
                    text: line.text,
                },
            };
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
    sender: &mpsc::Sender<Result<pb::BuildEvent, Status>>,
) -> Result<(), Status> {
    let attempt = u32::try_from(build.attempt).unwrap_or(0);
    if attempt == 0 {
        let _ = send(sender, &result_event(build, 0, 1)).await;
        return Ok(());
    }
    let stages = store
        .stages(build.id, build.attempt)
        .await
        .map_err(AdminError::from)?;
    let lines = store
        .lines(build.id, build.attempt)
        .await
        .map_err(AdminError::from)?;
    let event = |seq: i64, at: Option<SystemTime>, kind: EventKind| BuildEvent {
        build_id: build.id,
        attempt,
        seq: u64::try_from(seq).unwrap_or(0),
        at_ms: at.map(unix_ms).unwrap_or(0),
        kind,
    };
    let mut events = vec![event(
        1,
        build.started_at,
        EventKind::AttemptStarted {
            worker: build.worker.clone().unwrap_or_default(),
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
    events.sort_by_key(|e| e.seq);
    let last_seq = events.last().map(|e| e.seq).unwrap_or(0);
    for event in &events {
        if send(sender, event).await.is_err() {
            return Ok(());
        }
    }
    let _ = send(sender, &result_event(build, attempt, last_seq + 1)).await;
    Ok(())
}
