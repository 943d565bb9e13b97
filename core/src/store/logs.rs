//! The `log_lines` table: lines per build attempt, ordered by their sequence number.

use super::{Store, StoreError};
use crate::model::{LogStream, StoredLine};
use std::time::SystemTime;

impl Store {
    /// Appends lines of `attempt`; returns false (and writes nothing) when a newer attempt
    /// owns the build or it is no longer running. Lines already stored (same seq) are ignored.
    pub async fn append_lines(
        &self,
        build_id: i64,
        attempt: i32,
        lines: &[StoredLine],
    ) -> Result<bool, StoreError> {
        if lines.is_empty() {
            return Ok(true);
        }
        let seqs: Vec<i64> = lines.iter().map(|l| l.seq).collect();
        let stages: Vec<&str> = lines.iter().map(|l| l.stage.as_str()).collect();
        let streams: Vec<i16> = lines.iter().map(|l| l.stream.as_i16()).collect();
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        let ats: Vec<SystemTime> = lines.iter().map(|l| l.at).collect();
        let client = self.client().await?;
        let owner = client
            .query_opt(
                "SELECT 1 FROM builds WHERE id = $1 AND attempt = $2 AND state = 'running'",
                &[&build_id, &attempt],
            )
            .await?;
        if owner.is_none() {
            return Ok(false);
        }
        client
            .execute(
                "INSERT INTO log_lines (build_id, attempt, seq, stage, stream, text, at)
                 SELECT $1, $2, * FROM UNNEST($3::BIGINT[], $4::TEXT[], $5::SMALLINT[], $6::TEXT[], $7::TIMESTAMPTZ[])
                 WHERE EXISTS (SELECT 1 FROM builds WHERE id = $1 AND attempt = $2 AND state = 'running')
                 ON CONFLICT DO NOTHING",
                &[&build_id, &attempt, &seqs, &stages, &streams, &texts, &ats],
            )
            .await?;
        Ok(true)
    }

    /// Every stored line of `attempt`, in order.
    pub async fn lines(&self, build_id: i64, attempt: i32) -> Result<Vec<StoredLine>, StoreError> {
        self.lines_between(build_id, attempt, 0, i64::MAX).await
    }

    /// The stored lines of `attempt` with `after < seq < before`, in order.
    pub async fn lines_between(
        &self,
        build_id: i64,
        attempt: i32,
        after: i64,
        before: i64,
    ) -> Result<Vec<StoredLine>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT seq, stage, stream, text, at FROM log_lines
                 WHERE build_id = $1 AND attempt = $2 AND seq > $3 AND seq < $4 ORDER BY seq",
                &[&build_id, &attempt, &after, &before],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| StoredLine {
                seq: row.get("seq"),
                stage: row.get("stage"),
                stream: LogStream::from_i16(row.get("stream")),
                text: row.get("text"),
                at: row.get("at"),
            })
            .collect())
    }
}
