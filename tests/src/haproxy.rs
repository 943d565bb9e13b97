//! HAProxy (Debian's `haproxy` package) in front of several admins: gRPC over HTTP/2
//! cleartext on both sides, one free loopback port, a generated configuration in a temp dir,
//! run in the foreground (`-db`) as a [`GroupChild`].
//!
//! Its health checks are real calls of the admins' gRPC health service
//! (`grpc.health.v1.Health/Check` for the overall status): HAProxy 2.6's `http-check send`
//! cannot send the 5-byte gRPC frame of an empty request (its bytes are zeros, and the
//! configuration's strings end at a zero), so the check is a `tcp-check` that writes the
//! HTTP/2 request itself (the client preface, an empty SETTINGS frame, a HEADERS frame and a
//! DATA frame) and expects the DATA frame of a `SERVING` answer. An admin that is down, or
//! answers `NOT_SERVING` (its Postgres or NATS is unreachable), is taken out of rotation.
//!
//! The stats socket answers `show stat`: each server's state and its current streams
//! ([`HaProxy::servers`]).

use crate::process::GroupChild;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The gRPC method the health checks call.
const HEALTH_CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// How often each admin is checked, and after how many failed checks in a row it is down.
const CHECK_INTERVAL: &str = "500ms";
const FALL: u32 = 2;

/// The HTTP/2 client connection preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One HTTP/2 frame on stream `stream`.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> anyhow::Result<Vec<u8>> {
    let length = u32::try_from(payload.len())
        .ok()
        .filter(|&length| length < 1 << 14)
        .context("an HTTP/2 frame payload over 16 KiB")?;
    let mut bytes = length.to_be_bytes()[1..].to_vec();
    bytes.extend([kind, flags]);
    bytes.extend(stream.to_be_bytes());
    bytes.extend(payload);
    Ok(bytes)
}

/// An HPACK string literal (no Huffman coding) of fewer than 127 bytes.
fn hpack_string(text: &str) -> anyhow::Result<Vec<u8>> {
    let length = u8::try_from(text.len())
        .ok()
        .filter(|&length| length < 127)
        .context("an HPACK string of 127 bytes or more")?;
    let mut bytes = vec![length];
    bytes.extend(text.as_bytes());
    Ok(bytes)
}

/// The bytes a health check writes, in the order it writes them: the preface, an empty
/// SETTINGS frame, the request's HEADERS (POST, http, the health method's path,
/// `content-type: application/grpc`, `te: trailers`) and its DATA frame (an empty
/// `HealthCheckRequest`: the 5-byte gRPC frame header of a 0-byte message, end of stream).
pub fn grpc_health_check_request() -> anyhow::Result<Vec<Vec<u8>>> {
    let mut headers = vec![
        0x83, // :method POST (static table entry 3)
        0x86, // :scheme http (6)
        0x04, // :path, a literal value, not indexed (name: entry 4)
    ];
    headers.extend(hpack_string(HEALTH_CHECK_PATH)?);
    // content-type (entry 31: 15 + 16 in a 4-bit prefix), a literal value, not indexed
    headers.extend([0x0f, 0x10]);
    headers.extend(hpack_string("application/grpc")?);
    // te: trailers, a literal name and value, not indexed
    headers.push(0x00);
    headers.extend(hpack_string("te")?);
    headers.extend(hpack_string("trailers")?);
    const SETTINGS: u8 = 0x4;
    const HEADERS: u8 = 0x1;
    const DATA: u8 = 0x0;
    const END_HEADERS: u8 = 0x4;
    const END_STREAM: u8 = 0x1;
    Ok(vec![
        PREFACE.to_vec(),
        frame(SETTINGS, 0, 0, &[])?,
        frame(HEADERS, END_HEADERS, 1, &headers)?,
        frame(DATA, END_STREAM, 1, &[0; 5])?,
    ])
}

/// The payload of the DATA frame that answers `SERVING`: the gRPC frame header of a 2-byte
/// message, then `HealthCheckResponse { status: SERVING }` (field 1, varint 1).
pub const SERVING_ANSWER: [u8; 7] = [0, 0, 0, 0, 2, 0x08, 0x01];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// HAProxy's configuration: a frontend on 127.0.0.1:`port` taking gRPC (HTTP/2 cleartext),
/// balancing round robin over `servers` (`(name, "host:port")`), which it reaches over HTTP/2
/// and checks with their gRPC health service; its stats socket at `stats_socket`.
pub fn config(
    port: u16,
    stats_socket: &Path,
    servers: &[(String, String)],
) -> anyhow::Result<String> {
    let mut text = format!(
        "global
    stats socket {socket} mode 600 level admin

defaults
    mode http
    timeout connect 2s
    timeout check 2s
    # watch streams stay open, quiet at times, for as long as a build runs
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    # a request sent to an admin that just died goes to another at once
    retries 3
    option redispatch 1

frontend ocelot_grpc
    bind 127.0.0.1:{port} proto h2
    default_backend ocelot_admins

backend ocelot_admins
    balance roundrobin
    # grpc.health.v1.Health/Check over HTTP/2, written out: healthy when it answers SERVING
    option tcp-check
    tcp-check connect
",
        socket = stats_socket.display(),
    );
    for bytes in grpc_health_check_request()? {
        text.push_str(&format!("    tcp-check send-binary {}\n", hex(&bytes)));
    }
    text.push_str(&format!(
        "    tcp-check expect binary {}\n    default-server proto h2 check inter {CHECK_INTERVAL} fall {FALL} rise 1\n",
        hex(&SERVING_ANSWER)
    ));
    for (name, address) in servers {
        text.push_str(&format!("    server {name} {address}\n"));
    }
    Ok(text)
}

/// One server of the backend as `show stat` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStat {
    pub name: String,
    /// `UP`, `DOWN`, `UP 1/2` (going down), `DOWN 1/2` (coming up), `MAINT`, ...
    pub status: String,
    /// Requests (gRPC calls, watch streams among them) it serves now.
    pub current: u64,
    /// Requests it has served in all.
    pub total: u64,
    /// What the last health check found, e.g. `L7OK`, `L4CON`.
    pub check_status: String,
}

impl ServerStat {
    pub fn is_up(&self) -> bool {
        self.status == "UP"
    }

    pub fn is_down(&self) -> bool {
        self.status == "DOWN"
    }
}

/// The servers (not the FRONTEND and BACKEND rows) of `show stat`'s CSV answer.
pub fn parse_show_stat(csv: &str) -> anyhow::Result<Vec<ServerStat>> {
    let mut lines = csv.lines();
    let header = lines
        .next()
        .and_then(|line| line.strip_prefix("# "))
        .context("`show stat` answered without its `# pxname,...` header")?;
    let columns: Vec<&str> = header.split(',').collect();
    let column = |name: &str| {
        columns
            .iter()
            .position(|c| *c == name)
            .with_context(|| format!("`show stat` has no column {name}"))
    };
    let (svname, status, scur, stot, check) = (
        column("svname")?,
        column("status")?,
        column("scur")?,
        column("stot")?,
        column("check_status")?,
    );
    let mut servers = Vec::new();
    for line in lines.filter(|line| !line.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        let field = |index: usize| fields.get(index).copied().unwrap_or_default();
        if matches!(field(svname), "FRONTEND" | "BACKEND") {
            continue;
        }
        servers.push(ServerStat {
            name: field(svname).to_string(),
            status: field(status).to_string(),
            current: field(scur).parse().unwrap_or(0),
            total: field(stot).parse().unwrap_or(0),
            // `* L7OK`: a check is under way
            check_status: field(check).trim_start_matches("* ").to_string(),
        });
    }
    Ok(servers)
}

/// A running `haproxy` in front of some admins; killed (with its temp dir removed) on drop.
#[derive(Debug)]
pub struct HaProxy {
    /// The loopback port clients connect to.
    pub port: u16,
    stats_socket: PathBuf,
    log: PathBuf,
    config: String,
    _child: GroupChild,
    _dir: tempfile::TempDir,
}

/// The `haproxy` program: on the PATH, or where Debian's package puts it.
fn haproxy_program() -> anyhow::Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("haproxy"))
        .find(|candidate| candidate.is_file());
    on_path
        .or_else(|| Some(PathBuf::from("/usr/sbin/haproxy")).filter(|path| path.is_file()))
        .context("haproxy is not installed: run scripts/setup.sh (Debian package `haproxy`)")
}

impl HaProxy {
    /// Starts HAProxy in front of `servers` (`(name, "127.0.0.1:PORT")`) and waits until it
    /// accepts connections (its servers may still be down: see [`HaProxy::wait_for`]).
    pub async fn start(servers: &[(String, String)]) -> anyhow::Result<HaProxy> {
        let program = haproxy_program()?;
        let dir = tempfile::tempdir()?;
        let port = crate::free_port()?;
        let stats_socket = dir.path().join("stats.sock");
        let config = config(port, &stats_socket, servers)?;
        let config_path = dir.path().join("haproxy.cfg");
        std::fs::write(&config_path, &config)?;
        let log = dir.path().join("haproxy.log");
        let log_file = std::fs::File::create(&log)?;
        let child = GroupChild::spawn(
            "haproxy",
            tokio::process::Command::new(&program)
                .arg("-db")
                .arg("-f")
                .arg(&config_path)
                .stdin(std::process::Stdio::null())
                .stdout(log_file.try_clone()?)
                .stderr(log_file),
        )?;
        let haproxy = HaProxy {
            port,
            stats_socket,
            log,
            config,
            _child: child,
            _dir: dir,
        };
        crate::wait_for_port(port, Duration::from_secs(20))
            .await
            .with_context(|| format!("haproxy did not start:\n{}", haproxy.log_text()))?;
        Ok(haproxy)
    }

    /// `http://127.0.0.1:PORT`, for `OCELOT_ADMIN`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The configuration it runs.
    pub fn config(&self) -> &str {
        &self.config
    }

    /// What HAProxy wrote (its warnings: servers going up and down).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A command on the stats socket, and its answer.
    pub async fn command(&self, command: &str) -> anyhow::Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut socket = tokio::net::UnixStream::connect(&self.stats_socket)
            .await
            .with_context(|| format!("connecting to {}", self.stats_socket.display()))?;
        socket.write_all(format!("{command}\n").as_bytes()).await?;
        let mut answer = String::new();
        socket.read_to_string(&mut answer).await?;
        Ok(answer)
    }

    /// The backend's servers, as `show stat` reports them now.
    pub async fn servers(&self) -> anyhow::Result<Vec<ServerStat>> {
        parse_show_stat(&self.command("show stat").await?)
    }

    /// Waits until `check` holds for the servers' stats (up to `timeout`); the stats then.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&[ServerStat]) -> bool,
    ) -> anyhow::Result<Vec<ServerStat>> {
        let check = &check;
        crate::wait_until(what, timeout, || async move {
            let servers = self.servers().await.ok()?;
            check(&servers).then_some(servers)
        })
        .await
        .with_context(|| format!("haproxy's log:\n{}", self.log_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_health_check_is_the_grpc_call_an_http2_client_makes() {
        let bytes = grpc_health_check_request().unwrap();
        assert_eq!(bytes[0], PREFACE);
        assert_eq!(hex(&bytes[1]), "000000040000000000");
        let headers = &bytes[2];
        // length 64, HEADERS, END_HEADERS, stream 1
        assert_eq!(hex(&headers[..9]), "000040010400000001");
        assert!(
            headers
                .windows(HEALTH_CHECK_PATH.len())
                .any(|w| w == HEALTH_CHECK_PATH.as_bytes())
        );
        // DATA, END_STREAM, stream 1: an empty message
        assert_eq!(hex(&bytes[3]), "0000050001000000010000000000");
    }

    #[test]
    fn show_stat_lists_the_servers_and_their_streams() {
        let csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,status,check_status\n\
                   ocelot_grpc,FRONTEND,,,2,3,,9,OPEN,\n\
                   ocelot_admins,admin-0,0,0,2,2,,5,UP,L7OK\n\
                   ocelot_admins,admin-1,0,0,0,1,,4,DOWN,L4CON\n\
                   ocelot_admins,BACKEND,0,0,2,3,,9,UP,\n\n";
        let servers = parse_show_stat(csv).unwrap();
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].name, "admin-0");
        assert_eq!(servers[0].current, 2);
        assert!(servers[0].is_up());
        assert_eq!(servers[1].total, 4);
        assert!(servers[1].is_down());
        assert_eq!(servers[1].check_status, "L4CON");
    }

    #[test]
    fn the_readme_shows_the_tested_configuration() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
        let tested = config(
            50051,
            Path::new("/run/haproxy/admin.sock"),
            &[
                ("admin-1".to_string(), "10.0.0.11:50051".to_string()),
                ("admin-2".to_string(), "10.0.0.12:50051".to_string()),
            ],
        )
        .unwrap();
        // all but the address it binds (the test's loopback, the README's every address)
        for line in tested
            .lines()
            .filter(|line| !line.trim_start().starts_with("bind "))
        {
            assert!(readme.contains(line), "README.md lacks `{line}`");
        }
        assert!(readme.contains("    bind :50051 proto h2\n"));
    }
}
