//! A NATS server with JetStream per test: a free port and its own storage directory. It
//! leads a process group of its own, killed and waited for on drop. It admits the users of
//! `scripts/nats-auth.conf` (the permissions `scripts/setup.sh` gives a real deployment),
//! each with a password made for this server; nobody else.

use crate::process::GroupChild;
use ocelot_core::settings::NatsArgs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Who may do what on the bus: the same file `scripts/setup.sh` reads.
pub const AUTH_TEMPLATE: &str = include_str!("../../scripts/nats-auth.conf");

/// The users of [`AUTH_TEMPLATE`], one per service kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatsUser {
    Admin,
    Worker,
    Hookhandler,
    Poller,
}

impl NatsUser {
    pub const ALL: [NatsUser; 4] = [
        NatsUser::Admin,
        NatsUser::Worker,
        NatsUser::Hookhandler,
        NatsUser::Poller,
    ];

    /// Its name on the server (`--nats-user`).
    pub fn name(self) -> &'static str {
        match self {
            NatsUser::Admin => "admin",
            NatsUser::Worker => "worker",
            NatsUser::Hookhandler => "hookhandler",
            NatsUser::Poller => "poller",
        }
    }

    /// The variable of [`AUTH_TEMPLATE`] that holds its password.
    fn variable(self) -> String {
        format!("OCELOT_NATS_{}_PASSWORD", self.name().to_uppercase())
    }
}

#[derive(Debug)]
pub struct NatsServer {
    pub url: String,
    pub port: u16,
    ip: String,
    child: Option<GroupChild>,
    dir: tempfile::TempDir,
}

/// Writes the server's configuration (a fresh password per user, then the template) and
/// each user's password file (mode 0600) into `dir`.
fn write_config(dir: &Path, tls: Option<&crate::tls::TestCertificates>) -> anyhow::Result<()> {
    let mut config = write_passwords(dir)?;
    config.push_str(AUTH_TEMPLATE);
    if let Some(tls) = tls {
        config.push_str(&format!(
            "\ntls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\n",
            tls.cert.display(),
            tls.key.display()
        ));
    }
    std::fs::write(dir.join("nats.conf"), config)?;
    Ok(())
}

/// Makes a fresh password per user, writes each to its file (mode 0600) in `dir`, and
/// returns the variables [`AUTH_TEMPLATE`] reads them from (a configuration's first lines).
pub(crate) fn write_passwords(dir: &Path) -> anyhow::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut config = String::new();
    for user in NatsUser::ALL {
        let password = uuid::Uuid::new_v4().simple().to_string();
        config.push_str(&format!("{}: \"{password}\"\n", user.variable()));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(password_file(dir, user))?
            .write_all(password.as_bytes())?;
    }
    Ok(config)
}

pub(crate) fn password_file(dir: &Path, user: NatsUser) -> PathBuf {
    dir.join(format!("{}.password", user.name()))
}

pub(crate) fn binary() -> String {
    if let Ok(path) = std::env::var("OCELOT_NATS_SERVER") {
        return path;
    }
    let path_file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.state/nats-server.path");
    if let Ok(path) = std::fs::read_to_string(path_file) {
        return path.trim().to_string();
    }
    "nats-server".to_string()
}

fn spawn(ip: &str, port: u16, dir: &std::path::Path) -> anyhow::Result<GroupChild> {
    GroupChild::spawn(
        "nats-server (scripts/setup.sh installs it; or set OCELOT_NATS_SERVER)",
        tokio::process::Command::new(binary())
            .arg("-c")
            .arg(dir.join("nats.conf"))
            .arg("-l")
            .arg(dir.join("server.log"))
            .args(["-a", ip, "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.join("jetstream"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    )
}

impl NatsServer {
    pub async fn start() -> anyhow::Result<NatsServer> {
        NatsServer::start_on("127.0.0.1").await
    }

    /// A server on 127.0.0.1 that speaks TLS only, with `certificates`' server certificate.
    pub async fn start_tls(
        certificates: &crate::tls::TestCertificates,
    ) -> anyhow::Result<NatsServer> {
        NatsServer::start_with("127.0.0.1", Some(certificates)).await
    }

    /// A server listening on `ip` (e.g. a Docker network's gateway, for containers).
    pub async fn start_on(ip: &str) -> anyhow::Result<NatsServer> {
        NatsServer::start_with(ip, None).await
    }

    async fn start_with(
        ip: &str,
        tls: Option<&crate::tls::TestCertificates>,
    ) -> anyhow::Result<NatsServer> {
        let mut last_error = None;
        for _ in 0..3 {
            let dir = tempfile::tempdir()?;
            write_config(dir.path(), tls)?;
            let port = crate::free_port()?;
            let child = spawn(ip, port, dir.path())?;
            match crate::wait_for_address(ip, port, Duration::from_secs(10)).await {
                Ok(()) => {
                    return Ok(NatsServer {
                        url: format!("nats://{ip}:{port}"),
                        port,
                        ip: ip.to_string(),
                        child: Some(child),
                        dir,
                    });
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("nats-server did not start")))
    }

    /// What the server logged so far (connections refused, permission violations).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The file holding `user`'s password.
    pub fn password_file(&self, user: NatsUser) -> PathBuf {
        password_file(self.dir.path(), user)
    }

    /// `user`'s password (for a container, which gets it in its environment).
    pub fn password(&self, user: NatsUser) -> anyhow::Result<String> {
        Ok(std::fs::read_to_string(self.password_file(user))?)
    }

    /// What a service connecting as `user` is given.
    pub fn args(&self, user: NatsUser) -> NatsArgs {
        NatsArgs::new(self.url.clone()).with_user(user.name(), self.password_file(user))
    }

    /// The environment of a service process connecting as `user`.
    pub fn env(&self, user: NatsUser) -> Vec<(String, String)> {
        use ocelot_core::env_vars;
        vec![
            (env_vars::OCELOT_NATS_URL.to_string(), self.url.clone()),
            (
                env_vars::OCELOT_NATS_USER.to_string(),
                user.name().to_string(),
            ),
            (
                env_vars::OCELOT_NATS_PASSWORD_FILE.to_string(),
                self.password_file(user).to_string_lossy().to_string(),
            ),
        ]
    }

    /// Kills the server (SIGKILL: nothing is flushed on the way out) and waits until it is
    /// gone.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill_all()?;
        }
        Ok(())
    }

    /// The server's pid (which leads its process group), while it runs.
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(GroupChild::pid)
    }

    /// Starts the server again on the same port and storage (streams and consumers kept).
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "nats-server is running");
        self.child = Some(spawn(&self.ip, self.port, self.dir.path())?);
        crate::wait_for_address(&self.ip, self.port, Duration::from_secs(20)).await
    }
}
