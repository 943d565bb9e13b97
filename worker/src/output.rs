//! A stage's output on its way to the build log, the same for every executor: each stream's
//! chunks are split into lines ([`LineSplitter`]), masked across lines ([`LineMasker`]: a
//! secret may arrive split over two), and handed to the [`LogSink`]; past the build's log
//! limit a chunk is only counted.

use crate::lines::LineSplitter;
use crate::log_sink::LogSink;
use ocelot_core::model::LogStream;
use ocelot_core::secrets::mask::{LineMasker, Masker};

/// One output stream's splitter and masker.
struct StreamLines {
    splitter: LineSplitter,
    masker: LineMasker,
}

impl StreamLines {
    fn new(masker: &Masker) -> Self {
        StreamLines {
            splitter: LineSplitter::default(),
            masker: LineMasker::new(masker.clone()),
        }
    }
}

/// The stdout and stderr of one stage's script.
pub(crate) struct ScriptOutput<'a> {
    stage: &'a str,
    stdout: StreamLines,
    stderr: StreamLines,
}

impl<'a> ScriptOutput<'a> {
    pub(crate) fn new(stage: &'a str, masker: &Masker) -> Self {
        ScriptOutput {
            stage,
            stdout: StreamLines::new(masker),
            stderr: StreamLines::new(masker),
        }
    }

    fn stream(&mut self, stream: LogStream) -> &mut StreamLines {
        if stream == LogStream::Stderr {
            &mut self.stderr
        } else {
            &mut self.stdout
        }
    }

    /// A chunk of `stream`: its complete lines go to the log; past the build's log limit it
    /// is counted, not split or kept.
    pub(crate) async fn chunk(&mut self, sink: &mut impl LogSink, stream: LogStream, bytes: &[u8]) {
        if sink.log_full() {
            sink.output_dropped(bytes.len());
            return;
        }
        let stage = self.stage;
        let lines = self.stream(stream);
        let masked: Vec<String> = lines
            .splitter
            .push(bytes)
            .into_iter()
            .flat_map(|line| lines.masker.push(line))
            .collect();
        for line in masked {
            sink.output_line(stage, stream, line).await;
        }
        sink.end_of_chunk().await;
    }

    /// The script ended: each stream's unterminated last line and what masking held back.
    pub(crate) async fn finish(&mut self, sink: &mut impl LogSink) {
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            let stage = self.stage;
            let lines = self.stream(stream);
            let mut rest: Vec<String> = lines
                .splitter
                .finish()
                .map(|line| lines.masker.push(line))
                .unwrap_or_default();
            rest.extend(lines.masker.finish());
            for line in rest {
                sink.output_line(stage, stream, line).await;
            }
        }
        sink.end_of_chunk().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log_limit::LogLimit;
    use crate::log_sink::testing::VecSink;

    #[tokio::test]
    async fn a_flood_of_empty_lines_stops_at_the_line_limit_and_is_counted() {
        let mut sink = VecSink::limited(LogLimit::new(64 * 1024 * 1024, 100));
        let mut output = ScriptOutput::new("flood", &Masker::default());
        // 1 000 000 empty lines in chunks, as `yes '' | head -n 1000000` prints them
        let chunk = vec![b'\n'; 10_000];
        for _ in 0..100 {
            output.chunk(&mut sink, LogStream::Stdout, &chunk).await;
        }
        output.finish(&mut sink).await;
        assert_eq!(sink.lines.len(), 101, "100 lines and the marker");
        assert!(sink.texts()[..100].iter().all(|t| t.is_empty()));
        let (stage, stream, marker) = &sink.lines[100];
        assert_eq!((stage.as_str(), *stream), ("flood", LogStream::System));
        assert!(marker.contains("more than 100 lines"), "{marker}");
        // every byte past the limit was counted, none kept
        assert_eq!(
            sink.limit.report().as_deref(),
            Some("[ocelot: 999900 bytes of output past the log limit of 100 lines were not kept]")
        );
    }
}
