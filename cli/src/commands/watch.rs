//! `ocelot watch [BUILD]`: the whole log from line 1, live until the result (`BUILD`: an
//! id, `latest` or a commit prefix, see `resolve`). A stream that breaks (the admin
//! restarted, the connection dropped) is resumed after the last event received, from this
//! admin or another one, so no line is shown twice or skipped.

mod pending;
mod resume;

use crate::args::WatchArgs;
use crate::client::{self, AdminTarget, CliError};
use crate::exit::ExitStatus;
use crate::render::Renderer;
use ocelot_domain::events::{Position, run_line_count, run_slice};
use ocelot_domain::ids::{Attempt, BuildId};
use ocelot_proto::v1::BuildEvent;
use ocelot_proto::v1::build_event::Kind;
use pending::{Waiting, next_reason};
use resume::{Broken, Resume, Seen, broken, gave_up, not_connected, reconnect_delays};
use tokio::time::Instant;

pub(crate) async fn run(admin: &AdminTarget, args: WatchArgs) -> Result<ExitStatus, CliError> {
    let mut client = client::connect(admin).await?;
    let build_id = super::resolve::build_id(&mut client, args.build).await?;
    follow_attempt(
        admin,
        client,
        build_id,
        args.attempt.map_or(Attempt::NONE, Attempt::from),
        args.json,
        args.services,
        args.stage,
    )
    .await
}

/// Where a received event ends in the build's log: its last line for a run of lines.
fn last_position(event: &BuildEvent) -> Position {
    let lines = match &event.kind {
        Some(Kind::Lines(lines)) => run_line_count(&lines.text).saturating_sub(1),
        _ => 0,
    };
    Position {
        attempt: event.attempt.into(),
        seq: event.seq.saturating_add(lines).into(),
    }
}

/// What of `event` is new after `last` (the last event shown): all of it, the lines of a
/// run after `last`, or nothing (`None`).
fn new_part(mut event: BuildEvent, last: Position) -> Option<BuildEvent> {
    if last_position(&event) <= last {
        return None;
    }
    let first = Position {
        attempt: event.attempt.into(),
        seq: event.seq.into(),
    };
    if first > last {
        return Some(event);
    }
    // a run of lines that `last` falls in: its lines after `last`
    let Some(Kind::Lines(lines)) = &mut event.kind else {
        return None;
    };
    let (seq, text) = run_slice(&lines.text, event.seq, last.seq.get(), u64::MAX)?;
    lines.text = text.to_string();
    event.seq = seq;
    Some(event)
}

/// Streams the build's events through a renderer; the exit status reports its result.
/// A broken stream is resumed after the last event received for up to
/// [`resume::RECONNECT_FOR`].
pub(crate) async fn follow(
    admin: &AdminTarget,
    client: client::Client,
    build_id: BuildId,
    json: bool,
) -> Result<ExitStatus, CliError> {
    follow_attempt(admin, client, build_id, Attempt::NONE, json, false, None).await
}

/// [`follow`] of one attempt (`0`: the build's current one). The bookkeeping (where to
/// resume, what to retry, when to give up) is [`Resume`]'s; this loop does the I/O. While
/// the build is queued, people are told why it waits ([`pending`]).
async fn follow_attempt(
    admin: &AdminTarget,
    client: client::Client,
    build_id: BuildId,
    attempt: Attempt,
    json: bool,
    services: bool,
    stage: Option<String>,
) -> Result<ExitStatus, CliError> {
    let mut renderer = Renderer::new(json, build_id, services);
    if let Some(stage) = stage {
        renderer.only_stage(stage);
    }
    let mut resume = Resume::new(reconnect_delays);
    // why a queued build waits: for people, about the build's current attempt
    let mut waiting =
        (!json && attempt == Attempt::NONE).then(|| Waiting::start(client.clone(), build_id));
    let mut client = Some(client);
    loop {
        let mut opened: Option<Instant> = None;
        let stream_client = match client.take() {
            Some(client) => Ok(client),
            None => client::connect(admin).await,
        };
        let stopped = match stream_client {
            Ok(mut stream_client) => {
                match stream_client
                    .watch_build(resume.request(build_id, attempt))
                    .await
                {
                    Ok(response) => {
                        opened = Some(Instant::now());
                        let mut stream = response.into_inner();
                        loop {
                            let message = tokio::select! {
                                message = stream.message() => message,
                                reason = next_reason(&mut waiting) => {
                                    renderer.waiting(&reason);
                                    continue;
                                }
                            };
                            match message {
                                Ok(Some(event)) => {
                                    // a resumed stream starts after the last event shown;
                                    // never show a line twice
                                    let Some(event) = new_part(event, resume.last()) else {
                                        continue;
                                    };
                                    let Seen::New { reconnected } =
                                        resume.seen(last_position(&event))
                                    else {
                                        continue;
                                    };
                                    if reconnected {
                                        eprintln!(
                                            "ocelot: reconnected: the log of build {build_id} goes on"
                                        );
                                    }
                                    if let Err(error) = resume::check_result(build_id, &event) {
                                        renderer.interrupted();
                                        return Err(error);
                                    }
                                    if let Some(state) = renderer.event(&event) {
                                        return Ok(ExitStatus::of_build(state));
                                    }
                                }
                                Ok(None) => {
                                    break Broken::Retry(
                                        "the log stream ended before the result".into(),
                                    );
                                }
                                Err(status) => break broken(status),
                            }
                        }
                    }
                    Err(status) => broken(status),
                }
            }
            // connecting failed: the admin is down, or another is not yet found
            Err(error) => not_connected(error),
        };
        let reason = match resume.stopped(opened, stopped) {
            Ok(reason) => reason,
            Err(error) => {
                renderer.interrupted();
                return Err(error);
            }
        };
        let next = resume.next_try();
        if next.outage_began {
            renderer.interrupted();
            eprintln!("ocelot: the log stream of build {build_id} broke ({reason}): reconnecting");
        }
        let Some(delay) = next.delay else {
            return Err(gave_up(build_id, &reason));
        };
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocelot_proto::v1::LogLines;

    fn run(attempt: u32, seq: u64, text: &str) -> BuildEvent {
        BuildEvent {
            attempt,
            seq,
            at_ms: 0,
            kind: Some(Kind::Lines(LogLines {
                stage: "build".into(),
                stream: 1,
                text: text.into(),
            })),
        }
    }

    fn at(attempt: u32, seq: u64) -> Position {
        Position {
            attempt: attempt.into(),
            seq: seq.into(),
        }
    }

    #[test]
    fn a_run_ends_at_its_last_line() {
        assert_eq!(last_position(&run(1, 5, "a\nb\nc\n")), at(1, 7));
        assert_eq!(last_position(&run(1, 5, "a\n")), at(1, 5));
    }

    #[test]
    fn a_run_that_was_partly_shown_goes_on_after_the_last_line_shown() {
        let event = run(1, 5, "a\nb\nc\n");
        assert_eq!(new_part(event.clone(), at(1, 4)), Some(event.clone()));
        assert_eq!(new_part(event.clone(), at(0, 9)), Some(event.clone()));
        assert_eq!(new_part(event.clone(), at(1, 5)), Some(run(1, 6, "b\nc\n")));
        assert_eq!(new_part(event.clone(), at(1, 6)), Some(run(1, 7, "c\n")));
        assert_eq!(new_part(event.clone(), at(1, 7)), None);
        assert_eq!(new_part(event, at(2, 1)), None);
    }
}
