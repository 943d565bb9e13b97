//! What a message says about a build, read from the store: the build, the stage that ended
//! it and that stage's last (masked) lines.

use ocelot_core::BuildState;
use ocelot_core::StageState;
use ocelot_core::ids::BuildId;
use ocelot_core::notify::{BuildReport, FailingStage, LAST_LINES, build_link};
use ocelot_core::store::{Store, StoreError};

/// The report of `build_id` as it ended in `reports` (the state the message was queued for).
pub(crate) async fn build_report(
    store: &Store,
    build_id: BuildId,
    reports: &str,
    build_url: Option<&str>,
) -> Result<BuildReport, StoreError> {
    let build = store.get_build(build_id).await?;
    let state: BuildState = reports.parse().unwrap_or(build.state);
    let duration = match (build.started_at, build.finished_at) {
        (Some(started), Some(finished)) => finished.duration_since(started).ok(),
        _ => None,
    };
    let failing_stage = if state == BuildState::Passed {
        None
    } else {
        let stages = store.stages(build_id, build.attempt).await?;
        let failed = stages.into_iter().find(|stage| {
            matches!(
                stage.state,
                StageState::Failed | StageState::TimedOut | StageState::Cancelled
            )
        });
        match failed {
            Some(stage) => {
                let last_lines = match stage.start_seq {
                    Some(start) => {
                        store
                            .stage_tail(build_id, build.attempt, start, stage.end_seq, LAST_LINES)
                            .await?
                    }
                    None => Vec::new(),
                };
                Some(FailingStage {
                    name: stage.name,
                    state: stage.state.as_str().to_string(),
                    exit_code: stage.exit_code,
                    last_lines,
                })
            }
            None => None,
        }
    };
    Ok(BuildReport {
        build_id: build.id.get(),
        link: build_url.map(|t| build_link(t, build.id.get(), &build.repo_name, build.number)),
        repo: build.repo_name,
        number: build.number,
        branch: build.branch,
        commit: build.commit,
        trigger: build.trigger,
        state,
        reason: build.reason,
        duration,
        failing_stage,
    })
}
