//! Giant output: a 10 MB line keeps its first 64 KiB and says how much was cut; a stage
//! printing 1 GB fills the build's log up to the limit (4 MiB for the test workers), then a
//! marker says the rest is not kept, the build goes on and passes, and its last line says
//! how many bytes were dropped.

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
