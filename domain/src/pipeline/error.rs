//! Validation errors for `ocelot.yml`: one [`PipelineError`] per problem, each
//! with a 1-based line and column, collected into [`PipelineErrors`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// One problem found in a build file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineError {
    /// 1-based line of the offending node.
    pub line: usize,
    /// 1-based column of the offending node.
    pub column: usize,
    /// Dotted path of the field, e.g. `stages[1].script`; empty for the file itself.
    pub field: String,
    /// What is wrong, on a single line.
    pub message: String,
    /// A suggestion such as "did you mean `script`?".
    pub hint: Option<String>,
}

impl PipelineError {
    /// Builds an error, flattening any line breaks so that every error
    /// prints on exactly one line.
    pub fn new(
        line: usize,
        column: usize,
        field: impl Into<String>,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Self {
        Self {
            line: line.max(1),
            column: column.max(1),
            field: one_line(&field.into()),
            message: one_line(&message.into()),
            hint: hint.map(|h| one_line(&h)),
        }
    }
}

/// Replaces line breaks and other control characters so the text fits on one line.
pub(crate) fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}: ", self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for PipelineError {}

/// Every problem found in a build file, sorted by position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineErrors(pub Vec<PipelineError>);

impl PipelineErrors {
    /// Number of errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is no error (never the case for a value returned by `parse`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over the errors in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, PipelineError> {
        self.0.iter()
    }

    /// The line numbers of all errors, in order (handy in tests and summaries).
    pub fn lines(&self) -> Vec<usize> {
        self.0.iter().map(|e| e.line).collect()
    }
}

impl fmt::Display for PipelineErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{err}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PipelineErrors {}

impl<'a> IntoIterator for &'a PipelineErrors {
    type Item = &'a PipelineError;
    type IntoIter = std::slice::Iter<'a, PipelineError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for PipelineErrors {
    type Item = PipelineError;
    type IntoIter = std::vec::IntoIter<PipelineError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// The candidate closest to `word`, if it is close enough to be worth a
/// "did you mean" hint. Case, `_` and `-` are ignored when comparing, so
/// `machine_tag` suggests `machineTag`.
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let w = norm(word);
    if w.is_empty() {
        return None;
    }
    let mut best: Option<(&'a str, f64)> = None;
    for &cand in candidates {
        let c = norm(cand);
        if c == w {
            return Some(cand);
        }
        let distance = strsim::osa_distance(&w, &c);
        let longest = w.chars().count().max(c.chars().count());
        let jw = strsim::jaro_winkler(&w, &c);
        // Close when few edits are needed relative to the length, or the
        // strings share most of their characters in order.
        let close = (distance <= 2 && distance * 3 <= longest) || jw >= 0.88;
        if close && best.is_none_or(|(_, score)| jw > score) {
            best = Some((cand, jw));
        }
    }
    best.map(|(cand, _)| cand)
}

/// "did you mean `x`?" for the closest candidate, if any.
pub(crate) fn did_you_mean(word: &str, candidates: &[&str]) -> Option<String> {
    suggest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}
