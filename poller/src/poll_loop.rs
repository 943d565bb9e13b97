//! Claims due polls in batches and works on them with bounded concurrency. One poll: list
//! the remote's heads, keep the branches its patterns match, queue a build for each head
//! that moved (new branches included), record the heads and when it is due next. A failing
//! repo backs off and records its error; it never holds up the others. Each poll is counted
//! by outcome (`ocelot_poll_results_total`); each build it queues gets its trace id here.

use crate::context::PollerContext;
use ocelot_core::git::{GitAuth, RemoteRef};
use ocelot_core::metrics::{self, PollResult};
use ocelot_core::model::{Poll, TriggerKind};
use ocelot_core::schedule::{self, BranchPatterns};
use ocelot_core::secrets::{BuildCredentials, SecretStore};
use ocelot_core::store::{ClaimedPoll, PollOutcome};
use ocelot_core::trigger::TriggerRequest;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long a claimed poll stays this poller's before another may take it.
const LEASE: Duration = Duration::from_secs(300);
/// How many due polls are claimed at once.
const BATCH: i64 = 100;
/// How long one `git ls-remote` may take.
const LS_REMOTE_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) async fn run(
    context: PollerContext,
    concurrency: usize,
    tick: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let stop = CancellationToken::new();
    let stopper = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.cancel();
    });
    // bounds the ls-remotes in flight across every claimed poll
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut running = JoinSet::new();
    loop {
        if stop.is_cancelled() {
            break;
        }
        while running.try_join_next().is_some() {}
        // claim no more than can start soon: the lease runs from the claim
        let room = i64::try_from(permits.available_permits())
            .unwrap_or(0)
            .min(BATCH);
        let claimed = if room > 0 {
            match context.store.claim_due_polls(room, LEASE).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(%error, "cannot claim due polls");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let busy = !claimed.is_empty();
        for poll in claimed {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let context = context.clone();
            running.spawn(async move {
                poll_once(&context, poll).await;
                drop(permit);
            });
        }
        if busy {
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(tick) => {}
        }
    }
    tracing::info!(in_flight = running.len(), "poller stopping");
    // polls cut off keep their lease and are taken again when it ends
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while running.join_next().await.is_some() {}
    })
    .await;
}

/// The heads of `refs/heads/*` that `patterns` match.
fn tracked_heads(
    refs: Vec<ocelot_core::git::RemoteRef>,
    patterns: &BranchPatterns,
) -> BTreeMap<String, String> {
    refs.into_iter()
        .filter_map(|r| {
            let branch = r.name.strip_prefix("refs/heads/")?.to_string();
            patterns.matches(&branch).then_some((branch, r.commit))
        })
        .collect()
}

/// Which branches to build: every moved or new head (all of them on a first poll with
/// `build_now`, none on a first poll without).
fn moved_heads(
    poll: &Poll,
    heads: &BTreeMap<String, String>,
) -> Vec<(String, String, Option<String>)> {
    match &poll.heads {
        None if !poll.build_now => Vec::new(),
        None => heads
            .iter()
            .map(|(b, c)| (b.clone(), c.clone(), None))
            .collect(),
        Some(seen) => heads
            .iter()
            .filter(|(branch, commit)| seen.get(*branch) != Some(*commit))
            .map(|(branch, commit)| (branch.clone(), commit.clone(), seen.get(branch).cloned()))
            .collect(),
    }
}

/// The branch heads of `url`, or why they could not be listed.
async fn list_heads(url: String, auth: Option<GitAuth>) -> Result<Vec<RemoteRef>, String> {
    let shown = url.clone();
    let listed = tokio::time::timeout(
        LS_REMOTE_TIMEOUT,
        tokio::task::spawn_blocking(move || ocelot_core::git::ls_remote(&url, auth.as_ref())),
    )
    .await;
    match listed {
        Ok(Ok(Ok(refs))) => Ok(refs),
        Ok(Ok(Err(error))) => Err(error.to_string()),
        Ok(Err(error)) => Err(format!("ls-remote task failed: {error}")),
        Err(_) => Err(format!(
            "{shown} did not answer within {} s",
            LS_REMOTE_TIMEOUT.as_secs()
        )),
    }
}

async fn poll_once(context: &PollerContext, claimed: ClaimedPoll) {
    let poll = &claimed.poll;
    let now = SystemTime::now();
    let url = poll.repo_url.clone();
    let refs = match context.secrets.for_repo(&poll.repo_name).await {
        Ok(credentials) => {
            let auth = BuildCredentials::new(credentials).git_auth(&url);
            list_heads(url, auth).await
        }
        Err(error) => Err(format!("cannot read the repo's credentials: {error}")),
    };
    let patterns = BranchPatterns::new(&poll.branches).map_err(|e| e.to_string());
    let outcome = match (refs, patterns) {
        (Ok(refs), Ok(patterns)) => {
            let heads = tracked_heads(refs, &patterns);
            let recorded = queue_moved(context, poll, heads).await;
            metrics::polled(if recorded.moved {
                PollResult::NewCommit
            } else {
                PollResult::Unchanged
            });
            PollOutcome {
                heads: Some(recorded.heads),
                error: recorded.error,
                failures: 0,
                next_due: schedule::next_due(&poll.schedule, poll.next_due, now),
            }
        }
        (Err(error), _) | (_, Err(error)) => {
            metrics::polled(PollResult::Error);
            let failures = poll.failures.saturating_add(1);
            tracing::warn!(repo = %poll.repo_name, failures, %error, "poll failed");
            PollOutcome {
                heads: None,
                error: Some(error),
                failures,
                next_due: now + schedule::backoff(&poll.schedule, failures, now),
            }
        }
    };
    match context.store.record_poll(&claimed, &outcome).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(repo = %poll.repo_name, "the poll changed or its lease expired meanwhile: outcome dropped");
        }
        Err(error) => {
            tracing::warn!(repo = %poll.repo_name, %error, "cannot record the poll (it is retried after its lease)");
        }
    }
}

/// The heads to remember and the error to show after queueing builds.
struct Queued {
    heads: BTreeMap<String, String>,
    error: Option<String>,
    /// Whether a tracked head moved (or appeared) since the last poll.
    moved: bool,
}

async fn queue_moved(
    context: &PollerContext,
    poll: &Poll,
    heads: BTreeMap<String, String>,
) -> Queued {
    let mut remembered = heads.clone();
    let mut errors = Vec::new();
    let moved = moved_heads(poll, &heads);
    let any_moved = !moved.is_empty();
    for (branch, commit, previous) in moved {
        // the build's trace id, from the poll that saw the head move
        let trace_id = ocelot_core::trace::new_trace_id();
        let request = TriggerRequest {
            kind: TriggerKind::Poll,
            previous_commit: previous.clone(),
            trace_id: Some(trace_id.clone()),
            ..TriggerRequest::manual(
                poll.repo_name.clone(),
                Some(branch.clone()),
                Some(commit.clone()),
            )
        };
        match context.trigger.queue(request).await {
            Ok(inserted) => {
                // an existing build (a webhook was first) keeps its own trace id
                let trace_id = inserted.build.trace_id.as_deref().unwrap_or(&trace_id);
                tracing::info!(%trace_id, repo = %poll.repo_name, %branch, %commit, build_id = inserted.build.id.get(),
                    created = inserted.created, "head moved: build queued");
            }
            Err(error) => {
                tracing::warn!(%trace_id, repo = %poll.repo_name, %branch, %error, "cannot queue a build");
                errors.push(format!("{branch}: {error}"));
                // not remembered: the next poll tries this head again
                match previous {
                    Some(previous) => remembered.insert(branch, previous),
                    None => remembered.remove(&branch),
                };
            }
        }
    }
    Queued {
        heads: remembered,
        error: (!errors.is_empty()).then(|| errors.join("; ")),
        moved: any_moved,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocelot_core::ids::RepoId;
    use ocelot_core::model::PollSchedule;

    fn poll(heads: Option<&[(&str, &str)]>, build_now: bool) -> Poll {
        Poll {
            id: 1,
            repo_id: RepoId::from(1),
            repo_name: "r".into(),
            repo_url: "git://h/r".into(),
            branches: vec!["main".into()],
            schedule: PollSchedule::Every(Duration::from_secs(60)),
            build_now,
            next_due: SystemTime::UNIX_EPOCH,
            last_polled_at: None,
            last_error: None,
            failures: 0,
            heads: heads.map(|h| {
                h.iter()
                    .map(|(b, c)| (b.to_string(), c.to_string()))
                    .collect()
            }),
        }
    }

    fn heads(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(b, c)| (b.to_string(), c.to_string()))
            .collect()
    }

    #[test]
    fn first_polls_build_only_with_build_now() {
        let now = heads(&[("main", "a")]);
        assert!(moved_heads(&poll(None, false), &now).is_empty());
        assert_eq!(
            moved_heads(&poll(None, true), &now),
            vec![("main".into(), "a".into(), None)]
        );
    }

    #[test]
    fn moved_and_new_branches_build_once() {
        let seen = poll(Some(&[("main", "a"), ("release/1", "b")]), false);
        let now = heads(&[("main", "a2"), ("release/1", "b"), ("release/2", "c")]);
        assert_eq!(
            moved_heads(&seen, &now),
            vec![
                ("main".into(), "a2".into(), Some("a".into())),
                ("release/2".into(), "c".into(), None)
            ]
        );
    }

    #[test]
    fn only_matching_heads_are_tracked() {
        let patterns = BranchPatterns::new(&["main".into(), "release/*".into()]).unwrap();
        let refs = vec![
            ocelot_core::git::RemoteRef {
                name: "HEAD".into(),
                commit: "h".into(),
            },
            ocelot_core::git::RemoteRef {
                name: "refs/heads/main".into(),
                commit: "a".into(),
            },
            ocelot_core::git::RemoteRef {
                name: "refs/heads/release/1".into(),
                commit: "b".into(),
            },
            ocelot_core::git::RemoteRef {
                name: "refs/heads/feature".into(),
                commit: "c".into(),
            },
            ocelot_core::git::RemoteRef {
                name: "refs/tags/release/2".into(),
                commit: "d".into(),
            },
        ];
        assert_eq!(
            tracked_heads(refs, &patterns),
            heads(&[("main", "a"), ("release/1", "b")])
        );
    }
}
