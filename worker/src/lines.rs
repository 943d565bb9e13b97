//! Splits a stream of output chunks into lines: `\n` ends a line, a trailing `\r` is dropped,
//! invalid UTF-8 is replaced, and a line longer than [`MAX_LINE_BYTES`] keeps its first
//! [`MAX_LINE_BYTES`] and a marker saying how much was cut, so that one endless line cannot
//! exhaust memory (what is cut is never held).

/// The longest line kept whole.
pub(crate) const MAX_LINE_BYTES: usize = 64 * 1024;

#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    partial: Vec<u8>,
    /// Bytes of the current line beyond [`MAX_LINE_BYTES`], counted, not kept.
    cut: usize,
    /// Whether the last byte cut was a `\r` (a CRLF line of exactly the limit cuts only it).
    cut_ends_with_cr: bool,
}

impl LineSplitter {
    /// Adds a chunk; returns the lines it completed.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut rest = chunk;
        while let Some(end) = memchr::memchr(b'\n', rest) {
            self.keep(&rest[..end]);
            lines.push(self.take());
            rest = &rest[end + 1..];
        }
        self.keep(rest);
        lines
    }

    /// The last, unterminated line, if any.
    pub(crate) fn finish(&mut self) -> Option<String> {
        (!self.partial.is_empty() || self.cut > 0).then(|| self.take())
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = MAX_LINE_BYTES - self.partial.len();
        let kept = room.min(bytes.len());
        self.partial.extend_from_slice(&bytes[..kept]);
        if kept < bytes.len() {
            self.cut += bytes.len() - kept;
            self.cut_ends_with_cr = bytes.last() == Some(&b'\r');
        }
    }

    fn take(&mut self) -> String {
        let mut bytes = std::mem::take(&mut self.partial);
        let mut cut = std::mem::take(&mut self.cut);
        if std::mem::take(&mut self.cut_ends_with_cr) && cut == 1 {
            // only the `\r` of a CRLF line was past the limit: nothing was lost
            cut = 0;
        }
        if cut == 0 && bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        if cut > 0 {
            // the limit may fall inside a character: keep only whole ones
            if let Err(error) = std::str::from_utf8(&bytes)
                && error.error_len().is_none()
            {
                cut += bytes.len() - error.valid_up_to();
                bytes.truncate(error.valid_up_to());
            }
        }
        let mut line = String::from_utf8_lossy(&bytes).into_owned();
        if cut > 0 {
            line.push_str(&format!(
                " [ocelot: line truncated: {cut} more bytes not kept (lines keep at most {} KiB)]",
                MAX_LINE_BYTES / 1024
            ));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks() {
        let mut splitter = LineSplitter::default();
        assert_eq!(splitter.push(b"hel"), Vec::<String>::new());
        assert_eq!(splitter.push(b"lo\r\nwor"), vec!["hello"]);
        assert_eq!(splitter.push(b"ld\n\n"), vec!["world", ""]);
        assert_eq!(splitter.push(b"tail"), Vec::<String>::new());
        assert_eq!(splitter.finish().as_deref(), Some("tail"));
        assert_eq!(splitter.finish(), None);
    }

    #[test]
    fn endless_lines_keep_their_start_and_say_what_was_cut() {
        let mut splitter = LineSplitter::default();
        assert!(splitter.push(&vec![b'x'; MAX_LINE_BYTES * 2]).is_empty());
        let lines = splitter.push(b"yyyyy\nnext\n");
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with(&"x".repeat(MAX_LINE_BYTES)));
        assert!(
            lines[0].ends_with(&format!(
                " [ocelot: line truncated: {} more bytes not kept (lines keep at most 64 KiB)]",
                MAX_LINE_BYTES + 5
            )),
            "{}",
            &lines[0][MAX_LINE_BYTES..]
        );
        assert_eq!(lines[1], "next");
        // an unterminated endless line is cut the same way
        splitter.push(&vec![b'z'; MAX_LINE_BYTES + 1]);
        assert!(
            splitter
                .finish()
                .is_some_and(|l| l.contains("1 more bytes not kept"))
        );
    }

    #[test]
    fn the_limit_neither_splits_a_character_nor_counts_a_crlf() {
        let mut splitter = LineSplitter::default();
        let mut line = vec![b'a'; MAX_LINE_BYTES - 1];
        line.extend_from_slice("é and more\n".as_bytes());
        let lines = splitter.push(&line);
        // `é` straddles the limit: its first byte goes too (2 + 9 bytes not kept)
        assert!(
            lines[0].starts_with(&format!(
                "{} [ocelot: line truncated: 11 more bytes",
                "a".repeat(MAX_LINE_BYTES - 1)
            )),
            "{}",
            &lines[0][MAX_LINE_BYTES - 2..]
        );
        assert!(!lines[0].contains('\u{fffd}'));

        let mut exact = vec![b'b'; MAX_LINE_BYTES];
        exact.extend_from_slice(b"\r\n");
        assert_eq!(splitter.push(&exact), vec!["b".repeat(MAX_LINE_BYTES)]);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let mut splitter = LineSplitter::default();
        assert_eq!(splitter.push(b"a\xffb\n"), vec!["a\u{fffd}b"]);
    }
}
