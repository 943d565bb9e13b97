//! The job work-queue: publish a build's job to `jobs.<tag>`, pull jobs of the tags a worker
//! serves, keep a long build's job with in-progress acks, ack when the build is final.

use super::{Bus, JOBS_STREAM, QueueError};
use crate::model::Job;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::StreamExt;
use std::time::Duration;

/// A routing tag is one NATS subject token.
pub fn validate_tag(tag: &str) -> Result<(), QueueError> {
    let valid = !tag.is_empty()
        && tag.len() <= 64
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(QueueError::InvalidTag(tag.to_string()))
    }
}

impl Bus {
    /// Publishes `job` to `jobs.<tag>` and waits for JetStream to store it. The message id
    /// makes a re-publish of the same build within the duplicate window a no-op.
    pub async fn publish_job(&self, tag: &str, job: &Job) -> Result<(), QueueError> {
        validate_tag(tag)?;
        let payload = serde_json::to_vec(job).map_err(|e| QueueError::Publish(e.to_string()))?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("build-{}", job.build_id).as_str());
        self.jetstream
            .publish_with_headers(format!("jobs.{tag}"), headers, payload.into())
            .await
            .map_err(|e| QueueError::Publish(e.to_string()))?
            .await
            .map_err(|e| QueueError::Publish(e.to_string()))?;
        Ok(())
    }

    /// The durable consumer shared by every worker of `tag`. A job not acknowledged (nor
    /// marked in progress) within `ack_wait` is delivered again. A consumer made with
    /// another ack wait (by an earlier release, or a worker with another `--job-ack-wait`)
    /// is updated to `ack_wait`: the last worker to start sets it.
    pub async fn job_consumer(
        &self,
        tag: &str,
        ack_wait: Duration,
    ) -> Result<JobConsumer, QueueError> {
        validate_tag(tag)?;
        let stream = self
            .jetstream
            .get_stream(JOBS_STREAM)
            .await
            .map_err(|e| QueueError::Setup(e.to_string()))?;
        let name = format!("jobs-{tag}");
        let config = pull::Config {
            durable_name: Some(name.clone()),
            filter_subject: format!("jobs.{tag}"),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait,
            ..Default::default()
        };
        let mut consumer: jetstream::consumer::Consumer<pull::Config> = stream
            .get_or_create_consumer(&name, config.clone())
            .await
            .map_err(|e| QueueError::Setup(format!("consumer {name}: {e}")))?;
        let current = consumer
            .info()
            .await
            .map_err(|e| QueueError::Setup(format!("consumer {name}: {e}")))?
            .config
            .ack_wait;
        if current != ack_wait {
            tracing::info!(consumer = %name, was = ?current, now = ?ack_wait,
                "updating the job consumer's ack wait (keep --job-ack-wait equal on every worker)");
            consumer = stream
                .update_consumer(config)
                .await
                .map_err(|e| QueueError::Setup(format!("updating consumer {name}: {e}")))?;
        }
        Ok(JobConsumer {
            tag: tag.to_string(),
            consumer,
            ack_wait,
        })
    }
}

/// Pulls the jobs of one tag.
#[derive(Debug)]
pub struct JobConsumer {
    tag: String,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    /// The consumer's ack wait: the lease of each job it delivers.
    ack_wait: Duration,
}

impl JobConsumer {
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// How long a job may go without a sign of life before it is delivered again.
    pub fn ack_wait(&self) -> Duration {
        self.ack_wait
    }

    /// Waits up to `wait` for one job.
    pub async fn next(&self, wait: Duration) -> Result<Option<JobMessage>, QueueError> {
        let mut batch = self
            .consumer
            .batch()
            .max_messages(1)
            .expires(wait)
            .messages()
            .await
            .map_err(|e| QueueError::Consume(e.to_string()))?;
        match batch.next().await {
            None => Ok(None),
            Some(Err(e)) => Err(QueueError::Consume(e.to_string())),
            Some(Ok(message)) => {
                let job = serde_json::from_slice::<Job>(&message.payload).map_err(|e| {
                    QueueError::Malformed {
                        subject: message.subject.to_string(),
                        message: e.to_string(),
                    }
                });
                match job {
                    Ok(job) => Ok(Some(JobMessage { job, message })),
                    Err(error) => {
                        // a message nobody can read would come back forever: drop it
                        let _ = message.ack_with(AckKind::Term).await;
                        Err(error)
                    }
                }
            }
        }
    }
}

/// A pulled job and the handle to acknowledge it.
#[derive(Debug)]
pub struct JobMessage {
    pub job: Job,
    message: jetstream::Message,
}

impl JobMessage {
    /// How many times this job has been delivered (1 the first time).
    pub fn delivered(&self) -> i64 {
        self.message.info().map(|info| info.delivered).unwrap_or(1)
    }

    /// Tells JetStream the job is still being worked on (resets its ack-wait) and waits up
    /// to `wait` for the server to confirm it got the renewal.
    pub async fn in_progress(&self, wait: Duration) -> Result<(), QueueError> {
        tokio::time::timeout(wait, self.message.double_ack_with(AckKind::Progress))
            .await
            .map_err(|_| {
                QueueError::Consume(format!("no answer to an in-progress ack within {wait:?}"))
            })?
            .map_err(|e| QueueError::Consume(e.to_string()))
    }

    /// The build is final: the job is done.
    pub async fn ack(&self) -> Result<(), QueueError> {
        self.message
            .double_ack()
            .await
            .map_err(|e| QueueError::Consume(e.to_string()))
    }

    /// Hands the job back, to be delivered again after `delay` (to this or another worker).
    pub async fn nak(&self, delay: Duration) -> Result<(), QueueError> {
        self.message
            .ack_with(AckKind::Nak(Some(delay)))
            .await
            .map_err(|e| QueueError::Consume(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::validate_tag;

    #[test]
    fn tags_are_single_subject_tokens() {
        assert!(validate_tag("linux").is_ok());
        assert!(validate_tag("mac-os_14").is_ok());
        assert!(validate_tag("").is_err());
        assert!(validate_tag("a.b").is_err());
        assert!(validate_tag("a*").is_err());
        assert!(validate_tag("a b").is_err());
    }
}
