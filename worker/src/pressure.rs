//! Back-pressure: every few seconds the worker checks what it needs to run builds well:
//! free disk under its cache directory, Postgres, NATS and (for container builds) the Docker
//! Engine. While any check fails, the worker takes no new job (running builds go on), says
//! why in its registry entry (`ocelot workers`) and in `ocelot_worker_paused{reason}`, and
//! resumes by itself once all pass.

use ocelot_core::health::Dependency;
use ocelot_core::metrics::PauseReason;
use ocelot_core::queue::Bus;
use ocelot_core::store::Store;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What the checks look at.
#[derive(Debug, Clone)]
pub(crate) struct Checks {
    pub(crate) store: Store,
    pub(crate) bus: Bus,
    pub(crate) docker: Option<bollard::Docker>,
    /// The directory whose file system holds workspaces and mirrors.
    pub(crate) cache_dir: PathBuf,
    /// Free space under which no job is taken.
    pub(crate) min_free_disk_bytes: u64,
    /// How long one check may take.
    pub(crate) timeout: Duration,
}

/// Free bytes (for unprivileged users) of the file system holding `path`.
fn free_bytes(path: &std::path::Path) -> Result<u64, String> {
    let stats =
        rustix::fs::statvfs(path).map_err(|e| format!("statvfs {}: {e}", path.display()))?;
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

fn mib(bytes: u64) -> u64 {
    bytes / (1024 * 1024)
}

impl Checks {
    /// Why the worker should not take jobs now (`None`: all is well); the reasons'
    /// gauges (`ocelot_worker_paused`) are set on the way.
    pub(crate) async fn problem(&self) -> Option<String> {
        let problems = self.problems().await;
        let reasons: Vec<PauseReason> = problems.iter().map(|(reason, _)| *reason).collect();
        ocelot_core::metrics::worker_paused(&reasons);
        let texts: Vec<String> = problems.into_iter().map(|(_, text)| text).collect();
        (!texts.is_empty()).then(|| texts.join("; "))
    }

    /// Every failing check, with its reason.
    async fn problems(&self) -> Vec<(PauseReason, String)> {
        let mut problems = Vec::new();
        match free_bytes(&self.cache_dir) {
            Ok(free) if free < self.min_free_disk_bytes => problems.push((
                PauseReason::Disk,
                format!(
                    "free disk {} MiB under {} MiB at {}",
                    mib(free),
                    mib(self.min_free_disk_bytes),
                    self.cache_dir.display()
                ),
            )),
            Ok(_) => {}
            Err(error) => problems.push((PauseReason::Disk, error)),
        }
        let dependencies =
            ocelot_core::health::dependency_problems_by_kind(&self.store, &self.bus, self.timeout)
                .await;
        problems.extend(dependencies.into_iter().map(|(dependency, text)| {
            let reason = match dependency {
                Dependency::Postgres => PauseReason::Postgres,
                Dependency::Nats => PauseReason::Nats,
            };
            (reason, text)
        }));
        if let Some(docker) = &self.docker {
            match tokio::time::timeout(self.timeout, docker.ping()).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => problems.push((
                    PauseReason::Docker,
                    format!("Docker Engine unreachable: {error}"),
                )),
                Err(_) => problems.push((
                    PauseReason::Docker,
                    "the Docker Engine does not answer".to_string(),
                )),
            }
        }
        problems
    }
}

/// Runs the checks every `every` until `stop`, publishing the current problem.
pub(crate) async fn run(
    checks: Checks,
    every: Duration,
    paused: watch::Sender<Option<String>>,
    stop: CancellationToken,
) {
    loop {
        let problem = checks.problem().await;
        paused.send_if_modified(|current| {
            if *current == problem {
                return false;
            }
            match &problem {
                Some(reason) => tracing::warn!(%reason, "taking no new jobs"),
                None => tracing::info!("all checks pass again: taking jobs"),
            }
            *current = problem.clone();
            true
        });
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::free_bytes;

    #[test]
    fn free_disk_is_read_from_the_file_system() {
        let free = free_bytes(&std::env::temp_dir()).unwrap();
        assert!(free > 0);
        assert!(free_bytes(std::path::Path::new("/no/such/dir")).is_err());
    }
}
