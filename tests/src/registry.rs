//! A private Docker registry on a loopback port: the registry HTTP API v2 (`/v2/`,
//! manifests, blobs) behind HTTP Basic authentication, serving one image made from a
//! local image with `docker save`. Docker Engine treats 127.0.0.0/8 registries as
//! insecure (plain HTTP) by default, so a real `docker pull` reaches it.

use anyhow::Context;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

const MANIFEST_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug)]
struct Content {
    authorization: String,
    manifest: Vec<u8>,
    manifest_digest: String,
    blobs: HashMap<String, Vec<u8>>,
}

/// Serves `127.0.0.1:PORT/NAME:latest` (any name) to one user.
#[derive(Debug)]
pub struct PrivateRegistry {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PrivateRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The config and (gzipped) layers of a local image, from `docker save`.
async fn saved_image(source: &str) -> anyhow::Result<(Vec<u8>, Vec<Vec<u8>>)> {
    let output = tokio::process::Command::new("docker")
        .args(["save", source])
        .output()
        .await
        .context("running docker save")?;
    anyhow::ensure!(
        output.status.success(),
        "docker save {source}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut files = HashMap::new();
    let mut archive = tar::Archive::new(output.stdout.as_slice());
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        files.insert(path, bytes);
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(files.get("manifest.json").context("no manifest.json")?)?;
    let config_path = manifest[0]["Config"].as_str().context("no Config")?;
    let config = files.get(config_path).context("no config file")?.clone();
    let mut layers = Vec::new();
    for layer in manifest[0]["Layers"].as_array().context("no Layers")? {
        let tar = files
            .get(layer.as_str().context("layer path")?)
            .context("missing layer")?;
        let mut gzip = tokio::process::Command::new("gzip")
            .arg("-c")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("running gzip")?;
        let mut stdin = gzip.stdin.take().context("gzip stdin")?;
        let input = tar.clone();
        let feed = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            stdin.write_all(&input).await
        });
        let compressed = gzip.wait_with_output().await?;
        feed.await??;
        layers.push(compressed.stdout);
    }
    Ok((config, layers))
}

impl PrivateRegistry {
    /// Serves the local image `source` (e.g. `ocelot/busybox`) to `username`/`password`.
    pub async fn start(source: &str, username: &str, password: &str) -> anyhow::Result<Self> {
        let (config, layers) = saved_image(source).await?;
        let mut blobs = HashMap::new();
        let layer_entries: Vec<serde_json::Value> = layers
            .into_iter()
            .map(|layer| {
                let entry = serde_json::json!({
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": layer.len(),
                    "digest": digest(&layer),
                });
                blobs.insert(digest(&layer), layer);
                entry
            })
            .collect();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": config.len(),
                "digest": digest(&config),
            },
            "layers": layer_entries,
        }))?;
        blobs.insert(digest(&config), config);
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        let content = Arc::new(Content {
            authorization: format!("Basic {credentials}"),
            manifest_digest: digest(&manifest),
            manifest,
            blobs,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let app = axum::Router::new()
            .route("/v2/", axum::routing::get(base))
            .route("/v2/{*rest}", axum::routing::get(object))
            .with_state(content);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(PrivateRegistry { port, task })
    }

    /// The registry's host, as image names and credentials spell it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn unauthorized() -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        axum::Json(serde_json::json!({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})),
    )
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"ocelot-test-registry\""),
    );
    response
}

fn authorized(content: &Content, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == content.authorization.as_bytes())
}

async fn base(State(content): State<Arc<Content>>, headers: HeaderMap) -> Response {
    if !authorized(&content, &headers) {
        return unauthorized();
    }
    axum::Json(serde_json::json!({})).into_response()
}

/// `/v2/NAME/manifests/REF` and `/v2/NAME/blobs/DIGEST` (NAME may hold `/`).
async fn object(
    State(content): State<Arc<Content>>,
    UrlPath(rest): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&content, &headers) {
        return unauthorized();
    }
    if rest.rsplit_once("/manifests/").is_some() {
        let mut response = Response::new(Body::from(content.manifest.clone()));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(MANIFEST_TYPE),
        );
        if let Ok(value) = HeaderValue::from_str(&content.manifest_digest) {
            headers.insert("docker-content-digest", value);
        }
        return response;
    }
    if let Some((_, wanted)) = rest.rsplit_once("/blobs/")
        && let Some(blob) = content.blobs.get(wanted)
    {
        let mut response = Response::new(Body::from(blob.clone()));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        return response;
    }
    (StatusCode::NOT_FOUND, "unknown").into_response()
}
