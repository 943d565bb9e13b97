//! The `outbox` table: messages about builds waiting to leave Ocelot (notifications; later
//! commit statuses). Rows are inserted in the transaction that makes a build final
//! ([`enqueue_notifications`]), claimed by any number of senders (`FOR UPDATE SKIP LOCKED`
//! and a lease), and each outcome is written fenced by the attempt that made it.

use super::{Store, StoreError};
use crate::build_state::BuildState;
use crate::events::EventKind;
use crate::ids::{Attempt, BuildId, Seq};
use deadpool_postgres::GenericClient;
use ocelot_domain::notify::{NotifyTarget, fires};
use std::time::{Duration, SystemTime};

/// A message claimed for sending.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub id: i64,
    pub build_id: BuildId,
    /// `slack`, `webhook`, `email` (later `commit_status`).
    pub kind: String,
    /// The `notify` credential's name.
    pub target: String,
    /// Kind-specific: `channel`, `to`.
    pub payload: serde_json::Value,
    /// The build state the message reports.
    pub reports: String,
    /// Unique per message, the same on every retry: receivers de-duplicate by it.
    pub delivery_id: String,
    /// This try's number (1 for the first).
    pub attempt: i32,
}

/// What `ocelot status` shows of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub kind: String,
    pub target: String,
    /// `pending`, `retrying`, `sent`, `gave_up`, `superseded`.
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<SystemTime>,
    pub done_at: Option<SystemTime>,
}

/// Inserts one outbox row per `notify` target that the build's final state fires. Runs in
/// the transaction that records that state, so a final build has its messages queued or
/// none at all; a fork's pull request queues none unless its repo trusts forks
/// (`--secrets-for-forks`).
pub(super) async fn enqueue_notifications(
    client: &impl GenericClient,
    build_id: BuildId,
) -> Result<usize, StoreError> {
    let row = client
        .query_opt(
            "SELECT b.notify::text AS notify, b.state,
                    (b.from_fork AND NOT r.secrets_for_forks) AS untrusted,
                    (SELECT p.state FROM builds p
                      WHERE p.repo_id = b.repo_id AND p.branch = b.branch AND p.id < b.id
                        AND p.state IN ('passed', 'failed', 'timed_out', 'errored')
                      ORDER BY p.id DESC LIMIT 1) AS previous
             FROM builds b JOIN repos r ON r.id = b.repo_id WHERE b.id = $1",
            &[&build_id.to_db()],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("build {build_id}")))?;
    let untrusted: bool = row.get("untrusted");
    let notify: &str = row.get("notify");
    if untrusted || notify == "[]" {
        return Ok(0);
    }
    let targets: Vec<NotifyTarget> = serde_json::from_str(notify)
        .map_err(|e| StoreError::Corrupt(format!("build {build_id}: notify targets: {e}")))?;
    let parse_state = |text: String| -> Result<BuildState, StoreError> {
        text.parse()
            .map_err(|e| StoreError::Corrupt(format!("build {build_id}: state: {e}")))
    };
    let state = parse_state(row.get("state"))?;
    let previous = row
        .get::<_, Option<String>>("previous")
        .map(parse_state)
        .transpose()?;
    let mut kinds = Vec::new();
    let mut names = Vec::new();
    let mut payloads = Vec::new();
    for target in targets
        .iter()
        .filter(|target| fires(&target.on, state, previous))
    {
        kinds.push(target.kind.as_str());
        names.push(target.identifier.clone());
        payloads
            .push(serde_json::json!({ "channel": target.channel, "to": target.to }).to_string());
    }
    if kinds.is_empty() {
        return Ok(0);
    }
    client
        .execute(
            "INSERT INTO outbox (build_id, kind, target, payload, reports)
             SELECT $1, t.kind, t.target, t.payload::jsonb, $5
             FROM UNNEST($2::TEXT[], $3::TEXT[], $4::TEXT[]) AS t(kind, target, payload)",
            &[
                &build_id.to_db(),
                &kinds,
                &names,
                &payloads,
                &state.as_str(),
            ],
        )
        .await?;
    Ok(kinds.len())
}

impl Store {
    /// Claims up to `limit` due messages for `lease` (another sender takes them over once it
    /// expires: a sender that died mid-send). A message whose coalescing key has a newer
    /// waiting message is marked `superseded` instead; one whose key has a message in
    /// flight waits.
    pub async fn claim_outbox(
        &self,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        transaction
            .execute(
                "UPDATE outbox o SET status = 'superseded', done_at = now(), leased_until = NULL
                 WHERE o.status IN ('pending', 'retrying') AND o.coalesce_key IS NOT NULL
                   AND (o.leased_until IS NULL OR o.leased_until < now())
                   AND EXISTS (SELECT 1 FROM outbox n WHERE n.coalesce_key = o.coalesce_key
                                  AND n.id > o.id)",
                &[],
            )
            .await?;
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let rows = transaction
            .query(
                "WITH due AS (
                     SELECT o.id FROM outbox o
                     WHERE o.status IN ('pending', 'retrying') AND o.next_attempt_at <= now()
                       AND (o.leased_until IS NULL OR o.leased_until < now())
                       AND (o.coalesce_key IS NULL OR NOT EXISTS (
                             SELECT 1 FROM outbox n WHERE n.coalesce_key = o.coalesce_key
                                AND n.id <> o.id AND n.leased_until > now()))
                     ORDER BY o.next_attempt_at, o.id LIMIT $1
                     FOR UPDATE SKIP LOCKED)
                 UPDATE outbox o
                    SET attempts = o.attempts + 1,
                        leased_until = now() + make_interval(secs => $2::BIGINT / 1000.0)
                 FROM due WHERE o.id = due.id
                 RETURNING o.id, o.build_id, o.kind, o.target, o.payload, o.reports,
                           o.delivery_id::text AS delivery_id, o.attempts",
                &[&limit, &lease_ms],
            )
            .await?;
        transaction.commit().await?;
        rows.iter()
            .map(|row| {
                Ok(OutboxMessage {
                    id: row.get("id"),
                    build_id: BuildId::from_db(row.get("build_id"))?,
                    kind: row.get("kind"),
                    target: row.get("target"),
                    payload: row.get("payload"),
                    reports: row.get("reports"),
                    delivery_id: row.get("delivery_id"),
                    attempt: row.get("attempts"),
                })
            })
            .collect()
    }

    /// Records that `message` was delivered; false when another try owns it now.
    pub async fn outbox_sent(&self, message: &OutboxMessage) -> Result<bool, StoreError> {
        self.outbox_outcome(message, "sent", None, None).await
    }

    /// Records a failed try of `message` to be tried again at `next`.
    pub async fn outbox_retry(
        &self,
        message: &OutboxMessage,
        next: SystemTime,
        error: &str,
    ) -> Result<bool, StoreError> {
        self.outbox_outcome(message, "retrying", Some(next), Some(error))
            .await
    }

    /// Records that `message` will not be sent: an answer that will not change, or too many
    /// tries.
    pub async fn outbox_gave_up(
        &self,
        message: &OutboxMessage,
        error: &str,
    ) -> Result<bool, StoreError> {
        self.outbox_outcome(message, "gave_up", None, Some(error))
            .await
    }

    async fn outbox_outcome(
        &self,
        message: &OutboxMessage,
        status: &str,
        next: Option<SystemTime>,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let updated = client
            .execute(
                "UPDATE outbox SET status = $3, leased_until = NULL,
                        next_attempt_at = COALESCE($4, next_attempt_at),
                        last_error = COALESCE($5, last_error),
                        done_at = CASE WHEN $3 = 'retrying' THEN NULL ELSE now() END
                 WHERE id = $1 AND attempts = $2 AND status IN ('pending', 'retrying')",
                &[&message.id, &message.attempt, &status, &next, &error],
            )
            .await?;
        Ok(updated == 1)
    }

    /// The messages about `build_id`, oldest first.
    pub async fn deliveries(&self, build_id: BuildId) -> Result<Vec<DeliveryRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT kind, target, status, attempts, last_error, next_attempt_at, done_at
                 FROM outbox WHERE build_id = $1 ORDER BY id",
                &[&build_id.to_db()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                let status: String = row.get("status");
                DeliveryRecord {
                    next_attempt_at: matches!(status.as_str(), "pending" | "retrying")
                        .then(|| row.get("next_attempt_at")),
                    kind: row.get("kind"),
                    target: row.get("target"),
                    status,
                    attempts: row.get("attempts"),
                    last_error: row.get("last_error"),
                    done_at: row.get("done_at"),
                }
            })
            .collect())
    }

    /// The last `count` lines a stage of `attempt` wrote (its log lies between the stage's
    /// start and end events, `start..=end`), as stored: masked.
    pub async fn stage_tail(
        &self,
        build_id: BuildId,
        attempt: Attempt,
        start: Seq,
        end: Option<Seq>,
        count: usize,
    ) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let end = end.map_or(i64::MAX, Seq::to_db);
        let limit = i64::try_from(count).unwrap_or(i64::MAX);
        // each row is a line or a run of lines: `count` rows hold at least `count` lines
        let rows = client
            .query(
                "SELECT payload::text FROM build_events
                 WHERE build_id = $1 AND attempt = $2 AND kind IN ('line', 'lines')
                   AND seq > $3 AND seq < $4
                 ORDER BY seq DESC LIMIT $5",
                &[
                    &build_id.to_db(),
                    &attempt.to_db(),
                    &start.to_db(),
                    &end,
                    &limit,
                ],
            )
            .await?;
        let mut lines: Vec<String> = Vec::new();
        for row in rows.iter().rev() {
            let payload: &str = row.get(0);
            let kind: EventKind = serde_json::from_str(payload).map_err(|e| {
                StoreError::Corrupt(format!("a line of build {build_id} attempt {attempt}: {e}"))
            })?;
            match kind {
                EventKind::Line { text, .. } => lines.push(text),
                EventKind::Lines { text, .. } => {
                    lines.extend(text.split_terminator('\n').map(str::to_string));
                }
                _ => {}
            }
        }
        let skip = lines.len().saturating_sub(count);
        Ok(lines.split_off(skip))
    }

    /// The state of the latest build that ran to a result (passed, failed, timed out,
    /// errored) of the branch `path` names: `REPO/BRANCH`, where both may hold `/` (the
    /// longest registered repo name that `path` starts with and that has such a build of
    /// the rest wins). What its badge shows; `None`: no such repo, branch or build.
    pub async fn branch_result(&self, path: &str) -> Result<Option<BuildState>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT b.state FROM repos r
                 JOIN builds b ON b.repo_id = r.id
                   AND b.branch = substr($1, length(r.name) + 2)
                   AND b.state IN ('passed', 'failed', 'timed_out', 'errored')
                 WHERE left($1, length(r.name) + 1) = r.name || '/'
                 ORDER BY length(r.name) DESC, b.id DESC LIMIT 1",
                &[&path],
            )
            .await?;
        row.map(|row| {
            row.get::<_, String>(0)
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("build state: {e}")))
        })
        .transpose()
    }
}
