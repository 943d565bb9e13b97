//! NATS JetStream: the job work-queue (one subject per routing tag, `jobs.<tag>`) and the log
//! bus (one subject per build, `logs.<build id>`, replayable from its first event). Both
//! streams are created at start-up, idempotently. The worker registry is a KV bucket with a
//! TTL (`workers`). Each keeps `--nats-replicas` copies ([`replicas`]).

mod cancel;
mod depth;
mod jobs;
mod log_bus;
mod log_stream;
mod options;
mod replicas;
mod workers;

/// Resolves when JetStream stored a published event.
pub use async_nats::jetstream::context::PublishAckFuture;
pub use cancel::CancelRequests;
pub use jobs::{JobConsumer, JobMessage, validate_tag};
pub use log_bus::EventSubscription;
pub use log_stream::{LOGS_MAX_AGE, LOGS_MAX_BYTES};
pub use options::inbox_prefix;
pub use workers::{HEARTBEAT_EVERY, WORKER_TTL, WORKERS_BUCKET, WorkerInfo};

use async_nats::jetstream::{self, stream};
use std::time::Duration;

pub const JOBS_STREAM: &str = "OCELOT_JOBS";
pub const LOGS_STREAM: &str = "OCELOT_LOGS";
/// The tag of jobs whose `ocelot.yml` names no `machineTag`.
pub const DEFAULT_TAG: &str = "default";
/// How long a job stays with a worker that sends no sign of life before it is delivered again:
/// the job's lease. A running build renews it every [`PROGRESS_EVERY`] at most, so a dead
/// worker's builds go to another worker within this long of its death.
pub const DEFAULT_JOB_ACK_WAIT: Duration = Duration::from_secs(10);
/// The longest a running build's worker waits between two renewals of its job's lease
/// (in-progress acks): short next to any ack wait, so that one lost renewal (a NATS
/// reconnect) never costs a live worker its build.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// What went wrong talking to NATS.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("cannot connect to NATS at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("NATS credentials: {message}")]
    Credentials { message: String },
    #[error(
        "this service's NATS connection has no worker registry (only the admin and workers open it)"
    )]
    NoRegistry,
    #[error("NATS JetStream set-up failed: {0}")]
    Setup(String),
    #[error(
        "stream {stream} keeps {had} replica(s) and --nats-replicas asks for {wanted}, but NATS refused the change: {message}. \
         A stream can have as many replicas as the cluster has JetStream servers up (one server: 1; at most 5): \
         set --nats-replicas (OCELOT_NATS_REPLICAS) to that, or bring the servers up and start the admin again \
         (by hand: `nats stream edit {stream} --replicas {wanted}`)"
    )]
    Replicas {
        stream: String,
        had: usize,
        wanted: usize,
        message: String,
    },
    #[error("publishing to NATS failed: {0}")]
    Publish(String),
    #[error("reading from NATS failed: {0}")]
    Consume(String),
    #[error("invalid routing tag `{0}`: use letters, digits, `-` and `_`")]
    InvalidTag(String),
    #[error("malformed message on {subject}: {message}")]
    Malformed { subject: String, message: String },
}

/// What a service sets up on the bus when it connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// The admin: creates the streams and the worker registry when missing, and brings
    /// existing ones to its settings (`--nats-replicas`; a byte limit on an unbounded log
    /// stream).
    Streams,
    /// Workers: create the streams and the worker registry when missing, as the admin would;
    /// an existing one that differs from the settings is left to the admin (a worker's NATS
    /// user may not update streams), with a warning.
    StreamsIfMissing,
    /// The hookhandler and pollers: nothing; they only publish jobs (their NATS users may
    /// not touch the streams), which fails while no admin or worker created the job stream.
    PublishOnly,
}

/// Connection to NATS (with both streams and the worker bucket set up, for
/// [`Setup::Streams`]); cheap to clone.
#[derive(Clone, Debug)]
pub struct Bus {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    /// The worker registry's KV bucket, opened once at start-up (not for
    /// [`Setup::PublishOnly`]).
    workers: Option<jetstream::kv::Store>,
    /// Copies of each stream (`--nats-replicas`), also for a worker bucket made again.
    replicas: usize,
}

impl Bus {
    /// Connects as `nats` says (to any server of a comma-separated list) and, unless
    /// [`Setup::PublishOnly`], creates the streams when missing.
    pub async fn connect(
        nats: &crate::settings::NatsArgs,
        setup: Setup,
    ) -> Result<Bus, QueueError> {
        let url = &nats.nats_url;
        let replicas = usize::from(nats.nats_replicas.max(1));
        let client = options::connect_options(nats)?
            .connect(options::server_addrs(url)?)
            .await
            .map_err(|e| QueueError::Connect {
                url: url.to_string(),
                message: e.to_string(),
            })?;
        let jetstream = jetstream::new(client.clone());
        let updates = match setup {
            Setup::PublishOnly => None,
            Setup::Streams => Some(replicas::Updates::Apply),
            Setup::StreamsIfMissing => Some(replicas::Updates::LeaveToAdmin),
        };
        let workers = match updates {
            None => None,
            Some(updates) => {
                // the first request may race the connection: wait for it within the timeout
                let set_up = set_up(&jetstream, replicas, updates);
                let workers = tokio::time::timeout(Duration::from_secs(15), set_up)
                    .await
                    .map_err(|_| QueueError::Connect {
                        url: url.to_string(),
                        message: "no answer within 15 s (is the server running with JetStream, -js? are --nats-user and its password right?)"
                            .into(),
                    })??;
                Some(workers)
            }
        };
        Ok(Bus {
            client,
            jetstream,
            workers,
            replicas,
        })
    }

    /// Whether the NATS connection is up.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The worker registry, when this connection opened it.
    fn workers(&self) -> Result<&jetstream::kv::Store, QueueError> {
        self.workers.as_ref().ok_or(QueueError::NoRegistry)
    }
}

/// Creates the streams and the worker bucket when missing, with `replicas` copies each,
/// and brings existing ones to that count when `updates` says so; returns the bucket.
async fn set_up(
    jetstream: &jetstream::Context,
    replicas: usize,
    updates: replicas::Updates,
) -> Result<jetstream::kv::Store, QueueError> {
    let jobs = jetstream
        .get_or_create_stream(stream::Config {
            name: JOBS_STREAM.to_string(),
            subjects: vec!["jobs.>".to_string()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| {
            QueueError::Setup(format!(
                "stream {JOBS_STREAM}: {e}{}",
                replicas::hint(replicas)
            ))
        })?;
    replicas::reconcile(jetstream, &jobs.cached_info().config, replicas, updates).await?;
    log_stream::set_up(jetstream, replicas, updates).await?;
    let bucket = workers::open_bucket(jetstream, replicas).await?;
    let registry = jetstream
        .get_stream(workers::BUCKET_STREAM)
        .await
        .map_err(|e| QueueError::Setup(format!("stream {}: {e}", workers::BUCKET_STREAM)))?;
    replicas::reconcile(jetstream, &registry.cached_info().config, replicas, updates).await?;
    Ok(bucket)
}
