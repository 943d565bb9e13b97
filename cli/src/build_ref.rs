//! Which build a command is about, as typed: `ocelot watch 42`, `ocelot watch latest`,
//! `ocelot watch 3f9a1c2`. All digits is a build id; `latest` the newest build of the
//! checkout's branch; anything else must be a commit prefix of at least
//! [`MIN_COMMIT_PREFIX`] hex digits. (A commit prefix of digits only reads as a build id:
//! give it with a letter in it, i.e. more of the commit.) Resolving a name to a build is
//! `commands::resolve`'s job.

use ocelot_domain::ids::BuildId;
use std::fmt;
use std::str::FromStr;

/// The shortest commit prefix accepted: fewer digits would match too many commits.
pub const MIN_COMMIT_PREFIX: usize = 4;
/// A full commit id (SHA-1, hex).
const FULL_COMMIT: usize = 40;

/// A build as named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildRef {
    /// A build id (all digits).
    Id(BuildId),
    /// `latest`: the newest build of the checkout's repo and branch.
    Latest,
    /// The newest build of the commit starting with these hex digits (lower case).
    Commit(String),
}

impl FromStr for BuildRef {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "latest" {
            return Ok(BuildRef::Latest);
        }
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return text
                .parse::<BuildId>()
                .map(BuildRef::Id)
                .map_err(|e| e.to_string());
        }
        let hex = !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit());
        match text.len() {
            _ if !hex => Err(format!(
                "`{text}` is not a build id (digits), `latest` or a commit prefix (hex digits)"
            )),
            length if length < MIN_COMMIT_PREFIX => Err(format!(
                "the commit prefix `{text}` is too short: give at least {MIN_COMMIT_PREFIX} hex digits"
            )),
            length if length > FULL_COMMIT => Err(format!(
                "`{text}` is longer than a commit id ({FULL_COMMIT} hex digits)"
            )),
            _ => Ok(BuildRef::Commit(text.to_ascii_lowercase())),
        }
    }
}

impl fmt::Display for BuildRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildRef::Id(id) => write!(f, "{id}"),
            BuildRef::Latest => f.write_str("latest"),
            BuildRef::Commit(prefix) => f.write_str(prefix),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<BuildRef, String> {
        text.parse()
    }

    #[test]
    fn digits_are_a_build_id_hex_a_commit_prefix() {
        assert_eq!(parsed("42"), Ok(BuildRef::Id(BuildId::from(42))));
        // digits only: an id, however long a commit prefix it could be
        assert_eq!(parsed("1234567"), Ok(BuildRef::Id(BuildId::from(1234567))));
        assert_eq!(parsed("latest"), Ok(BuildRef::Latest));
        assert_eq!(parsed("3F9a"), Ok(BuildRef::Commit("3f9a".into())));
        let full = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(parsed(full), Ok(BuildRef::Commit(full.into())));
        assert_eq!(parsed("3f9a").map(|r| r.to_string()), Ok("3f9a".into()));
    }

    #[test]
    fn anything_else_is_refused_saying_what_would_do() {
        let too_short = parsed("abc").unwrap_err();
        assert!(too_short.contains("at least 4 hex digits"), "{too_short}");
        let neither = parsed("main").unwrap_err();
        assert!(neither.contains("not a build id"), "{neither}");
        assert!(parsed("").is_err());
        assert!(parsed("Latest").is_err());
        assert!(parsed(&"a".repeat(41)).unwrap_err().contains("longer"));
        assert_eq!(
            parsed("99999999999999999999").unwrap_err(),
            "number too large to fit in target type"
        );
    }
}
