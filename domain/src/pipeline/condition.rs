//! The stage trigger language of the original Ocelot (`triggers:` lines).
//!
//! A line is made of sections, each a keyword followed by values:
//!
//! * `\branch v`: the branch matches `v` (an anchored regex, or `ALL`);
//! * `\text v`: some commit message contains `v`;
//! * `\filepath v`: some changed path contains `v`.
//!
//! Values in a section are joined by `||` (any) or `&&` (all); sections are
//! joined by `and` or `or`, e.g. `\branch master||develop and \filepath src/main`.
//! As in the original, `||` and `&&` cannot be mixed in one section; likewise
//! `and` and `or` cannot be mixed in one line (use several `triggers` lines,
//! any of which may hold). The original's older spellings `branch:`, `text:`
//! and `filepath:` are accepted too; keywords and `and`/`or` ignore case.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::did_you_mean;
use super::model::{BranchPattern, TriggerContext};

/// How values (`||`, `&&`) or sections (`or`, `and`) are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Join {
    /// Any one must hold (`||`, `or`).
    Any,
    /// All must hold (`&&`, `and`).
    All,
}

/// What a section tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SectionKind {
    /// `\branch`
    Branch,
    /// `\text`
    Text,
    /// `\filepath`
    Filepath,
}

impl SectionKind {
    /// The keyword, e.g. `\branch`.
    pub fn keyword(self) -> &'static str {
        match self {
            Self::Branch => "\\branch",
            Self::Text => "\\text",
            Self::Filepath => "\\filepath",
        }
    }

    fn from_word(word: &str) -> Option<Self> {
        match word.to_ascii_lowercase().as_str() {
            "\\branch" | "branch:" => Some(Self::Branch),
            "\\text" | "text:" => Some(Self::Text),
            "\\filepath" | "filepath:" => Some(Self::Filepath),
            _ => None,
        }
    }
}

const KEYWORDS: [&str; 3] = ["\\branch", "\\text", "\\filepath"];

/// One section: a keyword and its values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TriggerSection {
    /// What is tested.
    pub kind: SectionKind,
    /// How the values combine; `Any` when there is a single value.
    pub join: Join,
    /// Never empty once parsed.
    pub values: Vec<String>,
}

impl TriggerSection {
    fn value_holds(&self, value: &str, ctx: &TriggerContext<'_>) -> bool {
        match self.kind {
            SectionKind::Branch => {
                let pattern = if value == "ALL" {
                    BranchPattern::All
                } else {
                    BranchPattern::Regex(value.to_string())
                };
                pattern.matches(ctx.branch)
            }
            SectionKind::Text => ctx.commit_messages.iter().any(|m| m.contains(value)),
            SectionKind::Filepath => ctx.changed_paths.iter().any(|p| p.contains(value)),
        }
    }

    /// Whether this section holds for the push.
    pub fn matches(&self, ctx: &TriggerContext<'_>) -> bool {
        if self.values.is_empty() {
            return false;
        }
        let mut values = self.values.iter();
        match self.join {
            Join::Any => values.any(|v| self.value_holds(v, ctx)),
            Join::All => values.all(|v| self.value_holds(v, ctx)),
        }
    }
}

/// One parsed `triggers` line. Serialized as its text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TriggerExpr {
    /// How the sections combine; `All` when there is a single section.
    pub join: Join,
    /// Never empty once parsed.
    pub sections: Vec<TriggerSection>,
}

/// Why a trigger line is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConditionError {
    /// What is wrong.
    pub message: String,
    /// A suggestion, if there is one.
    pub hint: Option<String>,
}

impl ConditionError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
        }
    }

    fn hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }
}

/// A piece of a value word: a value or a `||` / `&&` inside it.
enum Piece<'a> {
    Value(&'a str),
    Op(Join, &'static str),
}

/// Splits `master||develop` into `master`, `||`, `develop`.
fn pieces(word: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = word;
    loop {
        let next = [("||", Join::Any), ("&&", Join::All)]
            .into_iter()
            .filter_map(|(sym, join)| rest.find(sym).map(|at| (at, sym, join)))
            .min_by_key(|(at, _, _)| *at);
        match next {
            Some((at, sym, join)) => {
                if at > 0 {
                    out.push(Piece::Value(&rest[..at]));
                }
                out.push(Piece::Op(join, sym));
                rest = &rest[at + sym.len()..];
            }
            None => {
                if !rest.is_empty() {
                    out.push(Piece::Value(rest));
                }
                return out;
            }
        }
    }
}

/// A section being read.
struct Open {
    kind: SectionKind,
    keyword: String,
    join: Option<(Join, &'static str)>,
    values: Vec<String>,
    /// The last piece was an operator still waiting for its right-hand value.
    dangling: Option<&'static str>,
}

impl Open {
    fn close(self) -> Result<TriggerSection, ConditionError> {
        if let Some(sym) = self.dangling {
            return Err(ConditionError::new(format!(
                "`{sym}` at the end of `{}` has no value after it",
                self.keyword
            )));
        }
        if self.values.is_empty() {
            return Err(ConditionError::new(format!(
                "`{}` has no value",
                self.keyword
            )));
        }
        Ok(TriggerSection {
            kind: self.kind,
            join: self.join.map_or(Join::Any, |(j, _)| j),
            values: self.values,
        })
    }

    fn push(&mut self, piece: Piece<'_>) -> Result<(), ConditionError> {
        match piece {
            Piece::Op(join, sym) => {
                if self.values.is_empty() || self.dangling.is_some() {
                    return Err(ConditionError::new(format!(
                        "`{sym}` in `{}` must stand between two values",
                        self.keyword
                    )));
                }
                match self.join {
                    Some((prev, prev_sym)) if prev != join => {
                        return Err(ConditionError::new(format!(
                            "`{prev_sym}` and `{sym}` cannot be combined in one `{}` section",
                            self.keyword
                        ))
                        .hint(Some(
                            "split the condition into several `triggers` lines".to_string(),
                        )));
                    }
                    _ => self.join = Some((join, sym)),
                }
                self.dangling = Some(sym);
            }
            Piece::Value(value) => {
                if self.dangling.is_none()
                    && let Some(prev) = self.values.last()
                {
                    return Err(ConditionError::new(format!(
                        "missing `||` or `&&` between `{prev}` and `{value}` in `{}`",
                        self.keyword
                    )));
                }
                if self.kind == SectionKind::Branch {
                    BranchPattern::parse(value).map_err(ConditionError::new)?;
                }
                self.values.push(value.to_string());
                self.dangling = None;
            }
        }
        Ok(())
    }
}

fn section_join(word: &str) -> Option<Join> {
    if word.eq_ignore_ascii_case("and") {
        Some(Join::All)
    } else if word.eq_ignore_ascii_case("or") {
        Some(Join::Any)
    } else {
        None
    }
}

impl TriggerExpr {
    /// Parses one `triggers` line.
    pub fn parse(text: &str) -> Result<Self, ConditionError> {
        let mut sections: Vec<TriggerSection> = Vec::new();
        let mut join: Option<(Join, String)> = None;
        let mut open: Option<Open> = None;
        // After `and` / `or`, the next word must start a section.
        let mut after_join: Option<String> = None;

        for word in text.split_whitespace() {
            if let Some(kind) = SectionKind::from_word(word) {
                if let Some(prev) = open.take() {
                    let keyword = prev.keyword.clone();
                    prev.close()?;
                    return Err(ConditionError::new(format!(
                        "missing `and` or `or` between `{keyword}` and `{word}`"
                    )));
                }
                open = Some(Open {
                    kind,
                    keyword: word.to_string(),
                    join: None,
                    values: Vec::new(),
                    dangling: None,
                });
                after_join = None;
                continue;
            }
            let lower = word.to_ascii_lowercase();
            if lower == "\\upstream" || lower == "upstream:" {
                return Err(ConditionError::new(format!(
                    "`{word}` is not supported; use `\\branch`, `\\text` or `\\filepath`"
                )));
            }
            if let Some(j) = section_join(word) {
                let Some(section) = open.take() else {
                    return Err(ConditionError::new(match &after_join {
                        Some(prev) => format!(
                            "expected `\\branch`, `\\text` or `\\filepath` after `{prev}`, found `{word}`"
                        ),
                        None => format!("`{word}` must come between two sections"),
                    }));
                };
                sections.push(section.close()?);
                match &join {
                    Some((prev, prev_word)) if *prev != j => {
                        return Err(ConditionError::new(format!(
                            "`{prev_word}` and `{word}` cannot be combined in one trigger"
                        ))
                        .hint(Some(
                            "put each alternative on its own `triggers` line; a stage runs when any line holds"
                                .to_string(),
                        )));
                    }
                    _ => join = Some((j, word.to_string())),
                }
                after_join = Some(word.to_string());
                continue;
            }
            let Some(section) = open.as_mut() else {
                return Err(not_a_section(
                    word,
                    after_join.as_deref(),
                    sections.is_empty(),
                ));
            };
            for piece in pieces(word) {
                section.push(piece)?;
            }
        }

        match (open, after_join) {
            (Some(section), _) => sections.push(section.close()?),
            (None, Some(word)) => {
                return Err(ConditionError::new(format!(
                    "`{word}` at the end has no section after it"
                )));
            }
            (None, None) => {
                return Err(ConditionError::new("empty trigger").hint(Some(
                    "write e.g. `\\branch master and \\filepath src/`".to_string(),
                )));
            }
        }
        Ok(Self {
            join: join.map_or(Join::All, |(j, _)| j),
            sections,
        })
    }

    /// Whether this line holds for the push.
    pub fn matches(&self, ctx: &TriggerContext<'_>) -> bool {
        if self.sections.is_empty() {
            return false;
        }
        let mut sections = self.sections.iter();
        match self.join {
            Join::Any => sections.any(|s| s.matches(ctx)),
            Join::All => sections.all(|s| s.matches(ctx)),
        }
    }
}

/// The error for a value word where a section keyword was expected.
fn not_a_section(word: &str, after_join: Option<&str>, at_start: bool) -> ConditionError {
    let hint = if word.starts_with('\\') {
        did_you_mean(word, &KEYWORDS)
    } else {
        did_you_mean(&format!("\\{}", word.trim_end_matches(':')), &KEYWORDS)
    };
    if word.starts_with('\\') {
        return ConditionError::new(format!(
            "unknown section `{word}`; expected `\\branch`, `\\text` or `\\filepath`"
        ))
        .hint(hint);
    }
    let message = match after_join {
        Some(j) if !at_start => {
            format!("expected `\\branch`, `\\text` or `\\filepath` after `{j}`, found `{word}`")
        }
        _ => format!(
            "a trigger must start with `\\branch`, `\\text` or `\\filepath`, found `{word}`"
        ),
    };
    ConditionError::new(message).hint(hint)
}

impl std::str::FromStr for TriggerExpr {
    type Err = ConditionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for TriggerExpr {
    type Error = ConditionError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TriggerExpr> for String {
    fn from(expr: TriggerExpr) -> Self {
        expr.to_string()
    }
}

impl fmt::Display for TriggerSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = match self.join {
            Join::Any => "||",
            Join::All => "&&",
        };
        write!(f, "{} {}", self.kind.keyword(), self.values.join(sep))
    }
}

impl fmt::Display for TriggerExpr {
    /// The canonical text, which parses back to an equal value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = match self.join {
            Join::Any => " or ",
            Join::All => " and ",
        };
        for (i, section) in self.sections.iter().enumerate() {
            if i > 0 {
                f.write_str(sep)?;
            }
            write!(f, "{section}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(branch: &'a str, messages: &'a [String], paths: &'a [String]) -> TriggerContext<'a> {
        TriggerContext {
            branch,
            commit_messages: messages,
            changed_paths: paths,
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn expr(text: &str) -> TriggerExpr {
        TriggerExpr::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn trigger_branch_sections() {
        let e = expr("\\branch master||develop");
        assert!(e.matches(&ctx("master", &[], &[])));
        assert!(e.matches(&ctx("develop", &[], &[])));
        assert!(!e.matches(&ctx("master2", &[], &[])), "anchored");
        assert!(expr("\\branch ALL").matches(&ctx("x", &[], &[])));
        assert!(expr("\\branch release/.*").matches(&ctx("release/2", &[], &[])));
        // && on branches: every regex must match.
        let both = expr("\\branch rel.*&&.*-hotfix");
        assert!(both.matches(&ctx("rel-1-hotfix", &[], &[])));
        assert!(!both.matches(&ctx("rel-1", &[], &[])));
    }

    #[test]
    fn trigger_text_and_filepath_sections() {
        let msgs = strings(&["Fix login", "schema_changed: add column"]);
        let paths = strings(&["src/main/App.java", "deploy/schema/flyway/V2.sql"]);
        let c = ctx("feature", &msgs, &paths);

        assert!(expr("\\text schema_changed").matches(&c));
        assert!(!expr("\\text force_build").matches(&c));
        assert!(expr("\\text force_build||Fix").matches(&c), "|| = any");
        assert!(
            expr("\\text login && schema").matches(&c),
            "&& = all, across messages"
        );
        assert!(!expr("\\text login&&nothing").matches(&c));

        assert!(expr("\\filepath src/main").matches(&c));
        assert!(expr("\\filepath src/test || deploy/schema").matches(&c));
        assert!(!expr("\\filepath src/test&&src/main").matches(&c));
        assert!(expr("\\filepath src/main&&flyway").matches(&c));
    }

    #[test]
    fn trigger_and_or_between_sections() {
        let msgs = strings(&["please force_build"]);
        let paths = strings(&["src/main/x.rs"]);
        let c = ctx("feature", &msgs, &paths);
        assert!(expr("\\branch master or \\text force_build").matches(&c));
        assert!(!expr("\\branch master and \\text force_build").matches(&c));
        assert!(expr("\\branch feat.* and \\text force_build and \\filepath src/").matches(&c));
        assert!(!expr("\\branch feat.* AND \\text force_build AND \\filepath docs/").matches(&c));
        assert!(
            !expr("\\branch master OR \\filepath docs/").matches(&c),
            "no match: skipped"
        );
    }

    #[test]
    fn trigger_spacing_and_legacy_keywords() {
        let canonical = expr("\\branch master||develop||release.* and \\text schema_changed");
        for text in [
            "\\branch master || develop||release.* and \\text schema_changed",
            "\\branch master  || develop ||   release.*   and   \\text schema_changed",
            "branch: master|| develop ||release.* and text: schema_changed",
            "\\BRANCH master||develop||release.* AND \\Text schema_changed",
        ] {
            assert_eq!(expr(text), canonical, "{text}");
        }
        assert_eq!(expr(&canonical.to_string()), canonical);
    }

    #[test]
    fn malformed_trigger_lines() {
        let cases = [
            ("", "empty"),
            ("master", "must start with"),
            ("\\brnch master", "unknown section"),
            ("\\branch", "has no value"),
            ("\\branch master \\text x", "missing `and` or `or`"),
            ("\\branch \\text x", "`\\branch` has no value"),
            ("\\branch a|| \\text x", "has no value after it"),
            ("\\branch master and", "at the end"),
            ("and \\branch master", "between two sections"),
            ("\\branch a and and \\text b", "after `and`, found `and`"),
            (
                "\\branch a and \\text b or \\filepath c",
                "cannot be combined",
            ),
            ("\\branch a||b&&c", "cannot be combined"),
            ("\\branch a || b && c", "cannot be combined"),
            ("\\text a b", "missing `||` or `&&`"),
            ("\\text a||", "has no value after it"),
            ("\\text || a", "between two values"),
            ("\\text a |||| b", "between two values"),
            ("\\branch (unclosed", "invalid branch regex"),
            ("\\upstream x", "not supported"),
            ("\\branch a and master", "after `and`"),
        ];
        for (text, needle) in cases {
            match TriggerExpr::parse(text) {
                Ok(e) => panic!("{text:?} should fail, got {e:?}"),
                Err(e) => assert!(e.message.contains(needle), "{text:?}: {}", e.message),
            }
        }
        let err = TriggerExpr::parse("\\branches master").unwrap_err();
        assert_eq!(err.hint.as_deref(), Some("did you mean `\\branch`?"));
        let err = TriggerExpr::parse("filepath src").unwrap_err();
        assert_eq!(err.hint.as_deref(), Some("did you mean `\\filepath`?"));
    }
}
