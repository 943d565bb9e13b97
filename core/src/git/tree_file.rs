//! Reading one file of a commit straight from the git objects of a mirror, for files a
//! service acts on (the worker's `ocelot.yml`): never through a checkout, so a committed
//! symbolic link cannot point the reader at the host's own files (`/etc/...`) or at an
//! endless one (`/dev/zero`), and never past a size limit.

use super::{GitError, MirrorCache, classify, find_commit};
use std::path::Path;

/// Why a file could not be read from a commit.
#[derive(Debug, thiserror::Error)]
pub enum TreeFileError {
    #[error("no {path} at the root of commit {commit}")]
    Missing { path: String, commit: String },
    #[error(
        "{path} is a symbolic link (to `{target}`) in commit {commit}: Ocelot reads it from git \
         and never follows links; commit the file itself instead of a link"
    )]
    Symlink {
        path: String,
        commit: String,
        target: String,
    },
    #[error("{path} is not a regular file in commit {commit} (a directory or a submodule)")]
    NotAFile { path: String, commit: String },
    #[error(
        "{path} is {size} bytes in commit {commit}, over the limit of {limit} bytes ({limit_kib} \
         KiB): make it smaller"
    )]
    TooLarge {
        path: String,
        commit: String,
        size: u64,
        limit: u64,
        limit_kib: u64,
    },
    #[error("{path} is not UTF-8 text in commit {commit}")]
    NotText { path: String, commit: String },
    #[error(transparent)]
    Git(#[from] GitError),
}

/// The longest a symbolic link's target is quoted in an error.
const MAX_QUOTED_TARGET: usize = 200;

impl MirrorCache {
    /// The text of the regular file `path` at `commit` (a full id) in the mirror of `url`,
    /// as fetched last (by [`MirrorCache::checkout`]; this does not fetch). Refuses a
    /// symbolic link, a directory or submodule, and a file over `max_bytes` (its size is read
    /// from the object's header, before its content).
    pub fn read_regular_file(
        &self,
        url: &str,
        commit: &str,
        path: &str,
        max_bytes: u64,
    ) -> Result<String, TreeFileError> {
        let repo =
            git2::Repository::open_bare(self.mirror_path(url)).map_err(|e| classify(url, e))?;
        let found = find_commit(&repo, url, commit)?;
        let tree = found.tree().map_err(|e| classify(url, e))?;
        let path_text = path.to_string();
        let commit_text = commit.chars().take(12).collect::<String>();
        let entry = match tree.get_path(Path::new(path)) {
            Ok(entry) => entry,
            Err(error) if error.code() == git2::ErrorCode::NotFound => {
                return Err(TreeFileError::Missing {
                    path: path_text,
                    commit: commit_text,
                });
            }
            Err(error) => return Err(classify(url, error).into()),
        };
        let odb = repo.odb().map_err(|e| classify(url, e))?;
        let (size, kind) = odb.read_header(entry.id()).map_err(|e| classify(url, e))?;
        let is_link = entry.filemode() == i32::from(git2::FileMode::Link);
        if kind != git2::ObjectType::Blob {
            return Err(TreeFileError::NotAFile {
                path: path_text,
                commit: commit_text,
            });
        }
        let size = u64::try_from(size).unwrap_or(u64::MAX);
        if is_link {
            // a link's blob is its target; quoted (shortened), never followed
            let target = if size <= 4096 {
                let blob = repo.find_blob(entry.id()).map_err(|e| classify(url, e))?;
                String::from_utf8_lossy(blob.content())
                    .chars()
                    .take(MAX_QUOTED_TARGET)
                    .collect()
            } else {
                "…".to_string()
            };
            return Err(TreeFileError::Symlink {
                path: path_text,
                commit: commit_text,
                target,
            });
        }
        if size > max_bytes {
            return Err(TreeFileError::TooLarge {
                path: path_text,
                commit: commit_text,
                size,
                limit: max_bytes,
                limit_kib: max_bytes / 1024,
            });
        }
        let blob = repo.find_blob(entry.id()).map_err(|e| classify(url, e))?;
        String::from_utf8(blob.content().to_vec()).map_err(|_| TreeFileError::NotText {
            path: path_text,
            commit: commit_text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::tests::git;
    use std::process::Command;

    fn head(dir: &Path) -> String {
        let out = Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(dir)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    #[test]
    fn links_directories_and_large_files_are_refused_regular_files_read() {
        let tmp = tempfile::tempdir().unwrap();
        let origin = tmp.path().join("origin");
        std::fs::create_dir(&origin).unwrap();
        git(&origin, &["init", "-q", "-b", "main"]);
        std::fs::write(origin.join("ocelot.yml"), "image: a\n").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", origin.join("link.yml")).unwrap();
        std::fs::create_dir(origin.join("dir.yml")).unwrap();
        std::fs::write(origin.join("dir.yml/x"), "x").unwrap();
        std::fs::write(origin.join("big.yml"), vec![b'a'; 2048]).unwrap();
        git(&origin, &["add", "."]);
        git(&origin, &["commit", "-q", "-m", "first"]);
        let commit = head(&origin);
        let url = format!("file://{}", origin.display());
        let cache = MirrorCache::new(tmp.path().join("cache"));
        cache.fetch(&url, None).unwrap();
        let read = |path: &str| cache.read_regular_file(&url, &commit, path, 1024);
        assert_eq!(read("ocelot.yml").unwrap(), "image: a\n");
        let link = read("link.yml").unwrap_err();
        assert!(
            matches!(&link, TreeFileError::Symlink { target, .. } if target == "/etc/hostname"),
            "{link:?}"
        );
        assert!(link.to_string().contains("symbolic link"), "{link}");
        assert!(matches!(
            read("dir.yml"),
            Err(TreeFileError::NotAFile { .. })
        ));
        let big = read("big.yml").unwrap_err();
        assert!(
            matches!(big, TreeFileError::TooLarge { size: 2048, .. }),
            "{big:?}"
        );
        assert!(big.to_string().contains("limit of 1024 bytes"), "{big}");
        assert!(matches!(
            read("none.yml"),
            Err(TreeFileError::Missing { .. })
        ));
    }
}
