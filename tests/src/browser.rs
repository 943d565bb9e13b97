//! Headless Chromium (Debian's `chromium`), driven over the DevTools protocol on a loopback
//! port: open a page, evaluate JavaScript in it, take a screenshot. Enough to test the
//! dashboard as a browser runs it (its script, its EventSource, its rendering).

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The Chromium binary, when installed.
pub fn chromium_binary() -> Option<std::path::PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .map(|name| Path::new("/usr/bin").join(name))
        .find(|path| path.exists())
}

/// A headless Chromium with one page, killed on drop.
pub struct Browser {
    process: tokio::process::Child,
    page: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium with a fresh profile and attaches to its first page.
    pub async fn start() -> anyhow::Result<Browser> {
        let binary =
            chromium_binary().context("chromium is not installed (apt-get install chromium)")?;
        let profile = tempfile::tempdir()?;
        let mut process = tokio::process::Command::new(binary)
            .args([
                "--headless=new",
                // the tests run as root in a container: Chromium's own sandbox cannot start
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
                "--window-size=1280,900",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting chromium")?;
        let stderr = process.stderr.take().context("chromium's stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let browser_url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return Ok(url.trim().to_string());
                }
            }
            anyhow::bail!("chromium exited before it listened for DevTools")
        })
        .await
        .context("chromium did not start within 30 s")??;
        // keep draining its stderr (a full pipe would stall it)
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let port = browser_url
            .trim_start_matches("ws://")
            .split(['/', ':'])
            .nth(1)
            .context("DevTools URL without a port")?
            .to_string();
        let targets = devtools_targets(&port).await?;
        let page_url = targets
            .as_array()
            .and_then(|targets| {
                targets
                    .iter()
                    .find(|target| target["type"] == "page")
                    .and_then(|target| target["webSocketDebuggerUrl"].as_str())
            })
            .context("chromium has no page target")?
            .to_string();
        let (page, _) = tokio_tungstenite::connect_async(page_url.as_str())
            .await
            .context("connecting to the page's DevTools")?;
        Ok(Browser {
            process,
            page,
            next_id: 0,
            _profile: profile,
        })
    }

    /// Sends a DevTools command and returns its result.
    pub async fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({ "id": id, "method": method, "params": params });
        self.page.send(Message::text(message.to_string())).await?;
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), self.page.next())
                .await
                .with_context(|| format!("no answer to {method} within 30 s"))?
                .context("DevTools closed")??;
            let Message::Text(text) = frame else { continue };
            let answer: Value = serde_json::from_str(text.as_str())?;
            if answer["id"] != id {
                continue;
            }
            if let Some(error) = answer.get("error") {
                anyhow::bail!("{method}: {error}");
            }
            return Ok(answer["result"].clone());
        }
    }

    pub async fn navigate(&mut self, url: &str) -> anyhow::Result<()> {
        self.call("Page.navigate", json!({ "url": url })).await?;
        Ok(())
    }

    /// Evaluates `expression` in the page and returns its value (awaiting a promise).
    pub async fn evaluate(&mut self, expression: &str) -> anyhow::Result<Value> {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await?;
        if let Some(exception) = result.get("exceptionDetails") {
            anyhow::bail!("the page threw: {exception}");
        }
        Ok(result["result"]["value"].clone())
    }

    /// A PNG of the page as it is now.
    pub async fn screenshot(&mut self, path: &Path) -> anyhow::Result<()> {
        use base64::Engine;
        let result = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await?;
        let data = result["data"]
            .as_str()
            .context("a screenshot without data")?;
        let png = base64::engine::general_purpose::STANDARD.decode(data)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, png)?;
        Ok(())
    }
}

/// `GET /json/list` of the DevTools HTTP server, which keeps the connection open: the body
/// is read up to its `Content-Length`.
async fn devtools_targets(port: &str) -> anyhow::Result<Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let read = async {
        let mut stream = TcpStream::connect(format!("127.0.0.1:{port}")).await?;
        stream
            .write_all(
                format!("GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes(),
            )
            .await?;
        let mut raw = Vec::new();
        let mut buffer = [0u8; 8192];
        loop {
            let read = stream.read(&mut buffer).await?;
            anyhow::ensure!(read > 0, "DevTools closed the connection early");
            raw.extend_from_slice(&buffer[..read]);
            let text = String::from_utf8_lossy(&raw);
            let Some((head, body)) = text.split_once("\r\n\r\n") else {
                continue;
            };
            let length: usize = head
                .lines()
                .filter_map(|line| line.split_once(':'))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, value)| value.trim().parse().ok())
                .context("DevTools answered without a Content-Length")?;
            if body.len() >= length {
                return Ok(serde_json::from_str(&body[..length])?);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .context("DevTools did not list its targets within 10 s")?
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.process.start_kill();
    }
}
