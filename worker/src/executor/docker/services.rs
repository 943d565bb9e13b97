//! Service containers (`services:` of `ocelot.yml`): started from their images (pulled like
//! the build's, with the build's login for their registry) on the build container's own
//! network, under their name as a network alias (so `http://web:8080` works from the
//! build), boxed like the build container ([`super::limits`]) with their share of its limits,
//! named `ocelot-build-BUILD-ATTEMPT-svc-NAME-…` (what the sweeper and the attempt fence read)
//! and labelled like it plus [`LABEL_SERVICE`]. They are waited for until healthy, their
//! last log lines go to the build log, and they are removed with the build container, before
//! its network.

use super::{BuildContainer, ContainerSpec, container_labels, is_not_found};
use crate::executor::ExecutorError;
use crate::log_sink::LogSink;
use crate::output::ScriptOutput;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, EndpointSettings, NetworkingConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures::StreamExt;
use ocelot_core::ids::{Attempt, BuildId};
use ocelot_core::model::LogStream;
use ocelot_core::pipeline::{Limits, Service, ServiceCommand};
use ocelot_core::secrets::RegistryLogin;
use ocelot_core::secrets::mask::Masker;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The label naming a service container's service (beside the build's labels).
pub(crate) const LABEL_SERVICE: &str = "io.ocelot.service";
/// How many of a service's last log lines go to the build log.
pub(crate) const LOG_TAIL_LINES: usize = 100;
/// How often a service's health is checked while it is waited for.
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// The longest one health check (an exec) may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// The output of a health check kept for the error message.
const CHECK_OUTPUT_BYTES: usize = 4 * 1024;

/// The build-log stage a service's lines belong to: `service:NAME`.
pub(crate) fn log_stage(name: &str) -> String {
    format!("service:{name}")
}

/// The name of `service`'s container in `build_id`'s `attempt`.
pub(crate) fn service_container_name(build_id: BuildId, attempt: Attempt, service: &str) -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "ocelot-build-{build_id}-{attempt}-svc-{service}-{}",
        &suffix[..6]
    )
}

/// Why a service did not get ready.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServiceError {
    #[error("service `{name}` could not be started: {source}")]
    Start {
        name: String,
        #[source]
        source: ExecutorError,
    },
    #[error("service `{name}` exited (exit code {code}) before it became healthy")]
    Exited { name: String, code: i64 },
    #[error("service `{name}` did not become healthy within {}: {last}", humantime::format_duration(*.timeout))]
    Unhealthy {
        name: String,
        timeout: Duration,
        last: String,
    },
}

/// One service to start: what the file says, its limits and its registry login.
#[derive(Debug)]
pub(crate) struct ServiceStart<'a> {
    pub(crate) service: &'a Service,
    pub(crate) limits: Limits,
    pub(crate) registry_login: Option<&'a RegistryLogin>,
}

/// A started service container. Dropped without [`ServiceContainer::remove`], it is removed
/// in the background.
#[derive(Debug)]
pub(crate) struct ServiceContainer {
    docker: Docker,
    id: String,
    service: Service,
    removed: bool,
}

impl Drop for ServiceContainer {
    fn drop(&mut self) {
        if self.removed || self.id.is_empty() {
            return;
        }
        let docker = self.docker.clone();
        let id = std::mem::take(&mut self.id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { force_remove(&docker, &id).await });
        }
    }
}

async fn force_remove(docker: &Docker, id: &str) {
    let options = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    for attempt in 1..=3u64 {
        match docker.remove_container(id, Some(options.clone())).await {
            Ok(()) => return,
            Err(error) if is_not_found(&error) => return,
            Err(error) => {
                tracing::warn!(container = %id, attempt, %error, "removing a service container failed");
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
        }
    }
    tracing::error!(container = %id, "service container left behind (the sweeper removes it)");
}

/// The services of one build: those started so far.
#[derive(Debug, Default)]
pub(crate) struct Services {
    containers: Vec<ServiceContainer>,
}

impl Services {
    /// Removes every service container (at once).
    pub(crate) async fn remove(mut self) {
        let removals = self.containers.iter_mut().map(|container| async move {
            force_remove(&container.docker, &container.id).await;
            container.removed = true;
        });
        futures::future::join_all(removals).await;
    }
}

/// The body of a service's container.
fn create_body(
    service: &Service,
    image_id: &str,
    labels: HashMap<String, String>,
    limits: Limits,
    network: &str,
) -> ContainerCreateBody {
    let (entrypoint, cmd) = match &service.command {
        None => (None, None),
        Some(ServiceCommand::Args(args)) => (None, Some(args.clone())),
        Some(ServiceCommand::Shell(line)) => (
            Some(vec!["/bin/sh".to_string(), "-c".to_string()]),
            Some(vec![line.clone()]),
        ),
    };
    let endpoint = EndpointSettings {
        aliases: Some(vec![service.name.clone()]),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(image_id.to_string()),
        hostname: Some(service.name.clone()),
        entrypoint,
        cmd,
        env: Some(
            service
                .env
                .iter()
                .map(|var| format!("{}={}", var.key, var.value))
                .collect(),
        ),
        labels: Some(labels),
        host_config: Some(super::limits::host_config(limits, network)),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(network.to_string(), endpoint)])),
        }),
        ..Default::default()
    }
}

impl BuildContainer {
    /// The id of the network the container is on (its own, or a warm container's).
    async fn network_id(&self) -> Result<String, ExecutorError> {
        if let Some(network) = &self.network {
            return Ok(network.id.clone());
        }
        let inspected = self
            .docker
            .inspect_container(&self.id, None)
            .await
            .map_err(|e| ExecutorError::Docker(format!("inspecting the build container: {e}")))?;
        inspected
            .host_config
            .and_then(|config| config.network_mode)
            .ok_or_else(|| ExecutorError::Docker("the build container has no network".into()))
    }

    /// Starts `services` (all at once) on this container's network; they are removed with
    /// it. The first that could not be started is the error (those that were are kept, for
    /// their logs, and removed with the container).
    pub(crate) async fn start_services(
        &mut self,
        spec: &ContainerSpec<'_>,
        services: Vec<ServiceStart<'_>>,
    ) -> Result<(), ServiceError> {
        let network = match self.network_id().await {
            Ok(network) => network,
            Err(source) => {
                let name = services
                    .first()
                    .map(|s| s.service.name.clone())
                    .unwrap_or_default();
                return Err(ServiceError::Start { name, source });
            }
        };
        let docker = self.docker.clone();
        let started = futures::future::join_all(
            services
                .iter()
                .map(|start| start_one(&docker, spec, start, &network)),
        )
        .await;
        let mut first_error = None;
        let attached = self.services.get_or_insert_with(Services::default);
        for (start, result) in services.iter().zip(started) {
            match result {
                Ok(container) => attached.containers.push(container),
                Err((container, source)) => {
                    attached.containers.extend(container);
                    first_error.get_or_insert(ServiceError::Start {
                        name: start.service.name.clone(),
                        source,
                    });
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Waits until every service is healthy (its `wait` checks hold), or one exits or runs
    /// out of time: the services that got ready and how long after the wait began. Returns
    /// early (with those ready so far) when `cancel` is cancelled.
    pub(crate) async fn wait_for_services(
        &self,
        cancel: &CancellationToken,
    ) -> Result<Vec<(String, Duration)>, ServiceError> {
        let mut ready = Vec::new();
        let Some(services) = &self.services else {
            return Ok(ready);
        };
        let started = Instant::now();
        let mut waits: futures::stream::FuturesUnordered<_> = services
            .containers
            .iter()
            .map(|container| async move {
                let result = container.wait_healthy().await;
                (container.service.name.as_str(), result)
            })
            .collect();
        loop {
            tokio::select! {
                () = cancel.cancelled() => return Ok(ready),
                next = waits.next() => match next {
                    None => return Ok(ready),
                    Some((name, Ok(()))) => ready.push((name.to_string(), started.elapsed())),
                    Some((_, Err(error))) => return Err(error),
                },
            }
        }
    }

    /// The last [`LOG_TAIL_LINES`] lines of each service's output, masked, as lines of stage
    /// `service:NAME` (a service whose log cannot be read gets a line saying so).
    pub(crate) async fn service_logs(&self, masker: &Masker, sink: &mut impl LogSink) {
        let Some(services) = &self.services else {
            return;
        };
        for container in &services.containers {
            container.log_tail(masker, sink).await;
        }
    }

    /// Whether any service runs beside the container.
    pub(crate) fn has_services(&self) -> bool {
        self.services
            .as_ref()
            .is_some_and(|services| !services.containers.is_empty())
    }
}

/// Pulls `start`'s image if needed, then creates and starts its container on `network`; on
/// failure, the container if it was created (to be removed, its log read).
async fn start_one(
    docker: &Docker,
    spec: &ContainerSpec<'_>,
    start: &ServiceStart<'_>,
    network: &str,
) -> Result<ServiceContainer, (Option<ServiceContainer>, ExecutorError)> {
    let service = start.service;
    let image_spec = ContainerSpec {
        image: &service.image,
        registry_login: start.registry_login,
        limits: start.limits,
        network: None,
        ..*spec
    };
    let image_id = super::image::ensure_image(docker, &image_spec)
        .await
        .map_err(|error| (None, error))?;
    let mut labels = container_labels(spec.build_id, spec.attempt, spec.worker_id, spec.instance);
    labels.insert(LABEL_SERVICE.to_string(), service.name.clone());
    let name = service_container_name(spec.build_id, spec.attempt, &service.name);
    let body = create_body(service, &image_id, labels, start.limits, network);
    let created = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(&name).build()),
            body,
        )
        .await
        .map_err(|e| {
            (
                None,
                ExecutorError::Docker(format!("creating a container from {}: {e}", service.image)),
            )
        })?;
    let container = ServiceContainer {
        docker: docker.clone(),
        id: created.id,
        service: service.clone(),
        removed: false,
    };
    if let Err(error) = docker.start_container(&container.id, None).await {
        let error = ExecutorError::Docker(format!("starting the container: {error}"));
        return Err((Some(container), error));
    }
    tracing::info!(service = %service.name, image = %service.image, "service started");
    Ok(container)
}

/// A script that exits 0 once something listens on TCP port `port` on an address other than
/// loopback, in the container it runs in (read from `/proc/net/tcp` and `tcp6` with shell
/// builtins only: no tool of the image is needed but `/bin/sh`).
fn port_probe(port: u16) -> String {
    format!(
        r#"for table in /proc/net/tcp /proc/net/tcp6; do
  [ -r "$table" ] || continue
  while read -r _ local _ state _; do
    [ "$state" = 0A ] || continue
    case "$local" in
      ??????7F:{port:04X}|0000000000000000FFFF0000??????7F:{port:04X}) ;;
      00000000000000000000000001000000:{port:04X}) ;;
      *:{port:04X}) exit 0 ;;
    esac
  done < "$table"
done
echo "nothing listens on port {port} (on an address the build can reach)" >&2
exit 1
"#
    )
}

impl ServiceContainer {
    /// Polls the service's checks until they all hold; an error when its container stops or
    /// the wait's timeout passes.
    async fn wait_healthy(&self) -> Result<(), ServiceError> {
        let timeout = self.service.wait_timeout();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(code) = self.exit_code().await {
                return Err(ServiceError::Exited {
                    name: self.service.name.clone(),
                    code,
                });
            }
            let last = match self.check().await {
                Ok(()) => return Ok(()),
                Err(failure) => failure,
            };
            if Instant::now() + CHECK_EVERY >= deadline {
                // it may have exited meanwhile: say so rather than "not healthy"
                if let Some(code) = self.exit_code().await {
                    return Err(ServiceError::Exited {
                        name: self.service.name.clone(),
                        code,
                    });
                }
                return Err(ServiceError::Unhealthy {
                    name: self.service.name.clone(),
                    timeout,
                    last,
                });
            }
            tokio::time::sleep(CHECK_EVERY).await;
        }
    }

    /// The exit code once the container has stopped; `None` while it runs.
    async fn exit_code(&self) -> Option<i64> {
        let inspected = self.docker.inspect_container(&self.id, None).await.ok()?;
        let state = inspected.state?;
        (state.running == Some(false)).then(|| state.exit_code.unwrap_or(-1))
    }

    /// Runs the service's checks once: `Ok` when all hold, else what failed.
    async fn check(&self) -> Result<(), String> {
        let Some(wait) = &self.service.wait else {
            return Ok(());
        };
        if let Some(port) = wait.port {
            self.exec(port_probe(port))
                .await
                .map_err(|e| format!("port {port}: {e}"))?;
        }
        if let Some(command) = &wait.command {
            self.exec(command.clone())
                .await
                .map_err(|e| format!("`{command}`: {e}"))?;
        }
        Ok(())
    }

    /// Runs `script` with `/bin/sh -c` in the service's container: `Ok` when it exits 0,
    /// else its exit code and the last line of its output.
    async fn exec(&self, script: String) -> Result<(), String> {
        let run = async {
            let exec = self
                .docker
                .create_exec(
                    &self.id,
                    CreateExecOptions {
                        cmd: Some(vec!["/bin/sh".to_string(), "-c".to_string(), script]),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| format!("cannot run it in the service's container: {e}"))?;
            let started = self
                .docker
                .start_exec(&exec.id, Some(StartExecOptions::default()))
                .await
                .map_err(|e| format!("cannot run it in the service's container: {e}"))?;
            let mut output = Vec::new();
            if let StartExecResults::Attached {
                output: mut stream, ..
            } = started
            {
                while let Some(Ok(chunk)) = stream.next().await {
                    let bytes = chunk.into_bytes();
                    let room = CHECK_OUTPUT_BYTES.saturating_sub(output.len());
                    output.extend_from_slice(&bytes[..bytes.len().min(room)]);
                }
            }
            let inspected = self
                .docker
                .inspect_exec(&exec.id)
                .await
                .map_err(|e| format!("inspecting the check: {e}"))?;
            match inspected.exit_code {
                Some(0) => Ok(()),
                code => {
                    let text = String::from_utf8_lossy(&output);
                    let last = text.lines().rev().find(|l| !l.trim().is_empty());
                    let code =
                        code.map_or("no exit code".to_string(), |c| format!("exit code {c}"));
                    Err(match last {
                        Some(line) => format!("{code}: {}", line.trim()),
                        None => code,
                    })
                }
            }
        };
        tokio::time::timeout(CHECK_TIMEOUT, run)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "the check did not end within {} s",
                    CHECK_TIMEOUT.as_secs()
                ))
            })
    }

    /// The service's last [`LOG_TAIL_LINES`] lines to `sink`, masked.
    async fn log_tail(&self, masker: &Masker, sink: &mut impl LogSink) {
        let stage = log_stage(&self.service.name);
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&LOG_TAIL_LINES.to_string())
            .build();
        let mut logs = self.docker.logs(&self.id, Some(options));
        let mut output = ScriptOutput::new(&stage, masker);
        while let Some(next) = logs.next().await {
            let (stream, message) = match next {
                Ok(LogOutput::StdErr { message }) => (LogStream::Stderr, message),
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                    (LogStream::Stdout, message)
                }
                Ok(LogOutput::StdIn { .. }) => continue,
                Err(error) => {
                    tracing::warn!(service = %self.service.name, %error, "cannot read a service's log");
                    break;
                }
            };
            output.chunk(sink, stream, &message).await;
        }
        output.finish(sink).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::docker::container_owner;

    #[test]
    fn service_containers_are_named_after_their_attempt() {
        let name = service_container_name(BuildId::from(12), Attempt::from(3), "db");
        assert!(name.starts_with("ocelot-build-12-3-svc-db-"), "{name}");
        // the sweeper and the attempt fence read the owner from the name
        assert_eq!(
            container_owner(&format!("/{name}")),
            Some((BuildId::from(12), Attempt::from(3)))
        );
        assert!(
            name.starts_with(&crate::executor::docker::build_name_filter(BuildId::from(12))[2..])
        );
    }

    #[test]
    fn the_port_probe_reads_listening_sockets_but_not_loopback_ones() {
        let dir = tempfile::tempdir().unwrap();
        let run = |table: &str| {
            let path = dir.path().join("tcp");
            std::fs::write(&path, table).unwrap();
            let script = port_probe(8080)
                .replace("/proc/net/tcp /proc/net/tcp6", &path.display().to_string());
            std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(script)
                .output()
                .unwrap()
                .status
                .code()
        };
        let header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
        let listening = "   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n";
        let loopback = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n";
        let connected = "   0: 020011AC:1F90 030011AC:C350 01 00000000:00000000 00:00000000 00000000     0        0 1\n";
        let other_port = "   0: 00000000:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n";
        assert_eq!(run(&format!("{header}{listening}")), Some(0));
        assert_eq!(run(&format!("{header}{loopback}")), Some(1));
        assert_eq!(run(&format!("{header}{connected}")), Some(1));
        assert_eq!(run(&format!("{header}{other_port}")), Some(1));
        assert_eq!(
            run(&format!("{header}{other_port}{loopback}{listening}")),
            Some(0)
        );
    }
}
