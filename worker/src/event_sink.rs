//! Numbers the events of one build attempt, publishes each to the log bus at once, and
//! batches the lines into Postgres (every [`FLUSH_LINES`] lines or [`FLUSH_EVERY`]). It also
//! keeps the log digest that the result event carries. A build's output is kept up to
//! `max_log_bytes`: past it, one marker line says so and the rest is counted, not kept (nor
//! held), while the build goes on; Ocelot's own lines are always kept.

use ocelot_core::events::{BuildEvent, EventKind, LogDigest};
use ocelot_core::model::{LogStream, StoredLine, unix_ms};
use ocelot_core::queue::Bus;
use ocelot_core::secrets::mask::Masker;
use ocelot_core::store::Store;
use std::time::{Duration, Instant, SystemTime};

const FLUSH_LINES: usize = 500;
const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// Publish acknowledgements awaited at once; more in flight wait for a flush.
const MAX_PENDING_ACKS: usize = 1000;
/// How long a flush waits for JetStream to acknowledge what it was sent.
const ACK_DEADLINE: Duration = Duration::from_secs(10);
/// How long lines wait for Postgres to come back (a restart) before they are given up.
pub(crate) const STORE_OUTAGE_BUDGET: Duration = Duration::from_secs(60);

pub(crate) struct EventSink {
    bus: Bus,
    store: Store,
    build_id: i64,
    attempt: i32,
    seq: u64,
    digest: LogDigest,
    pending_lines: Vec<StoredLine>,
    pending_acks: Vec<ocelot_core::queue::PublishAckFuture>,
    last_flush: Instant,
    /// Set once Postgres said a newer attempt owns the build: this one writes no more.
    fenced_out: bool,
    /// Hides the build's secret values in every line before it leaves the worker.
    masker: Masker,
    /// The output this build may keep, and how much it kept and dropped.
    max_log_bytes: u64,
    kept_bytes: u64,
    dropped_bytes: u64,
    truncated: bool,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("build_id", &self.build_id)
            .field("attempt", &self.attempt)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl EventSink {
    pub(crate) fn new(
        bus: Bus,
        store: Store,
        build_id: i64,
        attempt: i32,
        max_log_bytes: u64,
    ) -> Self {
        EventSink {
            bus,
            store,
            build_id,
            attempt,
            seq: 0,
            digest: LogDigest::new(),
            pending_lines: Vec::new(),
            pending_acks: Vec::new(),
            last_flush: Instant::now(),
            fenced_out: false,
            masker: Masker::default(),
            max_log_bytes,
            kept_bytes: 0,
            dropped_bytes: 0,
            truncated: false,
        }
    }

    /// Whether the build's output is past its limit: output is only counted now.
    pub(crate) fn log_full(&self) -> bool {
        self.truncated
    }

    /// Counts output that was not kept (read past the limit).
    pub(crate) fn output_dropped(&mut self, bytes: usize) {
        self.dropped_bytes += u64::try_from(bytes).unwrap_or(u64::MAX);
    }

    /// Says, at the end of the build, how much output was not kept.
    pub(crate) async fn report_truncation(&mut self) {
        if self.dropped_bytes > 0 {
            let text = format!(
                "[ocelot: {} bytes of output past the log limit of {} were not kept]",
                self.dropped_bytes,
                human_bytes(self.max_log_bytes)
            );
            self.system(crate::build_runner::SETUP_STAGE, text).await;
        }
    }

    /// Whether an output line is kept: past the limit, it is counted instead (and the
    /// first one past it is replaced by a marker).
    async fn within_limit(&mut self, stage: &str, text: &str) -> bool {
        let bytes = u64::try_from(text.len()).unwrap_or(u64::MAX) + 1;
        if !self.truncated && self.kept_bytes + bytes <= self.max_log_bytes {
            self.kept_bytes += bytes;
            return true;
        }
        self.dropped_bytes += bytes;
        if !self.truncated {
            self.truncated = true;
            let marker = format!(
                "[ocelot: log truncated: this build printed more than {}; the rest of its output is not kept (the build goes on)]",
                human_bytes(self.max_log_bytes)
            );
            self.emit(EventKind::Line {
                stage: stage.to_string(),
                stream: LogStream::System,
                text: marker,
            })
            .await;
        }
        false
    }

    /// From now on, lines are masked with `masker`.
    pub(crate) fn set_masker(&mut self, masker: Masker) {
        self.masker = masker;
    }

    pub(crate) fn fenced_out(&self) -> bool {
        self.fenced_out
    }

    pub(crate) fn digest(&self) -> &LogDigest {
        &self.digest
    }

    /// Publishes one event and returns its sequence number.
    pub(crate) async fn emit(&mut self, kind: EventKind) -> u64 {
        let kind = match kind {
            EventKind::Line {
                stage,
                stream,
                text,
            } if !self.masker.is_empty() => EventKind::Line {
                stage,
                stream,
                text: self.masker.mask_line(&text),
            },
            other => other,
        };
        self.seq += 1;
        let now = SystemTime::now();
        if let EventKind::Line {
            stage,
            stream,
            text,
        } = &kind
        {
            self.digest.add_line(text);
            self.pending_lines.push(StoredLine {
                seq: i64::try_from(self.seq).unwrap_or(i64::MAX),
                stage: stage.clone(),
                stream: *stream,
                text: text.clone(),
                at: now,
            });
        }
        let event = BuildEvent {
            build_id: self.build_id,
            attempt: u32::try_from(self.attempt).unwrap_or(0),
            seq: self.seq,
            at_ms: unix_ms(now),
            kind,
        };
        if !self.fenced_out {
            match self.bus.publish_event(&event).await {
                Ok(ack) => self.pending_acks.push(ack),
                Err(error) => {
                    tracing::warn!(build_id = self.build_id, %error, "log event not published (Postgres keeps it)");
                }
            }
        }
        if self.pending_lines.len() >= FLUSH_LINES
            || self.pending_acks.len() >= MAX_PENDING_ACKS
            || self.last_flush.elapsed() >= FLUSH_EVERY
        {
            self.flush().await;
        }
        self.seq
    }

    /// A line of output or of Ocelot's own.
    pub(crate) async fn line(&mut self, stage: &str, stream: LogStream, text: String) {
        if stream != LogStream::System && !self.within_limit(stage, &text).await {
            return;
        }
        self.emit(EventKind::Line {
            stage: stage.to_string(),
            stream,
            text,
        })
        .await;
    }

    /// A line written by Ocelot itself.
    pub(crate) async fn system(&mut self, stage: &str, text: impl Into<String>) {
        self.line(stage, LogStream::System, text.into()).await;
    }

    /// Writes pending lines to Postgres and waits for pending publishes.
    pub(crate) async fn flush(&mut self) {
        self.last_flush = Instant::now();
        if !self.pending_lines.is_empty() && !self.fenced_out {
            let lines = std::mem::take(&mut self.pending_lines);
            // a restart of Postgres must not lose lines: the output waits meanwhile
            let stored =
                ocelot_core::store::retrying("storing log lines", STORE_OUTAGE_BUDGET, || {
                    self.store.append_lines(self.build_id, self.attempt, &lines)
                })
                .await;
            match stored {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(
                        build_id = self.build_id,
                        attempt = self.attempt,
                        "a newer attempt owns the build: this attempt stops writing"
                    );
                    self.fenced_out = true;
                }
                Err(error) => {
                    tracing::error!(build_id = self.build_id, %error, lines = lines.len(), "log lines lost from Postgres (they stay on the log bus)");
                }
            }
        }
        self.pending_lines.clear();
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
                        build_id = self.build_id,
                        failed,
                        "log events not acknowledged by JetStream (Postgres keeps the lines)"
                    );
                }
            }
            Err(_) => {
                tracing::warn!(
                    build_id = self.build_id,
                    "JetStream did not acknowledge log events in time (Postgres keeps the lines)"
                );
            }
        }
    }
}

/// `64 MiB`, `512 KiB`, `100 bytes`.
fn human_bytes(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}
