//! `cache:` of a pipeline: directories of the workspace kept between builds of a repository
//! under a key, restored before the first stage and saved after a passing build whose key
//! was a miss. A key is a template (`cargo-{{ checksum "Cargo.lock" }}`) rendered by the
//! worker from the checkout; `restore_keys` are prefixes tried when the key itself misses.

use serde::{Deserialize, Serialize};

use super::artifacts::ArtifactPattern;

/// The most caches one `ocelot.yml` may name.
pub const MAX_CACHES: usize = 8;
/// The longest key, once rendered, in bytes.
pub const MAX_KEY_BYTES: usize = 512;

/// One entry of `cache:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cache {
    /// `key`: what the saved files are found by.
    pub key: KeyTemplate,
    /// `paths`: files, directories or globs of the workspace to keep; never empty.
    pub paths: Vec<ArtifactPattern>,
    /// `restore_keys`: prefixes of keys to fall back to when `key` misses.
    pub restore_keys: Vec<KeyTemplate>,
}

/// A key as written, checked: literal text and `{{ ... }}` parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyTemplate {
    text: String,
    parts: Vec<KeyPart>,
}

/// A piece of a key template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    Literal(String),
    /// `{{ branch }}`: the build's branch.
    Branch,
    /// `{{ arch }}`: the worker's CPU architecture (`x86_64`, `aarch64`).
    Arch,
    /// `{{ os }}`: the worker's operating system (`linux`).
    Os,
    /// `{{ checksum "Cargo.lock" "**/package-lock.json" }}`: the SHA-256 of the files of the
    /// checkout the patterns match.
    Checksum(Vec<ArtifactPattern>),
}

/// The words a `{{ ... }}` part may start with.
const FUNCTIONS: [&str; 4] = ["branch", "arch", "os", "checksum"];

impl TryFrom<String> for KeyTemplate {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        KeyTemplate::parse(&text)
    }
}

impl From<KeyTemplate> for String {
    fn from(template: KeyTemplate) -> String {
        template.text
    }
}

impl std::fmt::Display for KeyTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// What a template's parts are replaced by.
pub struct KeyValues<'a> {
    pub branch: &'a str,
    pub arch: &'a str,
    pub os: &'a str,
}

impl KeyTemplate {
    /// Reads a template; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("the key is empty".to_string());
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(KeyPart::Literal(literal(&rest[..open])?));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(format!("`{text}`: `{{{{` without its `}}}}`"));
            };
            parts.push(function(after[..close].trim())?);
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(KeyPart::Literal(literal(rest)?));
        }
        Ok(KeyTemplate {
            text: text.to_string(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn parts(&self) -> &[KeyPart] {
        &self.parts
    }

    /// The key: each part replaced by its value; `checksum` gives the hash of the files
    /// its patterns match (computed by the caller, which alone sees the files).
    pub fn render(
        &self,
        values: &KeyValues<'_>,
        mut checksum: impl FnMut(&[ArtifactPattern]) -> String,
    ) -> String {
        let mut key = String::new();
        for part in &self.parts {
            match part {
                KeyPart::Literal(text) => key.push_str(text),
                KeyPart::Branch => key.push_str(&safe_value(values.branch)),
                KeyPart::Arch => key.push_str(values.arch),
                KeyPart::Os => key.push_str(values.os),
                KeyPart::Checksum(patterns) => key.push_str(&checksum(patterns)),
            }
        }
        key
    }
}

/// Literal text of a key: printable, no spaces, no lone braces.
fn literal(text: &str) -> Result<String, String> {
    if let Some(bad) = text
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == '{' || *c == '}')
    {
        return Err(format!(
            "`{text}`: keys hold no spaces, control characters or braces outside `{{{{ ... }}}}` (found {bad:?})"
        ));
    }
    Ok(text.to_string())
}

/// A `{{ ... }}` part.
fn function(inner: &str) -> Result<KeyPart, String> {
    let (name, args) = match inner.split_once(char::is_whitespace) {
        Some((name, args)) => (name, args.trim()),
        None => (inner, ""),
    };
    let no_args = |part: KeyPart| {
        if args.is_empty() {
            Ok(part)
        } else {
            Err(format!("`{{{{ {inner} }}}}`: `{name}` takes no argument"))
        }
    };
    match name {
        "branch" | ".Branch" => no_args(KeyPart::Branch),
        "arch" => no_args(KeyPart::Arch),
        "os" => no_args(KeyPart::Os),
        "checksum" => checksum_args(inner, args).map(KeyPart::Checksum),
        _ => Err(format!(
            "`{{{{ {inner} }}}}`: unknown `{name}`; a key can use {}",
            FUNCTIONS.map(|f| format!("`{f}`")).join(", ")
        )),
    }
}

/// `"Cargo.lock" "web/package-lock.json"`: one or more quoted files or globs.
fn checksum_args(inner: &str, args: &str) -> Result<Vec<ArtifactPattern>, String> {
    let mut patterns = Vec::new();
    let mut rest = args;
    while !rest.is_empty() {
        let Some(quoted) = rest.strip_prefix('"') else {
            return Err(format!(
                "`{{{{ {inner} }}}}`: name files in double quotes, e.g. `{{{{ checksum \"Cargo.lock\" }}}}`"
            ));
        };
        let Some(end) = quoted.find('"') else {
            return Err(format!("`{{{{ {inner} }}}}`: a quote is not closed"));
        };
        let pattern = ArtifactPattern::parse(&quoted[..end])
            .map_err(|e| format!("`{{{{ {inner} }}}}`: {e}"))?;
        patterns.push(pattern);
        rest = quoted[end + 1..].trim_start();
    }
    if patterns.is_empty() {
        return Err(format!(
            "`{{{{ {inner} }}}}`: `checksum` needs a file, e.g. `{{{{ checksum \"Cargo.lock\" }}}}`"
        ));
    }
    Ok(patterns)
}

/// A value put in a key (a branch name): whitespace and control characters become `_`.
fn safe_value(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUES: KeyValues<'static> = KeyValues {
        branch: "feature/x",
        arch: "x86_64",
        os: "linux",
    };

    #[test]
    fn templates_render_their_parts() {
        let template = KeyTemplate::parse(
            r#"cargo-{{ os }}-{{arch}}-{{ branch }}-{{ checksum "Cargo.lock" "web/*.json" }}"#,
        )
        .unwrap();
        let key = template.render(&VALUES, |patterns| {
            assert_eq!(patterns.len(), 2);
            assert_eq!(patterns[1].as_str(), "web/*.json");
            "abc".to_string()
        });
        assert_eq!(key, "cargo-linux-x86_64-feature/x-abc");
        let plain = KeyTemplate::parse("deps-v1").unwrap();
        assert_eq!(plain.render(&VALUES, |_| unreachable!()), "deps-v1");
    }

    #[test]
    fn bad_templates_say_what_is_wrong() {
        for (text, expected) in [
            ("", "empty"),
            ("a {{ branch }}", "no spaces"),
            ("a-{{ branch", "without its"),
            ("a-{{ version }}", "unknown `version`"),
            ("a-{{ branch x }}", "takes no argument"),
            ("a-{{ checksum }}", "needs a file"),
            ("a-{{ checksum Cargo.lock }}", "double quotes"),
            (r#"a-{{ checksum "../x" }}"#, "leaves the workspace"),
            (r#"a-{{ checksum "/etc/passwd" }}"#, "absolute"),
            ("a-}", "braces"),
        ] {
            let error = KeyTemplate::parse(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
