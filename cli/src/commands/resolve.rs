//! From what was typed for a build (`42`, `latest`, nothing, `3f9a1c2`) to a build id, for
//! `watch`, `status`, `kill` and `rerun`:
//!
//! - a build id is taken as it is;
//! - `latest` (or nothing) is the newest build of this checkout's repo (the one registered
//!   with its remote's URL) and current branch; with a detached HEAD, of HEAD's commit;
//! - a commit prefix is the newest build of the one commit it starts; several commits (or
//!   one commit built in several repos) are an error listing them, unless only one of them
//!   is of this checkout's repo.
//!
//! A build found by name is announced on stderr (`latest → build 12: ...`), so that what a
//! command acts on is never a guess.

use crate::build_ref::BuildRef;
use crate::checkout::{self, Checkout};
use crate::client::{self, CliError, Client};
use crate::exit::ExitStatus;
use crate::render::terminal::plain;
use ocelot_domain::ids::BuildId;
use ocelot_domain::repo_url::normalize_url;
use ocelot_proto::v1 as pb;

/// How many builds of a commit prefix are read to tell its commits apart.
const CANDIDATE_BUILDS: u32 = 200;
/// How many candidates an ambiguous prefix lists (the newest ones).
const LISTED_CANDIDATES: usize = 10;

/// The id of the build `asked` names (`None`: `latest`).
pub(super) async fn build_id(
    client: &mut Client,
    asked: Option<BuildRef>,
) -> Result<BuildId, CliError> {
    let asked = asked.unwrap_or(BuildRef::Latest);
    let build = match &asked {
        BuildRef::Id(id) => return Ok(*id),
        BuildRef::Latest => latest(client).await?,
        BuildRef::Commit(prefix) => of_commit(client, prefix).await?,
    };
    eprintln!("{asked} → build {}: {}", build.id, describe(&build));
    Ok(BuildId::from(build.id))
}

/// `REPO #N (BRANCH @ SHORT)`.
fn describe(build: &pb::Build) -> String {
    format!(
        "{} #{} ({} @ {})",
        plain(&build.repo),
        build.number,
        plain(&build.branch),
        short(&build.commit)
    )
}

fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

fn usage(message: String) -> CliError {
    CliError::new(ExitStatus::Usage, message)
}

fn rejected(message: String) -> CliError {
    CliError::new(ExitStatus::Rejected, message)
}

/// The name of the repo registered with the checkout's remote URL; `hint` says what to do
/// instead when there is none.
pub(super) async fn repo_of_checkout(
    client: &mut Client,
    checkout: &Checkout,
    hint: &str,
) -> Result<String, CliError> {
    let Some(url) = &checkout.remote_url else {
        return Err(usage(format!("this checkout has no remote: {hint}")));
    };
    let wanted = normalize_url(url);
    registered_repos(client)
        .await?
        .into_iter()
        .find(|repo| normalize_url(&repo.url) == wanted)
        .map(|repo| repo.name)
        .ok_or_else(|| {
            rejected(format!(
                "no repository registered with the URL {url}: add it with `ocelot repos add NAME {url}` or {hint}"
            ))
        })
}

pub(super) async fn registered_repos(client: &mut Client) -> Result<Vec<pb::Repo>, CliError> {
    Ok(client
        .list_repos(pb::ListReposRequest {})
        .await
        .map_err(client::from_status)?
        .into_inner()
        .repos)
}

async fn list(
    client: &mut Client,
    request: pb::ListBuildsRequest,
) -> Result<Vec<pb::Build>, CliError> {
    Ok(client
        .list_builds(request)
        .await
        .map_err(client::from_status)?
        .into_inner()
        .builds)
}

/// The newest build of the checkout's repo and branch (of its commit, HEAD detached).
async fn latest(client: &mut Client) -> Result<pb::Build, CliError> {
    const HINT: &str = "give a build id (`ocelot status` lists them) or a commit prefix";
    let checkout = checkout::discover()
        .map_err(|detail| usage(format!("not in a git checkout ({detail}): {HINT}")))?;
    let repo = repo_of_checkout(client, &checkout, HINT).await?;
    let request = match &checkout.branch {
        Some(branch) => pb::ListBuildsRequest {
            repo: repo.clone(),
            branch: branch.clone(),
            limit: 1,
            ..Default::default()
        },
        None => pb::ListBuildsRequest {
            repo: repo.clone(),
            commit_prefix: checkout.commit.clone(),
            limit: 1,
            ..Default::default()
        },
    };
    let newest = list(client, request).await?.into_iter().next();
    newest.ok_or_else(|| match &checkout.branch {
        Some(branch) => rejected(format!(
            "no build of repo {repo} branch {branch} yet: start one with `ocelot build`"
        )),
        None => rejected(format!(
            "no build of repo {repo} at commit {} (HEAD is detached) yet: start one with `ocelot build -b BRANCH`",
            short(&checkout.commit)
        )),
    })
}

/// The newest build of the one commit starting with `prefix`.
async fn of_commit(client: &mut Client, prefix: &str) -> Result<pb::Build, CliError> {
    let builds = list(
        client,
        pb::ListBuildsRequest {
            commit_prefix: prefix.to_string(),
            limit: CANDIDATE_BUILDS,
            ..Default::default()
        },
    )
    .await?;
    let newest = newest_per_commit(builds);
    if newest.len() > 1 {
        // several: the one of this checkout's repo, if only one is
        if let Ok(checkout) = checkout::discover()
            && let Ok(repo) = repo_of_checkout(client, &checkout, "").await
        {
            let mine: Vec<&pb::Build> = newest.iter().filter(|b| b.repo == repo).collect();
            if let [only] = mine[..] {
                return Ok(only.clone());
            }
        }
    }
    pick(prefix, newest)
}

/// The newest build of each (repo, commit), newest first, from builds newest first.
fn newest_per_commit(builds: Vec<pb::Build>) -> Vec<pb::Build> {
    let mut newest: Vec<pb::Build> = Vec::new();
    for build in builds {
        if !newest
            .iter()
            .any(|seen| seen.repo == build.repo && seen.commit == build.commit)
        {
            newest.push(build);
        }
    }
    newest
}

/// The one candidate, or why there is none or not one.
fn pick(prefix: &str, mut candidates: Vec<pb::Build>) -> Result<pb::Build, CliError> {
    match candidates.len() {
        0 => Err(rejected(format!(
            "no build for commit {prefix}: `ocelot status` lists the builds"
        ))),
        1 => Ok(candidates.remove(0)),
        count => {
            let mut message = format!("the commit prefix {prefix} is ambiguous; it matches:");
            for build in candidates.iter().take(LISTED_CANDIDATES) {
                message.push_str(&format!(
                    "\n  {}  {} ({}), newest build {}",
                    build.commit.get(..12).unwrap_or(&build.commit),
                    plain(&build.repo),
                    plain(&build.branch),
                    build.id
                ));
            }
            if count > LISTED_CANDIDATES {
                message.push_str(&format!("\n  and {} more", count - LISTED_CANDIDATES));
            }
            message.push_str(
                "\ngive more digits of the commit, run this in a checkout of the repo you mean, \
                 or give the build id",
            );
            Err(usage(message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(id: i64, repo: &str, commit: &str) -> pb::Build {
        pb::Build {
            id,
            repo: repo.into(),
            number: id,
            commit: commit.into(),
            branch: "main".into(),
            ..Default::default()
        }
    }

    #[test]
    fn each_commit_counts_once_with_its_newest_build() {
        let newest = newest_per_commit(vec![
            build(9, "app", "abcd1111"),
            build(8, "app", "abcd2222"),
            build(7, "app", "abcd1111"),
            build(6, "fork", "abcd1111"),
        ]);
        let ids: Vec<i64> = newest.iter().map(|b| b.id).collect();
        assert_eq!(ids, [9, 8, 6]);
    }

    #[test]
    fn one_commit_is_picked_none_or_several_are_errors() {
        assert_eq!(
            pick("abcd", vec![build(3, "app", "abcd1111")]).unwrap().id,
            3
        );
        let none = pick("abcd", Vec::new()).unwrap_err();
        assert_eq!(none.status, ExitStatus::Rejected);
        assert_eq!(
            none.message,
            "no build for commit abcd: `ocelot status` lists the builds"
        );
        let several = pick(
            "abcd",
            vec![
                build(9, "app", "abcd11112222333344445555"),
                build(8, "lib", "abcd99998888777766665555"),
            ],
        )
        .unwrap_err();
        assert_eq!(several.status, ExitStatus::Usage);
        assert_eq!(
            several.message,
            "the commit prefix abcd is ambiguous; it matches:\n  \
             abcd11112222  app (main), newest build 9\n  \
             abcd99998888  lib (main), newest build 8\n\
             give more digits of the commit, run this in a checkout of the repo you mean, \
             or give the build id"
        );
    }

    #[test]
    fn a_build_is_described_by_repo_number_branch_and_commit() {
        let mut found = build(12, "team/app", "3f9a1c2ee");
        found.branch = "feat\x1b]0;x\x07/y".into();
        assert_eq!(describe(&found), "team/app #12 (feat/y @ 3f9a1c2)");
    }
}
