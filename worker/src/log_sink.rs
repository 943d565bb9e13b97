//! What an executor needs of the build log: a place for a script's output lines, and the
//! build's log limit. The attempt's log (`AttemptLog`) is one; a test
//! can use a plain vector, with no NATS or Postgres.

use ocelot_core::model::LogStream;
use std::future::Future;

pub(crate) trait LogSink: Send {
    /// Whether the build's output is past its limit: output is only counted now.
    fn log_full(&self) -> bool;

    /// Counts output that was not kept (read past the limit).
    fn output_dropped(&mut self, bytes: usize);

    /// One line of a script's output, already masked.
    fn output_line(
        &mut self,
        stage: &str,
        stream: LogStream,
        text: String,
    ) -> impl Future<Output = ()> + Send;

    /// The lines of one chunk of output were all given: what is gathered goes on its way
    /// (a slow build's line must not wait for more).
    fn end_of_chunk(&mut self) -> impl Future<Output = ()> + Send;
}

/// Where Ocelot's own lines about a stage go (e.g. its artifacts): the attempt's log, or a
/// stage's way into it when stages run at once (`crate::stage_log::StageLog`).
pub(crate) trait SystemLog: Send {
    /// A line written by Ocelot itself.
    fn system(
        &mut self,
        stage: &str,
        text: impl Into<String> + Send,
    ) -> impl Future<Output = ()> + Send;
}

#[cfg(test)]
pub(crate) mod testing {
    use super::LogSink;
    use crate::log_limit::{Admission, LogLimit};
    use ocelot_core::model::LogStream;

    /// Keeps the lines it is given, under a log limit, in memory.
    #[derive(Debug)]
    pub(crate) struct VecSink {
        pub(crate) lines: Vec<(String, LogStream, String)>,
        pub(crate) limit: LogLimit,
    }

    impl VecSink {
        pub(crate) fn new(max_bytes: u64) -> Self {
            VecSink::limited(LogLimit::new(max_bytes, u64::MAX))
        }

        pub(crate) fn limited(limit: LogLimit) -> Self {
            VecSink {
                lines: Vec::new(),
                limit,
            }
        }

        pub(crate) fn texts(&self) -> Vec<&str> {
            self.lines
                .iter()
                .map(|(_, _, text)| text.as_str())
                .collect()
        }
    }

    impl LogSink for VecSink {
        fn log_full(&self) -> bool {
            self.limit.is_full()
        }

        fn output_dropped(&mut self, bytes: usize) {
            self.limit.count_dropped(bytes);
        }

        async fn output_line(&mut self, stage: &str, stream: LogStream, text: String) {
            match self.limit.admit(&text) {
                Admission::Keep => self.lines.push((stage.into(), stream, text)),
                Admission::Marker(marker) => {
                    self.lines.push((stage.into(), LogStream::System, marker))
                }
                Admission::Drop => {}
            }
        }

        async fn end_of_chunk(&mut self) {}
    }
}
