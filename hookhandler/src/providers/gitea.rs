//! Gitea and Forgejo webhooks.
//!
//! Headers: `X-Gitea-Event` / `X-Forgejo-Event`, `X-Gitea-Delivery` /
//! `X-Forgejo-Delivery`, and `X-Gitea-Signature` / `X-Forgejo-Signature`
//! (plain hex HMAC-SHA256, checked in [`super::verify()`]). The payloads follow
//! GitHub's shape, so the readers of [`super::github`] are reused; only the
//! pull request actions differ (`synchronized`, not `synchronize`). Gitea has
//! no ping event: its "Test Delivery" sends an ordinary push payload.

use http::HeaderMap;

use super::github::{pull_request_event, push_event, repo_identity};
use super::{Field, HookError, ParsedHook, ignored, parse_body, required_header};

/// The event name headers (Gitea's first).
pub const EVENT: [&str; 2] = ["X-Gitea-Event", "X-Forgejo-Event"];
/// The delivery id headers (Gitea's first).
pub const DELIVERY: [&str; 2] = ["X-Gitea-Delivery", "X-Forgejo-Delivery"];

/// `pull_request` actions that ask for a build.
const PR_ACTIONS: &[&str] = &["opened", "synchronized", "reopened"];

pub(super) fn parse(headers: &HeaderMap, body: &[u8]) -> Result<ParsedHook, HookError> {
    let delivery_id = required_header(headers, &DELIVERY)?.to_string();
    let event = required_header(headers, &EVENT)?;
    let value = parse_body(body)?;
    let root = Field::root(&value);
    let (repo, event) = match event {
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

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::{HookError, ParsedHook, Provider, RefKind, parse, verify};

    const P: Provider = Provider::Gitea;

    fn hdrs(event: &str) -> http::HeaderMap {
        headers(&[
            ("X-GitHub-Event", event),
            ("X-GitHub-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473"),
            ("X-Gitea-Event", event),
            ("X-Gitea-Event-Type", event),
            ("X-Gitea-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473"),
            ("X-Gogs-Event", event),
            ("X-Gogs-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473"),
        ])
    }

    fn parse_fixture(event: &str, file: &str) -> ParsedHook {
        let body = fixture("gitea", file);
        match parse(P, &hdrs(event), &body) {
            Ok(hook) => hook,
            Err(e) => panic!("{file}: {e}"),
        }
    }

    #[test]
    fn push_branch() {
        let hook = parse_fixture("push", "push_branch.json");
        assert_eq!(hook.delivery_id, "f6266f16-1bf3-46a5-9ea4-602e06ead473");
        assert_eq!(hook.repo.full_name.as_deref(), Some("gitea/webhooks"));
        assert_eq!(
            hook.repo.urls,
            [
                "http://localhost:3000/gitea/webhooks.git",
                "ssh://git@localhost:2222/gitea/webhooks.git",
                "http://localhost:3000/gitea/webhooks",
            ]
        );
        let push = push_of(&hook);
        assert_eq!(push.kind, RefKind::Branch);
        assert_eq!(push.name, "develop");
        assert_eq!(
            push.before.as_deref(),
            Some("28e1879d029cb852e4844d9c718537df08844e03")
        );
        assert_eq!(push.after, "bffeb74224043ba2feb48d137756c8a9331c449a");
        assert_eq!(push.head_message.as_deref(), Some("Webhooks Yay!\n"));
        assert_eq!(push.messages, ["Webhooks Yay!\n"]);
        assert_eq!(push.changed_paths, ["docs/hooks.md", "README.md"]);
    }

    #[test]
    fn push_tag() {
        let hook = parse_fixture("push", "push_tag.json");
        let push = push_of(&hook);
        assert_eq!(push.kind, RefKind::Tag);
        assert_eq!(push.name, "v0.3.0");
        assert_eq!(push.before, None);
    }

    #[test]
    fn push_deleted_branch_is_ignored() {
        let hook = parse_fixture("push", "push_deleted.json");
        assert_eq!(ignored_reason(&hook), "branch deleted");
    }

    #[test]
    fn pull_request_opened_and_synchronized() {
        let hook = parse_fixture("pull_request", "pull_request_opened.json");
        let pr = pr_of(&hook);
        assert_eq!(pr.number, 5);
        assert_eq!(pr.head_commit, "9b1f3e2a7c4d5e6f708192a3b4c5d6e7f8091a2b");
        assert_eq!(pr.head_branch, "fix-hooks");
        assert_eq!(pr.base_branch, "main");
        assert_eq!(pr.title, "Fix hook delivery");
        assert!(pr.from_fork);
        let hook = parse_fixture("pull_request", "pull_request_synchronized.json");
        let pr = pr_of(&hook);
        assert_eq!(pr.number, 6);
        assert!(!pr.from_fork);
    }

    #[test]
    fn ignored_action_and_event() {
        let hook = parse_fixture("pull_request", "pull_request_closed.json");
        assert_eq!(
            ignored_reason(&hook),
            "pull_request action `closed` is not built"
        );
        let hook = parse_fixture("create", "create.json");
        assert_eq!(ignored_reason(&hook), "event `create` is not built");
        assert_eq!(hook.repo.full_name.as_deref(), Some("gitea/webhooks"));
    }

    #[test]
    fn malformed_and_missing_fields() {
        let err = parse(P, &hdrs("push"), b"{\"ref\": \"refs/heads/x\",}").err();
        assert!(matches!(err, Some(HookError::Malformed(_))), "{err:?}");
        let body = strip(&fixture("gitea", "push_branch.json"), &["after"]);
        let err = parse(P, &hdrs("push"), &body).err();
        assert_eq!(malformed(err), "missing field `after`");
        let body = strip(&fixture("gitea", "pull_request_opened.json"), &["action"]);
        let err = parse(P, &hdrs("pull_request"), &body).err();
        assert_eq!(malformed(err), "missing field `action`");
    }

    #[test]
    fn forgejo_headers_and_missing_headers() {
        let body = fixture("gitea", "push_branch.json");
        let forgejo = headers(&[("X-Forgejo-Event", "push"), ("X-Forgejo-Delivery", "fj-1")]);
        let hook = parse(P, &forgejo, &body).expect("parses");
        assert_eq!(hook.delivery_id, "fj-1");
        let no_delivery = headers(&[("X-Gitea-Event", "push")]);
        assert!(matches!(
            parse(P, &no_delivery, &body),
            Err(HookError::MissingHeader("X-Gitea-Delivery"))
        ));
        let no_event = headers(&[("X-Gitea-Delivery", "d")]);
        assert!(matches!(
            parse(P, &no_event, &body),
            Err(HookError::MissingHeader("X-Gitea-Event"))
        ));
    }

    #[test]
    fn signatures() {
        let body = fixture("gitea", "push_branch.json");
        check_signatures(P, &hdrs("push"), &body);
        // Forgejo's header alone is accepted too.
        let (_, value) = super::super::sign(P, &body, "s");
        let forgejo = headers(&[("X-Forgejo-Signature", value.as_str())]);
        assert!(verify(P, &forgejo, &body, "s").is_ok());
    }

    #[rustfmt::skip]
    const FUZZ_SEEDS: &[[&str; 2]] = &[
        ["push_branch.json", "push"], ["push_deleted.json", "push"],
        ["pull_request_opened.json", "pull_request"],
    ];

    proptest::proptest! {
        /// `parse` never panics on fixtures with members replaced by random values.
        #[test]
        fn mutated_fixtures_never_panic(
            seed in proptest::sample::select(FUZZ_SEEDS),
            edits in edits(),
        ) {
            let [file, event] = seed;
            let _ = parse(P, &hdrs(event), &mutate(&fixture("gitea", file), edits));
        }
    }
}
