//! `ocelot watch BUILD`: the whole log from line 1, live until the result. A stream that
//! breaks (the admin restarted, the connection dropped) is resumed after the last event
//! received, from this admin or another one, so no line is shown twice or skipped.

use crate::args::WatchArgs;
use crate::client::{self, AdminTarget, CliError};
use crate::exit::ExitStatus;
use crate::render::Renderer;
use backon::BackoffBuilder;
use ocelot_domain::events::Position;
use ocelot_proto::v1::{BuildEvent, WatchBuildRequest};
use std::time::{Duration, Instant};

/// How long a broken stream is retried before `ocelot watch` gives up.
const RECONNECT_FOR: Duration = Duration::from_secs(300);
/// A stream open this long counts as a recovery, even if its build was quiet.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// `Internal` or `Unknown` answers in a row that are retried: a dropped connection shows
/// as one, a server-side fault as many.
const DOUBTFUL_TRIES: u32 = 5;

pub(crate) async fn run(admin: &AdminTarget, args: WatchArgs) -> Result<ExitStatus, CliError> {
    let client = client::connect(admin).await?;
    follow_attempt(
        admin,
        client,
        args.build,
        args.attempt.unwrap_or(0),
        args.json,
    )
    .await
}

/// Where a received event stands in the build's log.
fn position(event: &BuildEvent) -> Position {
    Position {
        attempt: event.attempt,
        seq: event.seq,
    }
}

/// Why a stream stopped before the build's result.
enum Broken {
    /// Worth another try: the admin or the connection went away.
    Retry(String),
    /// A dropped connection, or a fault of the admin's: worth a few tries.
    Doubtful(CliError),
    /// The admin refused: retrying cannot help.
    Fatal(CliError),
}

fn broken(status: tonic::Status) -> Broken {
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

/// Streams the build's events through a renderer; the exit status reports its result.
/// A broken stream is resumed after the last event received for up to [`RECONNECT_FOR`].
pub(crate) async fn follow(
    admin: &AdminTarget,
    client: client::Client,
    build_id: i64,
    json: bool,
) -> Result<ExitStatus, CliError> {
    follow_attempt(admin, client, build_id, 0, json).await
}

/// [`follow`] of one attempt (`0`: the build's current one).
async fn follow_attempt(
    admin: &AdminTarget,
    client: client::Client,
    build_id: i64,
    attempt: u32,
    json: bool,
) -> Result<ExitStatus, CliError> {
    let mut renderer = Renderer::new(json, build_id);
    let mut last = Position::default();
    let mut client = Some(client);
    // when the current outage began, and the delays between tries
    let mut outage: Option<Instant> = None;
    let mut delays = reconnect_delays();
    let mut doubtful_in_a_row = 0;
    loop {
        let mut opened: Option<Instant> = None;
        let stream_client = match client.take() {
            Some(client) => Ok(client),
            None => client::connect(admin).await,
        };
        let stopped = match stream_client {
            Ok(mut stream_client) => {
                let request = WatchBuildRequest {
                    id: build_id,
                    after_attempt: last.attempt,
                    after_seq: last.seq,
                    attempt,
                };
                match stream_client.watch_build(request).await {
                    Ok(response) => {
                        opened = Some(Instant::now());
                        let mut stream = response.into_inner();
                        loop {
                            match stream.message().await {
                                Ok(Some(event)) => {
                                    // a resumed stream starts after `last`; never show a line twice
                                    if position(&event) <= last {
                                        continue;
                                    }
                                    last = position(&event);
                                    doubtful_in_a_row = 0;
                                    if outage.take().is_some() {
                                        delays = reconnect_delays();
                                        eprintln!(
                                            "ocelot: reconnected: the log of build {build_id} goes on"
                                        );
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
            Err(error) if error.status == ExitStatus::Unreachable => Broken::Retry(error.message),
            Err(error) => Broken::Fatal(error),
        };
        // a stream that stayed open a while was a recovery, even without events
        if opened.is_some_and(|at| at.elapsed() >= STABLE_AFTER) {
            outage = None;
            delays = reconnect_delays();
            doubtful_in_a_row = 0;
        }
        let reason = match stopped {
            Broken::Fatal(error) => {
                renderer.interrupted();
                return Err(error);
            }
            Broken::Doubtful(error) => {
                doubtful_in_a_row += 1;
                if doubtful_in_a_row > DOUBTFUL_TRIES {
                    renderer.interrupted();
                    return Err(error);
                }
                error.message
            }
            Broken::Retry(reason) => reason,
        };
        let began = *outage.get_or_insert_with(|| {
            renderer.interrupted();
            eprintln!("ocelot: the log stream of build {build_id} broke ({reason}): reconnecting");
            Instant::now()
        });
        let delay = delays.next().unwrap_or(Duration::from_secs(5));
        if began.elapsed() + delay > RECONNECT_FOR {
            return Err(CliError::new(
                ExitStatus::Unreachable,
                format!(
                    "the log stream of build {build_id} broke and the admin was not reachable for {} s ({reason}); \
                     `ocelot watch {build_id}` resumes it",
                    RECONNECT_FOR.as_secs()
                ),
            ));
        }
        tokio::time::sleep(delay).await;
    }
}

/// 200 ms, doubling with jitter, at most 5 s apart.
fn reconnect_delays() -> impl Iterator<Item = Duration> {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build()
}
