//! What a service registers in Consul, the heartbeat that keeps its TTL check passing, and
//! its deregistration at shutdown.

use super::client::{ConsulClient, check_name};
use super::{ConsulError, DEFAULT_DEREGISTER_AFTER, DEFAULT_TTL};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A duration as Consul (Go) reads it: `15s`, `1500ms`.
fn go_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// This machine's host name (for instance ids), `localhost` when unknown.
fn host_name() -> String {
    crate::host_name()
        .map(|name| {
            name.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// What a service registers in Consul.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDefinition {
    /// The name clients look up, e.g. `ocelot-admin`.
    pub name: String,
    /// Unique among the agent's services: one per running instance.
    pub id: String,
    /// The address other machines reach the service at; `None` lets Consul use the agent's
    /// node address (right when the service listens on every interface).
    pub address: Option<String>,
    /// Its port; `0` for a service that listens on none (a worker).
    pub port: u16,
    pub tags: Vec<String>,
    /// The check turns critical when no heartbeat arrives for this long; heartbeats are
    /// sent every third of it.
    pub ttl: Duration,
    /// Consul removes the service after its check has been critical this long (an instance
    /// that died without deregistering).
    pub deregister_after: Duration,
}

impl ServiceDefinition {
    /// A service named `name` with the instance id `id`, no address and port, and the
    /// default TTL and deregistration delay.
    pub fn new(name: &str, id: &str) -> Self {
        ServiceDefinition {
            name: name.to_string(),
            id: id.to_string(),
            address: None,
            port: 0,
            tags: Vec::new(),
            ttl: DEFAULT_TTL,
            deregister_after: DEFAULT_DEREGISTER_AFTER,
        }
    }

    /// A service named `name` reachable where it `listens`; its id is
    /// `NAME-HOSTNAME-PORT`. An unspecified listen address (`0.0.0.0`, `::`) registers no
    /// address, so Consul uses the node's.
    pub fn listening(name: &str, listen: SocketAddr) -> Self {
        let ip = listen.ip();
        let mut definition =
            ServiceDefinition::new(name, &format!("{name}-{}-{}", host_name(), listen.port()));
        definition.port = listen.port();
        definition.address = (!ip.is_unspecified()).then(|| ip.to_string());
        definition
    }

    /// The id of the service's TTL check.
    pub fn check_id(&self) -> String {
        format!("service:{}", self.id)
    }

    pub(crate) fn payload(&self) -> serde_json::Value {
        let mut service = serde_json::json!({
            "ID": self.id,
            "Name": self.name,
            "Tags": self.tags,
            "Check": {
                "CheckID": self.check_id(),
                "Name": format!("{} heartbeat", self.name),
                "TTL": go_duration(self.ttl),
                "Status": "passing",
                "DeregisterCriticalServiceAfter": go_duration(self.deregister_after),
            },
        });
        if let Some(address) = &self.address {
            service["Address"] = serde_json::Value::from(address.as_str());
        }
        if self.port != 0 {
            service["Port"] = serde_json::Value::from(self.port);
        }
        service
    }
}

/// A service registered in Consul, kept healthy by a background heartbeat until
/// [`deregister`](ServiceRegistration::deregister). Dropping it stops the heartbeat without
/// deregistering: the check then turns critical after the TTL and Consul removes the service
/// after [`ServiceDefinition::deregister_after`].
#[derive(Debug)]
pub struct ServiceRegistration {
    client: ConsulClient,
    definition: ServiceDefinition,
    stop: watch::Sender<bool>,
    heartbeat: Option<JoinHandle<()>>,
}

impl ServiceRegistration {
    /// Registers the service with its TTL check (initially passing) and starts the
    /// heartbeat that passes the check every third of the TTL. When the agent answers a
    /// heartbeat with 404 (it restarted and forgot the check), the service is registered
    /// again.
    pub async fn register(
        client: ConsulClient,
        definition: ServiceDefinition,
    ) -> Result<Self, ConsulError> {
        check_name(&definition.name, false)?;
        check_name(&definition.id, true)?;
        if definition.ttl < Duration::from_millis(30) {
            return Err(ConsulError::Name(format!(
                "{} (its TTL of {} is too short)",
                definition.id,
                humantime::format_duration(definition.ttl)
            )));
        }
        client.register_service(&definition).await?;
        tracing::info!(
            consul = client.address(),
            service = definition.name,
            id = definition.id,
            ttl = %humantime::format_duration(definition.ttl),
            "registered in Consul"
        );
        let (stop, stopped) = watch::channel(false);
        let heartbeat = tokio::spawn(heartbeat(client.clone(), definition.clone(), stopped));
        Ok(ServiceRegistration {
            client,
            definition,
            stop,
            heartbeat: Some(heartbeat),
        })
    }

    /// Stops the heartbeat and removes the service (and its check) from the agent.
    pub async fn deregister(mut self) -> Result<(), ConsulError> {
        // the receiver may be gone if the task ended; then there is nothing to stop
        let _ = self.stop.send(true);
        if let Some(task) = self.heartbeat.take()
            && let Err(error) = task.await
        {
            tracing::warn!(%error, "the Consul heartbeat task failed");
        }
        self.client.deregister_service(&self.definition.id).await?;
        tracing::info!(
            consul = self.client.address(),
            id = self.definition.id,
            "deregistered from Consul"
        );
        Ok(())
    }
}

impl Drop for ServiceRegistration {
    fn drop(&mut self) {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
    }
}

/// Passes the TTL check every third of the TTL until told to stop.
async fn heartbeat(
    client: ConsulClient,
    definition: ServiceDefinition,
    mut stopped: watch::Receiver<bool>,
) {
    let period = definition.ttl / 3;
    let check_id = definition.check_id();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = ticks.tick() => {}
        }
        match client.pass_check(&check_id).await {
            Ok(()) => tracing::trace!(check = check_id, "Consul check passed"),
            Err(error) if error.is_unknown_check() => {
                tracing::warn!(%error, "Consul no longer knows the check; registering again");
                if let Err(error) = client.register_service(&definition).await {
                    tracing::warn!(%error, "cannot register in Consul again");
                }
            }
            Err(error) => tracing::warn!(%error, "cannot pass the Consul check"),
        }
    }
}

/// Deregisters a service at shutdown, if it registered; a failure is only logged (the agent
/// removes the instance itself once its check stays critical).
pub async fn deregister(registration: Option<ServiceRegistration>) {
    if let Some(registration) = registration
        && let Err(error) = registration.deregister().await
    {
        tracing::warn!(%error, "cannot deregister from Consul");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_durations() {
        assert_eq!(go_duration(Duration::from_secs(15)), "15s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn listening_on_every_interface_registers_no_address() {
        let any = ServiceDefinition::listening("ocelot-admin", "0.0.0.0:50051".parse().unwrap());
        assert_eq!(any.address, None);
        assert_eq!(any.port, 50051);
        assert!(any.id.starts_with("ocelot-admin-") && any.id.ends_with("-50051"));
        let one = ServiceDefinition::listening("ocelot-admin", "10.1.2.3:50051".parse().unwrap());
        assert_eq!(one.address.as_deref(), Some("10.1.2.3"));
        assert_eq!(one.payload()["Address"], "10.1.2.3");
        assert_eq!(one.payload()["Check"]["TTL"], "15s");
    }
}
