//! `artifacts:` of a stage: which files of the workspace are kept after it, when, and for
//! how long. Patterns are globs relative to the workspace; a pattern that would leave the
//! workspace (`..`, an absolute path) is refused when the file is read (a symlink that
//! leaves it is refused by the worker, which alone sees the files).

use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};

/// A stage's `artifacts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifacts {
    /// `paths`: never empty.
    pub paths: Vec<ArtifactPattern>,
    /// `when`: after which stage results they are kept.
    pub when: ArtifactWhen,
    /// `expire_in`: how long they are kept (`None`: the worker's default).
    pub expire_in: Option<Duration>,
}

/// When a stage's artifacts are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ArtifactWhen {
    /// `on_success` (the default): the stage passed.
    OnSuccess,
    /// `on_failure`: the stage failed or timed out.
    OnFailure,
    /// `always`: whatever happened (except a cancel).
    Always,
}

impl ArtifactWhen {
    /// The spellings `ocelot.yml` accepts.
    pub const NAMES: [&'static str; 3] = ["on_success", "on_failure", "always"];

    /// Reads `on_success`, `on_failure` or `always`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "on_success" => Some(Self::OnSuccess),
            "on_failure" => Some(Self::OnFailure),
            "always" => Some(Self::Always),
            _ => None,
        }
    }

    /// Whether artifacts are kept after a stage that `passed` (or not).
    pub fn applies(self, passed: bool) -> bool {
        match self {
            Self::OnSuccess => passed,
            Self::OnFailure => !passed,
            Self::Always => true,
        }
    }
}

/// One entry of `paths`: a file, a directory (everything under it) or a glob (`*`, `?`,
/// `[...]`, `{a,b}`, `**`), relative to the workspace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ArtifactPattern {
    text: String,
}

impl TryFrom<String> for ArtifactPattern {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        ArtifactPattern::parse(&text)
    }
}

impl From<ArtifactPattern> for String {
    fn from(pattern: ArtifactPattern) -> String {
        pattern.text
    }
}

impl std::fmt::Display for ArtifactPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn is_glob_part(part: &str) -> bool {
    part.contains(['*', '?', '[', '{'])
}

impl ArtifactPattern {
    /// Checks a pattern: relative, without `..`, a valid glob. `./a/` is kept as `a`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err("empty artifact path".to_string());
        }
        if trimmed.starts_with('/') || trimmed.starts_with('~') {
            return Err(format!(
                "`{trimmed}` is an absolute path: artifact paths are relative to the workspace"
            ));
        }
        if trimmed.contains('\\') {
            return Err(format!("`{trimmed}`: write paths with `/`, not `\\`"));
        }
        let parts: Vec<&str> = trimmed
            .split('/')
            .filter(|part| !part.is_empty() && *part != ".")
            .collect();
        if parts.contains(&"..") {
            return Err(format!(
                "`{trimmed}` leaves the workspace through `..`: artifact paths stay inside it"
            ));
        }
        if parts.is_empty() {
            return Err(format!(
                "`{trimmed}` is the whole workspace: name files, directories or globs in it"
            ));
        }
        let text = parts.join("/");
        compile(&text).map_err(|e| format!("`{trimmed}` is not a valid glob: {e}"))?;
        Ok(ArtifactPattern { text })
    }

    /// The pattern as written (normalised).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the workspace path `path` (`/`-separated, relative) is kept by this pattern:
    /// it matches the glob, or lies in a directory that does.
    pub fn matches(&self, path: &str) -> bool {
        let Ok(matcher) = compile(&self.text) else {
            return false;
        };
        let mut prefix = String::new();
        for part in path.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if matcher.is_match(&prefix) {
                return true;
            }
        }
        false
    }

    /// The directories before the first glob part: where matching files can only be
    /// (`reports/unit/*.xml` → `reports/unit`; `*.txt` → ``).
    pub fn literal_prefix(&self) -> String {
        let parts: Vec<&str> = self.text.split('/').collect();
        let literal: Vec<&str> = parts
            .iter()
            .take_while(|part| !is_glob_part(part))
            .copied()
            .collect();
        literal.join("/")
    }
}

/// A glob whose `*` stops at `/` (`**` crosses it).
fn compile(text: &str) -> Result<GlobMatcher, globset::Error> {
    Ok(GlobBuilder::new(text)
        .literal_separator(true)
        .backslash_escape(false)
        .build()?
        .compile_matcher())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_stay_in_the_workspace() {
        assert!(ArtifactPattern::parse("/etc/passwd").is_err());
        assert!(ArtifactPattern::parse("../x").is_err());
        assert!(ArtifactPattern::parse("a/../../x").is_err());
        assert!(ArtifactPattern::parse("./").is_err());
        assert!(ArtifactPattern::parse("a[").is_err());
        assert_eq!(ArtifactPattern::parse("./out/").unwrap().as_str(), "out");
    }

    #[test]
    fn files_directories_and_globs_match() {
        let file = ArtifactPattern::parse("target/app").unwrap();
        assert!(file.matches("target/app"));
        assert!(!file.matches("target/app2"));
        let dir = ArtifactPattern::parse("reports").unwrap();
        assert!(dir.matches("reports/a/b.xml"));
        let glob = ArtifactPattern::parse("reports/*.xml").unwrap();
        assert!(glob.matches("reports/unit.xml"));
        assert!(!glob.matches("reports/sub/unit.xml"));
        assert_eq!(glob.literal_prefix(), "reports");
        let deep = ArtifactPattern::parse("**/*.log").unwrap();
        assert!(deep.matches("a/b/c.log"));
        assert_eq!(deep.literal_prefix(), "");
    }

    #[test]
    fn when_applies_to_results() {
        assert!(ArtifactWhen::OnSuccess.applies(true));
        assert!(!ArtifactWhen::OnSuccess.applies(false));
        assert!(ArtifactWhen::OnFailure.applies(false));
        assert!(ArtifactWhen::Always.applies(false));
    }
}
