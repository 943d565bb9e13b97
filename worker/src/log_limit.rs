//! How much output a build keeps: at most so many bytes and so many lines. Up to both
//! limits every line is kept; the first line past either is replaced by a marker saying
//! which limit it hit, and from then on output is only counted (not kept, not held) while
//! the build goes on. The line limit matters as much as the byte one: an empty line costs
//! one byte of output but a row in Postgres and a message on the bus. Ocelot's own lines
//! are not subject to it.

/// What happens to one line of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Admission {
    Keep,
    /// The log just became full: this marker goes to the log instead of the line.
    Marker(String),
    /// The log is full: the line is only counted.
    Drop,
}

/// Which limit the log hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hit {
    Bytes,
    Lines,
}

#[derive(Debug, Clone)]
pub(crate) struct LogLimit {
    max_bytes: u64,
    max_lines: u64,
    kept_bytes: u64,
    kept_lines: u64,
    dropped_bytes: u64,
    full: Option<Hit>,
}

impl LogLimit {
    /// At most `max_bytes` of output (line breaks included) in at most `max_lines` lines.
    pub(crate) fn new(max_bytes: u64, max_lines: u64) -> Self {
        LogLimit {
            max_bytes,
            max_lines,
            kept_bytes: 0,
            kept_lines: 0,
            dropped_bytes: 0,
            full: None,
        }
    }

    /// Whether output is only counted now.
    pub(crate) fn is_full(&self) -> bool {
        self.full.is_some()
    }

    /// Counts output that was read past the limit without being split into lines.
    pub(crate) fn count_dropped(&mut self, bytes: usize) {
        self.dropped_bytes = self
            .dropped_bytes
            .saturating_add(u64::try_from(bytes).unwrap_or(u64::MAX));
    }

    /// Whether `text` (one line; its line break counts) is kept.
    pub(crate) fn admit(&mut self, text: &str) -> Admission {
        let bytes = u64::try_from(text.len())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let hit = if self.kept_lines >= self.max_lines {
            Some(Hit::Lines)
        } else if self.kept_bytes.saturating_add(bytes) > self.max_bytes {
            Some(Hit::Bytes)
        } else {
            None
        };
        if self.full.is_none() && hit.is_none() {
            self.kept_bytes += bytes;
            self.kept_lines += 1;
            return Admission::Keep;
        }
        self.dropped_bytes = self.dropped_bytes.saturating_add(bytes);
        if self.full.is_some() {
            return Admission::Drop;
        }
        self.full = hit;
        Admission::Marker(format!(
            "[ocelot: log truncated: this build printed more than {}; the rest of its output is not kept (the build goes on)]",
            self.limit_hit()
        ))
    }

    /// `4 MiB` or `1000 lines`: the limit the log hit.
    fn limit_hit(&self) -> String {
        match self.full {
            Some(Hit::Lines) => format!("{} lines", self.max_lines),
            _ => human_bytes(self.max_bytes),
        }
    }

    /// The line that ends a truncated log: how much output was not kept.
    pub(crate) fn report(&self) -> Option<String> {
        (self.dropped_bytes > 0).then(|| {
            format!(
                "[ocelot: {} bytes of output past the log limit of {} were not kept]",
                self.dropped_bytes,
                self.limit_hit()
            )
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_within_the_limit_are_kept_with_their_line_breaks_counted() {
        let mut limit = LogLimit::new(8, 100);
        assert_eq!(limit.admit("abc"), Admission::Keep);
        assert_eq!(limit.admit("abc"), Admission::Keep);
        assert!(!limit.is_full());
        assert_eq!(limit.report(), None);
    }

    #[test]
    fn the_first_line_past_the_limit_becomes_a_marker_then_lines_are_counted() {
        let mut limit = LogLimit::new(1024, 100);
        assert_eq!(limit.admit(&"x".repeat(1000)), Admission::Keep);
        let Admission::Marker(marker) = limit.admit(&"y".repeat(99)) else {
            panic!("expected the marker");
        };
        assert!(marker.contains("more than 1 KiB"), "{marker}");
        assert!(limit.is_full());
        // a short line that would fit is not kept either: the log is cut at one place
        assert_eq!(limit.admit("z"), Admission::Drop);
        limit.count_dropped(10);
        assert_eq!(
            limit.report().as_deref(),
            Some("[ocelot: 112 bytes of output past the log limit of 1 KiB were not kept]")
        );
    }

    #[test]
    fn empty_lines_past_the_line_limit_become_a_marker_then_are_counted() {
        let mut limit = LogLimit::new(64 * 1024 * 1024, 3);
        for _ in 0..3 {
            assert_eq!(limit.admit(""), Admission::Keep);
        }
        let Admission::Marker(marker) = limit.admit("") else {
            panic!("expected the marker");
        };
        assert_eq!(
            marker,
            "[ocelot: log truncated: this build printed more than 3 lines; the rest of its output is not kept (the build goes on)]"
        );
        assert!(limit.is_full());
        assert_eq!(limit.admit(""), Admission::Drop);
        // a line that is neither empty nor past the byte limit is not kept either
        assert_eq!(limit.admit("later"), Admission::Drop);
        limit.count_dropped(1000);
        assert_eq!(
            limit.report().as_deref(),
            Some("[ocelot: 1008 bytes of output past the log limit of 3 lines were not kept]")
        );
    }

    #[test]
    fn the_limit_hit_first_is_the_one_named() {
        // bytes first: the line limit is far
        let mut limit = LogLimit::new(10, 1000);
        assert_eq!(limit.admit("0123456789"), Admission::Marker(
            "[ocelot: log truncated: this build printed more than 10 bytes; the rest of its output is not kept (the build goes on)]".into()
        ));
        // lines first, with bytes to spare
        let mut limit = LogLimit::new(1024, 1);
        assert_eq!(limit.admit("a"), Admission::Keep);
        let Admission::Marker(marker) = limit.admit("b") else {
            panic!("expected the marker");
        };
        assert!(marker.contains("more than 1 lines"), "{marker}");
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(64 * 1024 * 1024), "64 MiB");
        assert_eq!(human_bytes(512 * 1024), "512 KiB");
        assert_eq!(human_bytes(100), "100 bytes");
    }
}
