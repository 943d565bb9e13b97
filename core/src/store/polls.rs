//! The `polls` table: which branches of which repos the pollers watch. Due polls are claimed
//! with `FOR UPDATE SKIP LOCKED` and leased (their `next_due` pushed out) in one transaction,
//! so several pollers never work on one poll at once.

use super::{Store, StoreError};
use crate::ids::RepoId;
use crate::model::{Poll, PollSchedule};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
use tokio_postgres::Row;

/// A claimed poll: its row as it was due, and the end of the claim's lease (the `next_due`
/// the claim wrote; only the claim still holding it may record the outcome).
#[derive(Debug, Clone)]
pub struct ClaimedPoll {
    pub poll: Poll,
    pub lease_until: SystemTime,
}

/// What a poll found.
#[derive(Debug, Clone)]
pub struct PollOutcome {
    /// The heads now seen; `None` when the poll failed (the old ones are kept).
    pub heads: Option<BTreeMap<String, String>>,
    pub error: Option<String>,
    pub failures: i32,
    pub next_due: SystemTime,
}

const SELECT_POLL: &str = "SELECT p.id, p.repo_id, r.name AS repo_name, r.url AS repo_url, p.branches, \
     p.every_ms, p.cron, p.build_now, p.next_due, p.last_polled_at, p.last_error, p.failures, p.heads \
     FROM polls p JOIN repos r ON r.id = p.repo_id";

fn poll_from_row(row: &Row) -> Result<Poll, StoreError> {
    let every_ms: Option<i64> = row.get("every_ms");
    let cron: Option<String> = row.get("cron");
    let schedule = match (every_ms, cron) {
        (Some(ms), _) => PollSchedule::Every(Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        (None, Some(cron)) => PollSchedule::Cron(cron),
        (None, None) => return Err(StoreError::Corrupt("poll without a schedule".into())),
    };
    let heads: Option<serde_json::Value> = row.get("heads");
    let heads = heads
        .map(serde_json::from_value::<BTreeMap<String, String>>)
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("poll heads: {e}")))?;
    Ok(Poll {
        id: row.get("id"),
        repo_id: RepoId::from_db(row.get("repo_id"))?,
        repo_name: row.get("repo_name"),
        repo_url: row.get("repo_url"),
        branches: row.get("branches"),
        schedule,
        build_now: row.get("build_now"),
        next_due: row.get("next_due"),
        last_polled_at: row.get("last_polled_at"),
        last_error: row.get("last_error"),
        failures: row.get("failures"),
        heads,
    })
}

impl Store {
    /// Adds a poll of `repo_id`, or replaces its settings (the heads seen are kept when the
    /// branches are the same and `build_now` is not asked).
    pub async fn upsert_poll(
        &self,
        repo_id: RepoId,
        branches: &[String],
        schedule: &PollSchedule,
        build_now: bool,
        first_due: SystemTime,
    ) -> Result<Poll, StoreError> {
        let (every_ms, cron) = match schedule {
            PollSchedule::Every(every) => (
                Some(i64::try_from(every.as_millis()).unwrap_or(i64::MAX)),
                None,
            ),
            PollSchedule::Cron(cron) => (None, Some(cron.clone())),
        };
        let client = self.client().await?;
        let id: i64 = client
            .query_one(
                "INSERT INTO polls (repo_id, branches, every_ms, cron, build_now, next_due)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (repo_id) DO UPDATE SET branches = $2, every_ms = $3, cron = $4,
                     build_now = $5, next_due = $6, failures = 0, last_error = NULL,
                     -- other branches: start afresh (the first poll records, or builds with
                     -- build_now), so that widened patterns do not build every old head
                     heads = CASE WHEN polls.branches = $2 AND NOT $5 THEN polls.heads END
                 RETURNING id",
                &[
                    &repo_id.to_db(),
                    &branches,
                    &every_ms,
                    &cron,
                    &build_now,
                    &first_due,
                ],
            )
            .await?
            .get(0);
        let row = client
            .query_one(&format!("{SELECT_POLL} WHERE p.id = $1"), &[&id])
            .await?;
        poll_from_row(&row)
    }

    pub async fn list_polls(&self) -> Result<Vec<Poll>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(&format!("{SELECT_POLL} ORDER BY r.name"), &[])
            .await?;
        rows.iter().map(poll_from_row).collect()
    }

    pub async fn remove_poll(&self, repo_id: RepoId) -> Result<(), StoreError> {
        let client = self.client().await?;
        let removed = client
            .execute("DELETE FROM polls WHERE repo_id = $1", &[&repo_id.to_db()])
            .await?;
        if removed == 0 {
            return Err(StoreError::NotFound("poll of this repo".into()));
        }
        Ok(())
    }

    /// Claims up to `limit` due polls for `lease` (another poller sees them again only after).
    /// The lease is computed by the database's clock, as `next_due` is compared with it.
    pub async fn claim_due_polls(
        &self,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<ClaimedPoll>, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let ids: Vec<i64> = transaction
            .query(
                "SELECT id FROM polls WHERE next_due <= now() ORDER BY next_due LIMIT $1
                 FOR UPDATE SKIP LOCKED",
                &[&limit],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        if ids.is_empty() {
            transaction.commit().await?;
            return Ok(Vec::new());
        }
        let rows = transaction
            .query(
                &format!("{SELECT_POLL} WHERE p.id = ANY($1) ORDER BY p.next_due"),
                &[&ids],
            )
            .await?;
        // now() is the transaction's start time: every row gets the same lease end
        let lease_until: SystemTime = transaction
            .query(
                "UPDATE polls SET next_due = now() + make_interval(secs => $2::BIGINT / 1000.0)
                 WHERE id = ANY($1) RETURNING next_due",
                &[&ids, &lease_ms],
            )
            .await?
            .first()
            .map(|row| row.get(0))
            .ok_or_else(|| StoreError::Corrupt("claimed polls vanished".into()))?;
        transaction.commit().await?;
        rows.iter()
            .map(|row| {
                Ok(ClaimedPoll {
                    poll: poll_from_row(row)?,
                    lease_until,
                })
            })
            .collect()
    }

    /// Records what the claim found; false when its lease was taken over (or the poll was
    /// changed) meanwhile, and nothing was written.
    pub async fn record_poll(
        &self,
        claimed: &ClaimedPoll,
        outcome: &PollOutcome,
    ) -> Result<bool, StoreError> {
        let heads = outcome
            .heads
            .as_ref()
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let client = self.client().await?;
        let updated = client
            .execute(
                "UPDATE polls SET heads = COALESCE($2, heads), last_error = $3, failures = $4,
                        next_due = $5, last_polled_at = now()
                 WHERE id = $1 AND next_due = $6",
                &[
                    &claimed.poll.id,
                    &heads,
                    &outcome.error,
                    &outcome.failures,
                    &outcome.next_due,
                    &claimed.lease_until,
                ],
            )
            .await?;
        Ok(updated == 1)
    }
}
