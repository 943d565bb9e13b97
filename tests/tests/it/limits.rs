//! Giant output: a 10 MB line keeps its first 64 KiB and says how much was cut; a stage
//! printing 1 GB fills the build's log up to the limit (4 MiB for the test workers), then a
//! marker says the rest is not kept, the build goes on and passes, and its last line says
//! how many bytes were dropped. Empty lines (cheap in bytes, not in rows and bus messages)
//! stop at the line limit the same way.

use crate::repo_with;
use ocelot_tests::cluster::Cluster;

const FLOOD_YML: &str = r#"image: ocelot/busybox
stages:
  - name: long-line
    script:
      - head -c 10485760 /dev/zero | tr '\0' x; echo; echo after the long line
  - name: flood
    script:
      - 'yes 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 | head -c 1073741824'
      - echo flood done
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giant_lines_and_a_gigabyte_of_output_are_bounded_with_markers() {
    let cluster = Cluster::start().await.unwrap();
    repo_with(&cluster, "flood", FLOOD_YML, &[]).await;
    let built = cluster.ocelot(&["build", "-r", "flood"]).await.unwrap();
    assert_eq!(
        built.code,
        0,
        "{}",
        &built.both()[..built.both().len().min(4000)]
    );

    let build = cluster.builds().await.unwrap().remove(0);
    let lines = cluster.store.lines(build.id, build.attempt).await.unwrap();
    let stored_bytes: usize = lines.iter().map(|l| l.text.len() + 1).sum();
    let cut = 10_485_760 - 64 * 1024;
    let long = lines
        .iter()
        .find(|l| l.text.starts_with("xxxx"))
        .expect("the long line is stored");
    assert_eq!(
        long.text,
        format!(
            "{} [ocelot: line truncated: {cut} more bytes not kept (lines keep at most 64 KiB)]",
            "x".repeat(64 * 1024)
        )
    );
    let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    assert!(texts.contains(&"after the long line"));
    assert!(
        texts.iter().any(|t| t.starts_with(
            "[ocelot: log truncated: this build printed more than 4 MiB; the rest of its output is not kept"
        )),
        "no truncation marker"
    );
    assert!(
        !texts.contains(&"flood done"),
        "output past the limit was kept"
    );
    // the limit holds: 4 MiB of output plus Ocelot's own few lines
    assert!(
        stored_bytes < 4 * 1024 * 1024 + 4096,
        "{stored_bytes} bytes stored"
    );
    let dropped: u64 = texts
        .iter()
        .find_map(|t| {
            t.strip_prefix("[ocelot: ")?
                .strip_suffix(" bytes of output past the log limit of 4 MiB were not kept]")?
                .parse()
                .ok()
        })
        .expect("a last line says how much was dropped");
    assert!(
        dropped >= 1_073_741_824 - 4 * 1024 * 1024,
        "dropped {dropped}"
    );
    // what was printed equals what is stored
    assert_eq!(build.line_count, Some(i64::try_from(lines.len()).unwrap()));
    assert!(built.stdout.contains("after the long line"));
    assert!(!built.stdout.contains("flood done"));
}

const EMPTY_LINES_YML: &str = r#"image: ocelot/busybox
stages:
  - name: empty-lines
    script:
      - yes '' | head -n 20000
      - echo still running after the flood
"#;

/// 20 000 empty lines cost 20 000 bytes (far under the byte limit) but as many rows and bus
/// messages: a worker keeping 1 000 lines keeps 1 000, then a marker naming the line limit;
/// the build goes on and passes, and the worker runs the next build as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_empty_lines_stops_at_the_line_limit() {
    use ocelot_core::model::LogStream;
    use ocelot_tests::cluster::WorkerSpec;

    let cluster = Cluster::start_with(vec![WorkerSpec {
        max_log_lines: 1000,
        ..WorkerSpec::default()
    }])
    .await
    .unwrap();
    repo_with(&cluster, "empty-lines", EMPTY_LINES_YML, &[]).await;
    let built = cluster
        .ocelot(&["build", "-r", "empty-lines"])
        .await
        .unwrap();
    assert_eq!(
        built.code,
        0,
        "{}",
        &built.both()[..built.both().len().min(4000)]
    );
    let build = cluster.builds().await.unwrap().remove(0);
    let lines = cluster.store.lines(build.id, build.attempt).await.unwrap();
    let output: Vec<&str> = lines
        .iter()
        .filter(|l| l.stream == LogStream::Stdout || l.stream == LogStream::Stderr)
        .map(|l| l.text.as_str())
        .collect();
    assert_eq!(output.len(), 1000, "script lines kept");
    assert!(output.iter().all(|t| t.is_empty()));
    let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    assert!(
        texts.contains(
            &"[ocelot: log truncated: this build printed more than 1000 lines; the rest of its output is not kept (the build goes on)]"
        ),
        "no line-limit marker"
    );
    assert!(!texts.contains(&"still running after the flood"));
    // the bytes past the limit were counted: 19 000 empty lines and the last echo
    let dropped: u64 = texts
        .iter()
        .find_map(|t| {
            t.strip_prefix("[ocelot: ")?
                .strip_suffix(" bytes of output past the log limit of 1000 lines were not kept]")?
                .parse()
                .ok()
        })
        .expect("a last line says how much was dropped");
    assert!(
        (19_000..=19_100).contains(&dropped),
        "dropped {dropped} bytes"
    );
    // every line stored was streamed and is counted by the result
    assert_eq!(build.line_count, Some(i64::try_from(lines.len()).unwrap()));
    assert_eq!(
        built.stdout.lines().filter(|l| l.is_empty()).count(),
        1000,
        "streamed empty lines"
    );

    // the worker is fine: the next build runs and keeps its output
    repo_with(
        &cluster,
        "after",
        "image: ocelot/busybox\nstages:\n  - name: a\n    script: [echo next build]\n",
        &[],
    )
    .await;
    let next = cluster.ocelot(&["build", "-r", "after"]).await.unwrap();
    assert_eq!(next.code, 0, "{}", next.both());
    assert!(next.stdout.contains("next build"), "{}", next.both());
}
