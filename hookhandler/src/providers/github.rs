//! GitHub webhooks (github.com and GitHub Enterprise Server).
//!
//! Headers: `X-GitHub-Delivery` (delivery GUID), `X-GitHub-Event` (event
//! name), `X-Hub-Signature-256` (checked in [`super::verify()`]).
//! Events built: `ping`, `push` and `pull_request` with action `opened`,
//! `synchronize` or `reopened`; everything else is [`HookEvent::Ignored`].
//!
//! The payload readers here are shared with Gitea/Forgejo, whose payloads
//! follow GitHub's shape.

use http::HeaderMap;

use super::{
    Field, HookError, HookEvent, ParsedHook, PullRequestEvent, PushEvent, RepoIdentity, UniqueList,
    deleted_reason, ignored, is_zero_sha, non_zero, parse_body, required_header, split_ref,
};

/// The delivery GUID header.
pub const DELIVERY: &str = "X-GitHub-Delivery";
/// The event name header.
pub const EVENT: &str = "X-GitHub-Event";

/// `pull_request` actions that ask for a build.
const PR_ACTIONS: &[&str] = &["opened", "synchronize", "reopened"];

pub(super) fn parse(headers: &HeaderMap, body: &[u8]) -> Result<ParsedHook, HookError> {
    let delivery_id = required_header(headers, &[DELIVERY])?.to_string();
    let event = required_header(headers, &[EVENT])?;
    let value = parse_body(body)?;
    let root = Field::root(&value);
    let (repo, event) = match event {
        "ping" => (repo_identity(&root, false)?, HookEvent::Ping),
        "push" => (repo_identity(&root, true)?, push_event(&root)?),
        "pull_request" => (
            repo_identity(&root, true)?,
            pull_request_event(&root, PR_ACTIONS)?,
        ),
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

/// `repository.full_name` (required when `required`) and its clone/web URLs.
pub(super) fn repo_identity(root: &Field<'_>, required: bool) -> Result<RepoIdentity, HookError> {
    let repo = root.get("repository");
    let name = repo.get("full_name");
    let full_name = if required {
        Some(name.string()?)
    } else {
        name.opt_str()?.map(str::to_string)
    };
    let mut urls = UniqueList::default();
    for key in ["clone_url", "ssh_url", "git_url", "html_url"] {
        urls.push_opt(repo.get(key).opt_str()?);
    }
    Ok(RepoIdentity {
        full_name,
        urls: urls.into_vec(),
    })
}

/// A GitHub-shaped `push` payload.
pub(super) fn push_event(root: &Field<'_>) -> Result<HookEvent, HookError> {
    let ref_field = root.get("ref");
    let git_ref = ref_field.str()?;
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
    let after_field = root.get("after");
    let deleted = root.get("deleted").opt_bool()?.unwrap_or(false);
    // A deletion may come with `after` all zeros and nothing else.
    if deleted || after_field.opt_str()?.is_some_and(is_zero_sha) {
        return Ok(ignored(deleted_reason(kind)));
    }
    let after = after_field.string()?;
    let before = non_zero(root.get("before").opt_str()?);
    let head_message = root
        .get("head_commit")
        .get("message")
        .opt_str()?
        .map(str::to_string);
    let mut messages = Vec::new();
    let mut paths = UniqueList::default();
    for commit in root.get("commits").items()? {
        if let Some(message) = commit.get("message").opt_str()? {
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
        after,
        head_message,
        messages,
        changed_paths: paths.into_vec(),
    }))
}

/// A GitHub-shaped `pull_request` payload; `actions` ask for a build.
pub(super) fn pull_request_event(
    root: &Field<'_>,
    actions: &[&str],
) -> Result<HookEvent, HookError> {
    let action = root.get("action").str()?;
    if !actions.contains(&action) {
        return Ok(ignored(format!(
            "pull_request action `{action}` is not built"
        )));
    }
    let pr = root.get("pull_request");
    let number = match root.get("number").opt_u64()? {
        Some(number) => number,
        None => pr.get("number").u64()?,
    };
    let head = pr.get("head");
    let base = pr.get("base");
    let base_repo = root.get("repository").get("full_name").str()?;
    // A deleted fork leaves `head.repo` null: still a fork.
    let head_repo = head.get("repo").get("full_name").opt_str()?;
    Ok(HookEvent::PullRequest(PullRequestEvent {
        number,
        head_commit: head.get("sha").string()?,
        head_branch: head.get("ref").string()?,
        base_branch: base.get("ref").string()?,
        title: pr.get("title").string()?,
        from_fork: head_repo != Some(base_repo),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::{HookError, HookEvent, Provider, RefKind, parse};

    const P: Provider = Provider::GitHub;

    fn hdrs(event: &str) -> http::HeaderMap {
        headers(&[
            ("X-GitHub-Event", event),
            ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ("X-GitHub-Hook-ID", "292430182"),
            ("User-Agent", "GitHub-Hookshot/044aadd"),
        ])
    }

    fn parse_fixture(event: &str, file: &str) -> super::super::ParsedHook {
        let body = fixture("github", file);
        match parse(P, &hdrs(event), &body) {
            Ok(hook) => hook,
            Err(e) => panic!("{file}: {e}"),
        }
    }

    #[test]
    fn ping() {
        let hook = parse_fixture("ping", "ping.json");
        assert_eq!(hook.event, HookEvent::Ping);
        assert_eq!(hook.delivery_id, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
        assert_eq!(hook.repo.full_name.as_deref(), Some("octo-org/octo-repo"));
    }

    #[test]
    fn push_branch() {
        let hook = parse_fixture("push", "push_branch.json");
        assert_eq!(hook.repo.full_name.as_deref(), Some("octo-org/octo-repo"));
        assert_eq!(
            hook.repo.urls,
            [
                "https://github.com/octo-org/octo-repo.git",
                "git@github.com:octo-org/octo-repo.git",
                "git://github.com/octo-org/octo-repo.git",
                "https://github.com/octo-org/octo-repo",
            ]
        );
        let push = push_of(&hook);
        assert_eq!(push.kind, RefKind::Branch);
        assert_eq!(push.name, "feature/login");
        assert_eq!(
            push.before.as_deref(),
            Some("6113728f27ae82c7b1a177c8d03f9e96e0adf246")
        );
        assert_eq!(push.after, "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
        assert_eq!(
            push.head_message.as_deref(),
            Some("Add login form\n\nWith validation.")
        );
        assert_eq!(
            push.messages,
            ["Fix typo in README", "Add login form\n\nWith validation."]
        );
        assert_eq!(
            push.changed_paths,
            ["README.md", "src/login.rs", "src/main.rs", "old/login.html"]
        );
    }

    #[test]
    fn push_tag_created() {
        let hook = parse_fixture("push", "push_tag.json");
        let push = push_of(&hook);
        assert_eq!(push.kind, RefKind::Tag);
        assert_eq!(push.name, "v1.2.0");
        assert_eq!(push.before, None, "all-zero before means created");
        assert_eq!(push.after, "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
        assert!(push.messages.is_empty());
        assert_eq!(
            push.head_message.as_deref(),
            Some("Add login form\n\nWith validation.")
        );
    }

    #[test]
    fn push_deleted_branch_is_ignored() {
        let hook = parse_fixture("push", "push_deleted.json");
        assert_eq!(ignored_reason(&hook), "branch deleted");
        assert_eq!(hook.repo.full_name.as_deref(), Some("octo-org/octo-repo"));
    }

    #[test]
    fn pull_request_opened_from_fork() {
        let hook = parse_fixture("pull_request", "pull_request_opened.json");
        let pr = pr_of(&hook);
        assert_eq!(pr.number, 42);
        assert_eq!(pr.head_commit, "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
        assert_eq!(pr.head_branch, "fix-crash");
        assert_eq!(pr.base_branch, "main");
        assert_eq!(pr.title, "Fix crash on empty config");
        assert!(pr.from_fork);
        assert_eq!(hook.repo.full_name.as_deref(), Some("octo-org/octo-repo"));
    }

    #[test]
    fn pull_request_synchronize_same_repo() {
        let hook = parse_fixture("pull_request", "pull_request_synchronize.json");
        let pr = pr_of(&hook);
        assert_eq!(pr.number, 43);
        assert_eq!(pr.head_commit, "b1e4c0b7b0c6bd61b5f2a36a2a8e0f8b7e1a9d3c");
        assert_eq!(pr.head_branch, "feature/login");
        assert!(!pr.from_fork);
    }

    #[test]
    fn ignored_action_and_event() {
        let hook = parse_fixture("pull_request", "pull_request_closed.json");
        assert_eq!(
            ignored_reason(&hook),
            "pull_request action `closed` is not built"
        );
        let hook = parse_fixture("issues", "issues.json");
        assert_eq!(ignored_reason(&hook), "event `issues` is not built");
        assert_eq!(hook.repo.full_name.as_deref(), Some("octo-org/octo-repo"));
    }

    #[test]
    fn malformed_bodies() {
        for body in [&b"{not json"[..], b"[1,2]", b"\xff\xfe{}", b""] {
            let err = parse(P, &hdrs("push"), body).err();
            assert!(
                matches!(err, Some(HookError::Malformed(_))),
                "{body:?}: {err:?}"
            );
        }
        let err = parse(
            P,
            &hdrs("push"),
            br#"{"ref": 7, "repository": {"full_name": "a/b"}}"#,
        )
        .err();
        assert_eq!(malformed(err), "field `ref` is not a string");
        let err = parse(
            P,
            &hdrs("pull_request"),
            br#"{"action":"opened","number":"x"}"#,
        )
        .err();
        assert_eq!(malformed(err), "missing field `repository.full_name`");
    }

    #[test]
    fn missing_field() {
        let body = strip(
            &fixture("github", "push_branch.json"),
            &["repository", "full_name"],
        );
        let err = parse(P, &hdrs("push"), &body).err();
        assert_eq!(malformed(err), "missing field `repository.full_name`");
        let body = strip(
            &fixture("github", "pull_request_opened.json"),
            &["pull_request", "head", "sha"],
        );
        let err = parse(P, &hdrs("pull_request"), &body).err();
        assert_eq!(malformed(err), "missing field `pull_request.head.sha`");
    }

    #[test]
    fn missing_headers() {
        let body = fixture("github", "push_branch.json");
        let only_event = headers(&[("X-GitHub-Event", "push")]);
        assert!(matches!(
            parse(P, &only_event, &body),
            Err(HookError::MissingHeader("X-GitHub-Delivery"))
        ));
        let only_delivery = headers(&[("X-GitHub-Delivery", "abc")]);
        assert!(matches!(
            parse(P, &only_delivery, &body),
            Err(HookError::MissingHeader("X-GitHub-Event"))
        ));
    }

    #[test]
    fn signatures() {
        check_signatures(P, &hdrs("push"), &fixture("github", "push_branch.json"));
    }

    #[test]
    fn known_signature_vector() {
        // The example from GitHub's "Validating webhook deliveries" guide.
        let (name, value) = super::super::sign(P, b"Hello, World!", "It's a Secret to Everybody");
        assert_eq!(name, "X-Hub-Signature-256");
        assert_eq!(
            value,
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[rustfmt::skip]
    const FUZZ_SEEDS: &[[&str; 2]] = &[
        ["push_branch.json", "push"], ["push_tag.json", "push"], ["ping.json", "ping"],
        ["pull_request_opened.json", "pull_request"], ["pull_request_synchronize.json", "pull_request"],
    ];

    proptest::proptest! {
        /// `parse` never panics on fixtures with members replaced by random values.
        #[test]
        fn mutated_fixtures_never_panic(
            seed in proptest::sample::select(FUZZ_SEEDS),
            edits in edits(),
        ) {
            let [file, event] = seed;
            let _ = parse(P, &hdrs(event), &mutate(&fixture("github", file), edits));
        }
    }
}
