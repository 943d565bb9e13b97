//! Removes build containers that no attempt owns any more: left by a worker that died (or
//! by this worker's previous incarnation), on this worker's Docker host. A container is kept
//! only while its build is `running` in the very attempt its name says
//! (`ocelot-build-BUILD-ATTEMPT-…`: a warm container is named so when a build takes it);
//! containers of other installations (another database) are never touched, except warm
//! containers nobody took, which are removed once past the time their labels give, whoever
//! made them (no live worker keeps one that long).
//! Workspaces under the worker's cache directory (`build-ID-ATTEMPT-…`) left by a killed
//! worker go the same way, and so do build networks (labelled like their containers, or as
//! warm ones) once their container is gone.

use crate::executor::docker::warm::{LABEL_WARM_UNTIL, warm_until};
use crate::executor::docker::{
    LABEL_ATTEMPT, LABEL_BUILD, LABEL_INSTANCE, build_name_filter, container_owner,
};
use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
};
use ocelot_core::BuildState;
use ocelot_core::ids::{Attempt, BuildId};
use ocelot_core::store::{Store, StoreError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Sweeps at start, then every `every`, until `stop`.
pub(crate) async fn run(
    docker: Option<Docker>,
    store: Store,
    instance: String,
    workspaces: PathBuf,
    every: Duration,
    stop: CancellationToken,
) {
    loop {
        if let Some(docker) = &docker {
            match sweep(docker, &store, &instance).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "removed build containers no attempt owns"),
                Err(error) => tracing::warn!(%error, "sweeping leftover build containers failed"),
            }
            match sweep_expired_warm(docker).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(
                    removed,
                    "removed warm containers and networks a dead worker left"
                ),
                Err(error) => tracing::warn!(%error, "sweeping leftover warm containers failed"),
            }
            match sweep_networks(docker, &store, &instance).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "removed build networks no attempt owns"),
                Err(error) => tracing::warn!(%error, "sweeping leftover build networks failed"),
            }
        }
        match sweep_workspaces(&store, &workspaces).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed workspaces no attempt owns"),
            Err(error) => tracing::warn!(%error, "sweeping leftover workspaces failed"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// Whether the container of `build_id`'s `attempt` is still its running attempt's.
async fn owned(store: &Store, build_id: BuildId, attempt: Attempt) -> Result<bool, StoreError> {
    match store.get_build(build_id).await {
        Ok(build) => Ok(build.state == BuildState::Running && build.attempt == attempt),
        Err(StoreError::NotFound(_)) => Ok(false),
        Err(error) => Err(error),
    }
}

/// The build and attempt a workspace directory (`build-ID-ATTEMPT-RANDOM`) belongs to.
fn workspace_owner(name: &str) -> Option<(BuildId, Attempt)> {
    crate::executor::docker::attempt_named(name, "build-")
}

/// Removes the workspaces under `dir` whose attempt is over; how many were removed.
pub(crate) async fn sweep_workspaces(store: &Store, dir: &Path) -> Result<usize, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut removed = 0;
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some((build_id, attempt)) = name.to_str().and_then(workspace_owner) else {
            continue;
        };
        if owned(store, build_id, attempt)
            .await
            .map_err(|e| format!("reading build {build_id}: {e}"))?
        {
            continue;
        }
        let path = entry.path();
        match tokio::fs::remove_dir_all(&path).await {
            Ok(()) => {
                tracing::info!(workspace = %path.display(), build_id = build_id.get(), attempt = attempt.get(), "removed a leftover workspace");
                removed += 1;
            }
            // its attempt ended meanwhile and removed it
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(workspace = %path.display(), %error, "cannot remove a leftover workspace")
            }
        }
    }
    Ok(removed)
}

/// Every container, running or not, that `filters` (Docker's list filters) select.
pub(crate) async fn all_containers(
    docker: &Docker,
    filters: &HashMap<String, Vec<String>>,
) -> Result<Vec<bollard::models::ContainerSummary>, bollard::errors::Error> {
    docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(filters)
                .build(),
        ))
        .await
}

/// Removes a container, running or not, with its anonymous volumes.
pub(crate) async fn force_remove(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    let options = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    docker.remove_container(id, Some(options)).await
}

/// Removes the containers of `build_id`'s attempts before `attempt` on this Docker host.
pub(crate) async fn remove_earlier_attempts(
    docker: &Docker,
    instance: &str,
    build_id: BuildId,
    attempt: Attempt,
) {
    if attempt <= Attempt::FIRST {
        return;
    }
    // by name: a warm container taken by an attempt is named after it, its labels are not
    let filters = HashMap::from([
        (
            "label".to_string(),
            vec![format!("{LABEL_INSTANCE}={instance}")],
        ),
        ("name".to_string(), vec![build_name_filter(build_id)]),
    ]);
    let listed = all_containers(docker, &filters).await;
    let containers = match listed {
        Ok(containers) => containers,
        Err(error) => {
            tracing::warn!(build_id = build_id.get(), %error, "cannot list earlier attempts' containers");
            return;
        }
    };
    for container in containers {
        let earlier = owner_by_name(container.names.as_deref())
            .is_some_and(|(theirs, their_attempt)| theirs == build_id && their_attempt < attempt);
        let Some(id) = container.id.filter(|_| earlier) else {
            continue;
        };
        match force_remove(docker, &id).await {
            Ok(()) => {
                tracing::info!(container = %id, build_id = build_id.get(), "removed a lost attempt's container")
            }
            Err(error) => {
                tracing::warn!(container = %id, build_id = build_id.get(), %error, "cannot remove a lost attempt's container")
            }
        }
    }
}

/// The build and attempt a container's names (as Docker lists them) name.
fn owner_by_name(names: Option<&[String]>) -> Option<(BuildId, Attempt)> {
    names?.iter().find_map(|name| container_owner(name))
}

/// The build and attempt a network's labels name.
fn owner_by_labels(labels: &HashMap<String, String>) -> Option<(BuildId, Attempt)> {
    let build_id = labels
        .get(LABEL_BUILD)
        .and_then(|v| v.parse::<BuildId>().ok())?;
    let attempt = labels
        .get(LABEL_ATTEMPT)
        .and_then(|v| v.parse::<u32>().ok())
        .map(Attempt::from)?;
    Some((build_id, attempt))
}

/// Whether a warm container or network (labelled `labels`) is past the time its worker
/// removes it unused: its worker is gone. One a build took is still in use then and
/// (a network) cannot be removed, or (a container) is named after its build.
fn warm_expired(labels: &HashMap<String, String>) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    warm_until(labels).is_some_and(|until| until < now)
}

/// Whether the resource of `owner` (a build's attempt) belongs to no running attempt any
/// more (no owner: not one of ours, kept).
async fn abandoned(
    store: &Store,
    owner: Option<(BuildId, Attempt)>,
) -> Result<Option<(BuildId, Attempt)>, String> {
    let Some((build_id, attempt)) = owner else {
        return Ok(None);
    };
    let owned = owned(store, build_id, attempt)
        .await
        .map_err(|e| format!("reading build {build_id}: {e}"))?;
    Ok((!owned).then_some((build_id, attempt)))
}

/// Removes the build networks no attempt owns; how many were removed. A network whose
/// container is still being removed is left for the next sweep.
pub(crate) async fn sweep_networks(
    docker: &Docker,
    store: &Store,
    instance: &str,
) -> Result<usize, String> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_INSTANCE}={instance}")],
    )]);
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .map_err(|e| format!("listing networks: {e}"))?;
    let mut removed = 0;
    for network in networks {
        let (Some(id), Some(labels)) = (network.id, network.labels) else {
            continue;
        };
        let Some((build_id, attempt)) = abandoned(store, owner_by_labels(&labels)).await? else {
            continue;
        };
        match docker.remove_network(&id).await {
            Ok(()) => {
                tracing::info!(network = %id, build_id = build_id.get(), attempt = attempt.get(), "removed a leftover build network");
                removed += 1;
            }
            Err(error) => {
                tracing::debug!(network = %id, %error, "cannot remove a leftover build network yet")
            }
        }
    }
    Ok(removed)
}

/// Removes the warm containers and networks past their `io.ocelot.warm-until`, of any
/// installation: a live worker never keeps one that long (it removes its own before), so
/// these were left by a worker that died; one a build took is named after it (kept) and its
/// network is in use (Docker refuses). How many were removed.
pub(crate) async fn sweep_expired_warm(docker: &Docker) -> Result<usize, String> {
    let filters = HashMap::from([("label".to_string(), vec![LABEL_WARM_UNTIL.to_string()])]);
    let containers = all_containers(docker, &filters)
        .await
        .map_err(|e| format!("listing warm containers: {e}"))?;
    let mut removed = 0;
    for container in containers {
        let (Some(id), Some(labels)) = (container.id, container.labels) else {
            continue;
        };
        if owner_by_name(container.names.as_deref()).is_some() || !warm_expired(&labels) {
            continue;
        }
        match force_remove(docker, &id).await {
            Ok(()) => {
                tracing::info!(container = %id, "removed a leftover warm container");
                removed += 1;
            }
            Err(error) => {
                tracing::warn!(container = %id, %error, "cannot remove a leftover warm container")
            }
        }
    }
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .map_err(|e| format!("listing warm networks: {e}"))?;
    for network in networks {
        let (Some(id), Some(labels)) = (network.id, network.labels) else {
            continue;
        };
        if warm_expired(&labels) && docker.remove_network(&id).await.is_ok() {
            tracing::info!(network = %id, "removed a leftover warm network");
            removed += 1;
        }
    }
    Ok(removed)
}

/// One sweep: how many containers were removed.
pub(crate) async fn sweep(docker: &Docker, store: &Store, instance: &str) -> Result<usize, String> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_INSTANCE}={instance}")],
    )]);
    let containers = all_containers(docker, &filters)
        .await
        .map_err(|e| format!("listing containers: {e}"))?;
    let mut removed = 0;
    for container in containers {
        let Some(id) = container.id else {
            continue;
        };
        let owner = owner_by_name(container.names.as_deref());
        // labelled by this installation but not named after a build: not a build
        // container we made (or a warm one, see `sweep_expired_warm`), kept
        let Some((build_id, attempt)) = abandoned(store, owner).await? else {
            continue;
        };
        match force_remove(docker, &id).await {
            Ok(()) => {
                tracing::info!(container = %id, build_id = build_id.get(), attempt = attempt.get(), "removed a leftover build container");
                removed += 1;
            }
            Err(error) => {
                tracing::warn!(container = %id, %error, "cannot remove a leftover build container")
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::workspace_owner;
    use ocelot_core::ids::{Attempt, BuildId};

    #[test]
    fn workspace_names_name_their_attempt() {
        assert_eq!(
            workspace_owner("build-12-3-a1B2c3"),
            Some((BuildId::from(12), Attempt::from(3)))
        );
        assert_eq!(workspace_owner("build-12-3"), None);
        assert_eq!(workspace_owner("mirror"), None);
        assert_eq!(workspace_owner("build-x-3-abc"), None);
    }
}
