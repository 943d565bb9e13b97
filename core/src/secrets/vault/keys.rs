//! How credentials are laid out in the KV engine: the one-segment key that names a
//! credential (`KIND~SCOPEKIND~SCOPE~NAME`, escaped), and the secret data stored under it.

use crate::secrets::{CredentialDetails, CredentialKind, Scope};
use std::time::SystemTime;

/// A credential's identity as its key encodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KeyParts {
    pub(super) kind: CredentialKind,
    pub(super) scope: Scope,
    pub(super) name: String,
}

/// What Ocelot keeps in a KV secret. No `Debug`: it holds the value.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct StoredSecret {
    pub(super) name: String,
    pub(super) kind: String,
    pub(super) scope_kind: String,
    pub(super) scope: String,
    #[serde(default)]
    pub(super) details: CredentialDetails,
    pub(super) value: String,
    /// The secret's first creation (RFC 3339), once it has more than one version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) created_at: Option<String>,
}

/// Bytes kept as they are in keys; every other byte is written `.HH`.
fn plain_key_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for byte in text.bytes() {
        if plain_key_byte(byte) {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!(".{byte:02X}"));
        }
    }
    escaped
}

fn unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut plain = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'.' {
            let hex = text.get(i + 1..i + 3)?;
            plain.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if plain_key_byte(bytes[i]) {
            plain.push(bytes[i]);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(plain).ok()
}

/// The key (one path segment) of a credential: `KIND~SCOPEKIND~SCOPE~NAME`, escaped.
pub(super) fn credential_key(kind: CredentialKind, scope: &Scope, name: &str) -> String {
    let (scope_kind, scope_value) = scope.parts();
    format!(
        "{}~{scope_kind}~{}~{}",
        kind.as_str(),
        escape(scope_value),
        escape(name)
    )
}

/// The credential a key names, or `None` for a key Ocelot did not write.
pub(super) fn parse_key(key: &str) -> Option<KeyParts> {
    let mut parts = key.split('~');
    let (kind, scope_kind, scope, name) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !matches!(scope_kind, "repo" | "prefix") {
        return None;
    }
    Some(KeyParts {
        kind: kind.parse().ok()?,
        scope: Scope::from_parts(scope_kind, &unescape(scope)?),
        name: unescape(name)?,
    })
}

pub(super) fn parse_time(text: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(SystemTime::from)
}

/// `env `API_TOKEN` (repo acme/app)`, as the Postgres store names credentials.
pub(super) fn describe(kind: CredentialKind, scope: &Scope, name: &str) -> String {
    format!("credential {kind} `{name}` ({scope})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_readable_segment_and_decode() {
        let scope = Scope::Repo("acme/app".into());
        let key = credential_key(CredentialKind::Env, &scope, "API_TOKEN");
        assert_eq!(key, "env~repo~acme.2Fapp~API_TOKEN");
        assert_eq!(
            parse_key(&key),
            Some(KeyParts {
                kind: CredentialKind::Env,
                scope,
                name: "API_TOKEN".into()
            })
        );
        for (scope, name) in [
            (Scope::Prefix("team/".into()), "deploy key ~ ü.x"),
            (Scope::Repo("a~b/../c".into()), "../../x"),
            (Scope::Prefix("%2F.2F".into()), "."),
        ] {
            let key = credential_key(CredentialKind::Ssh, &scope, name);
            assert!(!key.contains('/') && !key.contains('%'), "{key}");
            assert_eq!(key.matches('~').count(), 3, "{key}");
            let parts = parse_key(&key).unwrap();
            assert_eq!((parts.scope, parts.name.as_str()), (scope, name));
        }
    }

    #[test]
    fn foreign_keys_are_not_credentials() {
        for key in [
            "folder/",
            "env~repo~x",
            "env~team~x~Y",
            "nope~repo~x~Y",
            "env~repo~x~Y~Z",
            "env~repo~x.2~Y",
            "env~repo~x.ZZ~Y",
            "env~repo~a b~Y",
        ] {
            assert_eq!(parse_key(key), None, "{key}");
        }
    }

    #[test]
    fn vault_times_parse() {
        let time = parse_time("2018-03-22T02:24:06.945319214Z").unwrap();
        assert_eq!(
            time.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            1_521_685_446
        );
        assert_eq!(parse_time("yesterday"), None);
    }
}
