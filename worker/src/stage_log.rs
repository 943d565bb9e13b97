//! The log as a running stage sees it when stages run at once: a [`StageLog`] per stage
//! sends its script's lines (gathered per chunk of output: one message per chunk, not per
//! line) and Ocelot's own lines through one channel to whoever owns the attempt's
//! [`AttemptLog`] (the stage scheduler), which writes them in the order they arrive
//! ([`StageLogs::write`]): every stage's lines stay in order, and lines of stages running
//! at once interleave. Output read past the log's limit is only counted, here, and handed
//! to the attempt's log at the end ([`StageLogs::close`]).

use crate::attempt_log::AttemptLog;
use crate::log_sink::{LogSink, SystemLog};
use ocelot_core::model::LogStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::mpsc;

/// Entries waiting for the writer: past this, a stage's output waits (the writer is behind).
const QUEUED_ENTRIES: usize = 1024;

/// One thing a stage writes.
#[derive(Debug)]
pub(crate) enum LogEntry {
    /// The lines of one chunk of a stage's output.
    Output {
        stage: String,
        lines: Vec<(LogStream, String)>,
    },
    System {
        stage: String,
        text: String,
    },
}

/// The receiving end, owned by whoever holds the attempt's log.
#[derive(Debug)]
pub(crate) struct StageLogs {
    sender: mpsc::Sender<LogEntry>,
    receiver: mpsc::Receiver<LogEntry>,
    full: Arc<AtomicBool>,
    dropped: Arc<AtomicUsize>,
}

impl StageLogs {
    pub(crate) fn new() -> Self {
        let (sender, receiver) = mpsc::channel(QUEUED_ENTRIES);
        StageLogs {
            sender,
            receiver,
            full: Arc::new(AtomicBool::new(false)),
            dropped: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A log for one stage (its entries arrive in the order it sends them).
    pub(crate) fn stage_log(&self) -> StageLog {
        StageLog {
            sender: self.sender.clone(),
            full: self.full.clone(),
            dropped: self.dropped.clone(),
            chunk: None,
        }
    }

    /// The next entry any stage sent (waits for one; never ends: `self` keeps a sender).
    pub(crate) async fn next(&mut self) -> Option<LogEntry> {
        self.receiver.recv().await
    }

    /// Writes every entry already sent.
    pub(crate) async fn write_pending(&mut self, log: &mut AttemptLog) {
        while let Ok(entry) = self.receiver.try_recv() {
            self.write(log, entry).await;
        }
    }

    /// Writes one entry to the attempt's log.
    pub(crate) async fn write(&self, log: &mut AttemptLog, entry: LogEntry) {
        match entry {
            LogEntry::Output { stage, lines } => {
                for (stream, text) in lines {
                    log.output_line(&stage, stream, text).await;
                }
                log.end_of_chunk().await;
            }
            LogEntry::System { stage, text } => log.system(&stage, text).await,
        }
        self.full.store(log.log_full(), Ordering::Relaxed);
    }

    /// Writes what is still queued and counts the output that was only counted.
    pub(crate) async fn close(mut self, log: &mut AttemptLog) {
        self.write_pending(log).await;
        log.output_dropped(self.dropped.swap(0, Ordering::Relaxed));
    }
}

/// One stage's way into the attempt's log.
#[derive(Debug)]
pub(crate) struct StageLog {
    sender: mpsc::Sender<LogEntry>,
    full: Arc<AtomicBool>,
    dropped: Arc<AtomicUsize>,
    /// The lines of the chunk of output being read (sent at its end).
    chunk: Option<(String, Vec<(LogStream, String)>)>,
}

impl StageLog {
    async fn send(&self, entry: LogEntry) {
        if self.sender.send(entry).await.is_err() {
            tracing::error!("the stage scheduler stopped reading: a stage's lines are lost");
        }
    }

    /// Sends the lines gathered so far.
    async fn send_chunk(&mut self) {
        if let Some((stage, lines)) = self.chunk.take() {
            self.send(LogEntry::Output { stage, lines }).await;
        }
    }
}

impl LogSink for StageLog {
    fn log_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    fn output_dropped(&mut self, bytes: usize) {
        self.dropped.fetch_add(bytes, Ordering::Relaxed);
    }

    async fn output_line(&mut self, stage: &str, stream: LogStream, text: String) {
        if self.chunk.as_ref().is_some_and(|(s, _)| s != stage) {
            self.send_chunk().await;
        }
        self.chunk
            .get_or_insert_with(|| (stage.to_string(), Vec::new()))
            .1
            .push((stream, text));
    }

    async fn end_of_chunk(&mut self) {
        self.send_chunk().await;
    }
}

impl SystemLog for StageLog {
    async fn system(&mut self, stage: &str, text: impl Into<String> + Send) {
        // after the output read before it
        self.send_chunk().await;
        self.send(LogEntry::System {
            stage: stage.to_string(),
            text: text.into(),
        })
        .await;
    }
}
