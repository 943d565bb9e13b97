//! A Postgres server of a test's own (initdb in a temp directory, a free port), for tests
//! that stop and restart the database under running services. As root, the server runs as
//! the `postgres` user (Postgres refuses root). `pg_ctl` starts the postmaster in a session
//! (and process group) of its own; on drop the server is stopped (`immediate`) and the
//! harness checks that no process of that group or of its descendants is left.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug)]
pub struct PostgresServer {
    pub port: u16,
    /// The address it listens on besides 127.0.0.1.
    pub ip: String,
    bin: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The newest `/usr/lib/postgresql/*/bin` (Debian's layout), or `OCELOT_PG_BIN`.
fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("OCELOT_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no /usr/lib/postgresql: scripts/setup.sh installs PostgreSQL")?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .context("no PostgreSQL version under /usr/lib/postgresql")
}

/// Runs a Postgres program, as `postgres` when this is root.
fn run_pg(bin: &Path, program: &str, args: &[&str]) -> anyhow::Result<()> {
    let path = bin.join(program);
    let mut command = if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(&path);
        command
    } else {
        Command::new(&path)
    };
    let output = command
        .args(args)
        .output()
        .with_context(|| format!("running {}", path.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

impl PostgresServer {
    /// Creates a cluster (user `ocelot`, trust authentication on loopback) and starts it.
    pub fn start() -> anyhow::Result<PostgresServer> {
        PostgresServer::start_on("127.0.0.1", None)
    }

    /// A server listening on 127.0.0.1 and `ip`, also trusting clients from `clients` (a
    /// CIDR subnet, e.g. a Docker network's, for containers).
    pub fn start_on(ip: &str, clients: Option<&str>) -> anyhow::Result<PostgresServer> {
        let bin = bin_dir()?;
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data)?;
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()?;
            anyhow::ensure!(status.success(), "chown of {} failed", dir.path().display());
        }
        let data_arg = data.to_string_lossy().to_string();
        run_pg(
            &bin,
            "initdb",
            &[
                "-D",
                &data_arg,
                "-U",
                "ocelot",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        if let Some(subnet) = clients {
            use std::io::Write;
            let mut hba = std::fs::OpenOptions::new()
                .append(true)
                .open(data.join("pg_hba.conf"))?;
            writeln!(hba, "host all all {subnet} trust")?;
        }
        let server = PostgresServer {
            ip: ip.to_string(),
            port: crate::free_port()?,
            bin,
            data,
            _dir: dir,
        };
        server.start_again()?;
        Ok(server)
    }

    /// `postgres://ocelot@127.0.0.1:PORT/DATABASE`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://ocelot@127.0.0.1:{}/{database}", self.port)
    }

    /// `postgres://ocelot@IP:PORT/DATABASE`: the URL for clients that reach it on `ip`.
    pub fn url_at(&self, database: &str) -> String {
        format!("postgres://ocelot@{}:{}/{database}", self.ip, self.port)
    }

    /// Starts the stopped server on the same port and data.
    pub fn start_again(&self) -> anyhow::Result<()> {
        let data = self.data.to_string_lossy().to_string();
        let listen = if self.ip == "127.0.0.1" {
            self.ip.clone()
        } else {
            format!("127.0.0.1,{}", self.ip)
        };
        let options = format!("-h {listen} -p {} -k {data} -F", self.port);
        let log = self.data.join("server.log").to_string_lossy().to_string();
        run_pg(
            &self.bin,
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60", "start",
            ],
        )
    }

    /// Serves TLS with `certificates`' server certificate and refuses every connection
    /// without it, from the next start on.
    pub fn require_tls(&self, certificates: &crate::tls::TestCertificates) -> anyhow::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let cert = self.data.join("server.crt");
        let key = self.data.join("server.key");
        std::fs::copy(&certificates.cert, &cert)?;
        std::fs::copy(&certificates.key, &key)?;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
        if is_root() {
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&cert)
                .arg(&key)
                .status()?;
            anyhow::ensure!(status.success(), "chown of the server certificate failed");
        }
        let mut config = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data.join("postgresql.conf"))?;
        writeln!(
            config,
            "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'"
        )?;
        let hba = self.data.join("pg_hba.conf");
        let rules = std::fs::read_to_string(&hba)?;
        std::fs::write(&hba, format!("hostnossl all all all reject\n{rules}"))?;
        Ok(())
    }

    /// Stops the server: `fast` ends sessions and shuts down cleanly, `immediate` is a crash.
    pub fn stop(&self, mode: &str) -> anyhow::Result<()> {
        let data = self.data.to_string_lossy().to_string();
        run_pg(
            &self.bin,
            "pg_ctl",
            &["-D", &data, "-m", mode, "-w", "stop"],
        )
    }

    /// The running postmaster's pid (the first line of `postmaster.pid`, when that process
    /// is this server's: its command line names the data directory), which leads the
    /// process group of the server's processes.
    pub fn postmaster_pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()?;
        let command_line = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let command_line = String::from_utf8_lossy(&command_line).replace('\0', " ");
        command_line
            .contains(self.data.to_string_lossy().as_ref())
            .then_some(pid)
    }

    /// Creates a database.
    pub async fn create_database(&self, name: &str) -> anyhow::Result<String> {
        let (client, connection) =
            tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls).await?;
        let connection = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        drop(client);
        let _ = connection.await;
        Ok(self.url(name))
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let postmaster = self.postmaster_pid();
        let _ = self.stop("immediate");
        if let Some(pid) = postmaster
            && let Err(error) =
                crate::process::ensure_gone(&format!("postgres on port {}", self.port), pid)
        {
            crate::process::fail_in_drop(&error);
        }
    }
}
