//! The log of one build attempt: numbers its events, publishes each to the log bus at once,
//! and stores them in Postgres in batches (every [`FLUSH_EVENTS`] events or [`FLUSH_EVERY`]),
//! the same events in both. It keeps the log digest the result carries, applies the build's
//! log limits (bytes and lines) to script output, masks Ocelot's own lines (script output arrives masked), and
//! stops writing once a newer attempt owns the build (fencing).
//!
//! Postgres being away does not lose the log: writes wait out an outage for the worker's
//! store-outage budget; past it the build goes on and its events wait in memory (bounded by
//! the log limit) until Postgres answers again. The result is stored with the events not
//! yet stored, in one transaction, so a final build always has its whole log.

use crate::log_limit::{Admission, LogLimit};
use crate::log_sink::LogSink;
use ocelot_core::events::{BuildEvent, EventKind, LogDigest};
use ocelot_core::ids::{Attempt, BuildId, Seq};
use ocelot_core::model::{LogStream, unix_ms};
use ocelot_core::queue::{Bus, PublishAckFuture};
use ocelot_core::secrets::mask::Masker;
use ocelot_core::store::{Appended, Store, StoreError, retrying};
use std::time::{Duration, Instant, SystemTime};

/// The system lines before the first stage (and after the last) belong to this pseudo-stage.
pub(crate) const SETUP_STAGE: &str = "setup";

const FLUSH_EVENTS: usize = 500;
const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// Publish acknowledgements awaited at once; more in flight wait for a flush.
const MAX_PENDING_ACKS: usize = 1000;
/// How long a flush waits for JetStream to acknowledge what it was sent.
const ACK_DEADLINE: Duration = Duration::from_secs(10);

/// Where the attempt's result went.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Finished {
    /// Stored with the rest of the log, and published.
    Recorded,
    /// A newer attempt (or a final state) owns the build.
    FencedOut,
    /// Postgres could not be reached: the build is still running there.
    NotRecorded,
}

pub(crate) struct AttemptLog {
    bus: Bus,
    store: Store,
    build_id: BuildId,
    attempt: Attempt,
    seq: Seq,
    digest: LogDigest,
    /// Published, not yet stored, in order.
    unstored: Vec<BuildEvent>,
    pending_acks: Vec<PublishAckFuture>,
    last_flush: Instant,
    /// Set once Postgres said a newer attempt owns the build: this one writes no more.
    fenced_out: bool,
    /// Set while Postgres stays away past the budget: writes are tried once per flush.
    store_down: bool,
    store_outage_budget: Duration,
    /// Hides the build's secret values in Ocelot's own lines.
    masker: Masker,
    limit: LogLimit,
}

impl std::fmt::Debug for AttemptLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttemptLog")
            .field("build_id", &self.build_id)
            .field("attempt", &self.attempt)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl AttemptLog {
    pub(crate) fn new(
        bus: Bus,
        store: Store,
        build_id: BuildId,
        attempt: Attempt,
        limit: LogLimit,
        store_outage_budget: Duration,
    ) -> Self {
        AttemptLog {
            bus,
            store,
            build_id,
            attempt,
            seq: Seq::START,
            digest: LogDigest::new(),
            unstored: Vec::new(),
            pending_acks: Vec::new(),
            last_flush: Instant::now(),
            fenced_out: false,
            store_down: false,
            store_outage_budget,
            masker: Masker::default(),
            limit,
        }
    }

    /// From now on, Ocelot's own lines are masked with `masker`.
    pub(crate) fn set_masker(&mut self, masker: Masker) {
        self.masker = masker;
    }

    pub(crate) fn fenced_out(&self) -> bool {
        self.fenced_out
    }

    /// Publishes one event (stored with the next batch) and returns its sequence number.
    pub(crate) async fn emit(&mut self, kind: EventKind) -> Seq {
        let event = self.next_event(kind);
        let seq = event.seq;
        self.publish(&event).await;
        self.unstored.push(event);
        if self.unstored.len() >= FLUSH_EVENTS
            || self.pending_acks.len() >= MAX_PENDING_ACKS
            || self.last_flush.elapsed() >= FLUSH_EVERY
        {
            self.flush().await;
        }
        seq
    }

    /// A line written by Ocelot itself (masked: it may quote a URL or a command).
    pub(crate) async fn system(&mut self, stage: &str, text: impl Into<String>) {
        let text = text.into();
        let text = if self.masker.is_empty() {
            text
        } else {
            self.masker.mask_line(&text)
        };
        self.emit(EventKind::Line {
            stage: stage.to_string(),
            stream: LogStream::System,
            text,
        })
        .await;
    }

    /// Stores what is not stored yet and waits for pending publishes.
    pub(crate) async fn flush(&mut self) {
        self.last_flush = Instant::now();
        self.store_unstored().await;
        self.await_acks().await;
    }

    /// Ends the log: a line on output that was not kept, then the result, stored with every
    /// event not stored yet in one transaction and published once stored.
    pub(crate) async fn finish(
        &mut self,
        state: ocelot_core::BuildState,
        reason: Option<&str>,
        duration_ms: i64,
    ) -> Finished {
        if let Some(report) = self.limit.report() {
            self.system(SETUP_STAGE, report).await;
        }
        self.await_acks().await;
        if self.fenced_out {
            return Finished::FencedOut;
        }
        let result = self.next_event(EventKind::Result {
            state,
            reason: reason.unwrap_or_default().to_string(),
            duration_ms,
            line_count: self.digest.count(),
            log_sha256: self.digest.hex(),
        });
        let mut events = std::mem::take(&mut self.unstored);
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
                    self.publish(result).await;
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
                self.fenced_out = true;
                Finished::FencedOut
            }
            Err(error) => {
                tracing::error!(build_id = build_id.get(), %error, "the result could not be recorded");
                Finished::NotRecorded
            }
        }
    }

    fn next_event(&mut self, kind: EventKind) -> BuildEvent {
        self.seq = self.seq.next();
        if let EventKind::Line { text, .. } = &kind {
            self.digest.add_line(text);
        }
        BuildEvent {
            build_id: self.build_id,
            attempt: self.attempt,
            seq: self.seq,
            at_ms: unix_ms(SystemTime::now()),
            kind,
        }
    }

    async fn publish(&mut self, event: &BuildEvent) {
        if self.fenced_out {
            return;
        }
        match self.bus.publish_event(event).await {
            Ok(ack) => self.pending_acks.push(ack),
            Err(error) => {
                tracing::warn!(build_id = self.build_id.get(), %error, "log event not published (Postgres keeps it)");
            }
        }
    }

    async fn store_unstored(&mut self) {
        if self.unstored.is_empty() || self.fenced_out {
            return;
        }
        // a restart of Postgres must not lose events: the output waits meanwhile; past the
        // budget, one try per flush while the events wait in memory
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
                self.unstored.clear();
            }
            Ok(Appended::FencedOut) => {
                tracing::warn!(
                    build_id = build_id.get(),
                    attempt = attempt.get(),
                    "a newer attempt owns the build: this attempt stops writing"
                );
                self.fenced_out = true;
                self.unstored.clear();
            }
            Err(error) if error.is_transient() => {
                if !self.store_down {
                    tracing::warn!(build_id = build_id.get(), %error, "Postgres is still away: the build goes on, its log waits in memory until Postgres is back");
                }
                self.store_down = true;
            }
            Err(error) => self.give_up(&error),
        }
    }

    /// A write Postgres refused for good (not an outage): the events stay on the bus only.
    fn give_up(&mut self, error: &StoreError) {
        tracing::error!(build_id = self.build_id.get(), %error, events = self.unstored.len(), "log events refused by Postgres (they stay on the log bus)");
        self.unstored.clear();
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

impl LogSink for AttemptLog {
    fn log_full(&self) -> bool {
        self.limit.is_full()
    }

    fn output_dropped(&mut self, bytes: usize) {
        self.limit.count_dropped(bytes);
    }

    async fn output_line(&mut self, stage: &str, stream: LogStream, text: String) {
        let text = match self.limit.admit(&text) {
            Admission::Keep => text,
            Admission::Marker(marker) => {
                return self.system(stage, marker).await;
            }
            Admission::Drop => return,
        };
        self.emit(EventKind::Line {
            stage: stage.to_string(),
            stream,
            text,
        })
        .await;
    }
}
