//! Caches (`cache:` in `ocelot.yml`): before the first stage each entry's key is rendered
//! from the checkout ([`key`]), the best saved cache is found (its key, else the longest
//! restore prefix; the build's branch, else the default branch's; a fork's pull request
//! only its own) and unpacked into the workspace ([`restore`]); after a passing build, each
//! entry whose key missed is saved ([`save`]). A cache never fails a build: whatever goes
//! wrong is a log line, and a corrupt or missing object is a miss.

mod key;
mod restore;
mod save;

use crate::attempt_log::AttemptLog;
use crate::context::WorkerContext;
use crate::executor::Environment;
use ocelot_core::model::{Build, PullRequestRef};
use ocelot_core::pipeline::Pipeline;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The stage name of the lines that say what was saved.
const CACHE_STAGE: &str = "cache";

/// The worker's cache settings.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct CacheSettings {
    /// The largest cache a build saves, in MiB: a bigger one is not saved (a line in the
    /// build's log says so)
    #[arg(
        long = "max-cache-mib",
        env = "OCELOT_MAX_CACHE_MIB",
        default_value_t = 2048
    )]
    pub max_cache_mib: u64,
    /// How long a cache is kept after it was last saved or restored
    #[arg(long = "cache-expire-in", env = "OCELOT_CACHE_EXPIRE_IN", value_parser = ocelot_core::pipeline::parse_duration, default_value = "7d")]
    pub cache_expire_in: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            max_cache_mib: 2048,
            cache_expire_in: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Where a build's caches are read from and saved to.
#[derive(Debug, Clone)]
pub(crate) struct CacheScope {
    /// The build's own scope: its branch, or `pr-N` for a fork's pull request.
    pub(crate) own: String,
    /// The scopes read, in order: its own, then the default branch's (not for forks).
    pub(crate) read: Vec<String>,
    pub(crate) from_fork: bool,
}

impl CacheScope {
    pub(crate) fn of(
        branch: &str,
        pull_request: Option<&PullRequestRef>,
        default_branch: &str,
    ) -> Self {
        match pull_request {
            Some(pr) if pr.from_fork => {
                let own = format!("pr-{}", pr.number);
                CacheScope {
                    read: vec![own.clone()],
                    own,
                    from_fork: true,
                }
            }
            _ => {
                let own = branch.to_string();
                let mut read = vec![own.clone()];
                if default_branch != own {
                    read.push(default_branch.to_string());
                }
                CacheScope {
                    own,
                    read,
                    from_fork: false,
                }
            }
        }
    }
}

/// One `cache:` entry of a build, its key rendered.
#[derive(Debug, Clone)]
pub(crate) struct PlannedCache {
    pub(crate) key: String,
    pub(crate) restore_prefixes: Vec<String>,
    pub(crate) paths: Vec<ocelot_core::pipeline::ArtifactPattern>,
    /// Saved after a passing build: the key missed.
    pub(crate) save: bool,
}

/// The caches of a build, between restore and save.
#[derive(Debug, Default)]
pub(crate) struct BuildCaches {
    scope: Option<CacheScope>,
    planned: Vec<PlannedCache>,
}

/// What restoring and saving need besides the build.
pub(crate) struct CacheJob<'a> {
    pub(crate) context: &'a WorkerContext,
    pub(crate) build: &'a Build,
    pub(crate) environment: &'a Environment,
    pub(crate) cancel: &'a CancellationToken,
}

/// Renders the keys of the pipeline's caches from the checkout at `checkout` and restores
/// each one it finds. Nothing here fails the build.
pub(crate) async fn restore_all(
    job: &CacheJob<'_>,
    pipeline: &Pipeline,
    checkout: &Path,
    log: &mut AttemptLog,
) -> BuildCaches {
    if pipeline.cache.is_empty() {
        return BuildCaches::default();
    }
    let default_branch = match job.context.store.find_repo(&job.build.repo_name).await {
        Ok(repo) => repo.default_branch,
        Err(error) => {
            log.system(
                crate::attempt_log::SETUP_STAGE,
                format!("cache: skipped: the repo could not be read ({error})"),
            )
            .await;
            return BuildCaches::default();
        }
    };
    let scope = CacheScope::of(
        &job.build.branch,
        job.build.pull_request.as_ref(),
        &default_branch,
    );
    let rendered = key::render_all(&pipeline.cache, &job.build.branch, checkout).await;
    let mut planned: Vec<PlannedCache> = Vec::new();
    for (plan, notes) in rendered {
        for note in notes {
            log.system(crate::attempt_log::SETUP_STAGE, note).await;
        }
        let plan = match plan {
            Ok(plan) => plan,
            Err(line) => {
                log.system(crate::attempt_log::SETUP_STAGE, line).await;
                continue;
            }
        };
        if planned.iter().any(|p| p.key == plan.key) {
            log.system(
                crate::attempt_log::SETUP_STAGE,
                format!("cache `{}`: named twice: the second is skipped", plan.key),
            )
            .await;
            continue;
        }
        planned.push(plan);
    }
    for plan in &mut planned {
        let started = Instant::now();
        let restored = tokio::select! {
            restored = restore::restore(job, &scope, plan, log) => restored,
            () = job.cancel.cancelled() => return BuildCaches::default(),
        };
        plan.save = !restored;
        tracing::debug!(key = %plan.key, restored, elapsed_ms = started.elapsed().as_millis() as u64, "cache restore");
    }
    BuildCaches {
        scope: Some(scope),
        planned,
    }
}

/// Saves the caches whose key missed (after a passing build).
pub(crate) async fn save_all(job: &CacheJob<'_>, caches: &BuildCaches, log: &mut AttemptLog) {
    let Some(scope) = &caches.scope else {
        return;
    };
    for plan in caches.planned.iter().filter(|p| p.save) {
        if log.fenced_out() {
            return;
        }
        let saved = tokio::select! {
            () = save::save(job, scope, plan, log) => false,
            () = job.cancel.cancelled() => true,
        };
        if saved {
            log.system(
                CACHE_STAGE,
                format!("cache `{}`: not saved: the build was cancelled", plan.key),
            )
            .await;
            return;
        }
    }
}

/// `1.5 MiB`, `12 KiB`, `100 bytes`.
fn human_bytes(bytes: u64) -> String {
    crate::artifacts::human_bytes(bytes)
}

/// `0.42 s`.
fn seconds(elapsed: Duration) -> String {
    format!("{:.2} s", elapsed.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pr(number: i64, from_fork: bool) -> PullRequestRef {
        PullRequestRef {
            number,
            base_branch: "main".into(),
            from_fork,
        }
    }

    #[test]
    fn scopes_fall_back_to_the_default_branch_but_never_for_forks() {
        let push = CacheScope::of("feature", None, "main");
        assert_eq!(push.own, "feature");
        assert_eq!(push.read, ["feature", "main"]);
        assert!(!push.from_fork);
        assert_eq!(CacheScope::of("main", None, "main").read, ["main"]);
        let fork = CacheScope::of("pr-head", Some(&pr(7, true)), "main");
        assert_eq!(fork.own, "pr-7");
        assert_eq!(fork.read, ["pr-7"]);
        assert!(fork.from_fork);
        let same_repo = CacheScope::of("topic", Some(&pr(8, false)), "main");
        assert_eq!(same_repo.read, ["topic", "main"]);
        assert!(!same_repo.from_fork);
    }
}
