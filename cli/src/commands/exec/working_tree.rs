//! The checkout `ocelot exec` builds: its branch, HEAD and what changed (what stage triggers
//! see), and its working tree as it is now: the tracked files with their uncommitted
//! changes, and the untracked files git does not ignore (what `git add -A` would commit).
//! Left out: `.git`, ignored files, files deleted in the working tree, and submodules.

use ocelot_domain::pipeline;
use std::collections::BTreeSet;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What the checkout says, and which of its files the build gets.
#[derive(Debug)]
pub(super) struct WorkingTree {
    /// The checkout's top directory.
    pub(super) root: PathBuf,
    /// Its remote's URL (credentials removed), else its directory.
    pub(super) url: String,
    /// The name the build is given: the last part of the URL (less `.git`).
    pub(super) name: String,
    /// `None` when HEAD is detached.
    pub(super) branch: Option<String>,
    /// HEAD, full.
    pub(super) commit: String,
    pub(super) message: String,
    /// The paths HEAD changed (against its first parent) and those changed since, sorted.
    pub(super) changed_paths: Vec<String>,
    /// The files (and links) the build gets, relative to `root`.
    pub(super) files: Vec<PathBuf>,
    /// How many paths differ from HEAD (changed, added, deleted, untracked).
    pub(super) uncommitted: usize,
}

fn git_error(what: &str, error: &git2::Error) -> String {
    format!("{what}: {}", error.message())
}

/// Reads the checkout that contains the current directory.
pub(super) fn read() -> Result<WorkingTree, String> {
    let repo =
        git2::Repository::discover(".").map_err(|e| git_error("not in a git checkout", &e))?;
    let root = repo
        .workdir()
        .ok_or("a bare repository has no working tree to build")?
        .to_path_buf();
    let head = repo.head().map_err(|e| git_error("no HEAD", &e))?;
    let commit = head
        .peel_to_commit()
        .map_err(|e| git_error("HEAD is not a commit", &e))?;
    let branch = head
        .is_branch()
        .then(|| head.shorthand().ok().map(str::to_string))
        .flatten();
    let url = remote_url(&repo).unwrap_or_else(|| root.display().to_string());
    let name = name_of(&url);
    let mut changed: BTreeSet<String> = committed_paths(&repo, &commit)?;
    let (files, uncommitted) = working_files(&repo, &root, &mut changed)?;
    Ok(WorkingTree {
        root,
        url,
        name,
        branch,
        commit: commit.id().to_string(),
        message: commit.message().unwrap_or_default().to_string(),
        changed_paths: changed.into_iter().collect(),
        files,
        uncommitted,
    })
}

/// The URL of `origin`, else of the only remote.
fn remote_url(repo: &git2::Repository) -> Option<String> {
    let names = repo.remotes().ok()?;
    let names: Vec<&str> = names.iter().flatten().flatten().collect();
    let name = names
        .iter()
        .find(|n| **n == "origin")
        .or_else(|| (names.len() == 1).then(|| &names[0]))?;
    let remote = repo.find_remote(name).ok()?;
    // a token in the remote URL never goes into a build
    let url = remote.url().ok()?;
    Some(ocelot_domain::repo_url::strip_credentials(url).into_owned())
}

/// `team/app` → `app`; `/src/app.git/` → `app`.
fn name_of(url: &str) -> String {
    let last = url
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or_default();
    let name = last.strip_suffix(".git").unwrap_or(last);
    if name.is_empty() {
        "local".to_string()
    } else {
        name.to_string()
    }
}

/// The paths `commit` changed against its first parent (all of its files for a root commit).
fn committed_paths(
    repo: &git2::Repository,
    commit: &git2::Commit<'_>,
) -> Result<BTreeSet<String>, String> {
    let tree = commit.tree().map_err(|e| git_error("reading HEAD", &e))?;
    let parent = commit.parent(0).ok().and_then(|p| p.tree().ok());
    let diff = repo
        .diff_tree_to_tree(parent.as_ref(), Some(&tree), None)
        .map_err(|e| git_error("comparing HEAD with its parent", &e))?;
    let mut paths = BTreeSet::new();
    for delta in diff.deltas() {
        for file in [delta.old_file(), delta.new_file()] {
            if let Some(path) = file.path().and_then(Path::to_str) {
                paths.insert(path.to_string());
            }
        }
    }
    Ok(paths)
}

/// The files the build gets, and how many paths differ from HEAD (each added to `changed`).
fn working_files(
    repo: &git2::Repository,
    root: &Path,
    changed: &mut BTreeSet<String>,
) -> Result<(Vec<PathBuf>, usize), String> {
    let mut options = git2::StatusOptions::new();
    options
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .include_unmodified(true)
        .exclude_submodules(true);
    let statuses = repo
        .statuses(Some(&mut options))
        .map_err(|e| git_error("reading the working tree's status", &e))?;
    let mut files = Vec::new();
    let mut uncommitted = 0;
    for entry in statuses.iter() {
        // any bytes, as git keeps them (a name need not be UTF-8)
        let path = Path::new(std::ffi::OsStr::from_bytes(entry.path_bytes()));
        if entry.status() != git2::Status::CURRENT {
            uncommitted += 1;
            changed.insert(path.to_string_lossy().into_owned());
        }
        // deleted in the working tree (or a directory: a nested repository) is left out
        let is_file_or_link = std::fs::symlink_metadata(root.join(path))
            .is_ok_and(|m| m.file_type().is_file() || m.file_type().is_symlink());
        if is_file_or_link {
            files.push(path.to_path_buf());
        }
    }
    Ok((files, uncommitted))
}

impl WorkingTree {
    /// The pipeline file's text: `file` (relative to the current directory), else
    /// `ocelot.yml` at the checkout's top. At most 1 MiB, as a worker reads it.
    pub(super) fn pipeline(&self, file: Option<&Path>) -> Result<String, String> {
        let path = file.map_or_else(|| self.root.join(pipeline::FILE_NAME), Path::to_path_buf);
        let metadata = std::fs::metadata(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound && file.is_none() {
                format!(
                    "no {} at the top of this checkout ({}): `ocelot init` writes one",
                    pipeline::FILE_NAME,
                    path.display()
                )
            } else {
                format!("cannot read {}: {e}", path.display())
            }
        })?;
        if metadata.len() > pipeline::MAX_FILE_BYTES {
            return Err(format!(
                "{} is larger than {} bytes: a worker would not read it either",
                path.display(),
                pipeline::MAX_FILE_BYTES
            ));
        }
        std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    }

    /// Copies the build's files into `dest` (an empty directory): regular files with their
    /// mode, links as links.
    pub(super) fn copy_into(&self, dest: &Path) -> io::Result<()> {
        for file in &self.files {
            let (from, to) = (self.root.join(file), dest.join(file));
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let metadata = std::fs::symlink_metadata(&from)?;
            if metadata.file_type().is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
            } else {
                std::fs::copy(&from, &to).map_err(|e| {
                    io::Error::new(e.kind(), format!("copying {}: {e}", from.display()))
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_is_named_after_its_remote() {
        assert_eq!(name_of("git://127.0.0.1:9418/team/app.git"), "app");
        assert_eq!(name_of("git@github.com:team/app.git"), "app");
        assert_eq!(name_of("/src/app/"), "app");
        assert_eq!(name_of("https://example.com/app"), "app");
        assert_eq!(name_of("/"), "local");
    }

    fn git(dir: &Path, args: &[&str]) {
        let status = std::process::Command::new("git")
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
    fn the_build_gets_the_working_tree_as_it_is_but_what_git_ignores() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git(root, &["init", "-q", "-b", "main"]);
        std::fs::write(root.join(".gitignore"), "target/\n").unwrap();
        std::fs::write(root.join("kept.txt"), "committed").unwrap();
        std::fs::write(root.join("gone.txt"), "committed").unwrap();
        git(root, &["add", "-A"]);
        git(root, &["commit", "-qm", "first"]);
        std::fs::write(root.join("kept.txt"), "changed").unwrap();
        std::fs::remove_file(root.join("gone.txt")).unwrap();
        std::fs::create_dir_all(root.join("src/new")).unwrap();
        std::fs::write(root.join("src/new/file.rs"), "new").unwrap();
        std::fs::create_dir_all(root.join("target")).unwrap();
        std::fs::write(root.join("target/out"), "ignored").unwrap();
        std::os::unix::fs::symlink("kept.txt", root.join("link")).unwrap();

        let repo = git2::Repository::open(root).unwrap();
        let mut changed = BTreeSet::new();
        let (mut files, uncommitted) = working_files(&repo, root, &mut changed).unwrap();
        files.sort();
        let names: Vec<&str> = files.iter().filter_map(|f| f.to_str()).collect();
        assert_eq!(names, [".gitignore", "kept.txt", "link", "src/new/file.rs"]);
        assert_eq!(uncommitted, 4, "changed, deleted, two untracked");
        assert!(changed.contains("gone.txt") && changed.contains("src/new/file.rs"));

        let tree = WorkingTree {
            root: root.to_path_buf(),
            url: String::new(),
            name: String::new(),
            branch: Some("main".into()),
            commit: String::new(),
            message: String::new(),
            changed_paths: Vec::new(),
            files,
            uncommitted,
        };
        let copy = tempfile::tempdir().unwrap();
        tree.copy_into(copy.path()).unwrap();
        let read = |p: &str| std::fs::read_to_string(copy.path().join(p)).unwrap();
        assert_eq!(read("kept.txt"), "changed");
        assert_eq!(read("src/new/file.rs"), "new");
        assert_eq!(
            std::fs::read_link(copy.path().join("link")).unwrap(),
            Path::new("kept.txt")
        );
        assert!(!copy.path().join("target").exists());
        assert!(!copy.path().join("gone.txt").exists());
        assert!(!copy.path().join(".git").exists());
    }
}
