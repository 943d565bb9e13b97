//! GitLab webhooks (gitlab.com and self-managed).
//!
//! Headers: `X-Gitlab-Event` (`Push Hook`, `Tag Push Hook`,
//! `Merge Request Hook`, ...), the delivery id from `Idempotency-Key`, else
//! `X-Gitlab-Event-UUID`, else `X-Gitlab-Webhook-UUID`, and `X-Gitlab-Token`
//! (the secret itself, checked in [`super::verify()`]).
//! Merge requests are built on `open`, `reopen`, and `update` when
//! `object_attributes.oldrev` is present (new commits were pushed); every
//! other action or event is [`HookEvent::Ignored`]. GitLab has no ping event:
//! its "Test" button sends an ordinary push payload.

use http::HeaderMap;

use super::{
    Field, HookError, HookEvent, ParsedHook, PullRequestEvent, PushEvent, RepoIdentity, UniqueList,
    deleted_reason, header_any, ignored, is_zero_sha, non_zero, parse_body, required_header,
    split_ref,
};

/// The event name header.
pub const EVENT: &str = "X-Gitlab-Event";
/// The delivery id headers, by preference (newest GitLab versions first).
pub const DELIVERY: [&str; 3] = [
    "Idempotency-Key",
    "X-Gitlab-Event-UUID",
    "X-Gitlab-Webhook-UUID",
];

pub(super) fn parse(headers: &HeaderMap, body: &[u8]) -> Result<ParsedHook, HookError> {
    let delivery_id = header_any(headers, &DELIVERY)?
        .ok_or(HookError::MissingHeader("X-Gitlab-Event-UUID"))?
        .to_string();
    let event = required_header(headers, &[EVENT])?;
    let value = parse_body(body)?;
    let root = Field::root(&value);
    let (repo, event) = match event {
        "Push Hook" | "Tag Push Hook" => (repo_identity(&root, true)?, push_event(&root)?),
        "Merge Request Hook" => (repo_identity(&root, true)?, merge_request_event(&root)?),
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

/// `project.path_with_namespace` and the URLs of `project` and the legacy
/// `repository` object.
fn repo_identity(root: &Field<'_>, required: bool) -> Result<RepoIdentity, HookError> {
    let project = root.get("project");
    let name = project.get("path_with_namespace");
    let full_name = if required {
        Some(name.string()?)
    } else {
        name.opt_str()?.map(str::to_string)
    };
    let mut urls = UniqueList::default();
    for key in [
        "git_http_url",
        "git_ssh_url",
        "web_url",
        "http_url",
        "ssh_url",
    ] {
        urls.push_opt(project.get(key).opt_str()?);
    }
    let legacy = root.get("repository");
    for key in ["git_http_url", "git_ssh_url", "url", "homepage"] {
        urls.push_opt(legacy.get(key).opt_str()?);
    }
    Ok(RepoIdentity {
        full_name,
        urls: urls.into_vec(),
    })
}

/// A `Push Hook` or `Tag Push Hook` payload.
fn push_event(root: &Field<'_>) -> Result<HookEvent, HookError> {
    let git_ref = root.get("ref").str()?;
    let Some((kind, name)) = split_ref(git_ref) else {
        return Ok(ignored(format!(
            "ref `{git_ref}` is neither a branch nor a tag"
        )));
    };
    if name.is_empty() {
        return Err(HookError::Malformed(format!(
            "field `ref` names no branch or tag: `{git_ref}`"
        )));
    }
    let after = root.get("after").str()?;
    if is_zero_sha(after) {
        return Ok(ignored(deleted_reason(kind)));
    }
    let before = non_zero(root.get("before").opt_str()?);
    let checkout_sha = root.get("checkout_sha").opt_str()?;
    let mut head_message = None;
    let mut messages = Vec::new();
    let mut paths = UniqueList::default();
    for commit in root.get("commits").items()? {
        let message = commit.get("message").opt_str()?;
        let id = commit.get("id").opt_str()?;
        if id.is_some() && (id == Some(after) || id == checkout_sha) {
            head_message = message.map(str::to_string);
        }
        if let Some(message) = message {
            messages.push(message.to_string());
        }
        for key in ["added", "modified", "removed"] {
            for path in commit.get(key).str_items()? {
                paths.push(path);
            }
        }
    }
    Ok(HookEvent::Push(PushEvent {
        kind,
        name: name.to_string(),
        before,
        after: after.to_string(),
        head_message,
        messages,
        changed_paths: paths.into_vec(),
    }))
}

/// A `Merge Request Hook` payload.
fn merge_request_event(root: &Field<'_>) -> Result<HookEvent, HookError> {
    let attrs = root.get("object_attributes");
    let action = attrs.get("action").str()?;
    match action {
        "open" | "reopen" => {}
        "update" => {
            // Only an update that brought new commits carries `oldrev`.
            if attrs.get("oldrev").opt_str()?.is_none_or(str::is_empty) {
                return Ok(ignored("merge request update without new commits"));
            }
        }
        other => {
            return Ok(ignored(format!(
                "merge request action `{other}` is not built"
            )));
        }
    }
    let number = attrs.get("iid").u64()?;
    let head_commit = attrs.get("last_commit").get("id").string()?;
    let head_branch = attrs.get("source_branch").string()?;
    let base_branch = attrs.get("target_branch").string()?;
    let title = attrs.get("title").string()?;
    let source = attrs.get("source_project_id").u64()?;
    let target = attrs.get("target_project_id").u64()?;
    Ok(HookEvent::PullRequest(PullRequestEvent {
        number,
        head_commit,
        head_branch,
        base_branch,
        title,
        from_fork: source != target,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::{HookError, ParsedHook, Provider, RefKind, parse};

    const P: Provider = Provider::GitLab;

    fn hdrs(event: &str) -> http::HeaderMap {
        headers(&[
            ("X-Gitlab-Event", event),
            ("X-Gitlab-Instance", "https://gitlab.example.com"),
            (
                "X-Gitlab-Webhook-UUID",
                "0a4e2d76-0d6a-4d0a-8b29-1f2a43f8b1c7",
            ),
            (
                "X-Gitlab-Event-UUID",
                "13792a34-cac6-4fda-95a8-c58e00a3954e",
            ),
            ("Idempotency-Key", "f5f5a2ff-2d2e-4b4a-9f1e-b5e2b0a7d6c3"),
            ("User-Agent", "GitLab/17.6.0"),
        ])
    }

    fn parse_fixture(event: &str, file: &str) -> ParsedHook {
        let body = fixture("gitlab", file);
        match parse(P, &hdrs(event), &body) {
            Ok(hook) => hook,
            Err(e) => panic!("{file}: {e}"),
        }
    }

    #[test]
    fn push_branch() {
        let hook = parse_fixture("Push Hook", "push_branch.json");
        assert_eq!(hook.delivery_id, "f5f5a2ff-2d2e-4b4a-9f1e-b5e2b0a7d6c3");
        assert_eq!(hook.repo.full_name.as_deref(), Some("mike/diaspora"));
        assert_eq!(
            hook.repo.urls,
            [
                "http://example.com/mike/diaspora.git",
                "git@example.com:mike/diaspora.git",
                "http://example.com/mike/diaspora",
            ]
        );
        let push = push_of(&hook);
        assert_eq!(push.kind, RefKind::Branch);
        assert_eq!(push.name, "master");
        assert_eq!(
            push.before.as_deref(),
            Some("95790bf891e76fee5e1747ab589903a6a1f80f22")
        );
        assert_eq!(push.after, "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
        assert_eq!(push.head_message.as_deref(), Some("fixed readme"));
        assert_eq!(
            push.messages,
            [
                "Update Catalan translation to e38cb41.\n\nSee https://gitlab.com/gitlab-org/gitlab for more information",
                "fixed readme",
            ]
        );
        assert_eq!(
            push.changed_paths,
            ["CHANGELOG", "app/controller/application.rb"]
        );
    }

    #[test]
    fn push_tag() {
        let hook = parse_fixture("Tag Push Hook", "tag_push.json");
        let push = push_of(&hook);
        assert_eq!(push.kind, RefKind::Tag);
        assert_eq!(push.name, "v1.0.0");
        assert_eq!(push.before, None);
        assert_eq!(push.after, "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7");
        assert!(push.messages.is_empty());
    }

    #[test]
    fn push_deleted_branch_is_ignored() {
        let hook = parse_fixture("Push Hook", "push_deleted.json");
        assert_eq!(ignored_reason(&hook), "branch deleted");
    }

    #[test]
    fn merge_request_opened_from_fork() {
        let hook = parse_fixture("Merge Request Hook", "merge_request_open.json");
        assert_eq!(hook.repo.full_name.as_deref(), Some("gitlabhq/gitlab-test"));
        let pr = pr_of(&hook);
        assert_eq!(pr.number, 1);
        assert_eq!(pr.head_commit, "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
        assert_eq!(pr.head_branch, "ms-viewport");
        assert_eq!(pr.base_branch, "master");
        assert_eq!(pr.title, "MS-Viewport");
        assert!(pr.from_fork);
    }

    #[test]
    fn merge_request_update_with_new_commits() {
        let hook = parse_fixture("Merge Request Hook", "merge_request_update.json");
        let pr = pr_of(&hook);
        assert_eq!(pr.number, 7);
        assert_eq!(pr.head_commit, "c1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4");
        assert!(!pr.from_fork);
    }

    #[test]
    fn ignored_actions_and_events() {
        let hook = parse_fixture("Merge Request Hook", "merge_request_update_title.json");
        assert_eq!(
            ignored_reason(&hook),
            "merge request update without new commits"
        );
        let hook = parse_fixture("Merge Request Hook", "merge_request_close.json");
        assert_eq!(
            ignored_reason(&hook),
            "merge request action `close` is not built"
        );
        let hook = parse_fixture("Issue Hook", "issue.json");
        assert_eq!(ignored_reason(&hook), "event `Issue Hook` is not built");
        assert_eq!(
            hook.repo.full_name.as_deref(),
            Some("gitlab-org/gitlab-test")
        );
    }

    #[test]
    fn malformed_and_missing_fields() {
        let err = parse(P, &hdrs("Push Hook"), b"{\"ref\":").err();
        assert!(matches!(err, Some(HookError::Malformed(_))), "{err:?}");
        let err = parse(P, &hdrs("Push Hook"), b"\"a string\"").err();
        assert_eq!(malformed(err), "body is not a JSON object");
        let body = strip(
            &fixture("gitlab", "push_branch.json"),
            &["project", "path_with_namespace"],
        );
        let err = parse(P, &hdrs("Push Hook"), &body).err();
        assert_eq!(
            malformed(err),
            "missing field `project.path_with_namespace`"
        );
        let body = strip(
            &fixture("gitlab", "merge_request_open.json"),
            &["object_attributes", "iid"],
        );
        let err = parse(P, &hdrs("Merge Request Hook"), &body).err();
        assert_eq!(malformed(err), "missing field `object_attributes.iid`");
        let body = br#"{"object_attributes":{"action":"open","iid":"1"},"project":{"path_with_namespace":"a/b"}}"#;
        let err = parse(P, &hdrs("Merge Request Hook"), body).err();
        assert_eq!(
            malformed(err),
            "field `object_attributes.iid` is not a non-negative integer"
        );
    }

    #[test]
    fn delivery_header_fallbacks() {
        let body = fixture("gitlab", "push_branch.json");
        let old = headers(&[
            ("X-Gitlab-Event", "Push Hook"),
            (
                "X-Gitlab-Event-UUID",
                "13792a34-cac6-4fda-95a8-c58e00a3954e",
            ),
        ]);
        let hook = parse(P, &old, &body).expect("parses");
        assert_eq!(hook.delivery_id, "13792a34-cac6-4fda-95a8-c58e00a3954e");
        let webhook_only = headers(&[
            ("X-Gitlab-Event", "Push Hook"),
            ("X-Gitlab-Webhook-UUID", "w-1"),
        ]);
        assert_eq!(
            parse(P, &webhook_only, &body).expect("parses").delivery_id,
            "w-1"
        );
        let none = headers(&[("X-Gitlab-Event", "Push Hook")]);
        assert!(matches!(
            parse(P, &none, &body),
            Err(HookError::MissingHeader("X-Gitlab-Event-UUID"))
        ));
        let no_event = headers(&[("Idempotency-Key", "k")]);
        assert!(matches!(
            parse(P, &no_event, &body),
            Err(HookError::MissingHeader("X-Gitlab-Event"))
        ));
    }

    #[test]
    fn token() {
        check_signatures(
            P,
            &hdrs("Push Hook"),
            &fixture("gitlab", "push_branch.json"),
        );
        // Tokens may hold characters a header `to_str` would refuse.
        let mut map = hdrs("Push Hook");
        let value = http::HeaderValue::from_bytes("sécret".as_bytes()).expect("opaque value");
        map.insert("x-gitlab-token", value);
        assert!(super::super::verify(P, &map, b"{}", "sécret").is_ok());
        assert!(super::super::verify(P, &map, b"{}", "secret").is_err());
    }

    #[rustfmt::skip]
    const FUZZ_SEEDS: &[[&str; 2]] = &[
        ["push_branch.json", "Push Hook"], ["tag_push.json", "Tag Push Hook"],
        ["merge_request_open.json", "Merge Request Hook"],
        ["merge_request_update.json", "Merge Request Hook"],
    ];

    proptest::proptest! {
        /// `parse` never panics on fixtures with members replaced by random values.
        #[test]
        fn mutated_fixtures_never_panic(
            seed in proptest::sample::select(FUZZ_SEEDS),
            edits in edits(),
        ) {
            let [file, event] = seed;
            let _ = parse(P, &hdrs(event), &mutate(&fixture("gitlab", file), edits));
        }
    }
}
