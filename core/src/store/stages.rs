//! The `stages` table: one row per stage of each attempt, written with the attempt's stage
//! events (`events.rs`), read here.

use super::{Store, StoreError};
use crate::ids::{Attempt, BuildId, Seq};
use crate::model::StageRecord;

impl Store {
    /// The stages of `attempt`, in order (their rows follow the attempt's stored events).
    pub async fn stages(
        &self,
        build_id: BuildId,
        attempt: Attempt,
    ) -> Result<Vec<StageRecord>, StoreError> {
        let client = self.client().await?;
        let build_id = build_id.to_db();
        let attempt = attempt.to_db();
        let rows = client
            .query(
                "SELECT idx, name, state, exit_code, started_at, finished_at, start_seq, end_seq,
                        needs
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
                    start_seq: row
                        .get::<_, Option<i64>>("start_seq")
                        .map(Seq::from_db)
                        .transpose()?,
                    end_seq: row
                        .get::<_, Option<i64>>("end_seq")
                        .map(Seq::from_db)
                        .transpose()?,
                    needs: row.get("needs"),
                })
            })
            .collect()
    }
}
