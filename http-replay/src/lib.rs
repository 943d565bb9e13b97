//! Test support, for tests only: a loopback HTTP server that plays back recorded exchanges, in order, and fails the test
//! when a request differs from the recording.
//!
//! A recording (`tests/exchanges/<service>/<name>.json`) is
//! `{"description": ..., "exchanges": [{"doc": URL, "request": {...}, "response": {...}}]}`:
//!
//! - `request.method`, `request.path` (with the query, exactly as sent) must be equal;
//! - every header in `request.headers` must be present with that value, and every header named
//!   in `request.absent_headers` must be missing;
//! - `request.body`, when present, is compared with the request's body as JSON; when absent,
//!   the request must have no body;
//! - an exchange with `"repeat": true` matches one or more requests in a row (a heartbeat).
//!
//! The response is `response.status`, `response.headers` and `response.body` (JSON, or a
//! string sent as plain text). A request that does not match gets a 599 answer, and
//! [`Replay::finish`] fails the test with every difference and every exchange never asked for.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Recording {
    #[allow(dead_code)]
    description: String,
    exchanges: Vec<Exchange>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exchange {
    /// The documentation page the exchange is taken from.
    doc: String,
    /// What the recording adds to the documentation's sample, and why.
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
    #[serde(default)]
    repeat: bool,
    request: RecordedRequest,
    response: RecordedResponse,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordedRequest {
    method: String,
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    absent_headers: Vec<String>,
    #[serde(default)]
    body: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordedResponse {
    status: u16,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<Value>,
}

#[derive(Debug, Default)]
struct Tape {
    exchanges: Vec<Exchange>,
    /// The exchange the next request should match.
    next: usize,
    /// How often the current `repeat` exchange has matched.
    repeats: usize,
    /// `METHOD path` of every request that matched, in order.
    served: Vec<String>,
    failures: Vec<String>,
}

/// A running replay server.
pub struct Replay {
    address: SocketAddr,
    tape: Arc<Mutex<Tape>>,
    server: tokio::task::JoinHandle<()>,
    /// Set by `finish`: a replay dropped without it checked nothing.
    finished: bool,
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.server.abort();
        if !self.finished && !std::thread::panicking() {
            panic!("a replay was dropped without finish(): its exchanges were never checked");
        }
    }
}

/// Where the recorded exchanges come from: the services' own API documentation.
const DOC_SITES: [&str; 7] = [
    "https://developer.hashicorp.com/",
    "https://docs.github.com/",
    "https://docs.gitlab.com/",
    "https://developer.atlassian.com/cloud/bitbucket/",
    "https://support.atlassian.com/bitbucket-cloud/",
    "https://gitea.com/api/swagger",
    "https://docs.gitea.com/",
];

/// The recording's exchanges (`<dir>/<service>/<name>.json`; a crate passes its
/// `tests/exchanges`).
pub fn load(dir: &Path, service: &str, name: &str) -> Vec<Exchange> {
    let path = dir.join(service).join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let recording: Recording = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not a recording: {e}", path.display()));
    for exchange in &recording.exchanges {
        assert!(
            DOC_SITES.iter().any(|site| exchange.doc.starts_with(site)),
            "{}: every exchange names the documentation page it comes from",
            path.display()
        );
    }
    recording.exchanges
}

impl Replay {
    /// Serves `exchanges` on a free loopback port.
    pub async fn start(exchanges: Vec<Exchange>) -> Replay {
        let tape = Arc::new(Mutex::new(Tape {
            exchanges,
            ..Tape::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let address = listener.local_addr().expect("local address");
        let app = axum::Router::new().fallback(serve).with_state(tape.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("replay server");
        });
        Replay {
            address,
            tape,
            server,
            finished: false,
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// `METHOD path` of every request served so far.
    pub fn served(&self) -> Vec<String> {
        self.tape.lock().expect("tape").served.clone()
    }

    /// Fails unless every request matched and every exchange was asked for.
    pub fn finish(mut self) {
        self.finished = true;
        self.server.abort();
        let tape = self.tape.lock().expect("tape");
        let mut failures = tape.failures.clone();
        let mut next = tape.next;
        if tape
            .exchanges
            .get(next)
            .is_some_and(|e| e.repeat && tape.repeats > 0)
        {
            next += 1;
        }
        for missing in &tape.exchanges[next.min(tape.exchanges.len())..] {
            failures.push(format!(
                "never requested: {} {} ({})",
                missing.request.method, missing.request.path, missing.doc
            ));
        }
        assert!(
            failures.is_empty(),
            "the exchanges did not replay as recorded:\n- {}\nserved: {:?}",
            failures.join("\n- "),
            tape.served
        );
    }
}

async fn serve(State(tape): State<Arc<Mutex<Tape>>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let method = parts.method.as_str().to_string();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let mut tape = tape.lock().expect("tape");
    loop {
        let Some(expected) = tape.exchanges.get(tape.next).cloned() else {
            let failure = format!("unexpected request after the recording ended: {method} {path}");
            tape.failures.push(failure.clone());
            return mismatch(failure);
        };
        let differences = differences(&expected.request, &method, &path, &parts.headers, &bytes);
        if differences.is_empty() {
            if expected.repeat {
                tape.repeats += 1;
            } else {
                tape.next += 1;
                tape.repeats = 0;
            }
            tape.served.push(format!("{method} {path}"));
            return respond(&expected.response);
        }
        if expected.repeat && tape.repeats > 0 {
            // the repeated exchange is over; try the next one
            tape.next += 1;
            tape.repeats = 0;
            continue;
        }
        let failure = format!(
            "request #{} ({}) differs from the recording: {}",
            tape.served.len() + 1,
            expected.doc,
            differences.join("; ")
        );
        tape.failures.push(failure.clone());
        return mismatch(failure);
    }
}

fn differences(
    expected: &RecordedRequest,
    method: &str,
    path: &str,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Vec<String> {
    let mut found = Vec::new();
    if expected.method != method || expected.path != path {
        found.push(format!(
            "expected {} {}, got {method} {path}",
            expected.method, expected.path
        ));
    }
    for (name, value) in &expected.headers {
        match headers
            .get(name.as_str())
            .map(|v| v.to_str().unwrap_or("<not text>"))
        {
            Some(actual) if actual == value => {}
            Some(actual) => {
                found.push(format!("header {name}: expected `{value}`, got `{actual}`"))
            }
            None => found.push(format!("header {name} missing")),
        }
    }
    for name in &expected.absent_headers {
        if headers.contains_key(name.as_str()) {
            found.push(format!("header {name} should not be sent"));
        }
    }
    match &expected.body {
        None if !body.is_empty() => found.push(format!(
            "expected no body, got {}",
            String::from_utf8_lossy(body)
        )),
        None => {}
        Some(json) => match serde_json::from_slice::<Value>(body) {
            Ok(actual) if &actual == json => {}
            Ok(actual) => found.push(format!("body: expected {json}, got {actual}")),
            Err(_) => found.push(format!(
                "body: expected {json}, got `{}`",
                String::from_utf8_lossy(body)
            )),
        },
    }
    found
}

fn respond(recorded: &RecordedResponse) -> Response {
    let (body, content_type) = match &recorded.body {
        None => (Body::empty(), None),
        Some(Value::String(text)) => (Body::from(text.clone()), Some("text/plain; charset=utf-8")),
        Some(json) => (Body::from(json.to_string()), Some("application/json")),
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(recorded.status).expect("a status code");
    if let Some(content_type) = content_type {
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static(content_type),
        );
    }
    for (name, value) in &recorded.headers {
        response.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            HeaderValue::from_str(value).expect("a header value"),
        );
    }
    response
}

fn mismatch(failure: String) -> Response {
    let mut response = Response::new(Body::from(
        serde_json::json!({ "errors": [format!("replay: {failure}")] }).to_string(),
    ));
    *response.status_mut() = StatusCode::from_u16(599).expect("599");
    response
}

/// The recording `tests/exchanges/<service>/<name>.json` of the crate whose test calls it.
#[macro_export]
macro_rules! recording {
    ($service:expr, $name:expr) => {
        $crate::load(
            &::std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/exchanges"),
            $service,
            $name,
        )
    };
}
