//! Pulls jobs: one loop per tag, all sharing a semaphore of `--concurrency` permits, so a
//! worker never runs more builds than it may. A running build keeps its job's lease (the ack
//! wait) with confirmed in-progress acks every 2 s at most; a build whose lease lapsed (the
//! worker was paused or cut off for longer than the ack wait) is stopped and its job left
//! alone, for the worker that took it over. A final build acks its job. On shutdown the loops stop
//! pulling and running builds get a grace period; builds still running then are stopped and
//! their jobs handed back (nak) so that another worker runs them at once.

use crate::build_runner::{JobDisposition, run_build};
use crate::context::WorkerContext;
use ocelot_core::metrics::{self, BusOperation};
use ocelot_core::queue::{JobMessage, PROGRESS_EVERY, WorkerInfo};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How long a job handed back after a failed claim waits before it is delivered again.
const RETRY_DELAY: Duration = Duration::from_secs(5);
/// How long builds stopped after the grace period may take to clean up and hand back.
const HAND_BACK_WAIT: Duration = Duration::from_secs(30);

/// The job loop's clocks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// How long running builds may take to finish after a shutdown signal.
    pub(crate) grace: Duration,
    /// The job consumer's ack wait.
    pub(crate) ack_wait: Duration,
}
/// How long one pull waits for a job before the loop checks for shutdown.
const PULL_WAIT: Duration = Duration::from_secs(2);

pub(crate) async fn run(
    context: WorkerContext,
    registry_entry: WorkerInfo,
    concurrency: usize,
    timing: Timing,
    paused: tokio::sync::watch::Receiver<Option<String>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tags = registry_entry.tags.clone();
    // permits bound the builds running at once across every tag
    let permits = Arc::new(Semaphore::new(concurrency));
    let _slots = metrics::worker_slots(concurrency);
    // builds running now, for the registry entry
    let running_count = Arc::new(AtomicUsize::new(0));
    let count_changed = Arc::new(tokio::sync::Notify::new());
    // cancelled on shutdown: the pull loops stop taking jobs
    let stop = CancellationToken::new();
    let registry_stop = CancellationToken::new();
    let registry = tokio::spawn(crate::registry::run(
        context.bus.clone(),
        registry_entry,
        running_count.clone(),
        count_changed.clone(),
        paused.clone(),
        registry_stop.clone(),
    ));
    let depth = tokio::spawn(crate::queue_depth::run(
        context.bus.clone(),
        tags.clone(),
        crate::queue_depth::SAMPLE_EVERY,
        registry_stop.clone(),
    ));
    let builds = Arc::new(tokio::sync::Mutex::new(JoinSet::new()));
    let mut loops = JoinSet::new();
    for tag in &tags {
        let consumer = context.bus.job_consumer(tag, timing.ack_wait).await?;
        let ack_wait = consumer.ack_wait();
        let running_count = running_count.clone();
        let count_changed = count_changed.clone();
        let context = context.clone();
        let permits = permits.clone();
        let stop = stop.clone();
        let builds = builds.clone();
        let mut paused = paused.clone();
        loops.spawn(async move {
            loop {
                // back-pressure: no job while a check fails (low disk, a dependency down)
                tokio::select! {
                    () = stop.cancelled() => return,
                    unpaused = paused.wait_for(Option::is_none) => if unpaused.is_err() {
                        tracing::error!(tag = consumer.tag(), "the health checks stopped: this tag takes no more jobs");
                        return;
                    },
                }
                let permit = tokio::select! {
                    () = stop.cancelled() => return,
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => return,
                    },
                };
                // the worker may have paused while it waited for a free slot
                if paused.borrow().is_some() {
                    drop(permit);
                    continue;
                }
                let pulled = tokio::select! {
                    () = stop.cancelled() => return,
                    pulled = consumer.next(PULL_WAIT) => pulled,
                };
                match pulled {
                    // paused while the pull waited: the job goes back untouched, for a
                    // worker that takes jobs (or this one, once it resumes)
                    Ok(Some(job)) if paused.borrow().is_some() => {
                        if let Err(error) = job.nak(Duration::ZERO).await {
                            metrics::bus_error(BusOperation::AckJob);
                            tracing::warn!(build_id = job.job.build_id.get(), %error, "handing back a job taken while pausing failed (it comes back after the ack wait)");
                        }
                    }
                    Ok(Some(job)) => {
                        let context = context.clone();
                        let mut running = builds.lock().await;
                        // forget builds that are done, so the set does not grow forever
                        while running.try_join_next().is_some() {}
                        let running_count = running_count.clone();
                        let count_changed = count_changed.clone();
                        running_count.fetch_add(1, Ordering::SeqCst);
                        count_changed.notify_one();
                        let slot = metrics::slot_in_use();
                        let span = job_span(&job);
                        running.spawn(async move {
                            handle_job(&context, job, ack_wait).instrument(span).await;
                            running_count.fetch_sub(1, Ordering::SeqCst);
                            count_changed.notify_one();
                            drop(slot);
                            drop(permit);
                        });
                    }
                    Ok(None) => {}
                    Err(error) => {
                        metrics::bus_error(BusOperation::PullJobs);
                        tracing::warn!(tag = consumer.tag(), %error, "pulling jobs failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }
    shutdown.await;
    tracing::info!("worker stopping: no new jobs; waiting for running builds");
    stop.cancel();
    while loops.join_next().await.is_some() {}
    let mut running = std::mem::take(&mut *builds.lock().await);
    if !all_end_within(&mut running, timing.grace).await {
        tracing::warn!(
            left = running.len(),
            "grace period over: stopping the builds still running and handing their jobs back"
        );
        context.hand_back.cancel();
        if !all_end_within(&mut running, HAND_BACK_WAIT).await {
            tracing::warn!(
                left = running.len(),
                "builds did not stop in time: cut off (their jobs are delivered again after the ack wait)"
            );
            running.shutdown().await;
        }
    }
    registry_stop.cancel();
    let _ = registry.await;
    let _ = depth.await;
    Ok(())
}

/// The span of a job's handling: its build and its trace id, from the job message (or,
/// for a job of an earlier release, from the build row once claimed: see `run_build`).
fn job_span(job: &JobMessage) -> tracing::Span {
    let build_id = job.job.build_id.get();
    match job
        .job
        .trace_id
        .as_deref()
        .filter(|id| ocelot_core::trace::is_trace_id(id))
    {
        Some(trace_id) => tracing::info_span!("job", %trace_id, build_id),
        None => tracing::info_span!("job", trace_id = tracing::field::Empty, build_id),
    }
}

/// Waits up to `limit` for every task of `tasks` to end; whether they all did.
async fn all_end_within(tasks: &mut JoinSet<()>, limit: Duration) -> bool {
    tokio::time::timeout(limit, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_ok()
}

/// The lease of a job: JetStream delivers it again to another worker once it goes `ack_wait`
/// without a renewal. Renewals are confirmed by the server; the lease may have run out once
/// none was confirmed for `ack_wait` (counted from when the confirmed renewal was sent, which
/// is no later than when the server got it). Whatever this clock says, the attempt number
/// in Postgres fences a lapsed attempt's writes: the clock only makes the worker stop.
#[derive(Debug)]
struct Lease {
    ack_wait: Duration,
    renewed_at: Instant,
}

impl Lease {
    fn new(ack_wait: Duration) -> Self {
        Lease {
            ack_wait,
            renewed_at: Instant::now(),
        }
    }

    /// How often it is renewed: well within the ack wait, and at most [`PROGRESS_EVERY`]
    /// apart, so that a renewal lost on the way (a NATS reconnect) costs nothing.
    fn renew_every(&self) -> Duration {
        (self.ack_wait / 4).min(PROGRESS_EVERY)
    }

    fn lapsed(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.renewed_at) >= self.ack_wait
    }
}

/// Keeps `job`'s lease until `done`; cancels `lost` and returns true when it lapsed.
async fn keep_lease(
    job: &JobMessage,
    mut lease: Lease,
    done: CancellationToken,
    lost: CancellationToken,
) -> bool {
    let build_id = job.job.build_id.get();
    let every = lease.renew_every();
    loop {
        tokio::select! {
            () = done.cancelled() => return false,
            () = tokio::time::sleep(every) => {}
        }
        // checked before renewing: a worker paused for longer (SIGSTOP, a frozen VM) may have
        // had its job delivered to another worker meanwhile
        let sent_at = Instant::now();
        if lease.lapsed(sent_at) {
            tracing::warn!(build_id, silent = ?sent_at.saturating_duration_since(lease.renewed_at),
                ack_wait = ?lease.ack_wait,
                "the job's lease lapsed (no renewal confirmed within the ack wait): stopping the build; another worker takes it over");
            lost.cancel();
            return true;
        }
        match job.in_progress(every).await {
            Ok(()) => lease.renewed_at = sent_at,
            Err(error) => {
                metrics::bus_error(BusOperation::RenewLease);
                tracing::warn!(build_id, %error, "renewing the job's lease failed (retried)")
            }
        }
    }
}

async fn handle_job(context: &WorkerContext, job: JobMessage, ack_wait: Duration) {
    let build_id = job.job.build_id;
    let lease = Lease::new(ack_wait);
    // the build stops (as at a shutdown) when its lease lapses
    let lost = context.hand_back.child_token();
    let mut context = context.clone();
    context.hand_back = lost.clone();
    let done = CancellationToken::new();
    let run = async {
        // a job delivered again may take over a running build; a first delivery may not
        let disposition = run_build(
            &context,
            build_id,
            job.delivered() > 1,
            job.job
                .trace_id
                .as_deref()
                .filter(|id| ocelot_core::trace::is_trace_id(id)),
        )
        .await;
        done.cancel();
        disposition
    };
    let (disposition, lapsed) = tokio::join!(run, keep_lease(&job, lease, done.clone(), lost));
    if lapsed {
        // the job may be another worker's now: acking or handing back would end or move
        // that worker's delivery (acks go by stream message); it comes back by itself
        tracing::info!(
            build_id = build_id.get(),
            ?disposition,
            "the lapsed job is left alone (delivered again after its ack wait, or already)"
        );
        return;
    }
    let acked = match disposition {
        JobDisposition::Done => job.ack().await,
        JobDisposition::Retry => job.nak(RETRY_DELAY).await,
        JobDisposition::HandBack => job.nak(Duration::ZERO).await,
    };
    if let Err(error) = acked {
        metrics::bus_error(BusOperation::AckJob);
        tracing::warn!(build_id = build_id.get(), %error, "acknowledging the job failed (it may run again; the claim fences it)");
    }
}

#[cfg(test)]
mod tests {
    use super::Lease;
    use std::time::{Duration, Instant};

    #[test]
    fn a_lease_is_renewed_often_and_lapses_after_the_ack_wait() {
        let lease = Lease::new(Duration::from_secs(10));
        assert_eq!(lease.renew_every(), Duration::from_secs(2));
        assert_eq!(
            Lease::new(Duration::from_secs(4)).renew_every(),
            Duration::from_secs(1)
        );
        let start = lease.renewed_at;
        assert!(!lease.lapsed(start + Duration::from_millis(9_999)));
        assert!(lease.lapsed(start + Duration::from_secs(10)));
        assert!(!lease.lapsed(Instant::now()));
    }
}
