//! A private git server over SSH: `sshd` on a free loopback port that accepts one key and
//! runs only `git-shell` for it. `sshd` leads a process group of its own; on drop it is
//! killed with that group and with its connections' processes (which leave the group).

use crate::process::GroupChild;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `sshd` serving the repositories under a root at `ssh://USER@127.0.0.1:PORT/ROOT/NAME.git`.
#[derive(Debug)]
pub struct SshGitServer {
    pub port: u16,
    root: PathBuf,
    user: String,
    /// The client's private key (OpenSSH format): the credential a build needs.
    pub client_key: String,
    /// The server's `known_hosts` line.
    pub known_hosts: String,
    // declared before the directory: the processes end before their files go
    child: GroupChild,
    _dir: tempfile::TempDir,
}

fn keygen(path: &Path) -> anyhow::Result<()> {
    let output = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ocelot-test", "-f"])
        .arg(path)
        .output()
        .context("running ssh-keygen (package openssh-client)")?;
    anyhow::ensure!(
        output.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

fn find_program(name: &str, candidates: &[&str]) -> anyhow::Result<PathBuf> {
    let from_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    from_path
        .into_iter()
        .chain(candidates.iter().map(PathBuf::from))
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("`{name}` not found (scripts/setup.sh installs it)"))
}

impl SshGitServer {
    pub async fn start(root: &Path) -> anyhow::Result<SshGitServer> {
        let sshd = find_program("sshd", &["/usr/sbin/sshd"])?;
        let git_shell = find_program("git-shell", &["/usr/bin/git-shell"])?;
        let dir = tempfile::tempdir()?;
        let host_key = dir.path().join("host_ed25519");
        let client_key = dir.path().join("client_ed25519");
        keygen(&host_key)?;
        keygen(&client_key)?;
        let client_public = std::fs::read_to_string(client_key.with_extension("pub"))?;
        let authorized = dir.path().join("authorized_keys");
        std::fs::write(
            &authorized,
            format!(
                "command=\"{} -c \\\"$SSH_ORIGINAL_COMMAND\\\"\",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding {}",
                git_shell.display(),
                client_public.trim()
            ),
        )?;
        let port = crate::free_port()?;
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PidFile {}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\n\
                 UsePAM no\nLogLevel ERROR\n",
                host_key.display(),
                authorized.display(),
                dir.path().join("sshd.pid").display()
            ),
        )?;
        // sshd started by root wants its privilege-separation directory
        let _ = std::fs::create_dir_all("/run/sshd");
        let child = GroupChild::spawn(
            &sshd.display().to_string(),
            tokio::process::Command::new(&sshd)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null()),
        )?;
        crate::wait_for_port(port, Duration::from_secs(10)).await?;
        let host_public = std::fs::read_to_string(host_key.with_extension("pub"))?;
        let host_public: Vec<&str> = host_public.split_whitespace().take(2).collect();
        let user = Command::new("id")
            .arg("-un")
            .output()
            .ok()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .filter(|u| !u.is_empty())
            .context("finding the user name (id -un)")?;
        Ok(SshGitServer {
            port,
            root: root.to_path_buf(),
            user,
            client_key: std::fs::read_to_string(&client_key)?,
            known_hosts: format!("[127.0.0.1]:{port} {}\n", host_public.join(" ")),
            child,
            _dir: dir,
        })
    }

    /// The pid of the listening `sshd`, which leads its process group.
    pub fn pid(&self) -> i32 {
        self.child.pid()
    }

    pub fn url(&self, name: &str) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}/{name}.git",
            self.user,
            self.port,
            self.root.display()
        )
    }
}
