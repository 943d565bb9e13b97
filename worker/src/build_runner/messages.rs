//! What a build is told and given, as pure functions: its environment variables, the lines
//! and reasons the log and the build row carry.

use ocelot_core::ids::Attempt;
use ocelot_core::model::Build;
use ocelot_core::pipeline::PipelineErrors;
use std::time::Duration;

/// How many `ocelot.yml` errors the build's reason lists (the log has them all).
const ERRORS_IN_REASON: usize = 5;

/// A commit's first seven characters.
pub(crate) fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

/// The variables every stage gets (the original Ocelot's, then Ocelot's own).
pub(crate) fn build_env(build: &Build, workspace: &str, previous: &str) -> Vec<String> {
    let mut env = vec![
        format!("BUILD_ID={}", build.id),
        format!("BUILD_NUMBER={}", build.number),
        format!("GIT_HASH={}", build.commit),
        format!("GIT_HASH_SHORT={}", short(&build.commit)),
        format!("GIT_BRANCH={}", build.branch),
        format!("WORKSPACE={workspace}"),
        format!("GIT_PREVIOUS_SUCCESSFUL_COMMIT={previous}"),
        format!("OCELOT_REPO={}", build.repo_name),
        format!("OCELOT_TRIGGER={}", build.trigger),
        "CI=true".to_string(),
        "OCELOT=true".to_string(),
    ];
    if let Some(tag) = &build.git_tag {
        env.push(format!("GIT_TAG={tag}"));
    }
    if let Some(pr) = &build.pull_request {
        env.push(format!("OCELOT_PR_NUMBER={}", pr.number));
        env.push(format!("OCELOT_PR_BASE_BRANCH={}", pr.base_branch));
    }
    env
}

/// The build's `--env` parameters as variables, but none named like one of `secrets` (the
/// secret takes its place: a parameter never replaces a secret's value); and the log lines
/// that say what it was given (`--env` values in clear: they are recorded and shown anyway).
pub(crate) fn params(build: &Build, secrets: &[&str]) -> (Vec<String>, Vec<String>) {
    let (shadowed, applied): (Vec<_>, Vec<_>) = build
        .params
        .env
        .iter()
        .partition(|(name, _)| secrets.contains(&name.as_str()));
    let env = applied
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    let mut lines = Vec::new();
    if !applied.is_empty() {
        let names: Vec<&str> = applied.iter().map(|(name, _)| name.as_str()).collect();
        lines.push(format!("build parameters (--env): {}", names.join(", ")));
    }
    for (name, _) in shadowed {
        lines.push(format!(
            "build parameter {name} not applied: a secret of that name takes its place"
        ));
    }
    if build.params.force {
        lines.push("forced (--force): built whatever `branches` in ocelot.yml says".to_string());
    }
    (env, lines)
}

/// The line of a stage that does not run because the build asked for another one.
pub(crate) fn not_selected(stage: &str, selected: &str) -> String {
    format!("stage {stage} skipped: not selected (--stage {selected})")
}

/// The line of a stage that does not run because a stage it needs failed (`root` is that
/// stage) or was skipped because `root` failed.
pub(crate) fn blocked(stage: &str, need: &str, root: &str) -> String {
    if need == root {
        format!("stage {stage} skipped: needs {need}, which failed")
    } else {
        format!("stage {stage} skipped: needs {need}, which was skipped ({root} failed)")
    }
}

/// The first line of a build that starts: what runs, and where.
pub(crate) fn banner(build: &Build, worker_id: &str) -> String {
    format!(
        "build {} #{} of {} at {} ({}) on worker {worker_id}",
        build.id,
        build.number,
        build.repo_name,
        short(&build.commit),
        build.branch,
    )
}

/// The first line of an attempt that took over the build of a worker that went silent.
pub(crate) fn worker_lost(
    lost_worker: &str,
    lost_attempt: Attempt,
    attempt: Attempt,
    worker_id: &str,
) -> String {
    format!(
        "worker {lost_worker} lost (attempt {lost_attempt} gave no sign of life within its job's ack wait); retrying as attempt {attempt} on worker {worker_id}"
    )
}

/// The log lines of an invalid `ocelot.yml` (every error, with its line) and the build's
/// reason (the first few).
pub(crate) fn invalid_pipeline(errors: &PipelineErrors) -> (Vec<String>, String) {
    let mut lines = vec![format!(
        "error: ocelot.yml is invalid ({} error(s)):",
        errors.len()
    )];
    lines.extend(errors.iter().map(|error| format!("  ocelot.yml {error}")));
    let mut listed: Vec<String> = errors
        .iter()
        .take(ERRORS_IN_REASON)
        .map(|e| e.to_string())
        .collect();
    if errors.len() > ERRORS_IN_REASON {
        listed.push(format!("and {} more", errors.len() - ERRORS_IN_REASON));
    }
    (lines, format!("invalid ocelot.yml: {}", listed.join("; ")))
}

/// Which limit stopped a stage: its own timeout or the build's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeLimit {
    Stage(Option<Duration>),
    Build(Option<Duration>),
}

/// The reason of a stage that ran out of time.
pub(crate) fn timed_out(stage: &str, limit: TimeLimit) -> String {
    let (what, limit) = match limit {
        TimeLimit::Stage(limit) => ("stage timeout", limit),
        TimeLimit::Build(limit) => ("build timeout", limit),
    };
    let limit = limit
        .map(|d| humantime::format_duration(d).to_string())
        .unwrap_or_default();
    format!("stage `{stage}` timed out ({what} {limit})")
}

/// The reason of a stage whose script failed.
pub(crate) fn stage_failed(stage: &str, code: i32) -> String {
    format!("stage `{stage}` failed with exit code {code}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocelot_core::BuildState;
    use ocelot_core::ids::{Attempt, BuildId, RepoId};
    use ocelot_core::model::PullRequestRef;
    use std::time::SystemTime;

    fn build() -> Build {
        Build {
            id: BuildId::from(42),
            repo_id: RepoId::from(1),
            repo_name: "shop".into(),
            repo_url: "git://127.0.0.1/shop".into(),
            number: 7,
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            branch: "main".into(),
            trigger: "push".into(),
            state: BuildState::Running,
            attempt: Attempt::FIRST,
            worker: None,
            tag: "default".into(),
            reason: None,
            queued_at: SystemTime::UNIX_EPOCH,
            started_at: None,
            finished_at: None,
            line_count: None,
            log_sha256: None,
            previous_commit: None,
            pull_request: None,
            git_tag: None,
            withhold_secrets: false,
            cancel_requested_by: None,
            params: Default::default(),
            trace_id: None,
        }
    }

    #[test]
    fn ocelot_sets_only_names_a_parameter_may_not_take() {
        let mut build = build();
        build.git_tag = Some("v1".into());
        build.pull_request = Some(PullRequestRef {
            number: 1,
            base_branch: "main".into(),
            from_fork: false,
        });
        for variable in build_env(&build, "/w", "") {
            let name = variable.split_once('=').map(|(n, _)| n).unwrap_or_default();
            assert!(
                ocelot_core::build_params::check_env_param(name, "x").is_err(),
                "a parameter could replace {name}"
            );
        }
    }

    #[test]
    fn parameters_named_like_a_secret_are_not_applied() {
        let mut build = build();
        build.params.env = [("API_TOKEN", "mine"), ("GREETING", "hi")]
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let (env, lines) = params(&build, &["API_TOKEN"]);
        assert_eq!(env, ["GREETING=hi"]);
        assert_eq!(
            lines,
            [
                "build parameters (--env): GREETING",
                "build parameter API_TOKEN not applied: a secret of that name takes its place",
            ]
        );
        build.params.force = true;
        let (_, lines) = params(&build, &[]);
        assert_eq!(
            lines.last().map(String::as_str),
            Some("forced (--force): built whatever `branches` in ocelot.yml says")
        );
    }

    #[test]
    fn every_stage_gets_the_original_variables_then_ocelots() {
        let env = build_env(&build(), "/workspace", "abc");
        assert_eq!(
            env,
            [
                "BUILD_ID=42",
                "BUILD_NUMBER=7",
                "GIT_HASH=0123456789abcdef0123456789abcdef01234567",
                "GIT_HASH_SHORT=0123456",
                "GIT_BRANCH=main",
                "WORKSPACE=/workspace",
                "GIT_PREVIOUS_SUCCESSFUL_COMMIT=abc",
                "OCELOT_REPO=shop",
                "OCELOT_TRIGGER=push",
                "CI=true",
                "OCELOT=true",
            ]
        );
    }

    #[test]
    fn tags_and_pull_requests_add_their_variables() {
        let mut build = build();
        build.git_tag = Some("v1.2".into());
        build.pull_request = Some(PullRequestRef {
            number: 12,
            base_branch: "main".into(),
            from_fork: false,
        });
        let env = build_env(&build, "/w", "");
        assert!(env.contains(&"GIT_TAG=v1.2".to_string()));
        assert!(env.contains(&"OCELOT_PR_NUMBER=12".to_string()));
        assert!(env.contains(&"OCELOT_PR_BASE_BRANCH=main".to_string()));
    }

    #[test]
    fn the_banner_names_the_build_commit_and_worker() {
        assert_eq!(
            banner(&build(), "ci-1"),
            "build 42 #7 of shop at 0123456 (main) on worker ci-1"
        );
    }

    #[test]
    fn a_take_over_names_the_lost_worker_and_the_new_attempt() {
        assert_eq!(
            worker_lost("w1", Attempt::FIRST, Attempt::from(2), "w2"),
            "worker w1 lost (attempt 1 gave no sign of life within its job's ack wait); retrying as attempt 2 on worker w2"
        );
    }

    #[test]
    fn timeouts_say_which_limit_stopped_the_stage() {
        assert_eq!(
            timed_out("test", TimeLimit::Stage(Some(Duration::from_secs(90)))),
            "stage `test` timed out (stage timeout 1m 30s)"
        );
        assert_eq!(
            timed_out("test", TimeLimit::Build(Some(Duration::from_secs(5)))),
            "stage `test` timed out (build timeout 5s)"
        );
        assert_eq!(stage_failed("b", 2), "stage `b` failed with exit code 2");
    }

    #[test]
    fn an_invalid_pipeline_lists_every_error_and_names_five_in_its_reason() {
        let text = (0..7).map(|i| format!("bogus{i}: 1\n")).collect::<String>();
        let Err(errors) = ocelot_core::pipeline::parse(&text) else {
            panic!("unknown fields are errors");
        };
        let (lines, reason) = invalid_pipeline(&errors);
        assert_eq!(lines.len(), errors.len() + 1);
        assert!(
            lines[0].starts_with("error: ocelot.yml is invalid ("),
            "{lines:?}"
        );
        assert!(reason.starts_with("invalid ocelot.yml: "), "{reason}");
        if errors.len() > 5 {
            assert!(
                reason.ends_with(&format!("and {} more", errors.len() - 5)),
                "{reason}"
            );
        }
    }
}
