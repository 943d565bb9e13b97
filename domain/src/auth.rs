//! API tokens: random (160 bits, `ocl_` + 40 hex characters), shown once, stored as SHA-256
//! hashes, each with a scope. `read` reads builds, logs, repos and polls; `trigger` also
//! queues builds; `admin` may do everything (repos, polls, credentials, tokens).

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
    fn tokens_are_random_and_hashed() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == 44);
        assert_eq!(hash_token(&a), hash_token(&format!("{a}\n")));
        assert_ne!(hash_token(&a), hash_token(&b));
    }
}
