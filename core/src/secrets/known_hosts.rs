//! An `ssh` credential's `known_hosts` lines: checked when the credential is added, and
//! matched against the host key a git server presents.

use base64::Engine;

#[derive(Debug, thiserror::Error)]
#[error("known_hosts line {line}: {message}")]
pub struct KnownHostsError {
    line: usize,
    message: String,
}

/// Host keys from `known_hosts` lines (`host[,host…] TYPE BASE64`, or just `TYPE BASE64`).
/// A server is accepted when it presents one of these keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHosts {
    keys: Vec<Vec<u8>>,
}

impl KnownHosts {
    pub fn parse(text: &str) -> Result<KnownHosts, KnownHostsError> {
        let mut keys = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |message: &str| KnownHostsError {
                line: index + 1,
                message: message.to_string(),
            };
            let mut fields: Vec<&str> = line.split_whitespace().collect();
            if fields.first().is_some_and(|f| f.starts_with('@')) {
                return Err(error(
                    "markers (@cert-authority, @revoked) are not supported: give the host key itself",
                ));
            }
            // `host TYPE KEY` or `TYPE KEY`
            if fields.len() >= 3 && !looks_like_key_type(fields[0]) {
                fields.remove(0);
            }
            let (Some(key_type), Some(key)) = (fields.first(), fields.get(1)) else {
                return Err(error("expected `host TYPE BASE64-KEY`"));
            };
            if !looks_like_key_type(key_type) {
                return Err(error(&format!("`{key_type}` is not an SSH key type")));
            }
            let blob = base64::engine::general_purpose::STANDARD
                .decode(key)
                .map_err(|_| error("the key is not base64"))?;
            keys.push(blob);
        }
        if keys.is_empty() {
            return Err(KnownHostsError {
                line: 0,
                message: "no host key found".into(),
            });
        }
        Ok(KnownHosts { keys })
    }

    /// Whether `key` (the raw key blob a server presented) is one of these.
    pub fn accepts(&self, key: &[u8]) -> bool {
        self.keys.iter().any(|known| known == key)
    }
}

fn looks_like_key_type(field: &str) -> bool {
    field.starts_with("ssh-") || field.starts_with("ecdsa-") || field.starts_with("sk-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_lines_are_parsed() {
        let blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20abcdefghijabcdefghijabcdefghij12";
        let encoded = base64::engine::general_purpose::STANDARD.encode(blob);
        for text in [
            format!("[127.0.0.1]:2222 ssh-ed25519 {encoded}"),
            format!("# comment\n\nhost1,host2 ssh-ed25519 {encoded} comment"),
            format!("ssh-ed25519 {encoded}"),
        ] {
            let known = KnownHosts::parse(&text).expect("parses");
            assert!(known.accepts(blob), "{text}");
            assert!(!known.accepts(b"other"));
        }
        let error = KnownHosts::parse("host ssh-ed25519 not*base64").unwrap_err();
        assert_eq!(
            error.to_string(),
            "known_hosts line 1: the key is not base64"
        );
        assert!(KnownHosts::parse("@cert-authority * ssh-ed25519 AAAA").is_err());
        assert!(KnownHosts::parse("# only a comment").is_err());
        assert!(KnownHosts::parse("host rsa AAAA").is_err());
    }
}
