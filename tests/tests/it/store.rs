//! The Postgres store and the queue on real servers: migrations, numbering, the attempt
//! fence, and the sweeper that publishes stranded jobs.

use ocelot_core::BuildState;
use ocelot_core::StageState;
use ocelot_core::events::{BuildEvent, EventKind};
use ocelot_core::ids::{Attempt, BuildId, RepoId, Seq};
use ocelot_core::model::LogStream;
use ocelot_core::store::{Appended, ClaimOutcome, NewBuild, Store, StoreError};
use ocelot_tests::cluster::Cluster;
use ocelot_tests::postgres::TestDatabase;
use ocelot_tests::wait_until;
use std::time::Duration;

/// A fresh database with one repo and one build, claimed by worker `w1` (attempt 1).
async fn claimed_build() -> (TestDatabase, Store, ocelot_core::model::Build) {
    let database = TestDatabase::create().await.unwrap();
    let store = Store::connect(&database.url).await.unwrap();
    let repo = store
        .add_repo("r", "git://h/r", "main", None)
        .await
        .unwrap();
    let build = store.insert_build(&new_build(repo.id)).await.unwrap().build;
    let ClaimOutcome::Claimed(claimed) = store.claim_build(build.id, "w1", 3, true).await.unwrap()
    else {
        panic!("claim refused");
    };
    (database, store, claimed)
}

fn new_build(repo_id: RepoId) -> NewBuild {
    NewBuild {
        repo_id,
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        branch: "main".into(),
        trigger: "manual".into(),
        tag: "default".into(),
        state: BuildState::Queued,
        reason: None,
        previous_commit: None,
        pull_request: None,
        git_tag: None,
        dedupe_key: None,
        params: Default::default(),
        notify: Vec::new(),
        trace_id: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_idempotent_and_builds_are_numbered_per_repo() {
    let database = TestDatabase::create().await.unwrap();
    let store = Store::connect(&database.url).await.unwrap();
    let again = Store::connect(&database.url).await.unwrap();
    let a = store
        .add_repo("a", "git://h/a.git", "main", None)
        .await
        .unwrap();
    let b = again
        .add_repo("b", "git://h/b", "main", None)
        .await
        .unwrap();
    assert!(
        store
            .add_repo("a", "git://h/other", "main", None)
            .await
            .is_err()
    );
    assert_eq!(store.find_repo("git://h/a").await.unwrap().id, a.id);
    assert_eq!(store.find_repo("git://h/b.git/").await.unwrap().id, b.id);
    let first = store.insert_build(&new_build(a.id)).await.unwrap().build;
    let second = store.insert_build(&new_build(a.id)).await.unwrap().build;
    let other = store.insert_build(&new_build(b.id)).await.unwrap().build;
    assert_eq!((first.number, second.number, other.number), (1, 2, 1));
}

/// Ids are issued by `BIGSERIAL`s from 1: a stored id below that is a corrupt row, never
/// read as a build or a repo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_id_below_one_is_corrupt() {
    let database = TestDatabase::create().await.unwrap();
    let store = Store::connect(&database.url).await.unwrap();
    let repo = store
        .add_repo("r", "git://h/r", "main", None)
        .await
        .unwrap();
    let build = store.insert_build(&new_build(repo.id)).await.unwrap().build;
    let (client, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .execute(
            "UPDATE builds SET id = 0 WHERE id = $1",
            &[&build.id.to_db()],
        )
        .await
        .unwrap();
    match store.get_build(BuildId::from(0)).await {
        Err(StoreError::Corrupt(message)) => {
            assert_eq!(message, "build id 0 is out of range");
        }
        other => panic!("a build stored with id 0 was read: {other:?}"),
    }
    client
        .batch_execute("INSERT INTO repos (id, name, url) VALUES (-1, 'minus', 'git://h/minus')")
        .await
        .unwrap();
    match store.list_repos().await {
        Err(StoreError::Corrupt(message)) => {
            assert_eq!(message, "repo id -1 is out of range");
        }
        other => panic!("a repo stored with id -1 was read: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_attempt_fences_out_every_write_of_an_older_one() {
    let database = TestDatabase::create().await.unwrap();
    let store = Store::connect(&database.url).await.unwrap();
    let repo = store
        .add_repo("r", "git://h/r", "main", None)
        .await
        .unwrap();
    let build = store.insert_build(&new_build(repo.id)).await.unwrap().build;
    let ClaimOutcome::Claimed(one) = store.claim_build(build.id, "w1", 3, true).await.unwrap()
    else {
        panic!("first claim refused");
    };
    // a first delivery of a duplicate job does not take a running build over
    let ClaimOutcome::HeldByAnother(held) =
        store.claim_build(build.id, "dup", 3, false).await.unwrap()
    else {
        panic!("a duplicate job took a running build over");
    };
    assert_eq!(
        (held.attempt, held.worker.as_deref()),
        (Attempt::FIRST, Some("w1"))
    );
    // a job delivered again (its worker went silent) does
    let ClaimOutcome::Claimed(two) = store.claim_build(build.id, "w2", 3, true).await.unwrap()
    else {
        panic!("second claim refused");
    };
    assert_eq!(
        (one.attempt, two.attempt),
        (Attempt::FIRST, Attempt::from(2))
    );
    let line = |attempt: u32, seq: u64| BuildEvent {
        build_id: build.id,
        attempt: Attempt::from(attempt),
        seq: Seq::from(seq),
        at_ms: 1,
        kind: EventKind::Line {
            stage: "s".into(),
            stream: LogStream::Stdout,
            text: "late".into(),
        },
    };
    let result = |attempt: u32, seq: u64, state: BuildState| BuildEvent {
        kind: EventKind::Result {
            state,
            reason: "r".into(),
            duration_ms: 5,
            line_count: 1,
            log_sha256: "x".into(),
        },
        ..line(attempt, seq)
    };
    // the replaced attempt writes nothing, neither its log nor its result
    assert_eq!(
        store
            .append_events(build.id, Attempt::FIRST, &[line(1, 1)])
            .await
            .unwrap(),
        Appended::FencedOut
    );
    assert_eq!(
        store
            .finish_attempt(
                build.id,
                Attempt::FIRST,
                &[result(1, 2, BuildState::Passed)]
            )
            .await
            .unwrap(),
        Appended::FencedOut
    );
    assert_eq!(
        store
            .append_events(build.id, Attempt::from(2), &[line(2, 1)])
            .await
            .unwrap(),
        Appended::Stored
    );
    assert_eq!(
        store
            .finish_attempt(
                build.id,
                Attempt::from(2),
                &[result(2, 2, BuildState::Failed)]
            )
            .await
            .unwrap(),
        Appended::Stored
    );
    assert!(
        store
            .lines(build.id, Attempt::FIRST)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.lines(build.id, Attempt::from(2)).await.unwrap().len(),
        1
    );
    let done = store.get_build(build.id).await.unwrap();
    assert_eq!(
        (done.state, done.worker.as_deref()),
        (BuildState::Failed, Some("w2"))
    );
    assert!(matches!(
        store.claim_build(build.id, "w3", 3, true).await.unwrap(),
        ClaimOutcome::AlreadyFinal(_)
    ));

    let lost = store.insert_build(&new_build(repo.id)).await.unwrap().build;
    for worker in ["a", "b", "c"] {
        assert!(matches!(
            store.claim_build(lost.id, worker, 3, true).await.unwrap(),
            ClaimOutcome::Claimed(_)
        ));
    }
    let ClaimOutcome::AttemptsExhausted(gone) =
        store.claim_build(lost.id, "d", 3, true).await.unwrap()
    else {
        panic!("a fourth attempt was allowed");
    };
    assert_eq!(gone.state, BuildState::Errored);
    assert_eq!(gone.reason.as_deref(), Some("worker lost 3 times"));

    // attempts handed back at a worker's shutdown do not count against the limit
    let restarted = store.insert_build(&new_build(repo.id)).await.unwrap().build;
    // attempts 1 and 2 handed back, 3, 4 and 5 lost
    for (attempt, worker) in (1..).map(Attempt::from).zip(["a", "b", "c", "d", "e"]) {
        assert!(matches!(
            store
                .claim_build(restarted.id, worker, 3, true)
                .await
                .unwrap(),
            ClaimOutcome::Claimed(_)
        ));
        if attempt <= Attempt::from(2) {
            assert!(store.hand_back(restarted.id, attempt).await.unwrap());
        }
    }
    // a stale attempt cannot record a hand-back
    assert!(!store.hand_back(restarted.id, Attempt::FIRST).await.unwrap());
    let ClaimOutcome::AttemptsExhausted(gone) =
        store.claim_build(restarted.id, "f", 3, true).await.unwrap()
    else {
        panic!("a fourth lost attempt was allowed");
    };
    assert_eq!(gone.reason.as_deref(), Some("worker lost 3 times"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_publishes_a_queued_build_whose_job_never_reached_nats() {
    let cluster = Cluster::start().await.unwrap();
    let repo = cluster
        .git
        .create_repo(
            "stranded",
            &[(
                "ocelot.yml",
                "image: ocelot/busybox\nstages:\n  - name: s\n    script: [echo swept]\n",
            )],
        )
        .unwrap();
    cluster.add_repo("stranded", &repo.url).await.unwrap();
    let commit = ocelot_core::git::resolve_branch(&repo.url, "main", None).unwrap();
    let stored_repo = cluster.store.find_repo("stranded").await.unwrap();
    // as if the admin died between the insert and the publish
    let build = cluster
        .store
        .insert_build(&NewBuild {
            commit,
            ..new_build(stored_repo.id)
        })
        .await
        .unwrap()
        .build;
    let finished = wait_until("the stranded build to run", Duration::from_secs(60), || {
        let store = cluster.store.clone();
        async move {
            let build = store.get_build(build.id).await.ok()?;
            build.state.is_final().then_some(build)
        }
    })
    .await
    .unwrap();
    assert_eq!(finished.state, BuildState::Passed, "{finished:?}");
    let lines = cluster
        .store
        .lines(build.id, finished.attempt)
        .await
        .unwrap();
    assert!(lines.iter().any(|l| l.text == "swept"));
}

/// The one log: what the worker stores is what a replay reads back, page by page, and the
/// stage rows follow the stage events in the same transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_events_come_back_in_order_with_the_stages_they_imply() {
    let (_database, store, claimed) = claimed_build().await;
    let build = claimed.clone();
    let event = |seq: u64, kind: EventKind| BuildEvent {
        build_id: build.id,
        attempt: Attempt::FIRST,
        seq: Seq::from(seq),
        at_ms: 1_700_000_000_000 + i64::try_from(seq).unwrap(),
        kind,
    };
    let mut events = vec![
        event(
            1,
            EventKind::AttemptStarted {
                needs: Vec::new(),
                worker: "w1".into(),
                commit: claimed.commit.clone(),
                branch: "main".into(),
                stages: vec!["build".into(), "test".into()],
            },
        ),
        event(
            2,
            EventKind::StageStarted {
                index: 0,
                name: "build".into(),
            },
        ),
    ];
    for seq in 3..=2502 {
        events.push(event(
            seq,
            EventKind::Line {
                stage: "build".into(),
                stream: LogStream::Stdout,
                text: format!("line {seq}"),
            },
        ));
    }
    assert_eq!(
        store
            .append_events(build.id, Attempt::FIRST, &events)
            .await
            .unwrap(),
        Appended::Stored
    );
    let stages = store.stages(build.id, Attempt::FIRST).await.unwrap();
    assert_eq!(
        stages
            .iter()
            .map(|s| (s.name.as_str(), s.state))
            .collect::<Vec<_>>(),
        [
            ("build", StageState::Running),
            ("test", StageState::Pending)
        ]
    );
    assert_eq!(stages[0].start_seq, Some(Seq::from(2)));
    // a batch sent again (a retried write) changes nothing
    assert_eq!(
        store
            .append_events(build.id, Attempt::FIRST, &events[..10])
            .await
            .unwrap(),
        Appended::Stored
    );
    let finished = event(
        2503,
        EventKind::StageFinished {
            index: 0,
            name: "build".into(),
            state: StageState::Failed,
            exit_code: Some(2),
            duration_ms: 7,
        },
    );
    let result = event(
        2504,
        EventKind::Result {
            state: BuildState::Failed,
            reason: "stage `build` failed with exit code 2".into(),
            duration_ms: 9,
            line_count: 2500,
            log_sha256: "digest".into(),
        },
    );
    assert_eq!(
        store
            .finish_attempt(
                build.id,
                Attempt::FIRST,
                &[finished.clone(), result.clone()]
            )
            .await
            .unwrap(),
        Appended::Stored
    );
    let done = store.get_build(build.id).await.unwrap();
    assert_eq!(done.state, BuildState::Failed);
    assert_eq!(done.line_count, Some(2500));
    assert_eq!(done.log_sha256.as_deref(), Some("digest"));
    assert_eq!(
        done.reason.as_deref(),
        Some("stage `build` failed with exit code 2")
    );
    let stages = store.stages(build.id, Attempt::FIRST).await.unwrap();
    assert_eq!(
        (stages[0].state, stages[0].exit_code, stages[0].end_seq),
        (StageState::Failed, Some(2), Some(Seq::from(2503)))
    );
    // read back in pages, exactly as stored
    let mut replayed = Vec::new();
    let mut after = Seq::START;
    loop {
        let page = store
            .events(build.id, Attempt::FIRST, after, Seq::from(u64::MAX), 1000)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        replayed.extend(page);
    }
    events.push(finished);
    events.push(result);
    assert_eq!(replayed, events);
    assert_eq!(
        store.lines(build.id, Attempt::FIRST).await.unwrap().len(),
        2500
    );
    // a window of a gap, as the admin fills it
    let gap = store
        .events(build.id, Attempt::FIRST, Seq::from(10), Seq::from(14), 100)
        .await
        .unwrap();
    assert_eq!(
        gap.iter().map(|e| e.seq.get()).collect::<Vec<_>>(),
        [11, 12, 13]
    );
    // no result without the result event
    assert!(
        store
            .finish_attempt(build.id, Attempt::FIRST, &events[..1])
            .await
            .is_err()
    );
}

/// Logs kept before the one event log (lines and stage rows only) are migrated into it:
/// the attempt's start, its stages, its lines and its result, in sequence order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_of_the_old_shape_are_migrated_into_events() {
    // the schema as migration 8 left it, with one finished build in the old shape
    let (database, client) = TestDatabase::at_migration(9).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO repos (name, url) VALUES ('r', 'git://h/r');
             INSERT INTO builds (repo_id, number, commit_sha, branch, trigger, state, attempt,
                                 worker_id, tag, started_at, finished_at, line_count, log_sha256)
             SELECT id, 1, 'abc', 'main', 'manual', 'passed', 1, 'w1', 'default',
                    now() - interval '3 seconds', now(), 2, 'sha' FROM repos;
             INSERT INTO stages (build_id, attempt, idx, name, state, exit_code, started_at,
                                 finished_at, start_seq, end_seq)
             SELECT id, 1, 0, 'build', 'passed', 0, now() - interval '2 seconds', now(), 3, 6
             FROM builds;
             INSERT INTO log_lines (build_id, attempt, seq, stage, stream, text, at)
             SELECT id, 1, 2, 'setup', 3, 'build 1 of r', now() FROM builds
             UNION ALL SELECT id, 1, 4, 'build', 1, 'compiling', now() FROM builds
             UNION ALL SELECT id, 1, 5, 'build', 2, 'warning', now() FROM builds;",
        )
        .await
        .unwrap();
    let store = Store::connect(&database.url).await.unwrap();
    let build = store
        .list_builds(&Default::default())
        .await
        .unwrap()
        .remove(0);
    let events = store
        .events(
            build.id,
            Attempt::FIRST,
            Seq::START,
            Seq::from(u64::MAX),
            100,
        )
        .await
        .unwrap();
    let kinds: Vec<(u64, &str)> = events
        .iter()
        .map(|e| (e.seq.get(), e.kind.name()))
        .collect();
    assert_eq!(
        kinds,
        [
            (1, "attempt_started"),
            (2, "line"),
            (3, "stage_started"),
            (4, "line"),
            (5, "line"),
            (6, "stage_finished"),
            (7, "result"),
        ]
    );
    assert!(matches!(
        &events[0].kind,
        EventKind::AttemptStarted { worker, stages, .. } if worker == "w1" && stages == &["build"]
    ));
    assert!(matches!(
        &events[4].kind,
        EventKind::Line { stream: LogStream::Stderr, text, .. } if text == "warning"
    ));
    assert!(matches!(
        &events[6].kind,
        EventKind::Result { state: BuildState::Passed, line_count: 2, log_sha256, .. } if log_sha256 == "sha"
    ));
}

/// Every write of a build's state goes through the state machine: an attempt that would
/// "finish" its build as queued or running (or skipped, which only a trigger decides) is
/// refused with a clear error before any SQL runs, and writes nothing, neither the build
/// row nor its events; a new build cannot begin running either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finish_to_a_state_that_is_not_a_result_is_refused_and_writes_nothing() {
    let (_database, store, claimed) = claimed_build().await;
    let build = claimed.clone();
    let event = |seq: u64, kind: EventKind| BuildEvent {
        build_id: build.id,
        attempt: Attempt::FIRST,
        seq: Seq::from(seq),
        at_ms: 1,
        kind,
    };
    let line = event(
        1,
        EventKind::Line {
            stage: "s".into(),
            stream: LogStream::Stdout,
            text: "out".into(),
        },
    );
    let result = |state: BuildState| {
        event(
            2,
            EventKind::Result {
                state,
                reason: "r".into(),
                duration_ms: 5,
                line_count: 1,
                log_sha256: "x".into(),
            },
        )
    };
    for state in [BuildState::Queued, BuildState::Running, BuildState::Skipped] {
        let error = store
            .finish_attempt(build.id, Attempt::FIRST, &[line.clone(), result(state)])
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(&format!(
                "build {} attempt 1: an attempt cannot finish a build as `{state}` \
                 (a result is one of: passed, failed, errored, cancelled, timed_out)",
                build.id
            )),
            "{error}"
        );
        let unchanged = store.get_build(build.id).await.unwrap();
        assert_eq!(
            (
                unchanged.state,
                unchanged.attempt,
                unchanged.finished_at,
                unchanged.reason,
                unchanged.line_count
            ),
            (BuildState::Running, claimed.attempt, None, None, None),
            "{state}"
        );
        assert!(
            store
                .events(
                    build.id,
                    Attempt::FIRST,
                    Seq::START,
                    Seq::from(u64::MAX),
                    100
                )
                .await
                .unwrap()
                .is_empty(),
            "{state}"
        );
    }
    // the same attempt still finishes with a result
    assert_eq!(
        store
            .finish_attempt(
                build.id,
                Attempt::FIRST,
                &[line.clone(), result(BuildState::Passed)]
            )
            .await
            .unwrap(),
        Appended::Stored
    );
    let done = store.get_build(build.id).await.unwrap();
    assert_eq!((done.state, done.line_count), (BuildState::Passed, Some(1)));
    assert_eq!(
        store
            .events(
                build.id,
                Attempt::FIRST,
                Seq::START,
                Seq::from(u64::MAX),
                100
            )
            .await
            .unwrap()
            .len(),
        2
    );
    // and a final build stays final: a queued-only cancel finds nothing to cancel
    assert!(
        store
            .cancel_queued_build(build.id, "too late")
            .await
            .unwrap()
            .is_none()
    );

    // a new build begins queued, skipped or errored, never running
    let error = store
        .insert_build(&NewBuild {
            state: BuildState::Running,
            ..new_build(claimed.repo_id)
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("a new build cannot be `running`"), "{error}");
    // the refused insert took no number
    let next = store
        .insert_build(&new_build(claimed.repo_id))
        .await
        .unwrap()
        .build;
    assert_eq!(next.number, build.number + 1);
}

/// Commit statuses in the outbox: queued only for a repo with a known forge and a vcs
/// credential for its host; the statuses of one build and commit go out one at a time, and
/// only the newest waiting one (an older waiting one ends `superseded`).
#[tokio::test]
async fn commit_statuses_coalesce_and_go_out_one_at_a_time() {
    let database = TestDatabase::create().await.unwrap();
    let store = Store::connect(&database.url).await.unwrap();
    let (sql, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let lone = store
        .add_repo("lone", "https://github.com/o/lone.git", "main", None)
        .await
        .unwrap();
    let repo = store
        .add_repo("o/app", "https://github.com/o/app.git", "main", None)
        .await
        .unwrap();
    // a vcs credential for github.com in o/app's scope (the value is not read here)
    sql.execute(
        "INSERT INTO credentials (name, kind, scope_kind, scope, key_id, nonce, ciphertext, details)
         VALUES ('forge', 'vcs', 'prefix', 'o/', 'k', '\\x00', '\\x00', '{\"host\": \"github.com\"}')",
        &[],
    )
    .await
    .unwrap();
    let without = store.insert_build(&new_build(lone.id)).await.unwrap().build;
    assert!(store.deliveries(without.id).await.unwrap().is_empty());

    let build = store.insert_build(&new_build(repo.id)).await.unwrap().build;
    let ClaimOutcome::Claimed(_) = store.claim_build(build.id, "w1", 3, false).await.unwrap()
    else {
        panic!("claim refused");
    };
    let queued = store.deliveries(build.id).await.unwrap();
    assert_eq!(
        queued
            .iter()
            .map(|d| (d.kind.as_str(), d.target.as_str()))
            .collect::<Vec<_>>(),
        [("status", "ocelot/o/app"), ("status", "ocelot/o/app")]
    );
    // the queued status is overtaken by running: only running is sent
    let claimed = store
        .claim_outbox(10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let running = &claimed[0];
    assert_eq!(running.reports, "running");
    assert_eq!(running.payload["forge"], "github");
    assert_eq!(running.payload["api_url"], "https://api.github.com");
    assert_eq!(running.payload["path"], "o/app");
    assert_eq!(running.payload["commit"], build.commit.as_str());
    // the result arrives while running is in flight: it waits for it
    sql.execute(
        "INSERT INTO outbox (build_id, kind, target, reports, coalesce_key)
         VALUES ($1, 'status', 'ocelot/o/app', 'passed', $2)",
        &[
            &build.id.get(),
            &format!("status:{}:{}", build.id, build.commit),
        ],
    )
    .await
    .unwrap();
    assert!(
        store
            .claim_outbox(10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.outbox_sent(running).await.unwrap());
    let last = store
        .claim_outbox(10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].reports, "passed");
    assert!(store.outbox_sent(&last[0]).await.unwrap());
    let statuses: Vec<String> = store
        .deliveries(build.id)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.status)
        .collect();
    assert_eq!(statuses, ["superseded", "sent", "sent"]);
}
