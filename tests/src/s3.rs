//! An S3-compatible server per test: moto's server mode (`moto_server`, from PyPI:
//! `scripts/setup.sh` installs it) on a free loopback port, in a process group of its own,
//! killed on drop; with one bucket made for the test. Chosen over Garage or MinIO: a pip
//! install of pure Python (no long compile, no binary download), and it speaks the S3 API
//! object_store uses (multipart uploads included), with any credentials.

use crate::process::GroupChild;
use ocelot_core::storage::StorageArgs;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The bucket every test server has.
pub const BUCKET: &str = "ocelot-test";

#[derive(Debug)]
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    port: u16,
    _child: GroupChild,
}

fn binary() -> String {
    if let Ok(path) = std::env::var("OCELOT_MOTO_SERVER") {
        return path;
    }
    let path_file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.state/moto-server.path");
    if let Ok(path) = std::fs::read_to_string(path_file) {
        return path.trim().to_string();
    }
    "moto_server".to_string()
}

impl S3Server {
    /// Starts a server and makes [`BUCKET`] in it.
    pub async fn start() -> anyhow::Result<S3Server> {
        let mut last_error = None;
        for _ in 0..3 {
            let port = crate::free_port()?;
            let child = GroupChild::spawn(
                "moto_server (scripts/setup.sh installs it; or set OCELOT_MOTO_SERVER)",
                tokio::process::Command::new(binary())
                    .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null()),
            )?;
            match crate::wait_for_port(port, Duration::from_secs(30)).await {
                Ok(()) => {
                    let server = S3Server {
                        endpoint: format!("http://127.0.0.1:{port}"),
                        port,
                        _child: child,
                    };
                    server.create_bucket(BUCKET).await?;
                    return Ok(server);
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("moto_server did not start")))
    }

    /// Makes a bucket (moto takes unsigned requests).
    pub async fn create_bucket(&self, bucket: &str) -> anyhow::Result<()> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        let request = format!(
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        let answer = String::from_utf8_lossy(&answer);
        let status = answer.split_whitespace().nth(1).unwrap_or_default();
        anyhow::ensure!(
            status == "200",
            "creating bucket {bucket}: {}",
            answer.lines().next().unwrap_or_default()
        );
        Ok(())
    }

    /// What a service storing in `s3://BUCKET/prefix` on this server is given.
    /// How many multipart uploads of the test bucket are in progress (begun, neither
    /// completed nor aborted), as the server lists them.
    pub async fn uploads_in_progress(&self) -> anyhow::Result<usize> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        let request = format!(
            "GET /{BUCKET}?uploads HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        );
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        let answer = String::from_utf8_lossy(&answer);
        anyhow::ensure!(
            answer.split_whitespace().nth(1) == Some("200"),
            "listing uploads: {}",
            answer.lines().next().unwrap_or_default()
        );
        Ok(answer.matches("<Upload>").count())
    }

    pub fn storage_args(&self, prefix: &str) -> StorageArgs {
        StorageArgs {
            storage: Some(format!("s3://{BUCKET}/{prefix}")),
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".to_string(),
            access_key_id: Some("ocelot-test".to_string()),
            secret_access_key: Some("ocelot-test-secret".to_string()),
            credential: None,
        }
    }
}
