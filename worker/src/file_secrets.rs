//! A build's `file` credentials ([`FileSecrets`]): written at their paths before a stage
//! runs (mode 0600, parent directories made 0700, owned by the scripts' user), removed before
//! anything is read out of the environment (artifacts, caches) and at the end of the build.
//!
//! `~/…` is the home of the user the scripts run as (in a container: its `$HOME` with the
//! build's variables, normally `/root`; on the host: the build's own `HOME`), a relative
//! path is under the workspace. In a container, one exec makes the parent directories and
//! says where `~` is and who the scripts run as, then one archive of the files is copied in;
//! on the host, the files are written by the build's own uid, inside its home or workspace
//! only. A build without file credentials costs nothing.

use crate::executor::{Environment, docker};
use ocelot_core::secrets::{BuildCredentials, FilePath, SecretError, SecretValue, relative_inside};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Makes the parent directories (0700 when made) of `$1…` (`~/x` is under `$HOME`) and
/// prints `owner UID GID`, then `path P` for each.
const PREPARE_IN_CONTAINER: &str = r#"umask 077
printf 'owner %s %s\n' "$(id -u 2>/dev/null || echo 0)" "$(id -g 2>/dev/null || echo 0)"
for p in "$@"; do
  case "$p" in "~/"*) p="${HOME%/}/${p#??}" ;; esac
  mkdir -p -- "${p%/*}/" || exit 1
  printf 'path %s\n' "$p"
done"#;

/// Writes stdin to `$1` (mode 0600, parent directories made 0700), replacing what is there.
const WRITE_ON_HOST: &str = r#"set -e
umask 077
mkdir -p -- "${1%/*}/"
rm -f -- "$1"
cat > "$1""#;

/// Removes `$1…` (a file that is not there is fine).
const REMOVE: &str = r#"rm -f -- "$@""#;

/// One file credential of the build.
#[derive(Clone)]
struct FileSecret {
    name: String,
    path: FilePath,
    content: SecretValue,
}

/// The build's file credentials and whether they are in its environment now.
pub(crate) struct FileSecrets {
    files: Vec<FileSecret>,
    /// Where they were last written (absolute paths, in the order of `files`).
    written_at: Mutex<Vec<String>>,
    present: AtomicBool,
}

impl std::fmt::Debug for FileSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<String> = self.files.iter().map(|f| f.path.to_string()).collect();
        f.debug_struct("FileSecrets")
            .field("paths", &paths)
            .finish()
    }
}

impl FileSecrets {
    /// The `file` credentials of `credentials` (the ones this build gets).
    pub(crate) fn new(credentials: &BuildCredentials) -> Result<Self, SecretError> {
        let files = credentials
            .files()?
            .into_iter()
            .map(|(path, credential)| FileSecret {
                name: credential.info.name.clone(),
                path,
                content: credential.value.clone(),
            })
            .collect();
        Ok(FileSecrets {
            files,
            written_at: Mutex::new(Vec::new()),
            present: AtomicBool::new(false),
        })
    }

    /// The same files for another environment (a matrix job's container), not written
    /// there yet.
    pub(crate) fn fresh(&self) -> FileSecrets {
        FileSecrets {
            files: self.files.clone(),
            written_at: Mutex::new(Vec::new()),
            present: AtomicBool::new(false),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The set-up's log line: which paths get files (never what is in them).
    pub(crate) fn announcement(&self) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        let paths: Vec<String> = self.files.iter().map(|f| f.path.to_string()).collect();
        Some(format!("secrets in files: {}", paths.join(", ")))
    }

    /// Writes every file unless they are there already; `env`: the build's variables (a
    /// container's `$HOME` is the one its scripts see). The error says which file and why.
    pub(crate) async fn write_all(
        &self,
        environment: &Environment,
        env: &[String],
    ) -> Result<(), String> {
        if self.is_empty() || self.present.load(Ordering::SeqCst) {
            return Ok(());
        }
        match environment {
            Environment::Container(container) => self.write_in_container(container, env).await,
            Environment::Host(host) => self.write_on_host(host).await,
        }
    }

    /// Removes every file if they are there (before artifacts or caches are read, and at
    /// the end of the build). On error they may still be there: read nothing out.
    pub(crate) async fn remove_all(&self, environment: &Environment) -> Result<(), String> {
        if !self.present.load(Ordering::SeqCst) {
            return Ok(());
        }
        let paths = self.written_at();
        let removed = match environment {
            Environment::Container(container) => {
                let mut cmd = vec!["/bin/sh".into(), "-c".into(), REMOVE.into(), "sh".into()];
                cmd.extend(paths);
                container.run_helper(cmd, Vec::new()).await
            }
            Environment::Host(host) => host.run_helper(REMOVE, &paths, &[]).await,
        };
        match removed {
            Ok(output) if output.exit_code == 0 => {
                self.present.store(false, Ordering::SeqCst);
                Ok(())
            }
            Ok(output) => Err(format!(
                "the file credentials could not be removed: {}",
                output.error_text()
            )),
            Err(error) => Err(format!(
                "the file credentials could not be removed: {error}"
            )),
        }
    }

    /// The workspace paths (relative, `a/b`) of the files written inside the workspace, for
    /// the artifact reader to skip.
    pub(crate) fn workspace_paths(&self, environment: &Environment) -> Vec<String> {
        let workspace = environment.workspace();
        self.written_at()
            .iter()
            .filter_map(|path| relative_inside(path, &workspace))
            .collect()
    }

    /// From here on the files count as present at `paths` (also when writing them fails
    /// half-way: [`FileSecrets::remove_all`] then removes what was written).
    fn about_to_write(&self, paths: &[String]) {
        if let Ok(mut written_at) = self.written_at.lock() {
            *written_at = paths.to_vec();
        }
        self.present.store(true, Ordering::SeqCst);
    }

    fn written_at(&self) -> Vec<String> {
        self.written_at
            .lock()
            .map(|paths| paths.clone())
            .unwrap_or_default()
    }

    async fn write_in_container(
        &self,
        container: &docker::BuildContainer,
        env: &[String],
    ) -> Result<(), String> {
        let mut cmd = vec![
            "/bin/sh".to_string(),
            "-c".into(),
            PREPARE_IN_CONTAINER.into(),
            "sh".into(),
        ];
        cmd.extend(
            self.files
                .iter()
                .map(|f| f.path.resolve("~", docker::CONTAINER_WORKSPACE)),
        );
        let prepared = container
            .run_helper(cmd, env.to_vec())
            .await
            .map_err(|e| format!("the file credentials could not be written: {e}"))?;
        if prepared.exit_code != 0 {
            return Err(format!(
                "the file credentials could not be written (making their directories): {}",
                prepared.error_text()
            ));
        }
        let (owner, paths) = parse_prepared(&prepared.stdout, self.files.len()).ok_or_else(|| {
            format!(
                "the file credentials could not be written: unexpected answer from the container: {}",
                prepared.stdout.trim()
            )
        })?;
        let archive = files_archive(self.files.iter().zip(&paths), owner)
            .map_err(|e| format!("the file credentials could not be packed: {e}"))?;
        self.about_to_write(&paths);
        container
            .copy_in(bytes::Bytes::from(archive), "the file credentials")
            .await
            .map_err(|e| format!("the file credentials could not be written: {e}"))
    }

    async fn write_on_host(
        &self,
        host: &crate::executor::host::HostEnvironment,
    ) -> Result<(), String> {
        let (home, workspace) = (host.home(), host.workspace());
        let paths = self
            .files
            .iter()
            .map(|file| {
                host_path(&file.path, &home, &workspace).map_err(|why| {
                    format!("file credential `{}` ({}): {why}", file.name, file.path)
                })
            })
            .collect::<Result<Vec<String>, String>>()?;
        self.about_to_write(&paths);
        for (file, path) in self.files.iter().zip(&paths) {
            let written = host
                .run_helper(
                    WRITE_ON_HOST,
                    std::slice::from_ref(path),
                    file.content.expose().as_bytes(),
                )
                .await
                .map_err(|e| {
                    format!(
                        "file credential `{}` could not be written at {}: {e}",
                        file.name, file.path
                    )
                })?;
            if written.exit_code != 0 {
                return Err(format!(
                    "file credential `{}` could not be written at {}: {}",
                    file.name,
                    file.path,
                    written.error_text()
                ));
            }
        }
        Ok(())
    }
}

/// Where `path` goes on the host: under the build's home or workspace, never elsewhere.
fn host_path(path: &FilePath, home: &str, workspace: &str) -> Result<String, String> {
    let resolved = path.resolve(home, workspace);
    if relative_inside(&resolved, home).is_none() && relative_inside(&resolved, workspace).is_none()
    {
        return Err(
            "a build on the host gets files only in its home (`~/...`) or its workspace (a relative path), not at an absolute path elsewhere"
                .to_string(),
        );
    }
    Ok(resolved)
}

/// The container's answer: the scripts' uid and gid, and one absolute path per file.
fn parse_prepared(stdout: &str, files: usize) -> Option<((u64, u64), Vec<String>)> {
    let mut lines = stdout.lines();
    let mut owner = lines.next()?.strip_prefix("owner ")?.split(' ');
    let uid = owner.next()?.trim().parse().ok()?;
    let gid = owner.next()?.trim().parse().ok()?;
    let paths: Vec<String> = lines
        .map(|line| line.strip_prefix("path ").map(str::to_string))
        .collect::<Option<_>>()?;
    (paths.len() == files && paths.iter().all(|p| p.starts_with('/')))
        .then_some(((uid, gid), paths))
}

/// A tar of the files at their absolute paths (without the leading `/`), mode 0600,
/// owned by `owner`.
fn files_archive<'a>(
    files: impl Iterator<Item = (&'a FileSecret, &'a String)>,
    (uid, gid): (u64, u64),
) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for (file, path) in files {
        let content = file.content.expose().as_bytes();
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o600);
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_mtime(now);
        header.set_size(content.len() as u64);
        builder.append_data(&mut header, path.trim_start_matches('/'), content)?;
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_files_stay_in_the_home_or_the_workspace() {
        let (home, workspace) = ("/var/ocelot/b-home/home", "/var/ocelot/build-1-1-x");
        let at = |text: &str| host_path(&FilePath::parse(text).unwrap(), home, workspace);
        assert_eq!(
            at("~/.kube/config").unwrap(),
            "/var/ocelot/b-home/home/.kube/config"
        );
        assert_eq!(
            at("conf/settings.xml").unwrap(),
            "/var/ocelot/build-1-1-x/conf/settings.xml"
        );
        assert_eq!(
            at("/var/ocelot/build-1-1-x/key").unwrap(),
            "/var/ocelot/build-1-1-x/key"
        );
        let refused = at("/etc/app/key.pem").unwrap_err();
        assert!(refused.contains("only in its home"), "{refused}");
        assert!(at("/var/ocelot/build-1-1-x").is_err());
    }

    #[test]
    fn the_container_answer_is_read_strictly() {
        assert_eq!(
            parse_prepared("owner 0 0\npath /root/.kube/config\npath /workspace/a\n", 2),
            Some((
                (0, 0),
                vec!["/root/.kube/config".into(), "/workspace/a".into()]
            ))
        );
        assert_eq!(parse_prepared("owner 0 0\npath /a\n", 2), None);
        assert_eq!(parse_prepared("owner x 0\npath /a\n", 1), None);
        assert_eq!(parse_prepared("owner 0 0\npath a\n", 1), None);
        assert_eq!(parse_prepared("", 0), None);
    }

    #[test]
    fn the_archive_holds_private_files_at_their_paths() {
        let file = FileSecret {
            name: "kube".into(),
            path: FilePath::parse("~/.kube/config").unwrap(),
            content: SecretValue::new("apiVersion: v1\n".into()),
        };
        let path = "/root/.kube/config".to_string();
        let archive = files_archive(std::iter::once((&file, &path)), (1000, 1001)).unwrap();
        let mut archive = tar::Archive::new(archive.as_slice());
        let mut entries = archive.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str(), Some("root/.kube/config"));
        assert_eq!(entry.header().mode().unwrap(), 0o600);
        assert_eq!(entry.header().uid().unwrap(), 1000);
        assert_eq!(entry.header().gid().unwrap(), 1001);
        let mut content = String::new();
        std::io::Read::read_to_string(&mut entry, &mut content).unwrap();
        assert_eq!(content, "apiVersion: v1\n");
        assert!(entries.next().is_none());
    }

    #[test]
    fn the_shell_scripts_write_private_files_and_remove_them() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("made/deeper/config");
        let target_text = target.to_str().unwrap();
        let output = std::process::Command::new("/bin/sh")
            .args(["-c", WRITE_ON_HOST, "sh", target_text])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(b"line one\n")?;
                child.wait_with_output()
            })
            .unwrap();
        assert!(output.status.success());
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&target), 0o600);
        assert_eq!(mode(&dir.path().join("made")), 0o700);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "line one\n");
        let prepared = std::process::Command::new("/bin/sh")
            .args(["-c", PREPARE_IN_CONTAINER, "sh", "~/a/b", "/x"])
            .env("HOME", dir.path().join("home"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&prepared.stdout);
        let (_, paths) = parse_prepared(&stdout, 2).unwrap();
        assert_eq!(
            paths,
            vec![
                format!("{}/home/a/b", dir.path().display()),
                "/x".to_string()
            ]
        );
        assert_eq!(mode(&dir.path().join("home/a")), 0o700);
        let removed = std::process::Command::new("/bin/sh")
            .args(["-c", REMOVE, "sh", target_text, "/nonexistent/file"])
            .status()
            .unwrap();
        assert!(removed.success());
        assert!(!target.exists());
    }
}
