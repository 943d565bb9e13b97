//! The log of one build attempt: numbers its events, keeps the log digest the result
//! carries, applies the build's log limits (bytes and lines) to script output, masks
//! Ocelot's own lines (script output arrives masked), gathers a script's lines into runs
//! (one event per run, every line numbered) and hands the events to its [`writer`] task,
//! which publishes them to the log bus in batches and stores the same events in Postgres
//! (or, for `ocelot exec`, its [`forward`] task, which hands them to a channel).
//! Once a newer attempt owns the build, nothing more is written (fencing).

mod forward;
mod writer;

use crate::log_limit::{Admission, LogLimit};
use crate::log_sink::{LogSink, SystemLog};
use ocelot_core::events::{BuildEvent, EventKind, LogDigest};
use ocelot_core::ids::{Attempt, BuildId, Seq};
use ocelot_core::model::{LogStream, unix_ms};
use ocelot_core::queue::Bus;
use ocelot_core::secrets::mask::Masker;
use ocelot_core::store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot};
use writer::{Command, Writer};

/// The system lines before the first stage (and after the last) belong to this pseudo-stage.
pub(crate) const SETUP_STAGE: &str = "setup";

/// A run of lines is handed to the writer at this size, or at the end of a chunk of output.
const RUN_BYTES: usize = 32 * 1024;
/// Commands waiting for the writer: past this, output waits (the writer is behind).
const WRITER_QUEUE: usize = 256;

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
    build_id: BuildId,
    attempt: Attempt,
    seq: Seq,
    digest: LogDigest,
    /// The run of script lines being gathered, not yet handed to the writer.
    run: Option<BuildEvent>,
    writer: mpsc::Sender<Command>,
    /// Set by the writer once Postgres said a newer attempt owns the build.
    fenced_out: Arc<AtomicBool>,
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
    /// The log of `attempt`; its writer task runs until the log is dropped.
    pub(crate) fn new(
        bus: Bus,
        store: Store,
        build_id: BuildId,
        attempt: Attempt,
        limit: LogLimit,
        store_outage_budget: Duration,
    ) -> Self {
        let fenced_out = Arc::new(AtomicBool::new(false));
        let (sender, receiver) = mpsc::channel(WRITER_QUEUE);
        let writer = Writer::new(
            bus,
            store,
            build_id,
            attempt,
            fenced_out.clone(),
            store_outage_budget,
        );
        // its warnings carry the build's span (trace id)
        tokio::spawn(tracing::Instrument::in_current_span(writer.run(receiver)));
        AttemptLog::with_writer(build_id, attempt, limit, sender, fenced_out)
    }

    /// The log of `attempt` of a build no server knows (`ocelot exec`): its events go to
    /// `events`, in order, as they would go to the log bus; its result is `Recorded` once
    /// handed over.
    pub(crate) fn to_channel(
        build_id: BuildId,
        attempt: Attempt,
        limit: LogLimit,
        events: mpsc::Sender<BuildEvent>,
    ) -> Self {
        let (sender, receiver) = mpsc::channel(WRITER_QUEUE);
        tokio::spawn(forward::run(receiver, events));
        let fenced_out = Arc::new(AtomicBool::new(false));
        AttemptLog::with_writer(build_id, attempt, limit, sender, fenced_out)
    }

    /// The log, handing its events to the task that reads `writer`.
    fn with_writer(
        build_id: BuildId,
        attempt: Attempt,
        limit: LogLimit,
        writer: mpsc::Sender<Command>,
        fenced_out: Arc<AtomicBool>,
    ) -> Self {
        AttemptLog {
            build_id,
            attempt,
            seq: Seq::START,
            digest: LogDigest::new(),
            run: None,
            writer,
            fenced_out,
            masker: Masker::default(),
            limit,
        }
    }

    /// From now on, Ocelot's own lines are masked with `masker`.
    pub(crate) fn set_masker(&mut self, masker: Masker) {
        self.masker = masker;
    }

    pub(crate) fn fenced_out(&self) -> bool {
        self.fenced_out.load(Ordering::Relaxed)
    }

    /// What [`AttemptLog::fenced_out`] reads, for work done away from the log (a stage
    /// running beside others).
    pub(crate) fn fence(&self) -> Arc<AtomicBool> {
        self.fenced_out.clone()
    }

    /// Hands one event to the writer (published and stored within moments) and returns
    /// its sequence number.
    pub(crate) async fn emit(&mut self, kind: EventKind) -> Seq {
        self.end_run().await;
        let event = self.next_event(kind);
        let seq = event.seq;
        self.send(Command::Event(event)).await;
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

    /// Publishes and stores what the writer holds, and waits for pending publishes.
    pub(crate) async fn flush(&mut self) {
        self.end_run().await;
        let (answer, answered) = oneshot::channel();
        self.send(Command::Flush(answer)).await;
        let _ = answered.await;
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
        self.end_run().await;
        let result = self.next_event(EventKind::Result {
            state,
            reason: reason.unwrap_or_default().to_string(),
            duration_ms,
            line_count: self.digest.count(),
            log_sha256: self.digest.hex(),
        });
        let (answer, answered) = oneshot::channel();
        self.send(Command::Finish(result, answer)).await;
        answered.await.unwrap_or_else(|_| {
            tracing::error!(
                build_id = self.build_id.get(),
                "the log writer stopped before the result was recorded"
            );
            Finished::NotRecorded
        })
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

    /// Adds a script's line to the open run (a new one when the stage or stream changes).
    async fn add_to_run(&mut self, stage: &str, stream: LogStream, text: &str) {
        let continues = matches!(
            &self.run,
            Some(BuildEvent { kind: EventKind::Lines { stage: s, stream: t, text: run }, .. })
                if s == stage && *t == stream && run.len() + text.len() < RUN_BYTES
        );
        if !continues {
            self.end_run().await;
        }
        self.seq = self.seq.next();
        self.digest.add_line(text);
        let (build_id, attempt, seq) = (self.build_id, self.attempt, self.seq);
        let run = self.run.get_or_insert_with(|| BuildEvent {
            build_id,
            attempt,
            seq,
            at_ms: unix_ms(SystemTime::now()),
            kind: EventKind::Lines {
                stage: stage.to_string(),
                stream,
                text: String::new(),
            },
        });
        if let EventKind::Lines { text: lines, .. } = &mut run.kind {
            lines.push_str(text);
            lines.push('\n');
        }
    }

    /// Hands the open run, if any, to the writer.
    async fn end_run(&mut self) {
        if let Some(run) = self.run.take() {
            self.send(Command::Event(run)).await;
        }
    }

    async fn send(&mut self, command: Command) {
        if self.writer.send(command).await.is_err() {
            tracing::error!(
                build_id = self.build_id.get(),
                "the log writer stopped: events are lost"
            );
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
        match self.limit.admit(&text) {
            // a line holds no line break (the splitter ends lines there): it joins a run
            Admission::Keep if !text.contains('\n') => {
                self.add_to_run(stage, stream, &text).await;
            }
            Admission::Keep => {
                self.emit(EventKind::Line {
                    stage: stage.to_string(),
                    stream,
                    text,
                })
                .await;
            }
            Admission::Marker(marker) => self.system(stage, marker).await,
            Admission::Drop => {}
        }
    }

    async fn end_of_chunk(&mut self) {
        self.end_run().await;
    }
}

impl SystemLog for AttemptLog {
    async fn system(&mut self, stage: &str, text: impl Into<String> + Send) {
        AttemptLog::system(self, stage, text).await;
    }
}
