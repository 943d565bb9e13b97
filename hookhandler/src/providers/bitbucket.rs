//! Bitbucket Cloud webhooks (bitbucket.org).
//!
//! Headers: `X-Event-Key` (`repo:push`, `pullrequest:created`,
//! `pullrequest:updated`, ...), the delivery id from `X-Request-UUID` (else
//! `X-Hook-UUID`), and `X-Hub-Signature: sha256=<hex>` (checked in
//! [`super::verify()`]).
//!
//! A `repo:push` lists one entry per updated ref in `push.changes`; the last
//! entry whose `new` is not null is the push reported (a null `new` is a
//! deletion). Bitbucket lists no changed paths and at most five commits per
//! change. Bitbucket Cloud has no ping event.

use http::HeaderMap;

use super::{
    Field, HookError, HookEvent, ParsedHook, PullRequestEvent, PushEvent, RefKind, RepoIdentity,
    UniqueList, deleted_reason, header_any, ignored, non_zero, parse_body, required_header,
};

/// The event name header.
pub const EVENT: &str = "X-Event-Key";
/// The delivery id headers, by preference.
pub const DELIVERY: [&str; 2] = ["X-Request-UUID", "X-Hook-UUID"];

pub(super) fn parse(headers: &HeaderMap, body: &[u8]) -> Result<ParsedHook, HookError> {
    let delivery_id = header_any(headers, &DELIVERY)?
        .ok_or(HookError::MissingHeader("X-Request-UUID"))?
        .to_string();
    let event = required_header(headers, &[EVENT])?;
    let value = parse_body(body)?;
    let root = Field::root(&value);
    let (repo, event) = match event {
        "repo:push" => (repo_identity(&root, true)?, push_event(&root)?),
        "pullrequest:created" | "pullrequest:updated" => {
            (repo_identity(&root, true)?, pull_request_event(&root)?)
        }
        other => (
            repo_identity(&root, false)?,
            ignored(format!("event `{other}` is not built")),
        ),
    };
    Ok(ParsedHook {
        delivery_id,
        repo,
        event,
    })
}

/// `repository.full_name` and `repository.links.html.href`.
fn repo_identity(root: &Field<'_>, required: bool) -> Result<RepoIdentity, HookError> {
    let repo = root.get("repository");
    let name = repo.get("full_name");
    let full_name = if required {
        Some(name.string()?)
    } else {
        name.opt_str()?.map(str::to_string)
    };
    let mut urls = UniqueList::default();
    urls.push_opt(repo.get("links").get("html").get("href").opt_str()?);
    Ok(RepoIdentity {
        full_name,
        urls: urls.into_vec(),
    })
}

/// The kind of a `branch` or `tag` ref object, `Err` with the type otherwise.
fn ref_kind<'a>(reference: &Field<'a>) -> Result<Result<RefKind, &'a str>, HookError> {
    Ok(match reference.get("type").str()? {
        "branch" => Ok(RefKind::Branch),
        "tag" => Ok(RefKind::Tag),
        other => Err(other),
    })
}

/// A `repo:push` payload.
fn push_event(root: &Field<'_>) -> Result<HookEvent, HookError> {
    let changes = root.get("push").get("changes").items()?;
    let Some(change) = changes
        .iter()
        .rev()
        .find(|c| c.get("new").present().is_some())
    else {
        // Only deletions (or nothing at all).
        return Ok(match changes.last() {
            None => ignored("push lists no changes"),
            Some(change) => match ref_kind(&change.get("old"))? {
                Ok(kind) => ignored(deleted_reason(kind)),
                Err(other) => ignored(format!("{other} deleted")),
            },
        });
    };
    let new = change.get("new");
    let kind = match ref_kind(&new)? {
        Ok(kind) => kind,
        Err(other) => return Ok(ignored(format!("ref type `{other}` is not built"))),
    };
    let target = new.get("target");
    let mut messages = Vec::new();
    for commit in change.get("commits").items()? {
        if let Some(message) = commit.get("message").opt_str()? {
            messages.push(message.to_string());
        }
    }
    Ok(HookEvent::Push(PushEvent {
        kind,
        name: new.get("name").string()?,
        before: non_zero(change.get("old").get("target").get("hash").opt_str()?),
        after: target.get("hash").string()?,
        head_message: target.get("message").opt_str()?.map(str::to_string),
        messages,
        changed_paths: Vec::new(),
    }))
}

/// A `pullrequest:created` or `pullrequest:updated` payload.
fn pull_request_event(root: &Field<'_>) -> Result<HookEvent, HookError> {
    let pr = root.get("pullrequest");
    let source = pr.get("source");
    let destination = pr.get("destination");
    let source_repo = source.get("repository").get("full_name").opt_str()?;
    let destination_repo = match destination.get("repository").get("full_name").opt_str()? {
        Some(name) => name,
        None => root.get("repository").get("full_name").str()?,
    };
    Ok(HookEvent::PullRequest(PullRequestEvent {
        number: pr.get("id").u64()?,
        head_commit: source.get("commit").get("hash").string()?,
        head_branch: source.get("branch").get("name").string()?,
        base_branch: destination.get("branch").get("name").string()?,
        title: pr.get("title").string()?,
        from_fork: source_repo != Some(destination_repo),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::{HookError, ParsedHook, Provider, RefKind, parse};

    const P: Provider = Provider::Bitbucket;

    fn hdrs(event: &str) -> http::HeaderMap {
        headers(&[
            ("X-Event-Key", event),
            ("X-Hook-UUID", "cb0ee9b8-9a3d-4c5f-8f4b-9cd7a4e3c1a2"),
            ("X-Request-UUID", "5b1a2a0e-6e0b-4b8f-9d6f-4f3f0a7e2c11"),
            ("X-Attempt-Number", "1"),
            ("User-Agent", "Bitbucket-Webhooks/2.0"),
        ])
    }

    fn parse_fixture(event: &str, file: &str) -> ParsedHook {
        let body = fixture("bitbucket", file);
        match parse(P, &hdrs(event), &body) {
            Ok(hook) => hook,
            Err(e) => panic!("{file}: {e}"),
        }
    }

    #[test]
    fn push_branch_takes_last_live_change() {
        let hook = parse_fixture("repo:push", "push_branch.json");
        assert_eq!(hook.delivery_id, "5b1a2a0e-6e0b-4b8f-9d6f-4f3f0a7e2c11");
        assert_eq!(hook.repo.full_name.as_deref(), Some("teamsinspace/website"));
        assert_eq!(
            hook.repo.urls,
            ["https://bitbucket.org/teamsinspace/website"]
        );
        let push = push_of(&hook);
        assert_eq!(push.kind, RefKind::Branch);
        assert_eq!(push.name, "feature/rocket");
        assert_eq!(
            push.before.as_deref(),
            Some("1e65c05c1d5171631d92438a13901ca7dae9618c")
        );
        assert_eq!(push.after, "03f4a7270240708834de475bcf21532d6134777e");
        assert_eq!(push.head_message.as_deref(), Some("Launch the rocket\n"));
        assert_eq!(push.messages, ["Launch the rocket\n", "Fuel the rocket\n"]);
        assert!(push.changed_paths.is_empty());
    }

    #[test]
    fn push_tag() {
        let hook = parse_fixture("repo:push", "push_tag.json");
        let push = push_of(&hook);
        assert_eq!(push.kind, RefKind::Tag);
        assert_eq!(push.name, "v2.0.1");
        assert_eq!(push.before, None);
        assert_eq!(push.after, "03f4a7270240708834de475bcf21532d6134777e");
    }

    #[test]
    fn push_deleted_branch_is_ignored() {
        let hook = parse_fixture("repo:push", "push_deleted.json");
        assert_eq!(ignored_reason(&hook), "branch deleted");
    }

    #[test]
    fn pull_request_created_from_fork() {
        let hook = parse_fixture("pullrequest:created", "pullrequest_created.json");
        assert_eq!(hook.repo.full_name.as_deref(), Some("teamsinspace/website"));
        let pr = pr_of(&hook);
        assert_eq!(pr.number, 17);
        assert_eq!(
            pr.head_commit, "d3c0a6f1e2b4",
            "abbreviated hash kept as is"
        );
        assert_eq!(pr.head_branch, "fix-footer");
        assert_eq!(pr.base_branch, "master");
        assert_eq!(pr.title, "Fix the footer");
        assert!(pr.from_fork);
    }

    #[test]
    fn pull_request_updated_same_repo() {
        let hook = parse_fixture("pullrequest:updated", "pullrequest_updated.json");
        let pr = pr_of(&hook);
        assert_eq!(pr.number, 18);
        assert_eq!(pr.head_commit, "03f4a7270240");
        assert_eq!(pr.head_branch, "feature/rocket");
        assert!(!pr.from_fork);
    }

    #[test]
    fn ignored_events() {
        let hook = parse_fixture("pullrequest:fulfilled", "pullrequest_updated.json");
        assert_eq!(
            ignored_reason(&hook),
            "event `pullrequest:fulfilled` is not built"
        );
        let hook = parse_fixture("repo:fork", "push_tag.json");
        assert_eq!(ignored_reason(&hook), "event `repo:fork` is not built");
    }

    #[test]
    fn malformed_and_missing_fields() {
        let err = parse(P, &hdrs("repo:push"), b"null").err();
        assert_eq!(malformed(err), "body is not a JSON object");
        let err = parse(
            P,
            &hdrs("repo:push"),
            br#"{"repository":{"full_name":"a/b"},"push":{"changes":{}}}"#,
        )
        .err();
        assert_eq!(malformed(err), "field `push.changes` is not an array");
        let body = strip(
            &fixture("bitbucket", "pullrequest_created.json"),
            &["pullrequest", "title"],
        );
        let err = parse(P, &hdrs("pullrequest:created"), &body).err();
        assert_eq!(malformed(err), "missing field `pullrequest.title`");
        let body = br#"{"repository":{"full_name":"a/b"},"push":{"changes":[{"new":{"type":"branch","name":"x","target":{}},"old":null}]}}"#;
        let err = parse(P, &hdrs("repo:push"), body).err();
        assert_eq!(
            malformed(err),
            "missing field `push.changes[0].new.target.hash`"
        );
    }

    #[test]
    fn missing_headers() {
        let body = fixture("bitbucket", "push_branch.json");
        let hook_only = headers(&[("X-Event-Key", "repo:push"), ("X-Hook-UUID", "h-1")]);
        assert_eq!(
            parse(P, &hook_only, &body).expect("parses").delivery_id,
            "h-1"
        );
        let none = headers(&[("X-Event-Key", "repo:push")]);
        assert!(matches!(
            parse(P, &none, &body),
            Err(HookError::MissingHeader("X-Request-UUID"))
        ));
        let no_event = headers(&[("X-Request-UUID", "r-1")]);
        assert!(matches!(
            parse(P, &no_event, &body),
            Err(HookError::MissingHeader("X-Event-Key"))
        ));
    }

    #[test]
    fn signatures() {
        check_signatures(
            P,
            &hdrs("repo:push"),
            &fixture("bitbucket", "push_branch.json"),
        );
    }

    #[rustfmt::skip]
    const FUZZ_SEEDS: &[[&str; 2]] = &[
        ["push_branch.json", "repo:push"], ["push_deleted.json", "repo:push"],
        ["pullrequest_created.json", "pullrequest:created"],
    ];

    proptest::proptest! {
        /// `parse` never panics on fixtures with members replaced by random values.
        #[test]
        fn mutated_fixtures_never_panic(
            seed in proptest::sample::select(FUZZ_SEEDS),
            edits in edits(),
        ) {
            let [file, event] = seed;
            let _ = parse(P, &hdrs(event), &mutate(&fixture("bitbucket", file), edits));
        }
    }
}
