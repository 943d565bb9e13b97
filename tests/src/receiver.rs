//! A real HTTP receiver for notifications (axum on a free loopback port): it records every
//! request (path, headers, body) and answers 500 to the first `fail_first` ones, then 200.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// What it answered.
    pub status: u16,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Debug, Default)]
struct Log {
    received: Vec<Received>,
    fail_first: usize,
}

#[derive(Debug)]
pub struct Receiver {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    log: Arc<Mutex<Log>>,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    axum::extract::State(log): axum::extract::State<Arc<Mutex<Log>>>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
    let status = if log.received.len() < log.fail_first {
        500
    } else {
        200
    };
    log.received.push(Received {
        path: uri.path().to_string(),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect(),
        body: body.to_vec(),
        status,
    });
    axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK)
}

impl Receiver {
    /// Starts a receiver that fails the first `fail_first` requests with a 500.
    pub async fn start(fail_first: usize) -> anyhow::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let log = Arc::new(Mutex::new(Log {
            received: Vec::new(),
            fail_first,
        }));
        let app = axum::Router::new().fallback(record).with_state(log.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver { url, log, task })
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .received
            .clone()
    }

    /// Waits until `count` requests to `path` arrived; returns them.
    pub async fn wait_for(
        &self,
        path: &str,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Received>> {
        crate::wait_until(
            &format!("{count} request(s) to {path}"),
            timeout,
            || async {
                let got: Vec<Received> = self
                    .received()
                    .into_iter()
                    .filter(|r| r.path == path)
                    .collect();
                (got.len() >= count).then_some(got)
            },
        )
        .await
    }
}
