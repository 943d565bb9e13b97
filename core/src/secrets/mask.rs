//! Masking of secret values in build log lines.
//!
//! A [`Masker`] is built once per build from the build's secret values. It hides every
//! occurrence of each value and of its common encodings (see [`Masker::new`]) by [`MASK`].
//! A [`LineMasker`] wraps it for one output stream and also catches a secret that is split
//! over two consecutive lines.
//!
//! Guarantees of [`Masker::mask_line`] for the secrets it accepted (>= [`MIN_SECRET_LEN`] chars):
//! - every occurrence of every pattern (a value or one of its encodings), overlapping or not, is
//!   covered: covered byte ranges are computed on the original line, merged, and each merged
//!   range becomes one `***`;
//! - the output contains no pattern (if a secret contains `*`, a replacement can form a new
//!   occurrence: masking is repeated, and after a few passes the whole line becomes `***`);
//! - a line containing no pattern is returned unchanged; it never panics.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use std::fmt::{self, Write as _};

/// Byte ranges `(start, end)` of a line to cover, on char boundaries.
type Ranges = Vec<(usize, usize)>;

/// Secret values shorter than this many characters are refused (they would over-mask logs).
pub const MIN_SECRET_LEN: usize = 4;

/// What replaces a secret in a log line.
pub const MASK: &str = "***";

/// How many extra passes [`Masker::mask_line`] makes when secrets contain `*`.
const MAX_PASSES: usize = 4;

/// Why a value cannot be stored as a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaskError {
    /// The value has fewer than [`MIN_SECRET_LEN`] characters.
    TooShort {
        /// Length of the value, in characters.
        length: usize,
    },
}

impl fmt::Display for MaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let MaskError::TooShort { .. } = self;
        write!(f, "secret values shorter than {MIN_SECRET_LEN} characters ")?;
        f.write_str("cannot be masked safely in logs")
    }
}

impl std::error::Error for MaskError {}

/// Checks a value before it is stored as a secret.
pub fn check_maskable(value: &str) -> Result<(), MaskError> {
    let length = value.chars().count();
    if length < MIN_SECRET_LEN {
        return Err(MaskError::TooShort { length });
    }
    Ok(())
}

/// The set of strings to hide, built once per build from its secret values.
#[derive(Clone, Default)]
pub struct Masker {
    /// Values and encodings to hide, longest first, no duplicates, each >= `MIN_SECRET_LEN` chars.
    patterns: Vec<String>,
    /// Number of secret values accepted.
    secrets: usize,
    /// Byte length of the longest pattern.
    max_len: usize,
    /// Some pattern contains `*`, so a replacement may create a new occurrence.
    recheck: bool,
}

impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Masker {{ secrets: {} }}", self.secrets)
    }
}

/// RFC 3986 percent-encoding: unreserved characters kept, every other byte as `%XX`.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}"); // writing to a String cannot fail
        }
    }
    out
}

/// Base64 (no padding) of `value` preceded by `shift` unknown bytes and followed by unknown
/// bytes, trimmed of the characters that depend on those unknown bytes.
fn aligned_core(engine: &impl base64::Engine, value: &[u8], shift: usize) -> Option<String> {
    let mut data = vec![0u8; shift];
    data.extend_from_slice(value);
    let encoded = engine.encode(&data);
    let start = (8 * shift).div_ceil(6);
    let end = (8 * data.len()) / 6;
    encoded.get(start..end).map(str::to_owned)
}

/// Every string to hide for one secret value, each >= [`MIN_SECRET_LEN`] chars.
fn candidates(value: &str) -> Vec<String> {
    let bytes = value.as_bytes();
    let mut out = vec![
        value.to_owned(),
        STANDARD.encode(bytes),
        STANDARD_NO_PAD.encode(bytes),
        URL_SAFE.encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
        percent_encode(value),
    ];
    for shift in 0..3 {
        out.extend(aligned_core(&STANDARD_NO_PAD, bytes, shift));
        out.extend(aligned_core(&URL_SAFE_NO_PAD, bytes, shift));
    }
    if value.contains('\n') {
        let lines = value.split('\n').map(|l| l.trim_end_matches('\r'));
        out.extend(lines.map(str::to_owned));
    }
    out.retain(|p| p.chars().count() >= MIN_SECRET_LEN);
    out
}

/// Largest char boundary of `s` that is <= `i`.
fn floor_boundary(s: &str, i: usize) -> usize {
    (0..=i.min(s.len()))
        .rev()
        .find(|&k| s.is_char_boundary(k))
        .unwrap_or(0)
}

/// Smallest char boundary of `s` that is >= `i`.
fn ceil_boundary(s: &str, i: usize) -> usize {
    (i.min(s.len())..=s.len())
        .find(|&k| s.is_char_boundary(k))
        .unwrap_or(s.len())
}

/// Replaces each merged range of `ranges` (byte ranges on char boundaries) by [`MASK`].
fn apply_ranges(line: &str, mut ranges: Ranges) -> String {
    ranges.sort_unstable();
    let mut merged: Ranges = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    let mut out = String::with_capacity(line.len());
    let mut kept_from = 0;
    for (start, end) in merged {
        // `get` cannot fail (ranges come from matches); if it did, fail closed.
        let Some(kept) = line.get(kept_from..start) else {
            return MASK.to_owned();
        };
        out.push_str(kept);
        out.push_str(MASK);
        kept_from = end;
    }
    out.push_str(line.get(kept_from..).unwrap_or_default());
    out
}

impl Masker {
    /// Builds the masker. Values shorter than [`MIN_SECRET_LEN`] characters are ignored
    /// (they are refused by [`check_maskable`] before being stored).
    ///
    /// Each value is hidden as is, plus: standard base64 (with and without padding), URL-safe
    /// base64 (with and without padding), the three alignment variants of its base64 inside a
    /// longer base64 string (both alphabets), its RFC 3986 percent-encoding and, for a
    /// multi-line value, each of its lines (without a trailing `\r`). Only patterns of at
    /// least [`MIN_SECRET_LEN`] characters are kept.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Masker {
        let mut accepted: Vec<&str> = secrets.into_iter().collect();
        accepted.retain(|v| check_maskable(v).is_ok());
        let mut patterns: Vec<String> = accepted.iter().flat_map(|v| candidates(v)).collect();
        patterns.sort_unstable_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        patterns.dedup();
        Masker {
            max_len: patterns.first().map_or(0, String::len),
            recheck: patterns.iter().any(|p| p.contains('*')),
            patterns,
            secrets: accepted.len(),
        }
    }

    /// True when there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Replaces every occurrence of every secret, and of its common encodings, by `***`.
    pub fn mask_line(&self, line: &str) -> String {
        self.mask_with(line, Vec::new())
    }

    /// Pushes the byte range of every occurrence (overlapping ones too) of every pattern.
    fn collect(&self, hay: &str, out: &mut Ranges) {
        for p in &self.patterns {
            let step = p.chars().next().map_or(1, char::len_utf8);
            let mut from = 0;
            while let Some(rel) = hay.get(from..).and_then(|h| h.find(p.as_str())) {
                let start = from + rel;
                out.push((start, start + p.len()));
                from = start + step;
            }
        }
    }

    /// Masks `line`, also covering the given `ranges` (known from a line boundary).
    fn mask_with(&self, line: &str, mut ranges: Ranges) -> String {
        self.collect(line, &mut ranges);
        if ranges.is_empty() {
            return line.to_owned();
        }
        let mut out = apply_ranges(line, ranges);
        for _ in 0..=MAX_PASSES {
            let mut again = Vec::new();
            if self.recheck {
                self.collect(&out, &mut again);
            }
            if again.is_empty() {
                return out;
            }
            out = apply_ranges(&out, again);
        }
        MASK.to_owned() // still not clean after MAX_PASSES: fail closed
    }

    /// Whether the end of `line` could be the start of a pattern continued on the next line.
    fn may_continue(&self, line: &str) -> bool {
        let lb = line.as_bytes();
        self.patterns.iter().any(|p| {
            let pb = p.as_bytes();
            let from = lb.len().saturating_sub(pb.len().saturating_sub(1));
            let mut suffixes = (from..lb.len()).filter_map(|i| lb.get(i..));
            pb.first() == Some(&b'\n') || suffixes.any(|suffix| pb.starts_with(suffix))
        })
    }

    /// Ranges to cover in `prev` and in `next` for the patterns spanning their boundary,
    /// the lines being joined either by `\n` or by nothing.
    fn boundary(&self, prev: &str, next: &str) -> (Ranges, Ranges) {
        let (mut in_prev, mut in_next) = (Vec::new(), Vec::new());
        let a = floor_boundary(prev, prev.len().saturating_sub(self.max_len));
        let b = ceil_boundary(next, self.max_len);
        let (Some(tail), Some(head)) = (prev.get(a..), next.get(..b)) else {
            return (in_prev, in_next);
        };
        for joiner in ["\n", ""] {
            let joined = format!("{tail}{joiner}{head}");
            let mut found = Vec::new();
            self.collect(&joined, &mut found);
            let (t, j) = (tail.len(), joiner.len());
            for (s, e) in found {
                if s >= t + j || e <= t {
                    continue; // within one line: found by that line's own masking
                }
                if s < t {
                    in_prev.push((a + s, prev.len()));
                }
                if e > t + j {
                    in_next.push((0, e - t - j));
                }
            }
        }
        (in_prev, in_next)
    }
}

/// Masks a stream of output lines for one stream (stdout or stderr), where a secret may arrive
/// split across two consecutive writes/lines (e.g. `printf 'sec'; printf 'ret\n'` arrives as one
/// line, but a secret printed with a line break in the middle of it arrives as two lines).
///
/// Guarantees, on top of those of [`Masker::mask_line`] for each line: a pattern occurring in
/// `a + "\n" + b` or in `a + b`, for two consecutive lines `a` and `b`, and spanning their
/// boundary, is masked in both lines (its part in `a` up to the end of `a`, its part in `b`
/// from the start of `b`). Lines come out in order, one output line per input line, and at
/// most one line is held back. Not guaranteed: a pattern spread over three or more lines is
/// only caught through the lines (>= [`MIN_SECRET_LEN`] chars) of a multi-line secret and the
/// pairs of consecutive lines, so shorter pieces of it may stay visible.
pub struct LineMasker {
    masker: Masker,
    /// A line held back, with the ranges already known to be secret in it.
    held: Option<(String, Ranges)>,
}

impl fmt::Debug for LineMasker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LineMasker {{ masker: {:?}, .. }}", self.masker)
    }
}

impl LineMasker {
    /// Starts a stream.
    pub fn new(masker: Masker) -> Self {
        LineMasker { masker, held: None }
    }

    /// Takes the next complete line; returns the lines that are safe to emit now, masked.
    /// It may hold back one line when its end could be the start of a secret continued on the
    /// next line, and releases it (masked) with the next call or on `finish`.
    pub fn push(&mut self, line: String) -> Vec<String> {
        let mut out = Vec::with_capacity(2);
        let mut ranges = Vec::new();
        if let Some((held, held_ranges)) = self.held.take() {
            let (mut in_prev, in_next) = self.masker.boundary(&held, &line);
            in_prev.extend(held_ranges);
            out.push(self.masker.mask_with(&held, in_prev));
            ranges = in_next;
        }
        if self.masker.may_continue(&line) {
            self.held = Some((line, ranges));
        } else {
            out.push(self.masker.mask_with(&line, ranges));
        }
        out
    }

    /// Ends the stream, releasing the held-back line (masked), if any.
    pub fn finish(&mut self) -> Vec<String> {
        let held = self.held.take().into_iter();
        held.map(|(line, r)| self.masker.mask_with(&line, r))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::{collection::vec, prelude::*, sample::Index};

    macro_rules! key {
        () => {
            "-----BEGIN OPENSSH PRIVATE KEY-----\n\
            b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n\
            QyNTUxOQAAACBlZmFrZWtleWZha2VrZXlmYWtla2V5ZmFrZWtleWZha2UAAAAEbm9uZQ==\n\
            -----END OPENSSH PRIVATE KEY-----\n"
        };
    }
    const KEY: &str = key!();
    const KEY_LINE: &str = concat!("KEY=", key!());
    const UNRESERVED: &str = "p@ss w/rd&x=1+ü";

    /// (name, secrets, streamed through LineMasker?, input lines, expected lines)
    type Case = (&'static str, Strs, bool, Strs, Strs);
    type Strs = &'static [&'static str];

    #[rustfmt::skip]
    const CASES: &[Case] = &[
        ("plain", &["hunter2-is-long"], false, &["pw=hunter2-is-long"], &["pw=***"]),
        ("twice", &["s3cr3t"], false, &["a s3cr3t b s3cr3t c", "s3cr3ts3cr3t"], &["a *** b *** c", "***"]),
        ("overlap", &["abcdef", "cdefgh"], false, &["xabcdefghy"], &["x***y"]),
        ("substring", &["secret", "my-secret-token"], false, &["my-secret-token, secret"], &["***, ***"]),
        ("b64 std", &["s3cr3t-valu"], false, &["b=czNjcjN0LXZhbHU=", "czNjcjN0LXZhbHU!"], &["b=***", "***!"]),
        ("b64 url", &["sub?>??>key"], false, &["c3ViPz4_Pz5rZXk=", "c3ViPz4/Pz5rZXk="], &["***", "***"]),
        ("b64 mid", &["sub?>??>key"], false,
            &["c3ViPz4/Pz5rZXl+UQ==", "WHN1Yj8+Pz8+a2V5flE=", "WFlzdWI/Pj8/PmtleX5R",
              "c3ViPz4_Pz5rZXl-UQ==", "WHN1Yj8-Pz8-a2V5flE=", "WFlzdWI_Pj8_PmtleX5R"],
            &["***l+UQ==", "WH***flE=", "WFl***X5R", "***l-UQ==", "WH***flE=", "WFl***X5R"]),
        ("percent", &[UNRESERVED], false, &["https://u:p%40ss%20w%2Frd%26x%3D1%2B%C3%BC@h/", "raw p@ss w/rd&x=1+ü."],
            &["https://u:***@h/", "raw ***."]),
        ("ssh whole", &[KEY], false, &[KEY_LINE], &["KEY=***"]),
        ("ssh lines", &[KEY], true,
            &["$ cat id", "-----BEGIN OPENSSH PRIVATE KEY-----",
              "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
              "QyNTUxOQAAACBlZmFrZWtleWZha2VrZXlmYWtla2V5ZmFrZWtleWZha2UAAAAEbm9uZQ==",
              "-----END OPENSSH PRIVATE KEY-----", "done"],
            &["$ cat id", "***", "***", "***", "***", "done"]),
        ("split", &["hunter2-is-long"], true, &["token: hunter2-", "is-long done"], &["token: ***", "*** done"]),
        ("split nl", &["abc\ndefgh"], true, &["x abc", "defgh y"], &["x ***", "*** y"]),
        ("split chain", &["hunter2-is-long"], true, &["a hunter2", "-is-long hunter", "2-is-long b"], &["a ***", "*** ***", "*** b"]),
        ("held no match", &["hunter2-is-long"], true, &["ends hunt", "nothing", "hunter"], &["ends hunt", "nothing", "hunter"]),
        ("none", &["hunter2-is-long"], false, &["nothing here", ""], &["nothing here", ""]),
        ("empty masker", &[], true, &["a", "b"], &["a", "b"]),
        ("unicode", &["pässwörd", "🔑🔑🔑🔑"], false, &["日本語 pässwörd ü", "a🔑🔑🔑🔑🔑b"], &["日本語 *** ü", "a***b"]),
        ("short ignored", &["abc", "äöü"], false, &["abc äöü"], &["abc äöü"]),
        ("star secret", &["a***"], false, &["aa***", "aaaaaaaaaa***"], &["***", "***"]),
    ];

    fn stream(masker: Masker, lines: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut lm = LineMasker::new(masker);
        let mut out: Vec<_> = lines.into_iter().flat_map(|l| lm.push(l)).collect();
        out.extend(lm.finish());
        out
    }

    fn run(secrets: &[&str], streamed: bool, lines: &[&str]) -> Vec<String> {
        let masker = Masker::new(secrets.iter().copied());
        if streamed {
            return stream(masker, lines.iter().map(|l| l.to_string()));
        }
        lines.iter().map(|l| masker.mask_line(l)).collect()
    }

    #[test]
    fn corpus() {
        for (name, secrets, stream, lines, expected) in CASES {
            assert_eq!(run(secrets, *stream, lines), *expected, "case {name}");
        }
    }

    #[test]
    fn percent_encoding_is_rfc3986() {
        let expected = "p%40ss%20w%2Frd%26x%3D1%2B%C3%BC";
        assert_eq!(percent_encode(UNRESERVED), expected);
        assert_eq!(percent_encode("a-b.c_d~e"), "a-b.c_d~e");
    }

    #[test]
    #[rustfmt::skip]
    fn too_short_refused() {
        for (value, length) in [("abc", 3), ("äöü", 3), ("", 0), ("a\nb", 3)] {
            assert_eq!(check_maskable(value), Err(MaskError::TooShort { length }));
            assert!(Masker::new([value]).is_empty());
        }
        assert_eq!(check_maskable("abcd"), Ok(()));
        let msg = MaskError::TooShort { length: 3 }.to_string();
        assert_eq!(msg, "secret values shorter than 4 characters cannot be masked safely in logs");
    }

    #[test]
    fn debug_hides_secrets() {
        let lm = LineMasker::new(Masker::new(["hunter2-is-long", "other-secret"]));
        assert_eq!(
            format!("{lm:?}"),
            "LineMasker { masker: Masker { secrets: 2 }, .. }"
        );
    }

    #[test]
    fn megabyte_line() {
        let masker = Masker::new(["hunter2-is-long", KEY, UNRESERVED]);
        let filler = "lorem ipsum ü 日本 ".repeat(1 << 16);
        let line = format!("{filler}hunter2-is-long{filler}aHVudGVyMi1pcy1sb25n{filler}");
        assert!(line.len() >= 1 << 20);
        let started = std::time::Instant::now();
        let out = masker.mask_line(&line);
        assert!(started.elapsed().as_secs() < 10);
        assert_eq!(out, format!("{filler}***{filler}***{filler}"));
        let same = "a".repeat(1 << 20);
        assert_eq!(Masker::new(["aaaa"]).mask_line(&same), "***");
    }

    const UP: &str = "[A-Z ]{0,8}"; // text around a split secret: no char of it

    fn secret() -> impl Strategy<Value = String> {
        prop_oneof!["[ab*]{4,8}", "\\PC{4,10}", "[a-z\n]{4,12}"]
    }

    proptest! {
        #[test]
        fn masked_line_contains_no_secret(
            secrets in vec(secret(), 1..4),
            pieces in vec(("\\PC{0,6}", any::<Index>()), 0..6),
        ) {
            let masker = Masker::new(secrets.iter().map(String::as_str));
            let pick = |i: &Index| secrets[i.index(secrets.len())].as_str();
            let line: String = pieces.iter().map(|(t, i)| format!("{t}{}", pick(i))).collect();
            let out = masker.mask_line(&line);
            // The plain secrets are among the patterns.
            for p in &masker.patterns {
                prop_assert!(!out.contains(p.as_str()), "{p:?} in {out:?}");
            }
        }

        #[test]
        fn line_without_secret_unchanged(secrets in vec(secret(), 0..3), line in "\\PC{0,40}") {
            let masker = Masker::new(secrets.iter().map(String::as_str));
            if !masker.patterns.iter().any(|p| line.contains(p.as_str())) {
                prop_assert_eq!(masker.mask_line(&line), line);
            }
        }

        #[test]
        fn split_secret_hidden(s in "[a-z0-9]{4,16}", k in any::<Index>(), x in UP, y in UP) {
            let cut = 1 + k.index(s.len() - 1);
            let lines = [format!("{x}{}", &s[..cut]), format!("{}{y}", &s[cut..])];
            let out = stream(Masker::new([s.as_str()]), lines);
            prop_assert_eq!(out.len(), 2);
            let ok = |c: char| c.is_ascii_uppercase() || c == ' ' || c == '*';
            prop_assert!(out.iter().all(|l| l.chars().all(ok)), "{out:?}");
        }

        #[test]
        fn stream_never_panics(secrets in vec(secret(), 0..3), lines in vec("\\PC{0,20}", 0..8)) {
            let masker = Masker::new(secrets.iter().map(String::as_str));
            let n = lines.len();
            let out = stream(masker.clone(), lines);
            prop_assert_eq!(out.len(), n);
            for l in &out {
                prop_assert!(!masker.patterns.iter().any(|p| l.contains(p.as_str())));
            }
        }
    }
}
