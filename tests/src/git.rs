//! Git repositories served by a `git daemon` on a free loopback port.
//!
//! The `git-daemon` program is run directly (from `git --exec-path`), not through the `git`
//! wrapper, whose `git-daemon` child would survive a kill of the wrapper; and it leads a
//! process group of its own, which is killed with the connections it forked on drop.

use crate::process::GroupChild;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

#[derive(Debug)]
pub struct GitServer {
    pub port: u16,
    /// The address it listens on (127.0.0.1 unless started with [`GitServer::start_on`]).
    pub ip: String,
    root: PathBuf,
    child: GroupChild,
}

/// `$(git --exec-path)/git-daemon`, looked up once.
fn git_daemon() -> anyhow::Result<PathBuf> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let exec_path = git(Path::new("/"), &["--exec-path"]).map_err(|e| format!("{e:#}"))?;
            let daemon = Path::new(&exec_path).join("git-daemon");
            if daemon.is_file() {
                Ok(daemon)
            } else {
                Err(format!(
                    "no git-daemon in `git --exec-path` ({exec_path}): Debian's `git` package ships it"
                ))
            }
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Ocelot Test")
        .env("GIT_AUTHOR_EMAIL", "test@ocelot.local")
        .env("GIT_COMMITTER_NAME", "Ocelot Test")
        .env("GIT_COMMITTER_EMAIL", "test@ocelot.local")
        .output()
        .with_context(|| format!("running git {args:?}"))?;
    anyhow::ensure!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

impl GitServer {
    /// Serves every repository under `root` on git://127.0.0.1:PORT/NAME.git.
    pub async fn start(root: &Path) -> anyhow::Result<GitServer> {
        GitServer::start_on(root, "127.0.0.1").await
    }

    /// Serves on git://IP:PORT/NAME.git (e.g. a Docker network's gateway, for containers).
    pub async fn start_on(root: &Path, ip: &str) -> anyhow::Result<GitServer> {
        std::fs::create_dir_all(root)?;
        let port = crate::free_port()?;
        let child = GroupChild::spawn(
            "git-daemon",
            tokio::process::Command::new(git_daemon()?)
                .arg("--reuseaddr")
                .arg("--export-all")
                .arg(format!("--base-path={}", root.display()))
                .arg(format!("--listen={ip}"))
                .arg(format!("--port={port}"))
                .arg(root)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null()),
        )?;
        crate::wait_for_address(ip, port, Duration::from_secs(10)).await?;
        Ok(GitServer {
            port,
            ip: ip.to_string(),
            root: root.to_path_buf(),
            child,
        })
    }

    /// The pid of `git-daemon`, which leads the process group of everything it started.
    pub fn pid(&self) -> i32 {
        self.child.pid()
    }

    /// The directory the served repositories live in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the bare repository `name` with one commit of `files` on `main`.
    pub fn create_repo(&self, name: &str, files: &[(&str, &str)]) -> anyhow::Result<TestRepo> {
        let bare = self.root.join(format!("{name}.git"));
        let work = self.root.join(format!("{name}.work"));
        if let Some(parent) = bare.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::create_dir_all(&work)?;
        git(&work, &["init", "-q", "-b", "main"])?;
        let repo = TestRepo {
            url: format!("git://{}:{}/{name}.git", self.ip, self.port),
            bare,
            work,
        };
        repo.commit(files, "initial commit")?;
        git(
            &self.root,
            &[
                "clone",
                "-q",
                "--bare",
                &repo.work.display().to_string(),
                &repo.bare.display().to_string(),
            ],
        )?;
        git(
            &repo.work,
            &["remote", "add", "origin", &repo.bare.display().to_string()],
        )?;
        Ok(repo)
    }
}

/// A served repository and a working copy that pushes to it.
#[derive(Debug)]
pub struct TestRepo {
    pub url: String,
    pub bare: PathBuf,
    pub work: PathBuf,
}

impl TestRepo {
    /// Writes `files`, commits them and returns the commit id (not yet pushed).
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> anyhow::Result<String> {
        for (path, content) in files {
            let path = self.work.join(path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, content)?;
        }
        git(&self.work, &["add", "-A"])?;
        git(
            &self.work,
            &["commit", "-q", "--allow-empty", "-m", message],
        )?;
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Runs git in the working copy.
    pub fn git(&self, args: &[&str]) -> anyhow::Result<String> {
        git(&self.work, args)
    }

    /// The working copy's HEAD commit.
    pub fn head(&self) -> anyhow::Result<String> {
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Pushes `main` to the served repository.
    pub fn push(&self) -> anyhow::Result<()> {
        git(&self.work, &["push", "-q", "origin", "main"])?;
        Ok(())
    }

    /// Clones the served repository (over git://) into `dest` for CLI runs.
    pub fn clone_to(&self, dest: &Path) -> anyhow::Result<()> {
        git(
            Path::new("/"),
            &["clone", "-q", &self.url, &dest.display().to_string()],
        )?;
        Ok(())
    }
}
