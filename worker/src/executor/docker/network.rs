//! One Docker bridge network per build: builds never see each other (Docker isolates
//! bridges from one another), and the bridge's Linux name starts with a fixed prefix that
//! the host firewall rule matches ([`super::firewall`]). Labelled like the build's
//! container, so that the sweeper removes networks a dead worker left.

use super::firewall::HostAccess;
use crate::executor::ExecutorError;
use bollard::Docker;
use bollard::models::NetworkCreateRequest;
use std::collections::HashMap;
use std::time::Duration;

/// Docker's option naming the Linux bridge of a network.
const BRIDGE_NAME_OPTION: &str = "com.docker.network.bridge.name";
/// Linux interface names have at most 15 bytes.
const MAX_INTERFACE_NAME: usize = 15;

/// The Linux name of a new build bridge: `prefix` and random hex, 15 bytes.
pub(crate) fn bridge_name(prefix: &str) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    let room = MAX_INTERFACE_NAME.saturating_sub(prefix.len());
    format!("{prefix}{}", &random[..room.min(random.len())])
}

/// A build's network; removed with [`BuildNetwork::remove_later`] (or, dropped, in the
/// background too).
#[derive(Debug)]
pub(crate) struct BuildNetwork {
    docker: Docker,
    pub(crate) id: String,
    removed: bool,
}

impl BuildNetwork {
    /// Creates the network `name`, labelled with `labels`, on a bridge named for `access`.
    pub(crate) async fn create(
        docker: &Docker,
        name: &str,
        labels: HashMap<String, String>,
        access: HostAccess,
    ) -> Result<Self, ExecutorError> {
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".to_string()),
            labels: Some(labels),
            options: Some(HashMap::from([(
                BRIDGE_NAME_OPTION.to_string(),
                bridge_name(access.bridge_prefix()),
            )])),
            ..Default::default()
        };
        let created = docker.create_network(request).await.map_err(|e| {
            ExecutorError::Docker(format!(
                "creating the build's network {name}: {e} (each build gets its own bridge network: \
                 if Docker ran out of address pools, remove unused networks or widen \
                 `default-address-pools` in daemon.json)"
            ))
        })?;
        Ok(BuildNetwork {
            docker: docker.clone(),
            id: created.id,
            removed: false,
        })
    }

    /// Removes the network in the background (after its container is gone): nobody waits.
    pub(crate) fn remove_later(mut self) {
        self.removed = true;
        spawn_removal(self.docker.clone(), std::mem::take(&mut self.id));
    }
}

/// A build's network being made while the build sets up (checkout, `ocelot.yml`), so that
/// its cost is hidden behind the checkout. Dropped unused, the network it makes is removed.
#[derive(Debug)]
pub(crate) struct PendingNetwork(tokio::task::JoinHandle<Result<BuildNetwork, ExecutorError>>);

impl PendingNetwork {
    /// Runs `before` (what must happen before the build's container exists), then creates the
    /// network `name`, in the background.
    pub(crate) fn start(
        docker: Docker,
        name: String,
        labels: HashMap<String, String>,
        access: HostAccess,
        before: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Self {
        PendingNetwork(tokio::spawn(async move {
            before.await;
            BuildNetwork::create(&docker, &name, labels, access).await
        }))
    }

    /// The network, once made.
    pub(crate) async fn ready(self) -> Result<BuildNetwork, ExecutorError> {
        self.0
            .await
            .map_err(|e| ExecutorError::Docker(format!("creating the build's network: {e}")))?
    }
}

impl Drop for BuildNetwork {
    fn drop(&mut self) {
        if !self.removed {
            spawn_removal(self.docker.clone(), std::mem::take(&mut self.id));
        }
    }
}

fn spawn_removal(docker: Docker, id: String) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        remove(&docker, &id).await;
    });
}

/// Removes network `id`, retrying while its container is still being removed; the sweeper
/// takes what is left.
pub(crate) async fn remove(docker: &Docker, id: &str) {
    for attempt in 1..=5u64 {
        match docker.remove_network(id).await {
            Ok(()) => return,
            Err(error) if super::is_not_found(&error) => return,
            Err(error) => {
                tracing::debug!(network = %id, attempt, %error, "removing the build network failed");
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
        }
    }
    tracing::warn!(network = %id, "build network left behind; the sweeper removes it");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names_fit_linux_interface_names() {
        let name = bridge_name("ocb");
        assert_eq!(name.len(), 15);
        assert!(name.starts_with("ocb"));
        assert_ne!(bridge_name("ocb"), bridge_name("ocb"));
    }
}
