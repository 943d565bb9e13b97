//! The `builds` table: creation, claims fenced by the attempt number, final states, queries.

use super::{Store, StoreError};
use crate::build_params::BuildParams;
use crate::build_state::{BuildState, BuildTransition};
use crate::ids::{Attempt, BuildId, RepoId};
use crate::model::{Build, PullRequestRef};
use deadpool_postgres::GenericClient;
use std::time::{Duration, SystemTime};
use tokio_postgres::Row;

const SELECT_BUILD: &str = "SELECT b.id, b.repo_id, r.name AS repo_name, r.url AS repo_url, b.number, \
     b.commit_sha, b.branch, b.trigger, b.state, b.attempt, b.worker_id, b.tag, b.failure_reason, \
     b.queued_at, b.started_at, b.finished_at, b.line_count, b.log_sha256, \
     b.previous_commit, b.pr_number, b.base_branch, b.git_tag, b.from_fork, \
     (b.from_fork AND NOT r.secrets_for_forks) AS withhold_secrets, b.cancel_requested_by, \
     b.params_env, b.forced, b.selected_stage, b.trace_id \
     FROM builds b JOIN repos r ON r.id = b.repo_id";

/// Reads a build on a connection (or transaction) the caller already holds: one connection
/// per operation, so a full pool can never deadlock an operation against itself.
async fn build_with(client: &impl GenericClient, id: BuildId) -> Result<Build, StoreError> {
    let row = client
        .query_opt(&format!("{SELECT_BUILD} WHERE b.id = $1"), &[&id.to_db()])
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("build {id}")))?;
    build_from_row(&row)
}

fn build_from_row(row: &Row) -> Result<Build, StoreError> {
    let state: String = row.get("state");
    Ok(Build {
        id: BuildId::from_db(row.get("id"))?,
        repo_id: RepoId::from_db(row.get("repo_id"))?,
        repo_name: row.get("repo_name"),
        repo_url: row.get("repo_url"),
        number: row.get("number"),
        commit: row.get("commit_sha"),
        branch: row.get("branch"),
        trigger: row.get("trigger"),
        state: state
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("build state: {e}")))?,
        attempt: Attempt::from_db(row.get("attempt"))?,
        worker: row.get("worker_id"),
        tag: row.get("tag"),
        reason: row.get("failure_reason"),
        queued_at: row.get("queued_at"),
        started_at: row.get("started_at"),
        finished_at: row.get("finished_at"),
        line_count: row.get("line_count"),
        log_sha256: row.get("log_sha256"),
        previous_commit: row.get("previous_commit"),
        pull_request: row
            .get::<_, Option<i64>>("pr_number")
            .map(|number| PullRequestRef {
                number,
                base_branch: row
                    .get::<_, Option<String>>("base_branch")
                    .unwrap_or_default(),
                from_fork: row.get("from_fork"),
            }),
        git_tag: row.get("git_tag"),
        withhold_secrets: row.get("withhold_secrets"),
        cancel_requested_by: row.get("cancel_requested_by"),
        params: BuildParams {
            env: serde_json::from_value(row.get("params_env"))
                .map_err(|e| StoreError::Corrupt(format!("build parameters: {e}")))?,
            force: row.get("forced"),
            stage: row.get("selected_stage"),
        },
        trace_id: row.get("trace_id"),
    })
}

/// A state change checked against the state machine, in the SQL's terms: the state to
/// write, and the states the row must be in for the write to apply (`state = ANY(from)`),
/// each of which may become it. The one way a store method writes `builds.state`.
#[derive(Debug)]
pub(super) struct StateChange {
    pub(super) to: &'static str,
    pub(super) from: Vec<&'static str>,
}

/// Checks `transition` of `build` (for messages) before any SQL runs: a change the
/// machine forbids is an error and writes nothing.
pub(super) fn state_change(
    build: &str,
    transition: BuildTransition,
) -> Result<StateChange, StoreError> {
    let from = transition
        .sources()
        .map_err(|error| StoreError::Refused(format!("{build}: {error}")))?;
    Ok(StateChange {
        to: transition.target().as_str(),
        from: from.into_iter().map(BuildState::as_str).collect(),
    })
}

/// What a trigger knows about a build before it exists.
#[derive(Debug, Clone)]
pub struct NewBuild {
    pub repo_id: RepoId,
    pub commit: String,
    pub branch: String,
    pub trigger: String,
    pub tag: String,
    /// `Queued`, or a final state decided before any worker ran (e.g. `Skipped`).
    pub state: BuildState,
    pub reason: Option<String>,
    pub previous_commit: Option<String>,
    pub pull_request: Option<PullRequestRef>,
    pub git_tag: Option<String>,
    /// Set for automatic triggers: a second build with the same key is not created.
    pub dedupe_key: Option<String>,
    /// `--env`, `--force`, `--stage` (already checked).
    pub params: BuildParams,
    /// The targets of the file's `notify:`, told when the build ends.
    pub notify: Vec<ocelot_domain::notify::NotifyTarget>,
    /// Follows the build through the services' logs ([`crate::trace`]).
    pub trace_id: Option<String>,
}

/// A build insert: the new build, or the one that already had its dedupe key.
#[derive(Debug)]
pub struct Inserted {
    pub build: Build,
    pub created: bool,
}

/// Which builds to list.
#[derive(Debug, Clone, Default)]
pub struct BuildFilter {
    pub repo_id: Option<RepoId>,
    pub branch: Option<String>,
    pub state: Option<BuildState>,
    pub limit: i64,
    /// Only builds of these repos (a token limited to some repos); `None`: any repo.
    pub repo_ids: Option<Vec<RepoId>>,
    /// Only builds of commits starting with this (lower-case hex, checked by the caller);
    /// `None`: any commit.
    pub commit_prefix: Option<String>,
}

/// The result of a worker's claim on a build.
#[derive(Debug)]
pub enum ClaimOutcome {
    /// The build is this worker's under `build.attempt`.
    Claimed(Build),
    /// The build had already reached a final state: nothing to run.
    AlreadyFinal(Build),
    /// The build has used up its attempts and was marked errored.
    AttemptsExhausted(Build),
    /// The build runs under another attempt whose job is alive: this job is a duplicate.
    HeldByAnother(Build),
}

/// The attempt a claim replaced, when the build was running: it ends without a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superseded {
    pub attempt: Attempt,
    /// The worker that ran it and went silent (its job's lease ran out); `None` when that
    /// worker handed the build back itself (a shutdown).
    pub lost_worker: Option<String>,
}

/// A claim's outcome, with the attempt it replaced (a take-over).
#[derive(Debug)]
pub struct Claim {
    pub outcome: ClaimOutcome,
    pub superseded: Option<Superseded>,
}

impl Store {
    /// Inserts a build with the next number of its repository, unless a build with the same
    /// dedupe key exists: then that one is returned with `created: false`.
    pub async fn insert_build(&self, new: &NewBuild) -> Result<Inserted, StoreError> {
        let change = state_change(
            &format!("new build of repo id {}", new.repo_id),
            BuildTransition::Create(new.state),
        )?;
        let repo_id = new.repo_id.to_db();
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        if let Some(key) = &new.dedupe_key {
            // serialise concurrent inserts of one key (webhook and poller at once)
            transaction
                .execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[key])
                .await?;
            let existing = transaction
                .query_opt("SELECT id FROM builds WHERE dedupe_key = $1", &[key])
                .await?;
            if let Some(row) = existing {
                let build = build_with(&transaction, BuildId::from_db(row.get(0))?).await?;
                transaction.commit().await?;
                return Ok(Inserted {
                    build,
                    created: false,
                });
            }
        }
        let number: i64 = transaction
            .query_opt(
                "UPDATE repos SET build_counter = build_counter + 1 WHERE id = $1 RETURNING build_counter",
                &[&repo_id],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("repo id {}", new.repo_id)))?
            .get(0);
        let finished_at = new.state.is_final().then(SystemTime::now);
        let pr_number = new.pull_request.as_ref().map(|pr| pr.number);
        let base_branch = new.pull_request.as_ref().map(|pr| pr.base_branch.clone());
        let from_fork = new.pull_request.as_ref().is_some_and(|pr| pr.from_fork);
        let params_env = serde_json::to_value(&new.params.env)
            .map_err(|e| StoreError::Corrupt(format!("build parameters: {e}")))?;
        let notify = serde_json::to_value(&new.notify)
            .map_err(|e| StoreError::Corrupt(format!("notify targets: {e}")))?;
        let id: i64 = transaction
            .query_one(
                "INSERT INTO builds (repo_id, number, commit_sha, branch, trigger, state, tag,
                                     failure_reason, finished_at, previous_commit, pr_number,
                                     base_branch, git_tag, dedupe_key, from_fork,
                                     params_env, forced, selected_stage, notify, trace_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                         $16, $17, $18, $19, $20)
                 RETURNING id",
                &[
                    &repo_id,
                    &number,
                    &new.commit,
                    &new.branch,
                    &new.trigger,
                    &change.to,
                    &new.tag,
                    &new.reason,
                    &finished_at,
                    &new.previous_commit,
                    &pr_number,
                    &base_branch,
                    &new.git_tag,
                    &new.dedupe_key,
                    &from_fork,
                    &params_env,
                    &new.params.force,
                    &new.params.stage,
                    &notify,
                    &new.trace_id,
                ],
            )
            .await?
            .get(0);
        let id = BuildId::from_db(id)?;
        super::commit_status::enqueue_status(&transaction, id).await?;
        let build = build_with(&transaction, id).await?;
        transaction.commit().await?;
        Ok(Inserted {
            build,
            created: true,
        })
    }

    /// The id of this installation (one per database), as text.
    pub async fn instance_id(&self) -> Result<String, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT id::text FROM ocelot_instance", &[])
            .await?;
        Ok(row.get(0))
    }

    /// Cancels a build that no worker has started: `None` when it is not queued.
    pub async fn cancel_queued_build(
        &self,
        id: BuildId,
        reason: &str,
    ) -> Result<Option<Build>, StoreError> {
        let change = state_change(&format!("build {id}"), BuildTransition::CancelQueued)?;
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let updated = transaction
            .execute(
                "UPDATE builds SET state = $3, failure_reason = $2, finished_at = now()
                 WHERE id = $1 AND state = ANY($4)",
                &[&id.to_db(), &reason, &change.to, &change.from],
            )
            .await?;
        if updated == 0 {
            return Ok(None);
        }
        super::outbox::enqueue_notifications(&transaction, id).await?;
        super::commit_status::enqueue_status(&transaction, id).await?;
        let build = build_with(&transaction, id).await?;
        transaction.commit().await?;
        crate::metrics::build_finished(build.state, &build.trigger);
        Ok(Some(build))
    }

    /// Asks the worker running a build to stop it: `false` when it is not running.
    pub async fn request_cancel(&self, id: BuildId, by: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let updated = client
            .execute(
                "UPDATE builds SET cancel_requested_by = $2 WHERE id = $1 AND state = 'running'",
                &[&id.to_db(), &by],
            )
            .await?;
        Ok(updated > 0)
    }

    pub async fn mark_job_published(&self, build_id: BuildId) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE builds SET job_published = true WHERE id = $1",
                &[&build_id.to_db()],
            )
            .await?;
        Ok(())
    }

    /// Queued builds whose job was not (known to be) published, queued at least `age` ago.
    pub async fn unpublished_builds(&self, age: Duration) -> Result<Vec<Build>, StoreError> {
        let client = self.client().await?;
        let cutoff = SystemTime::now() - age;
        let rows = client
            .query(
                &format!(
                    "{SELECT_BUILD} WHERE b.state = 'queued' AND NOT b.job_published AND b.queued_at <= $1 ORDER BY b.id LIMIT 500"
                ),
                &[&cutoff],
            )
            .await?;
        rows.iter().map(build_from_row).collect()
    }

    pub async fn get_build(&self, id: BuildId) -> Result<Build, StoreError> {
        let client = self.client().await?;
        build_with(&client, id).await
    }

    /// Builds matching `filter`, newest first.
    pub async fn list_builds(&self, filter: &BuildFilter) -> Result<Vec<Build>, StoreError> {
        let client = self.client().await?;
        let repo_id = filter.repo_id.map(RepoId::to_db);
        let repo_ids: Option<Vec<i64>> = filter
            .repo_ids
            .as_ref()
            .map(|ids| ids.iter().copied().map(RepoId::to_db).collect());
        let state = filter.state.map(|s| s.as_str());
        let limit = if filter.limit <= 0 {
            20
        } else {
            filter.limit.min(1000)
        };
        let rows = client
            .query(
                &format!(
                    "{SELECT_BUILD} WHERE ($1::BIGINT IS NULL OR b.repo_id = $1)
                       AND ($2::TEXT IS NULL OR b.branch = $2)
                       AND ($3::TEXT IS NULL OR b.state = $3)
                       AND ($5::BIGINT[] IS NULL OR b.repo_id = ANY($5))
                       AND ($6::TEXT IS NULL OR starts_with(b.commit_sha, $6))
                     ORDER BY b.id DESC LIMIT $4"
                ),
                &[
                    &repo_id,
                    &filter.branch,
                    &state,
                    &limit,
                    &repo_ids,
                    &filter.commit_prefix,
                ],
            )
            .await?;
        rows.iter().map(build_from_row).collect()
    }

    /// Claims a build for `worker`: a new attempt, which fences every write of older ones.
    /// A build over `max_attempts` is marked errored instead. A `running` build is taken
    /// over only when `take_over_running` (its job came back: the worker holding it went
    /// silent or handed it back); a first delivery for a running build is a duplicate job.
    pub async fn claim_build(
        &self,
        build_id: BuildId,
        worker: &str,
        max_attempts: i32,
        take_over_running: bool,
    ) -> Result<ClaimOutcome, StoreError> {
        self.claim(build_id, worker, max_attempts, take_over_running)
            .await
            .map(|claim| claim.outcome)
    }

    /// [`Store::claim_build`], also telling which attempt a take-over replaced and whether
    /// its worker was lost.
    pub async fn claim(
        &self,
        build_id: BuildId,
        worker: &str,
        max_attempts: i32,
        take_over_running: bool,
    ) -> Result<Claim, StoreError> {
        let what = format!("build {build_id}");
        let claim = state_change(&what, BuildTransition::Claim { take_over_running })?;
        let exhaust = state_change(&what, BuildTransition::ExhaustAttempts)?;
        let id = build_id.to_db();
        let mut client = self.client().await?;
        // the row as it was before the claim (locked first, so it is the one updated); the
        // `running` status is queued in the claim's transaction
        let transaction = client.transaction().await?;
        let claimed = transaction
            .query_opt(
                "UPDATE builds b SET state = $5, attempt = b.attempt + 1, worker_id = $2,
                        started_at = now(), job_published = true
                 FROM (SELECT id, state AS was_state, attempt AS was_attempt,
                              worker_id AS was_worker
                         FROM builds WHERE id = $1 FOR UPDATE) was
                 WHERE b.id = was.id AND b.state = ANY($4)
                   AND b.attempt - b.handed_back < $3
                 RETURNING was.was_state, was.was_attempt, was.was_worker",
                &[&id, &worker, &max_attempts, &claim.from, &claim.to],
            )
            .await?;
        if claimed.is_some() {
            super::commit_status::enqueue_status(&transaction, build_id).await?;
        }
        transaction.commit().await?;
        if let Some(was) = claimed {
            let superseded = if was.get::<_, String>(0) == BuildState::Running.as_str() {
                Some(Superseded {
                    attempt: Attempt::from_db(was.get(1))?,
                    lost_worker: was.get(2),
                })
            } else {
                None
            };
            return Ok(Claim {
                outcome: ClaimOutcome::Claimed(build_with(&client, build_id).await?),
                superseded,
            });
        }
        let build = build_with(&client, build_id).await?;
        let done = |outcome| {
            Ok(Claim {
                outcome,
                superseded: None,
            })
        };
        if build.state.is_final() {
            return done(ClaimOutcome::AlreadyFinal(build));
        }
        if build.state == BuildState::Running && !take_over_running {
            return done(ClaimOutcome::HeldByAnother(build));
        }
        let lost: i32 = client
            .query_one(
                "SELECT attempt - handed_back FROM builds WHERE id = $1",
                &[&id],
            )
            .await?
            .get(0);
        let reason = format!("worker lost {lost} times");
        let transaction = client.transaction().await?;
        let exhausted = transaction
            .execute(
                "UPDATE builds SET state = $3, failure_reason = $2, finished_at = now(),
                        attempt = attempt + 1
                 WHERE id = $1 AND state = ANY($4)",
                &[&id, &reason, &exhaust.to, &exhaust.from],
            )
            .await?;
        if exhausted == 1 {
            super::outbox::enqueue_notifications(&transaction, build_id).await?;
            super::commit_status::enqueue_status(&transaction, build_id).await?;
        }
        transaction.commit().await?;
        let build = build_with(&client, build_id).await?;
        if exhausted == 1 {
            crate::metrics::build_finished(build.state, &build.trigger);
        }
        done(ClaimOutcome::AttemptsExhausted(build))
    }

    /// Records that `attempt` was handed back by a worker shutting down, so that it does not
    /// count against the attempt limit; false when the attempt no longer owns the build.
    /// No worker holds the build until the next claim (its worker is cleared), which tells
    /// that claim the attempt was handed back, not lost.
    pub async fn hand_back(&self, build_id: BuildId, attempt: Attempt) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let build_id = build_id.to_db();
        let attempt = attempt.to_db();
        let updated = client
            .execute(
                "UPDATE builds SET handed_back = handed_back + 1, worker_id = NULL
                 WHERE id = $1 AND attempt = $2 AND state = 'running'",
                &[&build_id, &attempt],
            )
            .await?;
        Ok(updated == 1)
    }

    /// The commit of the latest passed build of `repo_id`'s `branch` before `build_id`, of
    /// the same kind: a pull request's build (named `pull/N`; earlier releases named it after
    /// its source branch) or a tag's (`tags/NAME`; earlier: the bare name) is never the
    /// previous success of a branch build, nor the reverse.
    pub async fn previous_successful_commit(
        &self,
        repo_id: RepoId,
        branch: &str,
        build_id: BuildId,
    ) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let (repo_id, build_id) = (repo_id.to_db(), build_id.to_db());
        let row = client
            .query_opt(
                "SELECT b.commit_sha FROM builds b WHERE b.repo_id = $1 AND b.branch = $2
                   AND b.id < $3 AND b.state = 'passed'
                   AND ((b.pr_number IS NULL), (b.git_tag IS NULL)) =
                       (SELECT this.pr_number IS NULL, this.git_tag IS NULL
                          FROM builds this WHERE this.id = $3)
                 ORDER BY b.id DESC LIMIT 1",
                &[&repo_id, &branch, &build_id],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }
}
