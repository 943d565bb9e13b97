//! Git access through git2 (libgit2): list a remote's heads without cloning, keep a bare
//! mirror per repository URL, read a file at a commit, and check a commit out into a fresh
//! workspace. Everything here blocks: async callers run it in `spawn_blocking`.

mod auth;
mod tree_file;

pub use auth::{DEFAULT_SSH_USERNAME, DEFAULT_TOKEN_USERNAME, GitAuth, is_ssh_url};
pub use tree_file::TreeFileError;
// `known_hosts` parsing belongs to the `ssh` credential it checks; re-exported here, where
// host keys are matched.
pub use crate::secrets::{KnownHosts, KnownHostsError};

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// What went wrong with a repository, in terms a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot reach repository {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("authentication failed for {url}: {message}")]
    Authentication { url: String, message: String },
    #[error("branch `{branch}` not found in {url}")]
    BranchNotFound { url: String, branch: String },
    #[error("commit `{commit}` not found in {url} (is it pushed?)")]
    CommitNotFound { url: String, commit: String },
    #[error("git error in {url}: {message}")]
    Other { url: String, message: String },
    /// A repo registered with `https://user:token@...` (before such URLs were refused): never
    /// fetched, so the token reaches no log and no build's `.git/config`.
    #[error(transparent)]
    CredentialsInUrl(#[from] ocelot_domain::repo_url::CredentialsInUrl),
}

fn classify(url: &str, error: git2::Error) -> GitError {
    let message = error.message().to_string();
    let url = url.to_string();
    match (error.code(), error.class()) {
        (git2::ErrorCode::Auth, _) | (_, git2::ErrorClass::Ssh) => {
            GitError::Authentication { url, message }
        }
        (_, git2::ErrorClass::Net | git2::ErrorClass::Http | git2::ErrorClass::Os) => {
            GitError::Unreachable { url, message }
        }
        (git2::ErrorCode::NotFound, git2::ErrorClass::Repository) => {
            GitError::Unreachable { url, message }
        }
        _ => GitError::Other { url, message },
    }
}

/// How long libgit2 waits to connect to a git server, and for a server to answer.
pub const NETWORK_TIMEOUT_MS: i32 = 30_000;

/// Makes libgit2 give up on git servers that do not connect or stop answering, instead of
/// hanging a thread forever. Call it at the very start of `main`, before any thread exists.
#[allow(unsafe_code)]
pub fn set_network_timeouts() {
    // SAFETY: these write libgit2 globals without synchronisation; every binary calls this
    // first thing in `main`, while the process has only the main thread, and nothing else
    // writes them.
    unsafe {
        let _ = git2::opts::set_server_connect_timeout_in_milliseconds(NETWORK_TIMEOUT_MS);
        let _ = git2::opts::set_server_timeout_in_milliseconds(NETWORK_TIMEOUT_MS);
    }
}

/// One ref advertised by a remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    pub name: String,
    pub commit: String,
}

/// Lists the branch heads (`refs/heads/*`) of the repository at `url`, without cloning it.
pub fn ls_remote(url: &str, auth: Option<&GitAuth>) -> Result<Vec<RemoteRef>, GitError> {
    ocelot_domain::repo_url::check_no_credentials(url)?;
    let mut remote = git2::Remote::create_detached(url).map_err(|e| classify(url, e))?;
    let refusal = auth::Refusal::default();
    let connection = remote
        .connect_auth(
            git2::Direction::Fetch,
            Some(auth::remote_callbacks(auth, refusal.clone())),
            None,
        )
        .map_err(|e| refusal.explain(url, e))?;
    let refs = connection
        .list()
        .map_err(|e| classify(url, e))?
        .iter()
        .filter(|head| head.name().starts_with("refs/heads/"))
        .map(|head| RemoteRef {
            name: head.name().to_string(),
            commit: head.oid().to_string(),
        })
        .collect();
    Ok(refs)
}

/// The commit at the head of `branch` in the repository at `url`.
pub fn resolve_branch(url: &str, branch: &str, auth: Option<&GitAuth>) -> Result<String, GitError> {
    let wanted = format!("refs/heads/{branch}");
    ls_remote(url, auth)?
        .into_iter()
        .find(|r| r.name == wanted)
        .map(|r| r.commit)
        .ok_or_else(|| GitError::BranchNotFound {
            url: url.to_string(),
            branch: branch.to_string(),
        })
}

/// What the stage triggers need to know about a commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitInfo {
    pub commit: String,
    pub messages: Vec<String>,
    pub changed_paths: Vec<String>,
}

/// Bare mirrors of remote repositories under one directory, one per URL. Fetches of one
/// URL are serialised by a lock file, across threads and processes (several workers on a
/// host may share the directory).
#[derive(Debug)]
pub struct MirrorCache {
    root: PathBuf,
}

impl MirrorCache {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        MirrorCache { root: root.into() }
    }

    fn mirror_path(&self, url: &str) -> PathBuf {
        let digest = Sha256::digest(url.as_bytes());
        let hash: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let readable: String = url
            .rsplit('/')
            .find(|part| !part.is_empty())
            .unwrap_or("repo")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.')
            .take(40)
            .collect();
        self.root.join(format!("{readable}-{hash}"))
    }

    /// Brings the mirror of `url` up to date (all branches and tags) and returns its path.
    pub fn fetch(&self, url: &str, auth: Option<&GitAuth>) -> Result<PathBuf, GitError> {
        ocelot_domain::repo_url::check_no_credentials(url)?;
        let path = self.mirror_path(url);
        let other = |message: String| GitError::Other {
            url: url.to_string(),
            message,
        };
        std::fs::create_dir_all(&self.root)
            .map_err(|e| other(format!("creating {}: {e}", self.root.display())))?;
        let lock_path = path.with_extension("lock");
        let lock = std::fs::File::create(&lock_path)
            .map_err(|e| other(format!("creating {}: {e}", lock_path.display())))?;
        // released when `lock` is dropped at the end of the fetch
        lock.lock()
            .map_err(|e| other(format!("locking {}: {e}", lock_path.display())))?;
        let repo = match git2::Repository::open_bare(&path) {
            Ok(repo) => repo,
            Err(_) => git2::Repository::init_bare(&path).map_err(|e| classify(url, e))?,
        };
        let mut remote = repo.remote_anonymous(url).map_err(|e| classify(url, e))?;
        let refusal = auth::Refusal::default();
        let mut options = git2::FetchOptions::new();
        options
            .remote_callbacks(auth::remote_callbacks(auth, refusal.clone()))
            .download_tags(git2::AutotagOption::All)
            .prune(git2::FetchPrune::On);
        remote
            .fetch(
                &[
                    "+refs/heads/*:refs/heads/*",
                    "+refs/tags/*:refs/tags/*",
                    // pull requests from forks: GitHub and Gitea, GitLab
                    "+refs/pull/*/head:refs/pull/*/head",
                    "+refs/merge-requests/*/head:refs/merge-requests/*/head",
                ],
                Some(&mut options),
                None,
            )
            .map_err(|e| refusal.explain(url, e))?;
        Ok(path)
    }

    /// The full id of `rev` (a full or abbreviated commit id) in the mirror of `url`.
    pub fn resolve_commit(&self, url: &str, mirror: &Path, rev: &str) -> Result<String, GitError> {
        let repo = git2::Repository::open_bare(mirror).map_err(|e| classify(url, e))?;
        let not_found = || GitError::CommitNotFound {
            url: url.to_string(),
            commit: rev.to_string(),
        };
        if rev.is_empty() || !rev.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(not_found());
        }
        let object = repo.revparse_single(rev).map_err(|_| not_found())?;
        let commit = object.peel_to_commit().map_err(|_| not_found())?;
        Ok(commit.id().to_string())
    }

    /// Whether `commit` is `git_ref` (`refs/heads/main`, `refs/tags/v1`: peeled to its
    /// commit) in a mirror, or, when `ancestors` is set, one of its ancestors. An unknown
    /// ref is [`GitError::BranchNotFound`].
    pub fn is_reachable(
        &self,
        url: &str,
        mirror: &Path,
        commit: &str,
        git_ref: &str,
        ancestors: bool,
    ) -> Result<bool, GitError> {
        let repo = git2::Repository::open_bare(mirror).map_err(|e| classify(url, e))?;
        let target = find_commit(&repo, url, commit)?.id();
        let head = repo
            .find_reference(git_ref)
            .and_then(|reference| reference.peel_to_commit())
            .map_err(|_| GitError::BranchNotFound {
                url: url.to_string(),
                branch: git_ref
                    .strip_prefix("refs/heads/")
                    .or_else(|| git_ref.strip_prefix("refs/tags/"))
                    .unwrap_or(git_ref)
                    .to_string(),
            })?
            .id();
        if head == target {
            return Ok(true);
        }
        if !ancestors {
            return Ok(false);
        }
        repo.graph_descendant_of(head, target)
            .map_err(|e| classify(url, e))
    }

    /// The message of `commit` in a mirror.
    pub fn commit_message(
        &self,
        url: &str,
        mirror: &Path,
        commit: &str,
    ) -> Result<String, GitError> {
        let repo = git2::Repository::open_bare(mirror).map_err(|e| classify(url, e))?;
        let commit = find_commit(&repo, url, commit)?;
        Ok(commit.message().unwrap_or_default().to_string())
    }

    /// Fetches `url` and checks `commit` out into the empty directory `dest` (a git
    /// repository whose `origin` is `url`, HEAD detached at the commit). The commit info
    /// covers `previous..commit` when `previous` is known there (a push's whole range), else
    /// the commit alone.
    pub fn checkout(
        &self,
        url: &str,
        auth: Option<&GitAuth>,
        commit: &str,
        previous: Option<&str>,
        dest: &Path,
    ) -> Result<CommitInfo, GitError> {
        let mirror = self.fetch(url, auth)?;
        let full = self.resolve_commit(url, &mirror, commit)?;
        let repo = git2::Repository::init(dest).map_err(|e| classify(url, e))?;
        let mirror_url = mirror.to_string_lossy().into_owned();
        {
            let mut from_mirror = repo
                .remote_anonymous(&mirror_url)
                .map_err(|e| classify(url, e))?;
            from_mirror
                .fetch(
                    &[
                        "+refs/heads/*:refs/remotes/origin/*",
                        "+refs/tags/*:refs/tags/*",
                        "+refs/pull/*/head:refs/remotes/origin/pull/*",
                        "+refs/merge-requests/*/head:refs/remotes/origin/merge-requests/*",
                    ],
                    None,
                    None,
                )
                .map_err(|e| classify(url, e))?;
        }
        repo.remote("origin", url).map_err(|e| classify(url, e))?;
        let target = find_commit(&repo, url, &full)?;
        repo.checkout_tree(
            target.as_object(),
            Some(git2::build::CheckoutBuilder::new().force()),
        )
        .map_err(|e| classify(url, e))?;
        repo.set_head_detached(target.id())
            .map_err(|e| classify(url, e))?;
        let previous = previous
            .and_then(|p| git2::Oid::from_str(p).ok())
            .and_then(|oid| repo.find_commit(oid).ok())
            .filter(|p| p.id() != target.id());
        match previous {
            Some(previous) => range_info(&repo, url, &previous, &target),
            None => commit_info(&repo, url, &target),
        }
    }
}

fn find_commit<'r>(
    repo: &'r git2::Repository,
    url: &str,
    commit: &str,
) -> Result<git2::Commit<'r>, GitError> {
    git2::Oid::from_str(commit)
        .and_then(|oid| repo.find_commit(oid))
        .map_err(|_| GitError::CommitNotFound {
            url: url.to_string(),
            commit: commit.to_string(),
        })
}

/// Paths that differ between two trees (either may be empty), each once.
fn changed_paths(
    repo: &git2::Repository,
    url: &str,
    old: Option<&git2::Tree<'_>>,
    new: &git2::Tree<'_>,
) -> Result<Vec<String>, GitError> {
    let diff = repo
        .diff_tree_to_tree(old, Some(new), None)
        .map_err(|e| classify(url, e))?;
    let mut paths = Vec::new();
    for delta in diff.deltas() {
        for file in [delta.old_file(), delta.new_file()] {
            if let Some(path) = file.path().and_then(|p| p.to_str())
                && !paths.iter().any(|p: &String| p == path)
            {
                paths.push(path.to_string());
            }
        }
    }
    Ok(paths)
}

fn commit_info(
    repo: &git2::Repository,
    url: &str,
    commit: &git2::Commit<'_>,
) -> Result<CommitInfo, GitError> {
    let tree = commit.tree().map_err(|e| classify(url, e))?;
    let parent_tree = match commit.parent(0) {
        Ok(parent) => Some(parent.tree().map_err(|e| classify(url, e))?),
        Err(_) => None,
    };
    Ok(CommitInfo {
        commit: commit.id().to_string(),
        messages: vec![commit.message().unwrap_or_default().to_string()],
        changed_paths: changed_paths(repo, url, parent_tree.as_ref(), &tree)?,
    })
}

/// The most commits of a push whose messages are collected.
const MAX_RANGE_COMMITS: usize = 1000;

/// Messages of every commit in `previous..commit` (newest first) and the paths changed
/// between the two.
fn range_info(
    repo: &git2::Repository,
    url: &str,
    previous: &git2::Commit<'_>,
    commit: &git2::Commit<'_>,
) -> Result<CommitInfo, GitError> {
    let mut walk = repo.revwalk().map_err(|e| classify(url, e))?;
    walk.push(commit.id()).map_err(|e| classify(url, e))?;
    walk.hide(previous.id()).map_err(|e| classify(url, e))?;
    let mut messages = Vec::new();
    for oid in walk.take(MAX_RANGE_COMMITS) {
        let oid = oid.map_err(|e| classify(url, e))?;
        let found = repo.find_commit(oid).map_err(|e| classify(url, e))?;
        messages.push(found.message().unwrap_or_default().to_string());
    }
    let old_tree = previous.tree().map_err(|e| classify(url, e))?;
    let new_tree = commit.tree().map_err(|e| classify(url, e))?;
    Ok(CommitInfo {
        commit: commit.id().to_string(),
        messages,
        changed_paths: changed_paths(repo, url, Some(&old_tree), &new_tree)?,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::process::Command;

    /// Runs `git ARGS` in `dir` as a fixed author (the test repositories' commits).
    pub(in crate::git) fn git(dir: &Path, args: &[&str]) {
        let status = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }

    #[test]
    fn mirror_reads_files_and_checks_out_exact_commits() {
        let tmp = tempfile::tempdir().unwrap();
        let origin = tmp.path().join("origin");
        std::fs::create_dir(&origin).unwrap();
        git(&origin, &["init", "-q", "-b", "main"]);
        std::fs::write(origin.join("ocelot.yml"), "image: a\n").unwrap();
        git(&origin, &["add", "."]);
        git(&origin, &["commit", "-q", "-m", "first"]);
        std::fs::create_dir(origin.join("src")).unwrap();
        std::fs::write(origin.join("src/main.rs"), "fn main() {}\n").unwrap();
        git(&origin, &["add", "."]);
        git(&origin, &["commit", "-q", "-m", "second"]);
        let url = format!("file://{}", origin.display());

        let head = resolve_branch(&url, "main", None).unwrap();
        assert!(matches!(
            resolve_branch(&url, "nope", None),
            Err(GitError::BranchNotFound { .. })
        ));

        let cache = MirrorCache::new(tmp.path().join("cache"));
        let mirror = cache.fetch(&url, None).unwrap();
        let short = &head[..8];
        assert_eq!(cache.resolve_commit(&url, &mirror, short).unwrap(), head);
        assert_eq!(
            cache
                .read_regular_file(&url, &head, "ocelot.yml", 1024)
                .unwrap(),
            "image: a\n"
        );
        assert!(matches!(
            cache.read_regular_file(&url, &head, "missing.yml", 1024),
            Err(TreeFileError::Missing { .. })
        ));

        let dest = tmp.path().join("ws");
        std::fs::create_dir(&dest).unwrap();
        let info = cache.checkout(&url, None, &head, None, &dest).unwrap();
        assert_eq!(info.commit, head);
        assert_eq!(info.changed_paths, vec!["src/main.rs".to_string()]);
        assert_eq!(info.messages, vec!["second\n".to_string()]);
        assert!(dest.join("src/main.rs").exists());

        // a push's range: both commits' messages, every path changed since `previous`
        std::fs::write(origin.join("ocelot.yml"), "image: b\n").unwrap();
        git(&origin, &["commit", "-q", "-am", "third"]);
        let third = resolve_branch(&url, "main", None).unwrap();
        let first = git2::Repository::open(&origin)
            .unwrap()
            .find_commit(git2::Oid::from_str(&head).unwrap())
            .unwrap()
            .parent_id(0)
            .unwrap()
            .to_string();
        let dest = tmp.path().join("ws2");
        std::fs::create_dir(&dest).unwrap();
        let info = cache
            .checkout(&url, None, &third, Some(&first), &dest)
            .unwrap();
        assert_eq!(
            info.messages,
            vec!["third\n".to_string(), "second\n".to_string()]
        );
        assert_eq!(
            info.changed_paths,
            vec!["ocelot.yml".to_string(), "src/main.rs".to_string()]
        );
        assert_eq!(
            cache
                .commit_message(&url, &cache.fetch(&url, None).unwrap(), &third)
                .unwrap(),
            "third\n"
        );
    }

    #[test]
    fn reachability_follows_the_branch_history_only() {
        let tmp = tempfile::tempdir().unwrap();
        let origin = tmp.path().join("origin");
        std::fs::create_dir(&origin).unwrap();
        git(&origin, &["init", "-q", "-b", "main"]);
        std::fs::write(origin.join("a"), "1").unwrap();
        git(&origin, &["add", "."]);
        git(&origin, &["commit", "-q", "-m", "first"]);
        git(&origin, &["tag", "v1"]);
        let first = resolve_branch(&format!("file://{}", origin.display()), "main", None).unwrap();
        std::fs::write(origin.join("a"), "2").unwrap();
        git(&origin, &["commit", "-q", "-am", "second"]);
        git(&origin, &["checkout", "-q", "-b", "other", &first]);
        std::fs::write(origin.join("b"), "x").unwrap();
        git(&origin, &["add", "."]);
        git(&origin, &["commit", "-q", "-m", "elsewhere"]);
        let url = format!("file://{}", origin.display());
        let main = resolve_branch(&url, "main", None).unwrap();
        let other = resolve_branch(&url, "other", None).unwrap();

        let cache = MirrorCache::new(tmp.path().join("cache"));
        let mirror = cache.fetch(&url, None).unwrap();
        let reachable = |commit: &str, git_ref: &str, ancestors: bool| {
            cache
                .is_reachable(&url, &mirror, commit, git_ref, ancestors)
                .unwrap()
        };
        assert!(reachable(&main, "refs/heads/main", true));
        assert!(reachable(&first, "refs/heads/main", true));
        assert!(!reachable(&other, "refs/heads/main", true));
        assert!(!reachable(&first, "refs/heads/main", false));
        assert!(reachable(&first, "refs/tags/v1", false));
        assert!(!reachable(&main, "refs/tags/v1", false));
        assert!(matches!(
            cache.is_reachable(&url, &mirror, &main, "refs/heads/nope", true),
            Err(GitError::BranchNotFound { branch, .. }) if branch == "nope"
        ));
    }

    #[test]
    fn unreachable_repos_say_so() {
        let error = ls_remote("git://127.0.0.1:1/nothing.git", None).unwrap_err();
        assert!(matches!(error, GitError::Unreachable { .. }), "{error:?}");
    }
}
