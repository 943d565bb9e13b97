//! Keeping a host build to itself: its files owned by its own unprivileged uid, every
//! process of that uid killed when a stage ends (a daemonised one too), and what it left in
//! the host's shared temporary directories removed. Everything here blocks: callers run it
//! in `spawn_blocking`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// World-writable directories a build may leave files in for the next build of its uid.
const SHARED_TEMPORARY_DIRS: [&str; 3] = ["/tmp", "/var/tmp", "/dev/shm"];
/// Rounds of `kill -KILL -1` before giving up on a uid whose processes keep coming.
const KILL_ROUNDS: usize = 20;

/// Whether a live (not zombie) process runs with `uid` as its real, effective or saved uid.
pub(crate) fn runs_processes(uid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            return false;
        };
        let zombie = status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'));
        let has_uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .is_some_and(|ids| {
                ids.split_whitespace()
                    .take(3)
                    .any(|id| id == uid.to_string())
            });
        has_uid && !zombie
    })
}

/// Kills every process of `uid`: a shell running as `uid` sends SIGKILL to `-1` (every
/// process it may signal, i.e. its uid's, not itself), until none is left.
///
/// The shell's builtin `kill`, as that user: never procps `kill -KILL -PGID` as root, which
/// procps-ng 4.0.2 reads as `kill -KILL -1` (every process on the machine).
pub(crate) fn kill_all(uid: u32) -> Result<(), String> {
    for _ in 0..KILL_ROUNDS {
        if !runs_processes(uid) {
            return Ok(());
        }
        let status = Command::new("/bin/sh")
            .arg("-c")
            .arg("kill -KILL -1")
            .env_clear()
            .current_dir("/")
            .uid(uid)
            .gid(uid)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Err(error) = status {
            return Err(format!("killing the processes of uid {uid}: {error}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if runs_processes(uid) {
        return Err(format!(
            "processes of build uid {uid} still run after {KILL_ROUNDS} rounds of SIGKILL"
        ));
    }
    Ok(())
}

/// Gives `dir` and everything under it to `uid` (never following a symbolic link), the
/// top directory mode 0700.
pub(crate) fn give_tree(dir: &Path, uid: u32) -> Result<(), String> {
    chown_tree(dir, uid).map_err(|e| format!("giving {} to uid {uid}: {e}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("making {} private: {e}", dir.display()))
}

fn chown_tree(path: &Path, uid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid))?;
    let metadata = std::fs::symlink_metadata(path)?;
    if metadata.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid)?;
        }
    }
    Ok(())
}

/// Takes `dir` back from the build's uid: root's, mode 0700 (the uid, maybe given to the
/// next build, cannot enter it any more).
pub(crate) fn take_back(dir: &Path) -> Result<(), String> {
    std::os::unix::fs::lchown(dir, Some(0), Some(0))
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
        .map_err(|e| format!("taking {} back from the build: {e}", dir.display()))
}

/// Removes what `uid` left at the top of the host's shared temporary directories.
pub(crate) fn remove_leftovers(uid: u32) {
    for dir in SHARED_TEMPORARY_DIRS {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(metadata) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if metadata.uid() != uid {
                continue;
            }
            let removed = if metadata.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            if let Err(error) = removed {
                tracing::warn!(path = %path.display(), %error, "cannot remove what a host build left");
            }
        }
    }
}
