//! The `build_events` table: every event of an attempt as the bus carries it (its kind and
//! its JSON payload), in sequence order. A run of lines (`lines`) is one row keyed by its
//! first line's seq: a flood is written per run, not per line; a read that starts or ends
//! inside a run gets the run cut there. The `stages` rows follow from the stage events, in
//! the same transaction, so the two never disagree. Every write is fenced by the attempt.

use super::builds::state_change;
use super::{Store, StoreError};
use crate::build_state::BuildTransition;
use crate::events::{BuildEvent, EventKind};
use crate::ids::{Attempt, BuildId, Seq};
use crate::model::{StoredLine, from_unix_ms, unix_ms};
use deadpool_postgres::GenericClient;
use std::time::SystemTime;
use tokio_postgres::Row;

/// How a finished attempt is recorded: its last events, the result among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Written (events already stored, same sequence number, are left as they were).
    Stored,
    /// A newer attempt owns the build, or it is no longer running: nothing was written.
    FencedOut,
}

impl Store {
    /// Appends events of `attempt` in one transaction, the `stages` rows following them.
    pub async fn append_events(
        &self,
        build_id: BuildId,
        attempt: Attempt,
        events: &[BuildEvent],
    ) -> Result<Appended, StoreError> {
        if events.is_empty() {
            return Ok(Appended::Stored);
        }
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        if !owns_running_build(&transaction, build_id, attempt).await? {
            return Ok(Appended::FencedOut);
        }
        write_events(&transaction, build_id, attempt, events).await?;
        transaction.commit().await?;
        Ok(Appended::Stored)
    }

    /// Appends the attempt's last events, which end with its result, and records the
    /// result in the build row, in one transaction: a build is final exactly when its log is
    /// stored whole.
    pub async fn finish_attempt(
        &self,
        build_id: BuildId,
        attempt: Attempt,
        events: &[BuildEvent],
    ) -> Result<Appended, StoreError> {
        let Some(EventKind::Result {
            state,
            reason,
            line_count,
            log_sha256,
            ..
        }) = events.last().map(|event| &event.kind)
        else {
            return Err(StoreError::Refused(format!(
                "build {build_id} attempt {attempt}: an attempt finishes with its result event"
            )));
        };
        // a result that is not a state the running build may end in is refused before any
        // SQL runs: nothing is written, not even the events
        let change = state_change(
            &format!("build {build_id} attempt {attempt}"),
            BuildTransition::Finish(*state),
        )?;
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        if !owns_running_build(&transaction, build_id, attempt).await? {
            return Ok(Appended::FencedOut);
        }
        write_events(&transaction, build_id, attempt, events).await?;
        let reason = Some(reason.as_str()).filter(|r| !r.is_empty());
        let attempt = attempt.to_db();
        let line_count = i64::try_from(*line_count).unwrap_or(i64::MAX);
        transaction
            .execute(
                "UPDATE builds SET state = $3, failure_reason = $4, finished_at = now(),
                        line_count = $5, log_sha256 = $6
                 WHERE id = $1 AND attempt = $2 AND state = ANY($7)",
                &[
                    &build_id.to_db(),
                    &attempt,
                    &change.to,
                    &reason,
                    &line_count,
                    log_sha256,
                    &change.from,
                ],
            )
            .await?;
        super::outbox::enqueue_notifications(&transaction, build_id).await?;
        super::commit_status::enqueue_status(&transaction, build_id).await?;
        transaction.commit().await?;
        Ok(Appended::Stored)
    }

    /// Events of `attempt` with `after < seq < before`, in order, from up to `limit` rows
    /// past `after` (and the run `after` falls in): one page of a replay. A run of lines
    /// that `after` or `before` falls in is cut there.
    pub async fn events(
        &self,
        build_id: BuildId,
        attempt: Attempt,
        after: Seq,
        before: Seq,
        limit: i64,
    ) -> Result<Vec<BuildEvent>, StoreError> {
        let client = self.client().await?;
        let (after_db, before_db) = (after.to_db(), before.to_db());
        // the row at or before `after` too: a run of lines it falls in goes on past it
        let rows = client
            .query(
                "SELECT seq, payload, at FROM (
                     (SELECT seq, payload::text AS payload, at FROM build_events
                      WHERE build_id = $1 AND attempt = $2 AND seq <= $3
                      ORDER BY seq DESC LIMIT 1)
                     UNION ALL
                     (SELECT seq, payload::text AS payload, at FROM build_events
                      WHERE build_id = $1 AND attempt = $2 AND seq > $3 AND seq < $4
                      ORDER BY seq LIMIT $5)
                 ) page ORDER BY seq",
                &[
                    &build_id.to_db(),
                    &attempt.to_db(),
                    &after_db,
                    &before_db,
                    &limit,
                ],
            )
            .await?;
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(event) = event_from_row(build_id, attempt, row)?.between(after, before) {
                events.push(event);
            }
        }
        Ok(events)
    }

    /// Every stored line of `attempt`, in order.
    pub async fn lines(
        &self,
        build_id: BuildId,
        attempt: Attempt,
    ) -> Result<Vec<StoredLine>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT seq, payload::text AS payload, at FROM build_events
                 WHERE build_id = $1 AND attempt = $2 AND kind IN ('line', 'lines') ORDER BY seq",
                &[&build_id.to_db(), &attempt.to_db()],
            )
            .await?;
        let mut lines = Vec::with_capacity(rows.len());
        for row in &rows {
            let event = event_from_row(build_id, attempt, row)?;
            let at = from_unix_ms(event.at_ms);
            match event.kind {
                EventKind::Line {
                    stage,
                    stream,
                    text,
                } => lines.push(StoredLine {
                    seq: event.seq,
                    stage,
                    stream,
                    text,
                    at,
                }),
                EventKind::Lines {
                    stage,
                    stream,
                    text,
                } => {
                    let mut seq = event.seq;
                    for text in text.split_terminator('\n') {
                        lines.push(StoredLine {
                            seq,
                            stage: stage.clone(),
                            stream,
                            text: text.to_string(),
                            at,
                        });
                        seq = seq.next();
                    }
                }
                _ => {}
            }
        }
        Ok(lines)
    }
}

/// Whether `attempt` still owns the running build; the row stays locked (shared) until the
/// transaction ends, so a new claim waits for this attempt's write instead of passing it.
async fn owns_running_build(
    client: &impl GenericClient,
    build_id: BuildId,
    attempt: Attempt,
) -> Result<bool, StoreError> {
    let owner = client
        .query_opt(
            "SELECT 1 FROM builds WHERE id = $1 AND attempt = $2 AND state = 'running' FOR SHARE",
            &[&build_id.to_db(), &attempt.to_db()],
        )
        .await?;
    Ok(owner.is_some())
}

/// Inserts `events` and moves the `stages` rows along with the stage events.
async fn write_events(
    client: &impl GenericClient,
    build_id: BuildId,
    attempt: Attempt,
    events: &[BuildEvent],
) -> Result<(), StoreError> {
    let mut seqs = Vec::with_capacity(events.len());
    let mut kinds = Vec::with_capacity(events.len());
    let mut payloads = Vec::with_capacity(events.len());
    let mut ats: Vec<SystemTime> = Vec::with_capacity(events.len());
    for event in events {
        seqs.push(event.seq.to_db());
        kinds.push(event.kind.name());
        // JSON text, straight from the event: no value tree on the way
        payloads.push(
            serde_json::to_string(&event.kind)
                .map_err(|e| StoreError::Query(format!("an event as JSON: {e}")))?,
        );
        ats.push(from_unix_ms(event.at_ms));
    }
    client
        .execute(
            "INSERT INTO build_events (build_id, attempt, seq, kind, payload, at)
             SELECT $1, $2, e.seq, e.kind, e.payload::json, e.at
             FROM UNNEST($3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::TIMESTAMPTZ[])
                  AS e(seq, kind, payload, at)
             ON CONFLICT DO NOTHING",
            &[
                &build_id.to_db(),
                &attempt.to_db(),
                &seqs,
                &kinds,
                &payloads,
                &ats,
            ],
        )
        .await?;
    for event in events {
        update_stage(client, build_id, attempt, event).await?;
    }
    Ok(())
}

/// The `stages` row change an event makes, if any.
async fn update_stage(
    client: &impl GenericClient,
    build_id: BuildId,
    attempt: Attempt,
    event: &BuildEvent,
) -> Result<(), StoreError> {
    let build_id = build_id.to_db();
    let attempt = attempt.to_db();
    let seq = event.seq.to_db();
    let at = from_unix_ms(event.at_ms);
    match &event.kind {
        EventKind::AttemptStarted { stages, needs, .. } if !stages.is_empty() => {
            let indexes: Vec<i32> = (0..stages.len())
                .map(|i| i32::try_from(i).unwrap_or(i32::MAX))
                .collect();
            // each stage's needs as a JSON list (a list of lists does not UNNEST by row)
            let needs: Vec<String> = (0..stages.len())
                .map(|i| {
                    let names = needs.get(i).map(Vec::as_slice).unwrap_or_default();
                    serde_json::to_string(names).unwrap_or_else(|_| "[]".to_string())
                })
                .collect();
            client
                .execute(
                    "INSERT INTO stages (build_id, attempt, idx, name, state, needs)
                     SELECT $1, $2, idx, name, 'pending',
                            ARRAY(SELECT jsonb_array_elements_text(needs::jsonb))
                     FROM UNNEST($3::INT[], $4::TEXT[], $5::TEXT[]) AS s(idx, name, needs)
                     ON CONFLICT DO NOTHING",
                    &[&build_id, &attempt, &indexes, stages, &needs],
                )
                .await?;
        }
        EventKind::StageStarted { index, .. } => {
            let index = i32::try_from(*index).unwrap_or(i32::MAX);
            client
                .execute(
                    "UPDATE stages SET state = 'running', started_at = $4, start_seq = $5
                     WHERE build_id = $1 AND attempt = $2 AND idx = $3",
                    &[&build_id, &attempt, &index, &at, &seq],
                )
                .await?;
        }
        EventKind::StageFinished {
            index,
            state,
            exit_code,
            ..
        } => {
            let index = i32::try_from(*index).unwrap_or(i32::MAX);
            client
                .execute(
                    "UPDATE stages SET state = $4, exit_code = $5, finished_at = $6, end_seq = $7,
                            started_at = COALESCE(started_at, $6)
                     WHERE build_id = $1 AND attempt = $2 AND idx = $3",
                    &[
                        &build_id,
                        &attempt,
                        &index,
                        &state.as_str(),
                        exit_code,
                        &at,
                        &seq,
                    ],
                )
                .await?;
        }
        _ => {}
    }
    Ok(())
}

fn event_from_row(
    build_id: BuildId,
    attempt: Attempt,
    row: &Row,
) -> Result<BuildEvent, StoreError> {
    let seq = Seq::from_db(row.get("seq"))?;
    let at: SystemTime = row.get("at");
    let payload: &str = row.get("payload");
    let kind: EventKind = serde_json::from_str(payload).map_err(|e| {
        StoreError::Corrupt(format!(
            "event {seq} of build {build_id} attempt {attempt}: {e}"
        ))
    })?;
    Ok(BuildEvent {
        build_id,
        attempt,
        seq,
        at_ms: unix_ms(at),
        kind,
    })
}
