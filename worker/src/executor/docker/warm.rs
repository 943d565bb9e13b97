//! Warm starts: for the images its builds used last, the worker keeps one build container
//! started ahead, on a network of its own, so that a build's scripts start without waiting
//! for Docker to create and start a container. A warm container is made exactly like a
//! build's (same image id, limits, capabilities, network isolation) and serves one build
//! only: the build takes it out of the pool, it is renamed after the build
//! (`ocelot-build-BUILD-ATTEMPT-…`, which is what the sweeper and the attempt fence go by),
//! the workspace is copied in, and it is removed with the build like any other. No build
//! ever runs in a container another build touched.
//!
//! Unused, a warm container is removed after `--warm-idle`; its label
//! [`LABEL_WARM_UNTIL`] tells any worker's sweeper when it may be removed if its worker died.
//! A warm container of an image that changed since (another image id under the same name) is
//! never handed out.

use super::network::BuildNetwork;
use super::{BuildContainer, ExecutorError, LABEL_INSTANCE, LABEL_WORKER};
use bollard::Docker;
use futures::FutureExt;
use ocelot_core::pipeline::Limits;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// When (unix seconds) an unused warm container may be removed by anyone.
pub(crate) const LABEL_WARM_UNTIL: &str = "io.ocelot.warm-until";
/// A warm container is handed out only while it has this long left before its worker
/// removes it.
const HAND_OUT_MARGIN: Duration = Duration::from_secs(60);
/// The shortest `--warm-idle`.
pub(crate) const MIN_IDLE: Duration = Duration::from_secs(2 * HAND_OUT_MARGIN.as_secs());
/// How often unused warm containers past their idle time are removed.
const REAP_EVERY: Duration = Duration::from_secs(30);

/// Which builds a warm container can serve: those of this image with these limits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct WarmKey {
    pub(crate) image: String,
    pub(crate) limits: Limits,
}

/// A started container nobody used yet. Dropped, it is removed (in the background).
#[derive(Debug)]
struct WarmContainer {
    container: BuildContainer,
    /// The image id it was created from.
    image_id: String,
    /// When its worker removes it unused.
    expires: Instant,
}

#[derive(Debug)]
enum Slot {
    Starting(tokio::task::JoinHandle<Result<WarmContainer, ExecutorError>>),
    Ready(Box<WarmContainer>),
}

#[derive(Debug)]
struct Entry {
    slot: Slot,
    last_used: Instant,
}

/// What every warm container of a worker shares.
#[derive(Debug, Clone)]
pub(crate) struct WarmSettings {
    /// For how many images a warm container is kept (`--warm-images`).
    pub(crate) images: usize,
    /// How long an unused one is kept (`--warm-idle`).
    pub(crate) idle: Duration,
    pub(crate) worker_id: String,
    pub(crate) instance: String,
    pub(crate) host_access: super::HostAccess,
}

/// A worker's warm containers, at most one per [`WarmKey`].
#[derive(Debug)]
pub(crate) struct WarmPool {
    docker: Docker,
    settings: WarmSettings,
    entries: Mutex<HashMap<WarmKey, Entry>>,
    closed: std::sync::atomic::AtomicBool,
}

impl WarmPool {
    /// The pool, and the task that removes its containers past their idle time (ends when
    /// the pool is dropped).
    pub(crate) fn start(docker: Docker, settings: WarmSettings) -> Arc<Self> {
        let pool = Arc::new(WarmPool {
            docker,
            settings,
            entries: Mutex::new(HashMap::new()),
            closed: std::sync::atomic::AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&pool);
        let (docker, settings) = (pool.docker.clone(), pool.settings.clone());
        tokio::spawn(async move {
            remove_earlier_incarnations(&docker, &settings).await;
            loop {
                tokio::time::sleep(REAP_EVERY).await;
                let Some(pool) = weak.upgrade() else { return };
                pool.reap();
            }
        });
        pool
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WarmKey, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether any warm container is kept (a build will likely take one: making its own
    /// network ahead would be wasted work).
    pub(crate) fn has_any(&self) -> bool {
        !self.lock().is_empty()
    }

    /// The warm container for `key`, if there is one (or one being started, which is
    /// waited for) made from `image_id` and not about to expire. It leaves the pool: the
    /// caller owns it, and [`WarmPool::refill`] makes the next one.
    pub(crate) async fn take(&self, key: &WarmKey, image_id: &str) -> Option<BuildContainer> {
        let entry = self.lock().remove(key)?;
        let warm = match entry.slot {
            Slot::Ready(warm) => *warm,
            Slot::Starting(starting) => match starting.await {
                Ok(Ok(warm)) => warm,
                Ok(Err(error)) => {
                    tracing::warn!(image = %key.image, %error, "a warm container could not be started");
                    return None;
                }
                Err(error) => {
                    tracing::warn!(image = %key.image, %error, "starting a warm container failed");
                    return None;
                }
            },
        };
        if warm.image_id != image_id {
            tracing::info!(image = %key.image, "the image changed: its warm container goes");
            return None;
        }
        if warm.expires <= Instant::now() + HAND_OUT_MARGIN {
            return None;
        }
        Some(warm.container)
    }

    /// Makes sure a warm container for `key` (from `image_id`) is kept or being started,
    /// making room by dropping the least recently used image's.
    pub(crate) fn refill(&self, key: WarmKey, image_id: String) {
        if self.settings.images == 0 || self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let mut entries = self.lock();
        if let Some(entry) = entries.get_mut(&key) {
            entry.last_used = Instant::now();
            return;
        }
        while entries.len() >= self.settings.images {
            let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(key, _)| key.clone())
            else {
                break;
            };
            // dropped: a ready container is removed; one still starting is removed when
            // started (its task owns it)
            if let Some(Entry {
                slot: Slot::Starting(starting),
                ..
            }) = entries.remove(&oldest)
            {
                tokio::spawn(async move { drop(starting.await) });
            }
        }
        let starting = tokio::spawn(start_warm(
            self.docker.clone(),
            self.settings.clone(),
            key.clone(),
            image_id,
        ));
        entries.insert(
            key,
            Entry {
                slot: Slot::Starting(starting),
                last_used: Instant::now(),
            },
        );
    }

    /// Removes the ready containers that nobody used within their idle time (and forgets
    /// those that could not be started).
    fn reap(&self) {
        let deadline = Instant::now() + HAND_OUT_MARGIN;
        self.lock().retain(|key, entry| {
            if let Slot::Starting(starting) = &mut entry.slot {
                match starting.now_or_never() {
                    None => return true,
                    Some(Ok(Ok(warm))) => entry.slot = Slot::Ready(Box::new(warm)),
                    Some(Ok(Err(error))) => {
                        tracing::warn!(image = %key.image, %error, "a warm container could not be started");
                        return false;
                    }
                    Some(Err(error)) => {
                        tracing::warn!(image = %key.image, %error, "starting a warm container failed");
                        return false;
                    }
                }
            }
            match &entry.slot {
                Slot::Ready(warm) => warm.expires > deadline,
                Slot::Starting(_) => true,
            }
        });
    }

    /// Removes every warm container (at shutdown) and makes no more.
    pub(crate) async fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        let entries: Vec<Entry> = self.lock().drain().map(|(_, entry)| entry).collect();
        for entry in entries {
            let warm = match entry.slot {
                Slot::Ready(warm) => *warm,
                Slot::Starting(starting) => match starting.await {
                    Ok(Ok(warm)) => warm,
                    _ => continue,
                },
            };
            warm.container.remove().await;
        }
    }
}

/// The name of a warm container and its network until a build takes it.
fn warm_name() -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("ocelot-warm-{}", &suffix[..12])
}

async fn start_warm(
    docker: Docker,
    settings: WarmSettings,
    key: WarmKey,
    image_id: String,
) -> Result<WarmContainer, ExecutorError> {
    let expires = Instant::now() + settings.idle;
    let until = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(settings.idle)
        .as_secs();
    let labels = HashMap::from([
        (LABEL_INSTANCE.to_string(), settings.instance.clone()),
        (LABEL_WORKER.to_string(), settings.worker_id.clone()),
        (LABEL_WARM_UNTIL.to_string(), until.to_string()),
    ]);
    let name = warm_name();
    let network =
        BuildNetwork::create(&docker, &name, labels.clone(), settings.host_access).await?;
    let container = BuildContainer::create_started(
        &docker, &name, &image_id, labels, key.limits, network, None,
    )
    .await?;
    tracing::debug!(image = %key.image, "warm container ready");
    Ok(WarmContainer {
        container,
        image_id,
        expires,
    })
}

/// Removes the warm containers and networks that a previous run of this worker (same id)
/// left when it was killed: nobody else would before they expire.
async fn remove_earlier_incarnations(docker: &Docker, settings: &WarmSettings) {
    use bollard::query_parameters::ListNetworksOptionsBuilder;
    let filters = HashMap::from([(
        "label".to_string(),
        vec![
            format!("{LABEL_INSTANCE}={}", settings.instance),
            format!("{LABEL_WORKER}={}", settings.worker_id),
            LABEL_WARM_UNTIL.to_string(),
        ],
    )]);
    let containers = crate::sweeper::all_containers(docker, &filters)
        .await
        .unwrap_or_default();
    for container in containers {
        let unclaimed = container.names.as_deref().is_some_and(|names| {
            names
                .iter()
                .all(|name| super::container_owner(name).is_none())
        });
        if let (true, Some(id)) = (unclaimed, container.id) {
            BuildContainer::adopt(docker, id).remove().await;
        }
    }
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .unwrap_or_default();
    for network in networks {
        // one a build still uses is refused by Docker, and removed after the build
        if let Some(id) = network.id {
            let _ = docker.remove_network(&id).await;
        }
    }
}

/// The unix time a warm container's labels say it may be removed at, if they say.
pub(crate) fn warm_until(labels: &HashMap<String, String>) -> Option<u64> {
    labels.get(LABEL_WARM_UNTIL)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_names_are_not_build_names() {
        let name = warm_name();
        assert!(name.starts_with("ocelot-warm-"));
        assert_eq!(super::super::container_owner(&format!("/{name}")), None);
        assert_ne!(warm_name(), name);
    }

    #[test]
    fn the_expiry_label_is_read_back() {
        let labels = HashMap::from([(LABEL_WARM_UNTIL.to_string(), "1700000000".to_string())]);
        assert_eq!(warm_until(&labels), Some(1_700_000_000));
        assert_eq!(warm_until(&HashMap::new()), None);
    }
}
