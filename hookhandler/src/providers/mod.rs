//! VCS webhook parsing and signature verification for GitHub, GitLab,
//! Bitbucket Cloud and Gitea/Forgejo.
//!
//! The flow a handler follows:
//! 1. [`Provider::from_path`] picks the provider from the URL segment;
//! 2. [`identify()`] reads only the fields that name the repository (the
//!    repository is needed to look up its secret), nothing else of the body;
//! 3. [`verify()`] checks the signature (or GitLab's token) over the raw body
//!    with that secret, in constant time;
//! 4. [`parse`] reads the delivery id and the event from the headers and body
//!    of a verified delivery only.
//!
//! Nothing here panics on input: every missing or mistyped field becomes
//! [`HookError::Malformed`] naming the field's path.

use std::collections::HashSet;

use http::HeaderMap;
use serde_json::Value;

pub mod bitbucket;
pub mod gitea;
pub mod github;
pub mod gitlab;
pub mod identify;
pub mod verify;

pub use identify::identify;
pub use verify::{sign, verify};

/// The VCS provider a webhook comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    GitHub,
    GitLab,
    /// Bitbucket Cloud (bitbucket.org).
    Bitbucket,
    /// Gitea and its fork Forgejo.
    Gitea,
}

impl Provider {
    /// The provider named by a URL path segment: `github`, `gitlab`,
    /// `bitbucket`, `gitea` or `forgejo` (which is Gitea).
    pub fn from_path(segment: &str) -> Option<Provider> {
        match segment {
            "github" => Some(Provider::GitHub),
            "gitlab" => Some(Provider::GitLab),
            "bitbucket" => Some(Provider::Bitbucket),
            "gitea" | "forgejo" => Some(Provider::Gitea),
            _ => None,
        }
    }

    /// The provider's lowercase name, as used in URL paths.
    pub fn name(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
            Provider::Bitbucket => "bitbucket",
            Provider::Gitea => "gitea",
        }
    }
}

/// What [`parse`] reads from a webhook request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedHook {
    /// The provider's unique id of this delivery (for de-duplication and logs).
    pub delivery_id: String,
    /// The repository the event is about (for a pull request: the base one).
    pub repo: RepoIdentity,
    /// What happened.
    pub event: HookEvent,
}

/// How a payload names its repository.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RepoIdentity {
    /// `owner/name` (GitLab: `group/subgroup/name`); `None` only for events
    /// that are [`HookEvent::Ping`] or [`HookEvent::Ignored`] and carry none.
    pub full_name: Option<String>,
    /// Every clone or web URL the payload gives (https clone, ssh, git://,
    /// html), in payload order, without duplicates.
    pub urls: Vec<String>,
}

/// The event a webhook reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookEvent {
    /// The provider checks that the hook works (GitHub `ping`).
    Ping,
    /// An event or action that is not built, with a short reason.
    Ignored {
        /// E.g. "event `issues` is not built", "branch deleted".
        reason: String,
    },
    /// A branch or tag was pushed.
    Push(PushEvent),
    /// A pull (merge) request was opened, reopened or got new commits.
    PullRequest(PullRequestEvent),
}

/// Whether a push updated a branch or a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefKind {
    /// `refs/heads/...`
    Branch,
    /// `refs/tags/...`
    Tag,
}

/// A push to a branch or tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEvent {
    /// Branch or tag.
    pub kind: RefKind,
    /// The branch or tag name, without `refs/heads/` or `refs/tags/`.
    pub name: String,
    /// The previous commit; `None` when the ref was created (all-zero) or
    /// the payload gives none.
    pub before: Option<String>,
    /// The commit (for an annotated tag on GitHub/GitLab/Gitea: the tag
    /// object) the ref points to after the push.
    pub after: String,
    /// The message of the head commit, when the payload gives it.
    pub head_message: Option<String>,
    /// The commit messages the payload lists, in payload order.
    pub messages: Vec<String>,
    /// Added, modified and removed paths the payload lists, deduplicated
    /// (empty for Bitbucket, whose payload lists none).
    pub changed_paths: Vec<String>,
}

/// A pull (merge) request that needs a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestEvent {
    /// The number shown to users (GitLab: the `iid`).
    pub number: u64,
    /// The head commit (Bitbucket may give a 12-character abbreviation).
    pub head_commit: String,
    /// The source branch.
    pub head_branch: String,
    /// The target branch.
    pub base_branch: String,
    /// The title.
    pub title: String,
    /// Whether the head lives in another repository than the base (or in a
    /// repository that no longer exists).
    pub from_fork: bool,
}

/// Why a webhook request was refused: `MissingHeader` and `Malformed` mean HTTP 400,
/// `MissingSignature` and `BadSignature` HTTP 401.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("missing signature header {0}")]
    MissingSignature(&'static str),
    #[error("signature does not match")]
    BadSignature,
    /// The body (or a header's text) is not what the provider documents.
    #[error("malformed payload: {0}")]
    Malformed(String),
}

/// Reads the delivery id, event and repository WITHOUT verifying (the caller
/// needs the repo to find its secret).
pub fn parse(
    provider: Provider,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<ParsedHook, HookError> {
    match provider {
        Provider::GitHub => github::parse(headers, body),
        Provider::GitLab => gitlab::parse(headers, body),
        Provider::Bitbucket => bitbucket::parse(headers, body),
        Provider::Gitea => gitea::parse(headers, body),
    }
}

// ---------------------------------------------------------------------------
// Helpers shared by the provider modules.

/// The first of `names` that is present with a non-empty value.
fn header_any<'h>(
    headers: &'h HeaderMap,
    names: &[&'static str],
) -> Result<Option<&'h str>, HookError> {
    for &name in names {
        if let Some(value) = headers.get(name) {
            let text = value
                .to_str()
                .map_err(|_| HookError::Malformed(format!("header {name} is not visible ASCII")))?
                .trim();
            if !text.is_empty() {
                return Ok(Some(text));
            }
        }
    }
    Ok(None)
}

/// The first of `names` present, else [`HookError::MissingHeader`] naming the first.
fn required_header<'h>(
    headers: &'h HeaderMap,
    names: &[&'static str],
) -> Result<&'h str, HookError> {
    match header_any(headers, names)? {
        Some(value) => Ok(value),
        None => Err(HookError::MissingHeader(
            names.first().copied().unwrap_or("?"),
        )),
    }
}

/// Parses the body as a JSON object.
fn parse_body(body: &[u8]) -> Result<Value, HookError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| HookError::Malformed("body is not valid UTF-8".to_string()))?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| HookError::Malformed(format!("body is not valid JSON: {e}")))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(HookError::Malformed(
            "body is not a JSON object".to_string(),
        ))
    }
}

/// Whether a commit id means "no commit" (all zeros).
fn is_zero_sha(sha: &str) -> bool {
    !sha.is_empty() && sha.bytes().all(|b| b == b'0')
}

/// `Some(sha)` unless it is empty or all zeros.
fn non_zero(sha: Option<&str>) -> Option<String> {
    sha.filter(|s| !s.is_empty() && !is_zero_sha(s))
        .map(str::to_string)
}

/// Splits `refs/heads/x` / `refs/tags/x` into kind and name.
fn split_ref(git_ref: &str) -> Option<(RefKind, &str)> {
    if let Some(name) = git_ref.strip_prefix("refs/heads/") {
        Some((RefKind::Branch, name))
    } else {
        git_ref
            .strip_prefix("refs/tags/")
            .map(|name| (RefKind::Tag, name))
    }
}

/// An ignored event with its reason.
fn ignored(reason: impl Into<String>) -> HookEvent {
    HookEvent::Ignored {
        reason: reason.into(),
    }
}

/// The reason for ignoring the deletion of a ref.
fn deleted_reason(kind: RefKind) -> String {
    match kind {
        RefKind::Branch => "branch deleted".to_string(),
        RefKind::Tag => "tag deleted".to_string(),
    }
}

/// A list of non-empty strings without duplicates, in first-seen order.
#[derive(Default)]
struct UniqueList {
    seen: HashSet<String>,
    items: Vec<String>,
}

impl UniqueList {
    fn push(&mut self, item: &str) {
        if !item.is_empty() && self.seen.insert(item.to_string()) {
            self.items.push(item.to_string());
        }
    }

    fn push_opt(&mut self, item: Option<&str>) {
        if let Some(item) = item {
            self.push(item);
        }
    }

    fn into_vec(self) -> Vec<String> {
        self.items
    }
}

/// A possibly-absent JSON value together with its path, for error messages
/// such as "missing field `repository.full_name`".
#[derive(Clone)]
struct Field<'a> {
    value: Option<&'a Value>,
    path: String,
}

impl<'a> Field<'a> {
    fn root(value: &'a Value) -> Self {
        Field {
            value: Some(value),
            path: String::new(),
        }
    }

    /// The member `key` (absent when this is not an object).
    fn get(&self, key: &str) -> Field<'a> {
        let path = if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        };
        Field {
            value: self.value.and_then(|v| v.get(key)),
            path,
        }
    }

    /// The value unless absent or `null`.
    fn present(&self) -> Option<&'a Value> {
        self.value.filter(|v| !v.is_null())
    }

    fn missing(&self) -> HookError {
        HookError::Malformed(format!("missing field `{}`", self.path))
    }

    fn wrong_type(&self, what: &str) -> HookError {
        HookError::Malformed(format!("field `{}` is not {what}", self.path))
    }

    /// The value converted by `convert`; `None` when absent or `null`.
    fn opt<T>(
        &self,
        what: &str,
        convert: fn(&'a Value) -> Option<T>,
    ) -> Result<Option<T>, HookError> {
        match self.present() {
            None => Ok(None),
            Some(v) => convert(v).map(Some).ok_or_else(|| self.wrong_type(what)),
        }
    }

    fn opt_str(&self) -> Result<Option<&'a str>, HookError> {
        self.opt("a string", Value::as_str)
    }

    fn str(&self) -> Result<&'a str, HookError> {
        self.opt_str()?.ok_or_else(|| self.missing())
    }

    fn string(&self) -> Result<String, HookError> {
        self.str().map(str::to_string)
    }

    fn opt_u64(&self) -> Result<Option<u64>, HookError> {
        self.opt("a non-negative integer", Value::as_u64)
    }

    fn u64(&self) -> Result<u64, HookError> {
        self.opt_u64()?.ok_or_else(|| self.missing())
    }

    fn opt_bool(&self) -> Result<Option<bool>, HookError> {
        self.opt("a boolean", Value::as_bool)
    }

    /// The elements of an array (none when absent or `null`).
    fn items(&self) -> Result<Vec<Field<'a>>, HookError> {
        match self.present() {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, v)| Field {
                    value: Some(v),
                    path: format!("{}[{i}]", self.path),
                })
                .collect()),
            Some(_) => Err(self.wrong_type("an array")),
        }
    }

    /// The strings of an array of strings (none when absent or `null`).
    fn str_items(&self) -> Result<Vec<&'a str>, HookError> {
        self.items()?.iter().map(Field::str).collect()
    }
}

/// Helpers for the providers' unit tests.
#[cfg(test)]
mod test_util {
    use http::{HeaderMap, HeaderName, HeaderValue};
    use proptest::prelude::*;
    use serde_json::Value;

    use super::{HookError, HookEvent, ParsedHook, PullRequestEvent, PushEvent};

    pub(super) use super::verify::tests::check_signatures;

    /// A fixture from `tests/fixtures/webhooks/<provider>/<name>`.
    pub(super) fn fixture(provider: &str, name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/webhooks/{provider}/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    pub(super) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("header name");
            map.insert(name, HeaderValue::from_str(value).expect("header value"));
        }
        map
    }

    /// The body with the member at `path` removed.
    pub(super) fn strip(body: &[u8], path: &[&str]) -> Vec<u8> {
        let mut value: serde_json::Value = serde_json::from_slice(body).expect("fixture JSON");
        let (last, parents) = path.split_last().expect("non-empty path");
        let mut node = &mut value;
        for key in parents {
            node = node.get_mut(*key).expect("path exists");
        }
        node.as_object_mut()
            .expect("object")
            .remove(*last)
            .expect("member exists");
        serde_json::to_vec(&value).expect("serialize")
    }

    pub(super) fn push_of(hook: &ParsedHook) -> &PushEvent {
        match &hook.event {
            HookEvent::Push(push) => push,
            other => panic!("expected a push, got {other:?}"),
        }
    }

    pub(super) fn pr_of(hook: &ParsedHook) -> &PullRequestEvent {
        match &hook.event {
            HookEvent::PullRequest(pr) => pr,
            other => panic!("expected a pull request, got {other:?}"),
        }
    }

    pub(super) fn ignored_reason(hook: &ParsedHook) -> &str {
        match &hook.event {
            HookEvent::Ignored { reason } => reason,
            other => panic!("expected Ignored, got {other:?}"),
        }
    }

    pub(super) fn malformed(err: Option<HookError>) -> String {
        match err {
            Some(HookError::Malformed(message)) => message,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    /// Strings that steer the parsers into their branches.
    #[rustfmt::skip]
    const INTERESTING: &[&str] = &[
        "", "0000000000000000000000000000000000000000", "refs/heads/", "refs/tags/v",
        "refs/notes/x", "branch", "tag", "bookmark", "opened", "synchronize", "synchronized",
        "open", "update", "\u{e9}\u{0}",
    ];

    /// Edits for [`mutate`]: a path of child indices and the value to put there.
    pub(super) fn edits() -> impl Strategy<Value = Vec<(Vec<usize>, Value)>> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            Just(Value::Array(Vec::new())),
            Just(Value::Object(serde_json::Map::new())),
            prop::sample::select(INTERESTING).prop_map(Value::from),
            ".{0,8}".prop_map(Value::from),
        ];
        prop::collection::vec((prop::collection::vec(any::<usize>(), 0..7), leaf), 1..6)
    }

    /// The fixture `body` with each edit applied.
    pub(super) fn mutate(body: &[u8], edits: Vec<(Vec<usize>, Value)>) -> Vec<u8> {
        let mut value: Value = serde_json::from_slice(body).expect("fixture JSON");
        for (path, leaf) in edits {
            replace_at(&mut value, &path, leaf);
        }
        serde_json::to_vec(&value).expect("serialize")
    }

    /// Replaces the node `path` leads to (child index modulo size at each level,
    /// stopping at the first scalar) with `leaf`.
    fn replace_at(node: &mut Value, path: &[usize], leaf: Value) {
        let Some((&i, rest)) = path.split_first() else {
            *node = leaf;
            return;
        };
        match node {
            Value::Object(map) if !map.is_empty() => {
                let n = map.len();
                if let Some(child) = map.values_mut().nth(i % n) {
                    replace_at(child, rest, leaf);
                }
            }
            Value::Array(items) if !items.is_empty() => {
                let n = items.len();
                if let Some(child) = items.get_mut(i % n) {
                    replace_at(child, rest, leaf);
                }
            }
            _ => *node = leaf,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Provider;

    const PROVIDERS: [Provider; 4] = [
        Provider::GitHub,
        Provider::GitLab,
        Provider::Bitbucket,
        Provider::Gitea,
    ];

    #[test]
    fn provider_names_round_trip() {
        for provider in PROVIDERS {
            assert_eq!(Provider::from_path(provider.name()), Some(provider));
        }
        assert_eq!(Provider::from_path("forgejo"), Some(Provider::Gitea));
        assert_eq!(Provider::from_path("GitHub"), None);
        assert_eq!(Provider::from_path(""), None);
    }
}
