//! A real SMTP server per test: aiosmtpd (PyPI; `scripts/setup.sh` installs it) run by
//! `tests/smtp_sink.py` on a free loopback port, writing each message it accepts to a file,
//! accepting only the login [`USER`] with [`PASSWORD`]; in a process group of its own,
//! killed on drop.

use crate::process::GroupChild;
use std::path::PathBuf;
use std::time::Duration;

/// The one login the server accepts.
pub const USER: &str = "ci-mailer";
pub const PASSWORD: &str = "smtp-Password-31c9";

#[derive(Debug)]
pub struct SmtpServer {
    pub port: u16,
    dir: tempfile::TempDir,
    _child: GroupChild,
}

impl SmtpServer {
    pub async fn start() -> anyhow::Result<SmtpServer> {
        let dir = tempfile::tempdir()?;
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("smtp_sink.py");
        let mut last_error = None;
        for _ in 0..3 {
            let port = crate::free_port()?;
            let child = GroupChild::spawn(
                "aiosmtpd (scripts/setup.sh installs it: pip install aiosmtpd)",
                tokio::process::Command::new("python3")
                    .arg(&script)
                    .arg(port.to_string())
                    .arg(dir.path())
                    .args([USER, PASSWORD])
                    .stdout(std::process::Stdio::null()),
            )?;
            match crate::wait_for_port(port, Duration::from_secs(20)).await {
                Ok(()) => {
                    return Ok(SmtpServer {
                        port,
                        dir,
                        _child: child,
                    });
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("aiosmtpd did not start")))
    }

    /// The messages received so far, as text, oldest first.
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let path = entry.path();
                let n = path.file_stem()?.to_str()?.parse().ok()?;
                (path.extension()? == "eml").then_some((n, path))
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, path)| std::fs::read_to_string(path).ok())
            .collect()
    }
}
