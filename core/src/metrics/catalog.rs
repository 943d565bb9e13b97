//! Every metric Ocelot records: its name, type, labels and meaning, and the one function
//! that records it. The README's "Metrics" section lists the same.

use crate::build_state::{BuildState, StageState};
use std::time::Duration;

/// Builds created by a trigger, by trigger kind (counter; admin, hookhandler, poller).
pub const BUILDS_TRIGGERED: &str = "ocelot_builds_triggered_total";
/// Builds that reached a final state, by state and trigger kind (counter).
pub const BUILDS_FINISHED: &str = "ocelot_builds_finished_total";
/// How long a worker ran a build, claim to result, by final state (histogram).
pub const BUILD_DURATION: &str = "ocelot_build_duration_seconds";
/// How long a stage ran, by its final state (histogram; worker).
pub const STAGE_DURATION: &str = "ocelot_stage_duration_seconds";
/// How long a build waited, queued to claimed, by routing tag (histogram; worker).
pub const BUILD_QUEUED: &str = "ocelot_build_queued_seconds";
/// Builds running now on this worker (gauge).
pub const BUILDS_RUNNING: &str = "ocelot_builds_running";
/// Builds this worker may run at once, `--concurrency` (gauge).
pub const WORKER_SLOTS: &str = "ocelot_worker_slots";
/// Slots taken now: a job is being claimed or its build runs (gauge).
pub const WORKER_SLOTS_IN_USE: &str = "ocelot_worker_slots_in_use";
/// 1 while this worker takes no jobs for that reason, else 0 (gauge, label `reason`).
pub const WORKER_PAUSED: &str = "ocelot_worker_paused";
/// Jobs waiting in the queue of a routing tag, not yet taken by a worker (gauge).
pub const QUEUE_DEPTH: &str = "ocelot_queue_depth";
/// Build output lines kept in the log (counter; worker).
pub const LOG_LINES: &str = "ocelot_log_lines_total";
/// Bytes of build output lines kept in the log (counter; worker).
pub const LOG_BYTES: &str = "ocelot_log_bytes_total";
/// Webhook requests answered, by provider and HTTP status (counter; hookhandler).
pub const WEBHOOK_DELIVERIES: &str = "ocelot_webhook_deliveries_total";
/// Polls of a repository, by outcome (counter; poller).
pub const POLL_RESULTS: &str = "ocelot_poll_results_total";
/// Failed Postgres calls, by kind (counter; every service).
pub const DATABASE_ERRORS: &str = "ocelot_database_errors_total";
/// Failed NATS calls, by operation (counter; every service).
pub const BUS_ERRORS: &str = "ocelot_bus_errors_total";

/// Every metric's name, for tests and the README.
pub const ALL: [&str; 16] = [
    BUILDS_TRIGGERED,
    BUILDS_FINISHED,
    BUILD_DURATION,
    STAGE_DURATION,
    BUILD_QUEUED,
    BUILDS_RUNNING,
    WORKER_SLOTS,
    WORKER_SLOTS_IN_USE,
    WORKER_PAUSED,
    QUEUE_DEPTH,
    LOG_LINES,
    LOG_BYTES,
    WEBHOOK_DELIVERIES,
    POLL_RESULTS,
    DATABASE_ERRORS,
    BUS_ERRORS,
];

/// The help text of every metric (`# HELP` lines).
pub(super) fn describe_all() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        BUILDS_TRIGGERED,
        "Builds created by a trigger, by trigger kind"
    );
    describe_counter!(
        BUILDS_FINISHED,
        "Builds that reached a final state, by state and trigger kind"
    );
    describe_histogram!(
        BUILD_DURATION,
        Unit::Seconds,
        "How long a worker ran a build, from its claim to its result, by final state"
    );
    describe_histogram!(
        STAGE_DURATION,
        Unit::Seconds,
        "How long a stage ran, by its final state"
    );
    describe_histogram!(
        BUILD_QUEUED,
        Unit::Seconds,
        "How long a build waited from queued to claimed by a worker, by routing tag"
    );
    describe_gauge!(BUILDS_RUNNING, "Builds running now on this worker");
    describe_gauge!(
        WORKER_SLOTS,
        "Builds this worker may run at once (--concurrency)"
    );
    describe_gauge!(
        WORKER_SLOTS_IN_USE,
        "Slots taken now (a job being claimed or its build running)"
    );
    describe_gauge!(
        WORKER_PAUSED,
        "1 while this worker takes no new jobs for the reason, else 0"
    );
    describe_gauge!(
        QUEUE_DEPTH,
        "Jobs waiting in a routing tag's queue, not yet taken by a worker"
    );
    describe_counter!(LOG_LINES, "Build output lines kept in the log");
    describe_counter!(
        LOG_BYTES,
        Unit::Bytes,
        "Bytes of build output lines kept in the log"
    );
    describe_counter!(
        WEBHOOK_DELIVERIES,
        "Webhook requests answered, by provider and HTTP status"
    );
    describe_counter!(POLL_RESULTS, "Polls of a repository, by outcome");
    describe_counter!(DATABASE_ERRORS, "Failed Postgres calls, by kind");
    describe_counter!(BUS_ERRORS, "Failed NATS calls, by operation");
}

/// Whether recording goes anywhere (installs the recorder the first time).
fn on() -> bool {
    super::install().is_some()
}

/// A trigger kind as a label: the known kinds, else `other` (never free text).
fn trigger_label(trigger: &str) -> &'static str {
    match trigger {
        "manual" => "manual",
        "push" => "push",
        "tag" => "tag",
        "pull_request" => "pull_request",
        "poll" => "poll",
        _ => "other",
    }
}

/// A new build was created by a trigger (`trigger`: `TriggerKind::as_str`).
pub fn build_triggered(trigger: &str) {
    if on() {
        metrics::counter!(BUILDS_TRIGGERED, "trigger" => trigger_label(trigger)).increment(1);
    }
}

/// A build reached `state`, a final state.
pub fn build_finished(state: BuildState, trigger: &str) {
    if on() {
        metrics::counter!(BUILDS_FINISHED, "state" => state.as_str(), "trigger" => trigger_label(trigger))
            .increment(1);
    }
}

/// A worker ran a build for `took`, ending in `state`.
pub fn build_ran(state: BuildState, took: Duration) {
    if on() {
        metrics::histogram!(BUILD_DURATION, "state" => state.as_str()).record(took.as_secs_f64());
    }
}

/// A stage ran for `took`, ending in `state`.
pub fn stage_ran(state: StageState, took: Duration) {
    if on() {
        metrics::histogram!(STAGE_DURATION, "state" => state.as_str()).record(took.as_secs_f64());
    }
}

/// A build of routing tag `tag` waited `waited` between queued and claimed.
pub fn build_waited(tag: &str, waited: Duration) {
    if on() {
        metrics::histogram!(BUILD_QUEUED, "tag" => tag.to_string()).record(waited.as_secs_f64());
    }
}

/// Jobs waiting now in the queue of `tag`.
pub fn queue_depth(tag: &str, waiting: u64) {
    if on() {
        // a gauge holds an f64: exact up to 2^53 jobs
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!(QUEUE_DEPTH, "tag" => tag.to_string()).set(waiting as f64);
    }
}

/// Build output kept in the log: `lines` lines of `bytes` bytes in all (recorded per batch,
/// not per line: the log path is hot).
pub fn log_output(lines: u64, bytes: u64) {
    if on() && lines > 0 {
        metrics::counter!(LOG_LINES).increment(lines);
        metrics::counter!(LOG_BYTES).increment(bytes);
    }
}

/// A webhook request to `provider` (`unknown` for a path naming none) was answered `status`.
pub fn webhook_answered(provider: &'static str, status: u16) {
    if on() {
        metrics::counter!(WEBHOOK_DELIVERIES, "provider" => provider, "status" => status.to_string())
            .increment(1);
    }
}

/// How one poll of a repository ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollResult {
    /// A tracked head moved (or appeared): builds were queued for it.
    NewCommit,
    /// No tracked head moved.
    Unchanged,
    /// The remote, its credentials or the branch patterns failed.
    Error,
}

impl PollResult {
    pub fn as_str(self) -> &'static str {
        match self {
            PollResult::NewCommit => "new_commit",
            PollResult::Unchanged => "unchanged",
            PollResult::Error => "error",
        }
    }
}

/// A poll ended with `result`.
pub fn polled(result: PollResult) {
    if on() {
        metrics::counter!(POLL_RESULTS, "outcome" => result.as_str()).increment(1);
    }
}

/// Why a worker takes no new jobs (its back-pressure checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseReason {
    /// Free disk under its cache directory is below `--min-free-disk-mib`.
    Disk,
    Postgres,
    Nats,
    Docker,
}

impl PauseReason {
    pub const ALL: [PauseReason; 4] = [
        PauseReason::Disk,
        PauseReason::Postgres,
        PauseReason::Nats,
        PauseReason::Docker,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PauseReason::Disk => "disk",
            PauseReason::Postgres => "postgres",
            PauseReason::Nats => "nats",
            PauseReason::Docker => "docker",
        }
    }
}

/// Sets every pause reason's gauge: 1 for those in `reasons`, 0 for the others.
pub fn worker_paused(reasons: &[PauseReason]) {
    if on() {
        for reason in PauseReason::ALL {
            let value = if reasons.contains(&reason) { 1.0 } else { 0.0 };
            metrics::gauge!(WORKER_PAUSED, "reason" => reason.as_str()).set(value);
        }
    }
}

/// What a failed Postgres call was, as the store maps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseError {
    /// The server or the connection was away (an outage, a restart).
    Unavailable,
    /// A unique key said no.
    Conflict,
    /// Any other refusal by the server or the client.
    Query,
}

impl DatabaseError {
    pub fn as_str(self) -> &'static str {
        match self {
            DatabaseError::Unavailable => "unavailable",
            DatabaseError::Conflict => "conflict",
            DatabaseError::Query => "query",
        }
    }
}

/// A Postgres call failed (counted where the store maps driver and pool errors).
pub fn database_error(kind: DatabaseError) {
    if on() {
        metrics::counter!(DATABASE_ERRORS, "kind" => kind.as_str()).increment(1);
    }
}

/// What a failed NATS call was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusOperation {
    /// Queueing a build's job (a trigger, the admin's sweeper).
    PublishJob,
    /// A worker pulling jobs.
    PullJobs,
    /// A worker renewing a running build's job lease.
    RenewLease,
    /// A worker acknowledging or handing back a job.
    AckJob,
    /// Publishing a build's log events.
    PublishLog,
    /// Reading how many jobs wait.
    QueueDepth,
}

impl BusOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            BusOperation::PublishJob => "publish_job",
            BusOperation::PullJobs => "pull_jobs",
            BusOperation::RenewLease => "renew_lease",
            BusOperation::AckJob => "ack_job",
            BusOperation::PublishLog => "publish_log",
            BusOperation::QueueDepth => "queue_depth",
        }
    }
}

/// A NATS call failed.
pub fn bus_error(operation: BusOperation) {
    if on() {
        metrics::counter!(BUS_ERRORS, "operation" => operation.as_str()).increment(1);
    }
}

/// Adds one to a gauge while it lives (a running build, a slot in use, a worker's slots).
#[derive(Debug)]
#[must_use = "the gauge goes down again when this is dropped"]
pub struct GaugeHold {
    gauge: Option<metrics::Gauge>,
    amount: f64,
}

impl GaugeHold {
    fn new(name: &'static str, amount: f64) -> Self {
        let gauge = on().then(|| metrics::gauge!(name));
        if let Some(gauge) = &gauge {
            gauge.increment(amount);
        }
        GaugeHold { gauge, amount }
    }
}

impl Drop for GaugeHold {
    fn drop(&mut self) {
        if let Some(gauge) = &self.gauge {
            gauge.decrement(self.amount);
        }
    }
}

/// A build runs on this worker until the returned hold is dropped.
pub fn build_running() -> GaugeHold {
    GaugeHold::new(BUILDS_RUNNING, 1.0)
}

/// A slot of this worker is taken until the returned hold is dropped.
pub fn slot_in_use() -> GaugeHold {
    GaugeHold::new(WORKER_SLOTS_IN_USE, 1.0)
}

/// A worker with `slots` slots runs until the returned hold is dropped.
pub fn worker_slots(slots: usize) -> GaugeHold {
    // a gauge holds an f64: exact for any real concurrency
    #[allow(clippy::cast_precision_loss)]
    GaugeHold::new(WORKER_SLOTS, slots as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_rendered_once_recorded() {
        build_triggered("push");
        build_finished(BuildState::Passed, "manual");
        build_ran(BuildState::Passed, Duration::from_millis(1500));
        stage_ran(StageState::Failed, Duration::from_secs(2));
        build_waited("default", Duration::from_millis(200));
        queue_depth("default", 3);
        log_output(10, 420);
        webhook_answered("github", 202);
        polled(PollResult::Unchanged);
        worker_paused(&[PauseReason::Disk]);
        database_error(DatabaseError::Unavailable);
        bus_error(BusOperation::PublishJob);
        let running = build_running();
        let slot = slot_in_use();
        let slots = worker_slots(4);
        let text = super::super::render();
        for name in ALL {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} missing:\n{text}"
            );
        }
        assert!(
            text.contains(r#"ocelot_builds_finished_total{state="passed",trigger="manual"} 1"#)
                || text
                    .contains(r#"ocelot_builds_finished_total{trigger="manual",state="passed"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ocelot_worker_paused{reason="disk"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ocelot_worker_paused{reason="nats"} 0"#),
            "{text}"
        );
        // durations have buckets from 0.1 s to an hour
        assert!(
            text.contains(r#"ocelot_build_duration_seconds_bucket{state="passed",le="0.1"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ocelot_build_duration_seconds_bucket{state="passed",le="2.5"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ocelot_build_duration_seconds_bucket{state="passed",le="3600"} 1"#),
            "{text}"
        );
        drop((running, slot, slots));
        let after = super::super::render();
        assert!(after.contains("ocelot_builds_running 0"), "{after}");
        assert!(after.contains("ocelot_worker_slots 0"), "{after}");
    }

    #[test]
    fn a_second_install_is_the_first() {
        let first = crate::metrics::install().map(|h| h as *const _);
        let second = crate::metrics::install().map(|h| h as *const _);
        assert!(first.is_some());
        assert_eq!(first, second);
    }

    #[test]
    fn trigger_labels_are_a_closed_set() {
        assert_eq!(trigger_label("pull_request"), "pull_request");
        assert_eq!(trigger_label("whatever a row says"), "other");
    }
}
