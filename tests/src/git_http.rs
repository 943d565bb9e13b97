//! A private git server over HTTP: `git http-backend` (smart HTTP, as CGI) behind a loopback
//! server that requires HTTP Basic authentication with one user name and token. Each
//! request's `git http-backend` leads a process group of its own, killed and waited for
//! when the request ends (or is dropped, as when the server is).

use anyhow::Context;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug)]
struct Backend {
    root: PathBuf,
    expected_authorization: String,
    refused: AtomicUsize,
    /// Requests that carried an `Authorization` header at all (right or wrong).
    offered: AtomicUsize,
}

/// Serves every repository under a root at `http://127.0.0.1:PORT/NAME.git`, to one user.
#[derive(Debug)]
pub struct PrivateHttpGit {
    pub port: u16,
    backend: Arc<Backend>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PrivateHttpGit {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PrivateHttpGit {
    pub async fn start(root: &Path, username: &str, token: &str) -> anyhow::Result<Self> {
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{token}"));
        let backend = Arc::new(Backend {
            root: root.to_path_buf(),
            expected_authorization: format!("Basic {credentials}"),
            refused: AtomicUsize::new(0),
            offered: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let app = axum::Router::new()
            .fallback(serve)
            .with_state(backend.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(PrivateHttpGit {
            port,
            backend,
            task,
        })
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}.git", self.port)
    }

    /// The URL of repository `name` through another name of the server's address (e.g.
    /// `localhost` instead of `127.0.0.1`): the same server, another host to a credential.
    pub fn url_on(&self, host: &str, name: &str) -> String {
        format!("http://{host}:{}/{name}.git", self.port)
    }

    /// How many requests carried credentials (an `Authorization` header), right or wrong.
    pub fn offered(&self) -> usize {
        self.backend.offered.load(Ordering::SeqCst)
    }

    /// How many requests were refused for want of the right credentials.
    pub fn refused(&self) -> usize {
        self.backend.refused.load(Ordering::SeqCst)
    }
}

async fn serve(State(backend): State<Arc<Backend>>, request: Request) -> Response {
    if request.headers().contains_key(header::AUTHORIZATION) {
        backend.offered.fetch_add(1, Ordering::SeqCst);
    }
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|value| value.as_bytes() == backend.expected_authorization.as_bytes());
    if !authorized {
        backend.refused.fetch_add(1, Ordering::SeqCst);
        let mut response = (StatusCode::UNAUTHORIZED, "authentication required").into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"ocelot-test\""),
        );
        return response;
    }
    match run_backend(&backend.root, request).await {
        Ok(response) => response,
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{error:#}")).into_response(),
    }
}

/// Runs `git http-backend` as a CGI program for one request.
async fn run_backend(root: &Path, request: Request) -> anyhow::Result<Response> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024).await?;
    let header_text = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or_default())
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("CONTENT_TYPE", header_text(header::CONTENT_TYPE))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env(
            "HTTP_CONTENT_ENCODING",
            header_text(header::CONTENT_ENCODING),
        )
        .env(
            "GIT_PROTOCOL",
            parts
                .headers
                .get("git-protocol")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default(),
        )
        .env("REMOTE_USER", "ocelot")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut backend = crate::process::GroupChild::spawn("git http-backend", &mut command)?;
    let child = backend.child_mut();
    let mut stdin = child.stdin.take().context("http-backend stdin")?;
    let mut stdout = child.stdout.take().context("http-backend stdout")?;
    let feed = async move {
        stdin.write_all(&body).await?;
        stdin.shutdown().await
    };
    let mut output = Vec::new();
    let (fed, read) = tokio::join!(feed, stdout.read_to_end(&mut output));
    fed.context("writing the request body to http-backend")?;
    read.context("reading http-backend's output")?;
    backend
        .child_mut()
        .wait()
        .await
        .context("running http-backend")?;
    parse_cgi(&output)
}

/// A CGI program's output: headers (with an optional `Status:`), a blank line, the body.
fn parse_cgi(output: &[u8]) -> anyhow::Result<Response> {
    let split = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| (at, 4))
        .or_else(|| {
            output
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|at| (at, 2))
        })
        .context("http-backend wrote no header block")?;
    let head = std::str::from_utf8(&output[..split.0]).context("http-backend headers")?;
    let body = output[split.0 + split.1..].to_vec();
    let mut status = StatusCode::OK;
    let mut headers = HeaderMap::new();
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("500");
            status = StatusCode::from_u16(code.parse()?)?;
        } else {
            headers.insert(
                header::HeaderName::from_bytes(name.trim().as_bytes())?,
                HeaderValue::from_str(value)?,
            );
        }
    }
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}
