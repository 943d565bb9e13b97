//! What the current git checkout says: its remote URL, branch and commit.

use crate::client::CliError;
use crate::exit::ExitStatus;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkout {
    pub(crate) remote_url: Option<String>,
    /// `None` when HEAD is detached.
    pub(crate) branch: Option<String>,
    pub(crate) commit: String,
}

/// Reads the checkout that contains the current directory.
pub(crate) fn current() -> Result<Checkout, CliError> {
    discover().map_err(|detail| {
        CliError::new(
            ExitStatus::Usage,
            format!("not in a git checkout ({detail}): give the repository with -r NAME"),
        )
    })
}

/// [`current`], failing with why this is not a checkout (for the caller's own hint).
pub(crate) fn discover() -> Result<Checkout, String> {
    let repo = git2::Repository::discover(".").map_err(|e| e.message().to_string())?;
    let head = repo
        .head()
        .map_err(|e| format!("no HEAD: {}", e.message()))?;
    let commit = head
        .peel_to_commit()
        .map_err(|e| format!("HEAD is not a commit: {}", e.message()))?
        .id()
        .to_string();
    let branch = if head.is_branch() {
        head.shorthand().ok().map(str::to_string)
    } else {
        None
    };
    let remote_url = remote_url(&repo, branch.as_deref());
    Ok(Checkout {
        remote_url,
        branch,
        commit,
    })
}

/// The URL of the branch's upstream remote, else `origin`, else the only remote.
fn remote_url(repo: &git2::Repository, branch: Option<&str>) -> Option<String> {
    let upstream_remote = branch.and_then(|b| {
        repo.config()
            .ok()?
            .get_string(&format!("branch.{b}.remote"))
            .ok()
    });
    let names: Vec<String> = repo
        .remotes()
        .ok()?
        .iter()
        .filter_map(|name| name.ok().flatten().map(str::to_string))
        .collect();
    let name = upstream_remote
        .filter(|n| names.contains(n))
        .or_else(|| names.iter().find(|n| *n == "origin").cloned())
        .or_else(|| (names.len() == 1).then(|| names[0].clone()))?;
    // a token in the remote URL (`https://user:token@host/...`) never leaves this machine
    repo.find_remote(&name)
        .ok()?
        .url()
        .ok()
        .map(|url| ocelot_domain::repo_url::strip_credentials(url).into_owned())
}
