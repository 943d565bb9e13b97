//! A NATS cluster of three (or more) `nats-server` processes with JetStream on loopback,
//! routed to each other, each with its own ports and store directory and the users of
//! `scripts/nats-auth.conf` (one password per user, shared by every node, as in a real
//! cluster). Started, it has a JetStream meta leader. A node can be killed (SIGKILL) and
//! started again on its ports and store; every node is killed and waited for on drop.

use crate::nats::{AUTH_TEMPLATE, NatsUser, binary, password_file, write_passwords};
use crate::process::GroupChild;
use anyhow::Context;
use ocelot_core::settings::NatsArgs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The cluster's name (the `cluster {}` block).
const CLUSTER_NAME: &str = "ocelot-test";

/// One server of the cluster.
#[derive(Debug)]
pub struct ClusterNode {
    /// Its `server_name`, as JetStream names leaders and replicas: `n1`, `n2`, ...
    pub name: String,
    /// Where clients connect.
    pub port: u16,
    /// Its monitoring endpoint (`/jsz`, `/varz`).
    pub monitor_port: u16,
    dir: PathBuf,
    child: Option<GroupChild>,
}

impl ClusterNode {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Whether it runs (it was not killed, or was started again).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    fn start(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "{} is running", self.name);
        self.child = Some(GroupChild::spawn(
            "nats-server (scripts/setup.sh installs it; or set OCELOT_NATS_SERVER)",
            tokio::process::Command::new(binary())
                .arg("-c")
                .arg(self.dir.join("nats.conf"))
                .arg("-l")
                .arg(self.dir.join("server.log"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null()),
        )?);
        Ok(())
    }

    /// `GET /jsz?QUERY` of its monitoring endpoint.
    pub async fn jsz(&self, query: &str) -> anyhow::Result<serde_json::Value> {
        let url = format!("http://127.0.0.1:{}/jsz?{query}", self.monitor_port);
        let response = crate::http::get(&url).await?;
        anyhow::ensure!(response.status == 200, "{url}: {}", response.status);
        serde_json::from_str(&response.body).with_context(|| format!("{url}: not JSON"))
    }

    /// The JetStream meta leader this node knows of, if any.
    pub async fn meta_leader(&self) -> Option<String> {
        let jsz = self.jsz("").await.ok()?;
        jsz["meta_cluster"]["leader"]
            .as_str()
            .filter(|leader| !leader.is_empty())
            .map(str::to_string)
    }

    /// Stream `name` as this node's monitoring endpoint shows it (`config`, `state`,
    /// `cluster`, `consumer_detail`), when this node holds a replica of it.
    pub async fn stream(&self, name: &str) -> Option<serde_json::Value> {
        let jsz = self
            .jsz("streams=true&consumers=true&config=true")
            .await
            .ok()?;
        jsz["account_details"]
            .as_array()?
            .iter()
            .filter_map(|account| account["stream_detail"].as_array())
            .flatten()
            .find(|stream| stream["name"] == name)
            .cloned()
    }
}

#[derive(Debug)]
pub struct NatsCluster {
    pub nodes: Vec<ClusterNode>,
    /// The users' password files and each node's directory.
    dir: tempfile::TempDir,
}

/// A node's configuration: its name, ports and store, the routes to every node, then the
/// users (`passwords`, then [`AUTH_TEMPLATE`]).
fn node_config(
    node: &ClusterNode,
    cluster_port: u16,
    cluster_ports: &[u16],
    passwords: &str,
) -> String {
    let routes: Vec<String> = cluster_ports
        .iter()
        .map(|port| format!("\"nats-route://127.0.0.1:{port}\""))
        .collect();
    format!(
        "{passwords}{AUTH_TEMPLATE}\n\
         server_name: \"{name}\"\n\
         listen: \"127.0.0.1:{port}\"\n\
         http: \"127.0.0.1:{monitor}\"\n\
         jetstream {{\n  store_dir: \"{store}\"\n}}\n\
         cluster {{\n  name: \"{CLUSTER_NAME}\"\n  listen: \"127.0.0.1:{cluster_port}\"\n  routes: [{routes}]\n}}\n",
        name = node.name,
        port = node.port,
        monitor = node.monitor_port,
        store = node.dir.join("jetstream").display(),
        routes = routes.join(", "),
    )
}

impl NatsCluster {
    /// `size` routed servers (3 for a cluster that outlives one node), once they agree on a
    /// JetStream meta leader.
    pub async fn start(size: usize) -> anyhow::Result<NatsCluster> {
        anyhow::ensure!(size >= 1, "a cluster needs a node");
        let dir = tempfile::tempdir()?;
        let passwords = write_passwords(dir.path())?;
        let mut nodes = Vec::with_capacity(size);
        let mut cluster_ports = Vec::with_capacity(size);
        for index in 1..=size {
            let node_dir = dir.path().join(format!("n{index}"));
            std::fs::create_dir(&node_dir)?;
            nodes.push(ClusterNode {
                name: format!("n{index}"),
                port: crate::free_port()?,
                monitor_port: crate::free_port()?,
                dir: node_dir,
                child: None,
            });
            cluster_ports.push(crate::free_port()?);
        }
        for (node, cluster_port) in nodes.iter().zip(&cluster_ports) {
            let config = node_config(node, *cluster_port, &cluster_ports, &passwords);
            std::fs::write(node.dir.join("nats.conf"), config)?;
        }
        for node in &mut nodes {
            node.start()?;
        }
        let cluster = NatsCluster { nodes, dir };
        for node in &cluster.nodes {
            crate::wait_for_port(node.port, Duration::from_secs(20))
                .await
                .with_context(|| format!("node {}:\n{}", node.name, node.log()))?;
        }
        cluster
            .wait_for_meta_leader(Duration::from_secs(60))
            .await?;
        Ok(cluster)
    }

    /// Every server's URL, comma-separated (`--nats-url`).
    pub fn urls(&self) -> String {
        let urls: Vec<String> = self.nodes.iter().map(ClusterNode::url).collect();
        urls.join(",")
    }

    /// The file holding `user`'s password (the same on every node).
    pub fn password_file(&self, user: NatsUser) -> PathBuf {
        password_file(self.dir.path(), user)
    }

    /// What an in-process service connecting as `user` is given: every URL, and as many
    /// replicas as the cluster has nodes.
    pub fn args(&self, user: NatsUser) -> NatsArgs {
        NatsArgs::new(self.urls())
            .with_user(user.name(), self.password_file(user))
            .with_replicas(self.replicas())
    }

    /// The environment of a service process connecting as `user` (as [`Self::args`]).
    pub fn env(&self, user: NatsUser) -> Vec<(String, String)> {
        use ocelot_core::env_vars;
        vec![
            (env_vars::OCELOT_NATS_URL.to_string(), self.urls()),
            (
                env_vars::OCELOT_NATS_USER.to_string(),
                user.name().to_string(),
            ),
            (
                env_vars::OCELOT_NATS_PASSWORD_FILE.to_string(),
                self.password_file(user).to_string_lossy().to_string(),
            ),
            (
                env_vars::OCELOT_NATS_REPLICAS.to_string(),
                self.replicas().to_string(),
            ),
        ]
    }

    fn replicas(&self) -> u8 {
        u8::try_from(self.nodes.len().min(5)).unwrap_or(5)
    }

    /// The node named `name` (`n1`, ...).
    pub fn node(&self, name: &str) -> anyhow::Result<&ClusterNode> {
        self.nodes
            .iter()
            .find(|node| node.name == name)
            .with_context(|| format!("no node {name}"))
    }

    fn node_mut(&mut self, name: &str) -> anyhow::Result<&mut ClusterNode> {
        self.nodes
            .iter_mut()
            .find(|node| node.name == name)
            .with_context(|| format!("no node {name}"))
    }

    /// Kills node `name` (SIGKILL: nothing flushed, no goodbye to its peers) and waits
    /// until it is gone.
    pub fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        if let Some(mut child) = self.node_mut(name)?.child.take() {
            child.kill_all()?;
        }
        Ok(())
    }

    /// Starts node `name` again on its ports and store directory.
    pub async fn start_again(&mut self, name: &str) -> anyhow::Result<()> {
        let node = self.node_mut(name)?;
        node.start()?;
        let port = node.port;
        crate::wait_for_port(port, Duration::from_secs(20)).await
    }

    /// Waits until every running node names the same JetStream meta leader; its name.
    pub async fn wait_for_meta_leader(&self, timeout: Duration) -> anyhow::Result<String> {
        let agreed = crate::wait_until("a JetStream meta leader", timeout, || async {
            let mut leaders = Vec::new();
            for node in self.nodes.iter().filter(|node| node.is_running()) {
                leaders.push(node.meta_leader().await?);
            }
            let first = leaders.first()?.clone();
            leaders
                .iter()
                .all(|leader| *leader == first)
                .then_some(first)
        })
        .await;
        agreed.with_context(|| {
            let logs: Vec<String> = self
                .nodes
                .iter()
                .map(|node| format!("--- {}\n{}", node.name, tail(&node.log(), 20)))
                .collect();
            logs.join("\n")
        })
    }

    /// The running node that leads stream `name`, as the running nodes see it (they agree).
    pub async fn stream_leader(&self, name: &str) -> Option<String> {
        let mut leaders = Vec::new();
        for node in self.nodes.iter().filter(|node| node.is_running()) {
            let stream = node.stream(name).await?;
            leaders.push(stream["cluster"]["leader"].as_str()?.to_string());
        }
        let first = leaders.first()?.clone();
        let running = self
            .nodes
            .iter()
            .any(|node| node.is_running() && node.name == first);
        (running && leaders.iter().all(|leader| *leader == first)).then_some(first)
    }

    /// The cluster's directory (password files; `n1/`, ... with each node's store and log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
