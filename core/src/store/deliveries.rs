//! The `webhook_deliveries` table: each delivery is recorded once (a repeated delivery id is
//! recognised), and the recorded deliveries are the durable queue of triggers that the
//! hookhandlers process off the request path, each claimed by one of them at a time.

use super::{Store, StoreError};
use crate::ids::{BuildId, RepoId};
use std::time::Duration;
use tokio_postgres::Row;

/// A delivery to record.
#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    pub provider: &'a str,
    pub delivery_id: &'a str,
    pub repo_id: RepoId,
    pub event: &'a str,
    /// What to queue, as the hookhandler understood it.
    pub request: &'a serde_json::Value,
}

/// Whether a delivery was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New,
    /// Its id was seen before and it had failed for good: it is queued again.
    Requeued,
    /// Its id was seen before: nothing more to do.
    Duplicate,
}

/// A recorded delivery, claimed for processing.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub provider: String,
    pub delivery_id: String,
    pub repo_id: RepoId,
    pub event: String,
    pub request: serde_json::Value,
    pub attempts: i32,
    pub state: String,
    pub build_id: Option<BuildId>,
    pub error: Option<String>,
}

fn delivery_from_row(row: &Row) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        provider: row.get("provider"),
        delivery_id: row.get("delivery_id"),
        repo_id: RepoId::from_db(row.get("repo_id"))?,
        event: row.get("event"),
        request: row.get("request"),
        attempts: row.get("attempts"),
        state: row.get("state"),
        build_id: row
            .get::<_, Option<i64>>("build_id")
            .map(BuildId::from_db)
            .transpose()?,
        error: row.get("error"),
    })
}

const COLUMNS: &str =
    "provider, delivery_id, repo_id, event, request, attempts, state, build_id, error";

impl Store {
    /// Records one delivery (see [`Store::record_deliveries`]).
    pub async fn record_delivery(
        &self,
        delivery: &NewDelivery<'_>,
    ) -> Result<Recorded, StoreError> {
        let mut recorded = self
            .record_deliveries(std::slice::from_ref(delivery))
            .await?;
        recorded
            .pop()
            .ok_or_else(|| StoreError::Corrupt("no answer for the recorded delivery".into()))
    }

    /// Records `deliveries` in one statement, so in one transaction and one commit (a group
    /// commit: all are recorded, or none and the error is returned), and says for each, in
    /// their order, whether it was new. A delivery that failed for good may be delivered
    /// again by its host: then it is queued again; any other repeat changes nothing (a
    /// delivery id repeated within `deliveries` is recorded by its first occurrence).
    pub async fn record_deliveries(
        &self,
        deliveries: &[NewDelivery<'_>],
    ) -> Result<Vec<Recorded>, StoreError> {
        if deliveries.is_empty() {
            return Ok(Vec::new());
        }
        // each key once (a row may not be changed twice by one statement), in key order (two
        // groups committing at once lock their rows in the same order: no deadlock)
        let mut first_of_key = std::collections::BTreeMap::new();
        for (index, delivery) in deliveries.iter().enumerate() {
            first_of_key
                .entry((delivery.provider, delivery.delivery_id))
                .or_insert(index);
        }
        let unique: Vec<&NewDelivery<'_>> = first_of_key
            .values()
            .map(|&index| &deliveries[index])
            .collect();
        let providers: Vec<&str> = unique.iter().map(|d| d.provider).collect();
        let ids: Vec<&str> = unique.iter().map(|d| d.delivery_id).collect();
        let repo_ids: Vec<i64> = unique.iter().map(|d| d.repo_id.to_db()).collect();
        let events: Vec<&str> = unique.iter().map(|d| d.event).collect();
        let requests: Vec<&serde_json::Value> = unique.iter().map(|d| d.request).collect();
        let client = self.client().await?;
        // prepared once per connection: one round trip per group
        let insert = client
            .prepare_cached(
                "INSERT INTO webhook_deliveries (provider, delivery_id, repo_id, event, request)
                 SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::JSONB[])
                 ON CONFLICT (provider, delivery_id) DO UPDATE
                     SET state = 'pending', attempts = 0, not_before = now(), error = NULL,
                         request = EXCLUDED.request
                     WHERE webhook_deliveries.state = 'failed'
                 RETURNING provider, delivery_id, (xmax = 0) AS inserted",
            )
            .await?;
        let rows = client
            .query(&insert, &[&providers, &ids, &repo_ids, &events, &requests])
            .await?;
        let mut changed = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            let key: (String, String) = (row.try_get("provider")?, row.try_get("delivery_id")?);
            changed.insert(key, row.try_get::<_, bool>("inserted")?);
        }
        Ok(deliveries
            .iter()
            .enumerate()
            .map(|(index, delivery)| {
                let first = first_of_key.get(&(delivery.provider, delivery.delivery_id));
                let key = (
                    delivery.provider.to_string(),
                    delivery.delivery_id.to_string(),
                );
                match changed.get(&key) {
                    Some(true) if first == Some(&index) => Recorded::New,
                    Some(false) if first == Some(&index) => Recorded::Requeued,
                    _ => Recorded::Duplicate,
                }
            })
            .collect())
    }

    /// Claims the oldest delivery that is due (or whose claim expired after `lease`).
    pub async fn claim_delivery(&self, lease: Duration) -> Result<Option<Delivery>, StoreError> {
        let client = self.client().await?;
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let row = client
            .query_opt(
                &format!(
                    "UPDATE webhook_deliveries SET state = 'processing', attempts = attempts + 1,
                            not_before = now() + make_interval(secs => $1::BIGINT / 1000.0)
                     WHERE (provider, delivery_id) = (
                         SELECT provider, delivery_id FROM webhook_deliveries
                         WHERE state IN ('pending', 'processing') AND not_before <= now()
                         ORDER BY not_before LIMIT 1 FOR UPDATE SKIP LOCKED)
                     RETURNING {COLUMNS}"
                ),
                &[&lease_ms],
            )
            .await?;
        row.as_ref().map(delivery_from_row).transpose()
    }

    /// The delivery queued `build_id` (or was decided without one).
    /// Only the claim that is still current (same attempt) may record the outcome.
    pub async fn finish_delivery(
        &self,
        delivery: &Delivery,
        build_id: Option<BuildId>,
    ) -> Result<(), StoreError> {
        let build_id = build_id.map(BuildId::to_db);
        let client = self.client().await?;
        client
            .execute(
                "UPDATE webhook_deliveries SET state = 'done', build_id = $3, error = NULL,
                        processed_at = now()
                 WHERE provider = $1 AND delivery_id = $2 AND attempts = $4 AND state = 'processing'",
                &[&delivery.provider, &delivery.delivery_id, &build_id, &delivery.attempts],
            )
            .await?;
        Ok(())
    }

    /// Processing failed: try again after `delay`, or give up (`delay` = None).
    pub async fn fail_delivery(
        &self,
        delivery: &Delivery,
        error: &str,
        retry_after: Option<Duration>,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let delay_ms = retry_after.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        client
            .execute(
                "UPDATE webhook_deliveries
                 SET state = CASE WHEN $4::BIGINT IS NULL THEN 'failed' ELSE 'pending' END,
                     not_before = now() + make_interval(secs => COALESCE($4::BIGINT, 0) / 1000.0),
                     error = $3, processed_at = now()
                 WHERE provider = $1 AND delivery_id = $2 AND attempts = $5 AND state = 'processing'",
                &[&delivery.provider, &delivery.delivery_id, &error, &delay_ms, &delivery.attempts],
            )
            .await?;
        Ok(())
    }

    pub async fn delivery(
        &self,
        provider: &str,
        delivery_id: &str,
    ) -> Result<Delivery, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {COLUMNS} FROM webhook_deliveries WHERE provider = $1 AND delivery_id = $2"
                ),
                &[&provider, &delivery_id],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("delivery {provider}/{delivery_id}")))?;
        delivery_from_row(&row)
    }
}
