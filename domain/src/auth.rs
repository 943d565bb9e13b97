//! API tokens: random (160 bits, `ocl_` + 40 hex characters), shown once, stored as SHA-256
//! hashes, each with a scope. `read` reads builds, logs, repos and polls; `trigger` also
//! queues builds; `admin` may do everything (repos, polls, credentials, tokens).
//! A token may also be limited to some repos ([`RepoScope`]: glob patterns over repo names).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// What a token may do; each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    Read,
    Trigger,
    Admin,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Trigger => "trigger",
            TokenScope::Admin => "admin",
        }
    }

    /// Whether a token of this scope may do what `needed` allows.
    pub fn allows(self, needed: TokenScope) -> bool {
        self >= needed
    }
}

impl fmt::Display for TokenScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scope name that is not `read`, `trigger` or `admin`.
#[derive(Debug, thiserror::Error)]
#[error("unknown token scope `{0}` (scopes: read, trigger, admin)")]
pub struct UnknownScope(pub String);

impl FromStr for TokenScope {
    type Err = UnknownScope;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "read" => Ok(TokenScope::Read),
            "trigger" => Ok(TokenScope::Trigger),
            "admin" => Ok(TokenScope::Admin),
            other => Err(UnknownScope(other.to_string())),
        }
    }
}

/// The repos a token may see: every repo (the default), or those whose name matches one of
/// its glob patterns. `*` matches within one path segment (`team/*` is `team/app`, not
/// `team/a/b`), `**` across segments, `?` one character, `[ab]` a class.
#[derive(Debug, Clone)]
pub struct RepoScope {
    patterns: Vec<String>,
    set: globset::GlobSet,
}

/// A `--repos` value that is not a list of glob patterns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoScopeError {
    #[error("the repo pattern `{pattern}` is not a glob pattern: {message}")]
    Pattern { pattern: String, message: String },
    #[error(
        "the repo list is empty: give glob patterns over repo names, e.g. `team/*,other/app` (leave the option out for every repo)"
    )]
    Empty,
}

impl RepoScope {
    /// Every repo: what a token without repo patterns sees.
    pub fn all() -> Self {
        RepoScope {
            patterns: Vec::new(),
            set: globset::GlobSet::empty(),
        }
    }

    /// The repos matching one of `patterns`; an empty list means every repo.
    pub fn new(patterns: &[String]) -> Result<Self, RepoScopeError> {
        let mut builder = globset::GlobSetBuilder::new();
        let mut kept = Vec::new();
        for pattern in patterns {
            let pattern = pattern.trim();
            if pattern.is_empty() {
                continue;
            }
            let glob = globset::GlobBuilder::new(pattern)
                .literal_separator(true)
                .build()
                .map_err(|e| RepoScopeError::Pattern {
                    pattern: pattern.to_string(),
                    message: e.kind().to_string(),
                })?;
            builder.add(glob);
            kept.push(pattern.to_string());
        }
        let set = builder.build().map_err(|e| RepoScopeError::Pattern {
            pattern: kept.join(","),
            message: e.to_string(),
        })?;
        Ok(RepoScope {
            patterns: kept,
            set,
        })
    }

    /// A comma-separated list of patterns (`team/*,other/app`), as given to `--repos`; it
    /// must name at least one.
    pub fn parse_list(text: &str) -> Result<Self, RepoScopeError> {
        let patterns: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        if patterns.is_empty() {
            return Err(RepoScopeError::Empty);
        }
        RepoScope::new(&patterns)
    }

    /// Whether the token sees every repo.
    pub fn is_all(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The patterns (empty: every repo).
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether the repo named `repo` is in scope.
    pub fn allows(&self, repo: &str) -> bool {
        self.is_all() || self.set.is_match(repo)
    }
}

impl Default for RepoScope {
    fn default() -> Self {
        RepoScope::all()
    }
}

impl PartialEq for RepoScope {
    fn eq(&self, other: &Self) -> bool {
        self.patterns == other.patterns
    }
}

impl Eq for RepoScope {}

impl fmt::Display for RepoScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            f.write_str("*all*")
        } else {
            f.write_str(&self.patterns.join(","))
        }
    }
}

/// The prefix every token starts with (so that a leaked one is recognisable).
pub const TOKEN_PREFIX: &str = "ocl_";

/// A new random token.
pub fn generate_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{TOKEN_PREFIX}{hex}"))
}

/// What is stored of a token.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.trim().as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_include_the_lower_ones() {
        assert!(TokenScope::Admin.allows(TokenScope::Trigger));
        assert!(TokenScope::Trigger.allows(TokenScope::Read));
        assert!(!TokenScope::Read.allows(TokenScope::Trigger));
        assert!(!TokenScope::Trigger.allows(TokenScope::Admin));
        assert!("admin".parse::<TokenScope>().is_ok());
        assert!("root".parse::<TokenScope>().is_err());
    }

    #[test]
    fn repo_scopes_match_names_by_glob() {
        let scope = RepoScope::parse_list("team/*, other/app").unwrap();
        assert!(scope.allows("team/app"));
        assert!(scope.allows("other/app"));
        assert!(!scope.allows("other/app2"));
        assert!(!scope.allows("team/a/b"), "`*` stays within one segment");
        assert!(!scope.allows("teamx/app"));
        assert!(!scope.allows("app"));
        assert!(RepoScope::parse_list("team/**").unwrap().allows("team/a/b"));
        assert_eq!(scope.patterns(), ["team/*", "other/app"]);
        let all = RepoScope::all();
        assert!(all.is_all() && all.allows("anything/at/all"));
        assert_eq!(RepoScope::parse_list(" , "), Err(RepoScopeError::Empty));
        assert!(matches!(
            RepoScope::parse_list("team/["),
            Err(RepoScopeError::Pattern { .. })
        ));
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == 44);
        assert_eq!(hash_token(&a), hash_token(&format!("{a}\n")));
        assert_ne!(hash_token(&a), hash_token(&b));
    }
}
