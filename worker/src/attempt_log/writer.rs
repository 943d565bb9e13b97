//! The attempt log's writer task: takes the attempt's events in order, gathers them into
//! batches (bounded by [`BATCH_EVENTS`], [`BATCH_BYTES`] and [`LINGER`], so a lone line of
//! a slow build goes out at once), merges runs of lines of one stage and stream, publishes
//! each batch as one bus message and stores the same events in Postgres, several batches per
//! write (every [`STORE_EVERY`] or [`STORE_BYTES`]).
//!
//! Postgres being away does not lose the log: writes wait out an outage for the worker's
//! store-outage budget; past it the build goes on and its events wait in memory (bounded by
//! the log limit) until Postgres answers again. The result is stored with the events not
//! yet stored, in one transaction, so a final build always has its whole log.

use super::Finished;
use ocelot_core::events::{BuildEvent, EventKind};
use ocelot_core::ids::{Attempt, BuildId};
use ocelot_core::queue::{Bus, PublishAckFuture};
use ocelot_core::store::{Appended, Store, StoreError, retrying};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// How long a batch waits for more events after its first: a slow build's line is on the
/// bus this long after it was printed, at most.
const LINGER: Duration = Duration::from_millis(5);
/// Events in one bus message, at most (runs of lines count one each).
const BATCH_EVENTS: usize = 512;
/// Bytes of text in one bus message, about.
const BATCH_BYTES: usize = 512 * 1024;
/// A run of lines grows by merging up to this size (one line may be longer).
const RUN_BYTES: usize = 64 * 1024;
/// How long published events wait to be stored, at most.
const STORE_EVERY: Duration = Duration::from_millis(250);
/// Bytes of published events that are stored without waiting for [`STORE_EVERY`].
const STORE_BYTES: usize = 4 * 1024 * 1024;
/// Publish acknowledgements awaited at once; more in flight wait for them.
const MAX_PENDING_ACKS: usize = 64;
/// How long the writer waits for JetStream to acknowledge what it was sent.
const ACK_DEADLINE: Duration = Duration::from_secs(10);

/// What the attempt log asks of its writer, in order with its events.
pub(super) enum Command {
    Event(BuildEvent),
    /// Publish and store everything so far, then answer.
    Flush(oneshot::Sender<()>),
    /// Store everything with this result in one transaction, publish it, then answer.
    Finish(BuildEvent, oneshot::Sender<Finished>),
}

pub(super) struct Writer {
    bus: Bus,
    store: Store,
    build_id: BuildId,
    attempt: Attempt,
    /// Not yet published, in order.
    batch: Vec<BuildEvent>,
    batch_bytes: usize,
    /// Published, not yet stored, in order.
    unstored: Vec<BuildEvent>,
    unstored_bytes: usize,
    /// When the oldest unstored event was published.
    unstored_since: Option<Instant>,
    pending_acks: Vec<PublishAckFuture>,
    /// Set once Postgres said a newer attempt owns the build: this one writes no more.
    fenced_out: Arc<AtomicBool>,
    /// Set while Postgres stays away past the budget: writes are tried once per store.
    store_down: bool,
    store_outage_budget: Duration,
}

/// The size an event adds to a batch: its text, about.
fn event_bytes(event: &BuildEvent) -> usize {
    match &event.kind {
        EventKind::Lines { text, .. } | EventKind::Line { text, .. } => text.len() + 64,
        _ => 256,
    }
}

/// Counts a batch's lines and their bytes (`ocelot_log_lines_total`, `ocelot_log_bytes_total`):
/// once per batch, never per line.
fn record_output(batch: &[BuildEvent]) {
    let (mut lines, mut bytes) = (0u64, 0u64);
    for event in batch {
        match &event.kind {
            EventKind::Lines { text, .. } => {
                lines += ocelot_core::events::run_line_count(text);
                bytes += text.len() as u64;
            }
            EventKind::Line { text, .. } => {
                lines += 1;
                bytes += text.len() as u64;
            }
            _ => {}
        }
    }
    ocelot_core::metrics::log_output(lines, bytes);
}

/// Appends `next` to `last` when both are runs of one stage and stream that follow each
/// other and the merged run stays small; gives `next` back otherwise.
fn merge(last: &mut BuildEvent, next: BuildEvent) -> Option<BuildEvent> {
    let (
        EventKind::Lines {
            stage,
            stream,
            text,
        },
        EventKind::Lines {
            stage: next_stage,
            stream: next_stream,
            text: next_text,
        },
    ) = (&mut last.kind, &next.kind)
    else {
        return Some(next);
    };
    if stage != next_stage
        || stream != next_stream
        || text.len() + next_text.len() > RUN_BYTES
        || last.seq.get() + ocelot_core::events::run_line_count(text) != next.seq.get()
    {
        return Some(next);
    }
    text.push_str(next_text);
    None
}

impl Writer {
    pub(super) fn new(
        bus: Bus,
        store: Store,
        build_id: BuildId,
        attempt: Attempt,
        fenced_out: Arc<AtomicBool>,
        store_outage_budget: Duration,
    ) -> Self {
        Writer {
            bus,
            store,
            build_id,
            attempt,
            batch: Vec::new(),
            batch_bytes: 0,
            unstored: Vec::new(),
            unstored_bytes: 0,
            unstored_since: None,
            pending_acks: Vec::new(),
            fenced_out,
            store_down: false,
            store_outage_budget,
        }
    }

    fn fenced_out(&self) -> bool {
        self.fenced_out.load(Ordering::Relaxed)
    }

    /// Runs until the attempt log is dropped; what it holds then is published and stored.
    pub(super) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        loop {
            // idle: wait for an event, storing what waits once it is due
            let first = match self.store_due_at() {
                Some(due) => match tokio::time::timeout_at(due, commands.recv()).await {
                    Ok(command) => command,
                    Err(_) => {
                        self.store_unstored().await;
                        continue;
                    }
                },
                None => commands.recv().await,
            };
            let Some(first) = first else {
                self.flush().await;
                return;
            };
            if !self.take(first).await {
                continue;
            }
            // gather more until the batch is full or has lingered long enough
            let deadline = Instant::now() + LINGER;
            let mut open = true;
            while open && !self.batch_full() {
                match tokio::time::timeout_at(deadline, commands.recv()).await {
                    Ok(Some(command)) => open = self.take(command).await,
                    Ok(None) | Err(_) => break,
                }
            }
            self.publish_batch().await;
            if self.store_due_at().is_some_and(|due| due <= Instant::now())
                || self.unstored_bytes >= STORE_BYTES
            {
                self.store_unstored().await;
            }
        }
    }

    /// Takes one command; false when it was answered (the batch went out with it).
    async fn take(&mut self, command: Command) -> bool {
        match command {
            Command::Event(event) => {
                self.add(event);
                true
            }
            Command::Flush(answer) => {
                self.flush().await;
                let _ = answer.send(());
                false
            }
            Command::Finish(result, answer) => {
                let finished = self.finish(result).await;
                let _ = answer.send(finished);
                false
            }
        }
    }

    fn add(&mut self, event: BuildEvent) {
        self.batch_bytes += event_bytes(&event);
        let event = match self.batch.last_mut() {
            Some(last) => merge(last, event),
            None => Some(event),
        };
        self.batch.extend(event);
    }

    fn batch_full(&self) -> bool {
        self.batch.len() >= BATCH_EVENTS || self.batch_bytes >= BATCH_BYTES
    }

    fn store_due_at(&self) -> Option<Instant> {
        self.unstored_since.map(|since| since + STORE_EVERY)
    }

    /// Publishes the batch as one message; its events wait to be stored.
    async fn publish_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        record_output(&batch);
        self.publish(&batch).await;
        self.unstored_bytes += std::mem::take(&mut self.batch_bytes);
        self.unstored_since.get_or_insert_with(Instant::now);
        self.unstored.extend(batch);
        if self.pending_acks.len() >= MAX_PENDING_ACKS {
            self.await_acks().await;
        }
    }

    async fn publish(&mut self, events: &[BuildEvent]) {
        if self.fenced_out() {
            return;
        }
        match self.bus.publish_events(self.build_id, events).await {
            Ok(ack) => self.pending_acks.push(ack),
            Err(error) => {
                ocelot_core::metrics::bus_error(ocelot_core::metrics::BusOperation::PublishLog);
                tracing::warn!(build_id = self.build_id.get(), %error, "log events not published (Postgres keeps them)");
            }
        }
    }

    /// Publishes and stores everything so far, and waits for pending publishes.
    async fn flush(&mut self) {
        self.publish_batch().await;
        self.store_unstored().await;
        self.await_acks().await;
    }

    /// Stores every event left with the result in one transaction; publishes the result
    /// once stored.
    async fn finish(&mut self, result: BuildEvent) -> Finished {
        self.publish_batch().await;
        self.await_acks().await;
        if self.fenced_out() {
            return Finished::FencedOut;
        }
        let mut events = std::mem::take(&mut self.unstored);
        self.unstored_bytes = 0;
        self.unstored_since = None;
        events.push(result);
        let (build_id, attempt) = (self.build_id, self.attempt);
        let store = &self.store;
        let recorded = retrying("recording the result", self.store_outage_budget, || {
            store.finish_attempt(build_id, attempt, &events)
        })
        .await;
        match recorded {
            Ok(Appended::Stored) => {
                if let Some(result) = events.last() {
                    self.publish(std::slice::from_ref(result)).await;
                }
                self.await_acks().await;
                Finished::Recorded
            }
            Ok(Appended::FencedOut) => {
                tracing::warn!(
                    build_id = build_id.get(),
                    attempt = attempt.get(),
                    "the build is no longer this attempt's (a newer attempt, or it was ended): result dropped"
                );
                self.fenced_out.store(true, Ordering::Relaxed);
                Finished::FencedOut
            }
            Err(error) => {
                tracing::error!(build_id = build_id.get(), %error, "the result could not be recorded");
                Finished::NotRecorded
            }
        }
    }

    async fn store_unstored(&mut self) {
        if self.unstored.is_empty() || self.fenced_out() {
            self.stored();
            return;
        }
        // a restart of Postgres must not lose events: the output waits meanwhile; past the
        // budget, one try per store while the events wait in memory
        let budget = if self.store_down {
            Duration::ZERO
        } else {
            self.store_outage_budget
        };
        let (build_id, attempt) = (self.build_id, self.attempt);
        let store = &self.store;
        let events = &self.unstored;
        let stored = retrying("storing log events", budget, || {
            store.append_events(build_id, attempt, events)
        })
        .await;
        match stored {
            Ok(Appended::Stored) => {
                if self.store_down {
                    tracing::info!(
                        build_id = build_id.get(),
                        events = self.unstored.len(),
                        "Postgres is back: the events kept meanwhile are stored"
                    );
                }
                self.store_down = false;
                self.stored();
            }
            Ok(Appended::FencedOut) => {
                tracing::warn!(
                    build_id = build_id.get(),
                    attempt = attempt.get(),
                    "a newer attempt owns the build: this attempt stops writing"
                );
                self.fenced_out.store(true, Ordering::Relaxed);
                self.stored();
            }
            Err(error) if error.is_transient() => {
                if !self.store_down {
                    tracing::warn!(build_id = build_id.get(), %error, "Postgres is still away: the build goes on, its log waits in memory until Postgres is back");
                }
                self.store_down = true;
                // tried again after another STORE_EVERY
                self.unstored_since = Some(Instant::now());
            }
            Err(error) => self.give_up(&error),
        }
    }

    /// The unstored events are done with.
    fn stored(&mut self) {
        self.unstored.clear();
        self.unstored_bytes = 0;
        self.unstored_since = None;
    }

    /// A write Postgres refused for good (not an outage): the events stay on the bus only.
    fn give_up(&mut self, error: &StoreError) {
        tracing::error!(build_id = self.build_id.get(), %error, events = self.unstored.len(), "log events refused by Postgres (they stay on the log bus)");
        self.stored();
    }

    async fn await_acks(&mut self) {
        if self.pending_acks.is_empty() {
            return;
        }
        let acks = futures::future::join_all(
            self.pending_acks
                .drain(..)
                .map(std::future::IntoFuture::into_future),
        );
        match tokio::time::timeout(ACK_DEADLINE, acks).await {
            Ok(results) => {
                let failed = results.iter().filter(|r| r.is_err()).count();
                if failed > 0 {
                    tracing::warn!(
                        build_id = self.build_id.get(),
                        failed,
                        "log events not acknowledged by JetStream (Postgres keeps them)"
                    );
                }
            }
            Err(_) => {
                tracing::warn!(
                    build_id = self.build_id.get(),
                    "JetStream did not acknowledge log events in time (Postgres keeps them)"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocelot_core::ids::Seq;
    use ocelot_core::model::LogStream;

    fn run(seq: u64, stream: LogStream, text: &str) -> BuildEvent {
        BuildEvent {
            build_id: BuildId::from(1),
            attempt: Attempt::FIRST,
            seq: Seq::from(seq),
            at_ms: 0,
            kind: EventKind::Lines {
                stage: "build".into(),
                stream,
                text: text.into(),
            },
        }
    }

    #[test]
    fn runs_that_follow_each_other_merge() {
        let mut last = run(3, LogStream::Stdout, "a\nb\n");
        assert!(merge(&mut last, run(5, LogStream::Stdout, "c\n")).is_none());
        assert_eq!(last, run(3, LogStream::Stdout, "a\nb\nc\n"));
        assert_eq!(last.last_seq(), Seq::from(5));
    }

    #[test]
    fn other_streams_gaps_and_big_runs_do_not_merge() {
        let mut last = run(3, LogStream::Stdout, "a\n");
        assert!(merge(&mut last, run(4, LogStream::Stderr, "b\n")).is_some());
        assert!(merge(&mut last, run(5, LogStream::Stdout, "b\n")).is_some());
        let big = "x".repeat(RUN_BYTES) + "\n";
        assert!(merge(&mut last, run(4, LogStream::Stdout, &big)).is_some());
        assert_eq!(last, run(3, LogStream::Stdout, "a\n"));
    }
}
