//! The log path in batches: a script's lines travel as runs (one event, one bus message, one
//! row for many lines), every line numbered. A watcher that resumes from any line, inside a
//! run too, of a flooding build gets every line once, in order, with the digest of the
//! result; a slow build's line reaches its watcher while the build still sleeps (it does not
//! wait for a batch to fill).

use crate::{repo_with, status_json};
use ocelot_core::events::{LogDigest, run_line_count};
use ocelot_core::ids::BuildId;
use ocelot_proto::v1 as pb;
use ocelot_tests::cluster::Cluster;
use pb::build_event::Kind;
use std::time::Duration;
use tonic::Streaming;
use tonic::metadata::MetadataValue;

/// How long any one event may take to arrive before the test gives up (a hang, not a timing).
const PATIENCE: Duration = Duration::from_secs(120);

async fn watch(
    cluster: &Cluster,
    build_id: BuildId,
    after_attempt: u32,
    after_seq: u64,
) -> Streaming<pb::BuildEvent> {
    let channel = cluster.channel().await.unwrap();
    let mut client = pb::admin_client::AdminClient::new(channel);
    let mut request = tonic::Request::new(pb::WatchBuildRequest {
        id: build_id.into(),
        after_attempt,
        after_seq,
        attempt: 0,
    });
    let bearer: MetadataValue<_> = format!("Bearer {}", cluster.token).parse().unwrap();
    request.metadata_mut().insert("authorization", bearer);
    client.watch_build(request).await.unwrap().into_inner()
}

async fn next(stream: &mut Streaming<pb::BuildEvent>) -> Option<pb::BuildEvent> {
    tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("no event within the patience")
        .unwrap()
}

/// Every event a watcher got, each line with its sequence number.
#[derive(Debug, Default)]
struct Received {
    /// `(attempt, seq)` of the last event received.
    last: (u32, u64),
    /// The script's lines `(seq, text)`.
    lines: Vec<(u64, String)>,
    digest: LogDigest,
    runs: usize,
    result: Option<pb::BuildResult>,
}

impl Received {
    /// Takes an event; it must follow the last one directly (no gap, no repeat).
    fn take(&mut self, event: &pb::BuildEvent) {
        let expected = if event.attempt == self.last.0 {
            self.last.1 + 1
        } else {
            1
        };
        assert_eq!(
            event.seq, expected,
            "event after {:?} is not the next one: {event:?}",
            self.last
        );
        let mut last_seq = event.seq;
        match &event.kind {
            Some(Kind::Line(line)) => self.digest.add_line(&line.text),
            Some(Kind::Lines(run)) => {
                let count = run_line_count(&run.text);
                assert!(count > 0 && run.text.ends_with('\n'), "{event:?}");
                self.digest.add_run(&run.text);
                self.runs += 1;
                for (seq, text) in (event.seq..).zip(run.text.split_terminator('\n')) {
                    self.lines.push((seq, text.to_string()));
                }
                last_seq = event.seq + count - 1;
            }
            Some(Kind::Result(result)) => self.result = Some(result.clone()),
            _ => {}
        }
        self.last = (event.attempt, last_seq);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_resumed_inside_runs_has_every_line_once_and_in_order() {
    let cluster = Cluster::start().await.unwrap();
    const LINES: u64 = 200_000;
    let yml = format!(
        "image: ocelot/busybox\nstages:\n  - name: flood\n    script:\n      - seq 1 {LINES}\n"
    );
    repo_with(&cluster, "flood", &yml, &[]).await;
    let queued = cluster
        .ocelot(&["build", "-r", "flood", "--no-follow"])
        .await
        .unwrap();
    assert_eq!(queued.code, 0, "{}", queued.both());
    let build_id: BuildId = queued.stdout.trim().parse().unwrap();

    // the watcher drops its stream in the middle of a run, three times while the build
    // floods, and resumes after the last line it kept
    let mut received = Received::default();
    let mut resumes = 0;
    let mut stream = watch(&cluster, build_id, 0, 0).await;
    while received.result.is_none() {
        let Some(mut event) = next(&mut stream).await else {
            panic!("the stream ended before the result");
        };
        if let Some(Kind::Lines(run)) = &mut event.kind
            && resumes < 3
            && run_line_count(&run.text) >= 3
            && received.lines.len() > (resumes + 1) * 20_000
        {
            // keep the run's first two lines only, then resume after them
            let keep: usize = run.text.match_indices('\n').nth(1).unwrap().0 + 1;
            run.text.truncate(keep);
            received.take(&event);
            resumes += 1;
            drop(stream);
            stream = watch(&cluster, build_id, received.last.0, received.last.1).await;
            continue;
        }
        received.take(&event);
    }
    assert_eq!(resumes, 3, "the flood ended before three resumes");
    assert!(
        received.runs < received.lines.len() / 10,
        "lines were not batched: {} runs for {} lines",
        received.runs,
        received.lines.len()
    );
    let script: Vec<(u64, String)> = received
        .lines
        .iter()
        .filter(|(_, text)| !text.is_empty())
        .cloned()
        .collect();
    let texts: Vec<u64> = script.iter().map(|(_, t)| t.parse().unwrap()).collect();
    assert_eq!(texts, (1..=LINES).collect::<Vec<u64>>());
    let result = received.result.clone().unwrap();
    assert_eq!(result.state, pb::BuildState::Passed as i32, "{result:?}");
    assert_eq!(result.line_count, received.digest.count());
    assert_eq!(result.log_sha256, received.digest.hex());

    // the finished build replays from a line inside a run: from the next line on
    let status = status_json(&cluster, build_id).await;
    assert_eq!(status["state"], "passed", "{status}");
    let middle = received.lines[received.lines.len() / 2].0;
    let attempt = received.last.0;
    let mut replay = Received {
        last: (attempt, middle),
        ..Received::default()
    };
    let mut stream = watch(&cluster, build_id, attempt, middle).await;
    while let Some(event) = next(&mut stream).await {
        replay.take(&event);
    }
    let expected: Vec<(u64, String)> = received
        .lines
        .iter()
        .filter(|(seq, _)| *seq > middle)
        .cloned()
        .collect();
    assert_eq!(replay.lines, expected);
    assert!(replay.result.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_builds_line_reaches_the_watcher_while_the_build_still_sleeps() {
    let cluster = Cluster::start().await.unwrap();
    let yml = "image: ocelot/busybox\nstages:\n  - name: slow\n    script:\n      - echo first\n      - sleep 600\n";
    repo_with(&cluster, "slow", yml, &[]).await;
    let queued = cluster
        .ocelot(&["build", "-r", "slow", "--no-follow"])
        .await
        .unwrap();
    assert_eq!(queued.code, 0, "{}", queued.both());
    let build_id: BuildId = queued.stdout.trim().parse().unwrap();
    let mut stream = watch(&cluster, build_id, 0, 0).await;
    let mut received = Received::default();
    while !received.lines.iter().any(|(_, text)| text == "first") {
        let Some(event) = next(&mut stream).await else {
            panic!("the stream ended before the line");
        };
        received.take(&event);
        assert!(received.result.is_none(), "the build ended: {event:?}");
    }
    // the line came while the script sleeps: nothing waited for more output
    let status = status_json(&cluster, build_id).await;
    assert_eq!(status["state"], "running", "{status}");
    let killed = cluster
        .ocelot(&["kill", &build_id.to_string()])
        .await
        .unwrap();
    assert_eq!(killed.code, 0, "{}", killed.both());
}
