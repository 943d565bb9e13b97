//! The Postgres store and the queue on real servers: migrations, numbering, the attempt
//! fence, and the sweeper that publishes stranded jobs.

use ocelot_core::BuildState;
use ocelot_core::model::{LogStream, StoredLine};
use ocelot_core::store::{ClaimOutcome, NewBuild, Store};
use ocelot_tests::cluster::Cluster;
use ocelot_tests::postgres::TestDatabase;
use ocelot_tests::wait_until;
use std::time::{Duration, SystemTime};

fn new_build(repo_id: i64) -> NewBuild {
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
    assert_eq!((held.attempt, held.worker.as_deref()), (1, Some("w1")));
    // a job delivered again (its worker went silent) does
    let ClaimOutcome::Claimed(two) = store.claim_build(build.id, "w2", 3, true).await.unwrap()
    else {
        panic!("second claim refused");
    };
    assert_eq!((one.attempt, two.attempt), (1, 2));
    let line = StoredLine {
        seq: 1,
        stage: "s".into(),
        stream: LogStream::Stdout,
        text: "late".into(),
        at: SystemTime::now(),
    };
    assert!(
        !store
            .append_lines(build.id, 1, std::slice::from_ref(&line))
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_build(build.id, 1, BuildState::Passed, None, 1, "x")
            .await
            .unwrap()
    );
    assert!(store.append_lines(build.id, 2, &[line]).await.unwrap());
    assert!(
        store
            .finish_build(build.id, 2, BuildState::Failed, Some("r"), 1, "x")
            .await
            .unwrap()
    );
    assert!(store.lines(build.id, 1).await.unwrap().is_empty());
    assert_eq!(store.lines(build.id, 2).await.unwrap().len(), 1);
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
    for (attempt, worker) in (1..).zip(["a", "b", "c", "d", "e"]) {
        assert!(matches!(
            store
                .claim_build(restarted.id, worker, 3, true)
                .await
                .unwrap(),
            ClaimOutcome::Claimed(_)
        ));
        if attempt <= 2 {
            assert!(store.hand_back(restarted.id, attempt).await.unwrap());
        }
    }
    // a stale attempt cannot record a hand-back
    assert!(!store.hand_back(restarted.id, 1).await.unwrap());
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
