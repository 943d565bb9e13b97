//! The `stages` table: one row per stage of each attempt, every write fenced by the attempt.

use super::{Store, StoreError};
use crate::build_state::StageState;
use crate::model::StageRecord;

/// Condition shared by every fenced write: the attempt still owns the running build.
const FENCE: &str =
    "EXISTS (SELECT 1 FROM builds WHERE id = $1 AND attempt = $2 AND state = 'running')";

impl Store {
    /// Records the attempt's stages as pending.
    pub async fn init_stages(
        &self,
        build_id: i64,
        attempt: i32,
        names: &[String],
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let indexes: Vec<i32> = (0..names.len())
            .filter_map(|i| i32::try_from(i).ok())
            .collect();
        client
            .execute(
                &format!(
                    "INSERT INTO stages (build_id, attempt, idx, name, state)
                     SELECT $1, $2, idx, name, 'pending' FROM UNNEST($3::INT[], $4::TEXT[]) AS s(idx, name)
                     WHERE {FENCE} ON CONFLICT DO NOTHING"
                ),
                &[&build_id, &attempt, &indexes, &names],
            )
            .await?;
        Ok(())
    }

    pub async fn stage_started(
        &self,
        build_id: i64,
        attempt: i32,
        index: i32,
        seq: i64,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                &format!(
                    "UPDATE stages SET state = 'running', started_at = now(), start_seq = $4
                     WHERE build_id = $1 AND attempt = $2 AND idx = $3 AND {FENCE}"
                ),
                &[&build_id, &attempt, &index, &seq],
            )
            .await?;
        Ok(())
    }

    pub async fn stage_finished(
        &self,
        build_id: i64,
        attempt: i32,
        index: i32,
        state: StageState,
        exit_code: Option<i32>,
        seq: i64,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                &format!(
                    "UPDATE stages SET state = $4, exit_code = $5, finished_at = now(), end_seq = $6,
                            started_at = COALESCE(started_at, now())
                     WHERE build_id = $1 AND attempt = $2 AND idx = $3 AND {FENCE}"
                ),
                &[&build_id, &attempt, &index, &state.as_str(), &exit_code, &seq],
            )
            .await?;
        Ok(())
    }

    pub async fn stages(
        &self,
        build_id: i64,
        attempt: i32,
    ) -> Result<Vec<StageRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT idx, name, state, exit_code, started_at, finished_at, start_seq, end_seq
                 FROM stages WHERE build_id = $1 AND attempt = $2 ORDER BY idx",
                &[&build_id, &attempt],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let state: String = row.get("state");
                Ok(StageRecord {
                    index: row.get("idx"),
                    name: row.get("name"),
                    state: state
                        .parse()
                        .map_err(|e| StoreError::Corrupt(format!("stage state: {e}")))?,
                    exit_code: row.get("exit_code"),
                    started_at: row.get("started_at"),
                    finished_at: row.get("finished_at"),
                    start_seq: row.get("start_seq"),
                    end_seq: row.get("end_seq"),
                })
            })
            .collect()
    }
}
