//! The CLI's output pinned with insta snapshots (`snapshots/it__cli_output__*.snap`): what
//! `ocelot build`, `status`, `watch` and `workers` print, for people and with `--json` for
//! scripts, from a real build. Ids, times, durations, worker ids, hosts and commit hashes
//! differ from run to run: filters replace them with `[placeholders]`. A change to a
//! snapshot is a change of what users and scripts see: review the `.snap` diff.

use crate::{queued_build_id, repo_with};
use ocelot_tests::cluster::{CliOutput, Cluster};
use ocelot_tests::wait_until;
use std::time::Duration;

/// No stage writes to both stdout and stderr: their order between the two pipes is not
/// certain.
const YML: &str = r#"image: ocelot/busybox
stages:
  - name: compile
    script:
      - echo "compiling $OCELOT_REPO on $GIT_BRANCH"
  - name: lint
    script:
      - echo "a warning" >&2
  - name: test
    script:
      - echo "test 1 ok"
      - echo "test 2 ok"
"#;

const BROKEN_YML: &str = r#"image: ocelot/busybox
stages:
  - name: compile
    script:
      - echo "compiling $OCELOT_REPO on $GIT_BRANCH"
      - exit 3
  - name: test
    script:
      - echo "never runs"
"#;

/// What varies between runs, and what it is shown as.
const FILTERS: &[(&str, &str)] = &[
    // times and durations
    (r#""([a-z_]+_at_ms)":\d+"#, r#""$1":"[time]""#),
    (r#""at_ms":\d+"#, r#""at_ms":"[time]""#),
    (r#""duration_ms":\d+"#, r#""duration_ms":"[duration]""#),
    (r"\b\d+\.\d+s\b\+?", "[duration]"),
    // (with its column's padding, which depends on the number of digits)
    (r"\b\d+s ago\b *", "[seen] ago "),
    // ids: builds, workers, hosts, versions
    (r#""(id|build_id)":\d+"#, r#""$1":"[id]""#),
    (r"\bbuild \d+\b", "build [id]"),
    (r"(?m)^\d+(\s+snap\s)", "[id]$1"),
    (r"test-worker-\d+-[0-9a-f]{8}", "[worker-id]"),
    (r#""host":"[^"]*""#, r#""host":"[host]""#),
    (r#""version":"[^"]*""#, r#""version":"[version]""#),
    // the log's digest (its first line names the commit and the worker), commit hashes
    (
        r#""log_sha256":"[0-9a-f]{64}""#,
        r#""log_sha256":"[sha256]""#,
    ),
    (r"\b[0-9a-f]{40}\b", "[commit]"),
    (r"\b[0-9a-f]{12}\b", "[commit-12]"),
    (r"\b[0-9a-f]{7}\b", "[short-commit]"),
    // the waiting reason of a build that is queued for a moment (timing decides whether
    // one is read before a worker takes it)
    (r"(?m)^queued: .*\n", ""),
];

/// Pins one CLI run (exit code, stdout, stderr) as snapshot `name`.
pub(crate) fn pin(name: &str, output: &CliOutput) {
    pin_with(name, output, &[]);
}

/// [`pin`], replacing what else varies (`extra`: patterns and what they are shown as),
/// before [`FILTERS`].
pub(crate) fn pin_with(name: &str, output: &CliOutput, extra: &[(&str, &str)]) {
    let mut settings = insta::Settings::clone_current();
    for (pattern, replacement) in extra.iter().chain(FILTERS) {
        settings.add_filter(pattern, *replacement);
    }
    settings.bind(|| insta::assert_snapshot!(name, output.both()));
}

/// `ocelot ARGS`, with the exit code it must have.
pub(crate) async fn run(cluster: &Cluster, args: &[&str], code: i32) -> CliOutput {
    let output = cluster.ocelot(args).await.unwrap();
    assert_eq!(output.code, code, "ocelot {args:?}: {}", output.both());
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_status_watch_and_workers_print_what_they_always_printed() {
    let cluster = Cluster::start().await.unwrap();
    let repo = repo_with(&cluster, "snap", YML, &[]).await;
    repo.git(&["checkout", "-q", "-b", "broken"]).unwrap();
    repo.commit(&[("ocelot.yml", BROKEN_YML)], "break the build")
        .unwrap();
    repo.git(&["push", "-q", "origin", "broken"]).unwrap();

    let built = run(&cluster, &["build", "-r", "snap", "-b", "main"], 0).await;
    pin("build_human", &built);
    let passed = queued_build_id(&built);
    let built_json = run(
        &cluster,
        &["build", "-r", "snap", "-b", "main", "--json"],
        0,
    )
    .await;
    pin("build_json", &built_json);
    let failed_run = run(&cluster, &["build", "-r", "snap", "-b", "broken"], 1).await;
    pin("build_failed_human", &failed_run);
    let failed = queued_build_id(&failed_run);
    let failed_json = run(
        &cluster,
        &["build", "-r", "snap", "-b", "broken", "--json"],
        1,
    )
    .await;
    pin("build_failed_json", &failed_json);

    let passed_id = passed.to_string();
    let failed_id = failed.to_string();
    pin(
        "status_human",
        &run(&cluster, &["status", &passed_id], 0).await,
    );
    pin(
        "status_json",
        &run(&cluster, &["status", &passed_id, "--json"], 0).await,
    );
    pin(
        "status_failed_human",
        &run(&cluster, &["status", &failed_id], 1).await,
    );
    pin(
        "status_failed_json",
        &run(&cluster, &["status", &failed_id, "--json"], 1).await,
    );
    pin("status_list_human", &run(&cluster, &["status"], 0).await);
    pin(
        "status_list_json",
        &run(&cluster, &["status", "--json"], 0).await,
    );

    pin(
        "watch_human",
        &run(&cluster, &["watch", &passed_id], 0).await,
    );
    pin(
        "watch_json",
        &run(&cluster, &["watch", &passed_id, "--json"], 0).await,
    );
    pin(
        "watch_failed_human",
        &run(&cluster, &["watch", &failed_id], 1).await,
    );

    // the worker's entry once it has noticed its builds are over
    wait_until(
        "the worker to run nothing",
        Duration::from_secs(20),
        || async {
            let output = cluster.ocelot(&["workers", "--json"]).await.ok()?;
            let workers: serde_json::Value = serde_json::from_str(&output.stdout).ok()?;
            (workers[0]["running"] == 0).then_some(())
        },
    )
    .await
    .unwrap();
    pin("workers_human", &run(&cluster, &["workers"], 0).await);
    pin(
        "workers_json",
        &run(&cluster, &["workers", "--json"], 0).await,
    );
}

/// A build's output with escape sequences aimed at the watcher's terminal.
const HOSTILE_SH: &str = r#"printf '\033[31mred\033[0m plain\n'
printf 'title\033]0;pwned\007 after\n'
printf 'clip\033]52;c;ZWNobyBwd25lZA==\007 end\n'
printf '\033[2J\033[Hcleared\n'
printf 'real failure\r$ fake prompt\n'
printf 'eight\302\2332Jbit\n'
printf 'dcs\033P$qm\033\\ done\n'
printf 'bell\007 and back\010space\n'
"#;

/// What the terminal must never get: every escape or control sequence but SGR colours.
const NEVER_ON_A_TERMINAL: &[(&str, &str)] = &[
    ("OSC title", "\x1b]0;"),
    ("OSC 52 clipboard", "\x1b]52;"),
    ("clear screen", "\x1b[2J"),
    ("cursor home", "\x1b[H"),
    ("carriage return", "\r"),
    ("8-bit CSI", "\u{9b}"),
    ("DCS", "\x1bP"),
    ("BEL", "\x07"),
    ("backspace", "\x08"),
];

/// A build that prints title, clipboard, clear-screen, fake-prompt, 8-bit CSI and DCS
/// sequences: `ocelot build` and `ocelot watch` show its colours and its text, and none of
/// the sequences; `--json` carries the raw bytes for scripts; the build passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_output_cannot_drive_the_watchers_terminal() {
    let cluster = Cluster::start().await.unwrap();
    let yml = "image: ocelot/busybox\nstages:\n  - name: hostile\n    script: [sh hostile.sh]\n";
    repo_with(&cluster, "hostile", yml, &[("hostile.sh", HOSTILE_SH)]).await;
    let built = run(&cluster, &["build", "-r", "hostile"], 0).await;
    let build_id = queued_build_id(&built).to_string();
    let watched = run(&cluster, &["watch", &build_id], 0).await;
    assert_eq!(watched.stdout, built.stdout, "replay differs");
    for shown in [&built, &watched] {
        for (what, sequence) in NEVER_ON_A_TERMINAL {
            assert!(
                !shown.both().contains(sequence),
                "{what} reached the terminal: {:?}",
                shown.both()
            );
        }
        // the colours stay (reset at the end of the line), and the text around every sequence
        for text in [
            "\x1b[31mred\x1b[0m plain\x1b[0m\n",
            "title after\n",
            "clip end\n",
            "cleared\n",
            "real failure$ fake prompt\n",
            "eight2Jbit\n",
            "dcs done\n",
            "bell and backspace\n",
        ] {
            assert!(
                shown.stdout.contains(text),
                "{text:?} missing: {:?}",
                shown.stdout
            );
        }
        // every escape left opens a colour: `ESC [ digits/;/: m`
        for (at, _) in shown.stdout.match_indices('\x1b') {
            let rest = &shown.stdout[at + 1..];
            let end = rest.find('m').expect("an unterminated sequence");
            assert!(
                rest.starts_with('[')
                    && rest[1..end]
                        .chars()
                        .all(|c| c.is_ascii_digit() || c == ';' || c == ':'),
                "not a colour: {:?}",
                &rest[..end.min(20)]
            );
        }
    }

    // scripts get the bytes the build printed
    let json = run(&cluster, &["watch", &build_id, "--json"], 0).await;
    let texts: Vec<String> = json
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["kind"]["type"] == "line")
        .filter_map(|e| e["kind"]["text"].as_str().map(str::to_string))
        .collect();
    for raw in [
        "\x1b[31mred\x1b[0m plain",
        "title\x1b]0;pwned\x07 after",
        "clip\x1b]52;c;ZWNobyBwd25lZA==\x07 end",
        "\x1b[2J\x1b[Hcleared",
        "real failure\r$ fake prompt",
        "eight\u{9b}2Jbit",
        "dcs\x1bP$qm\x1b\\ done",
        "bell\x07 and back\x08space",
    ] {
        assert!(
            texts.iter().any(|t| t == raw),
            "{raw:?} not in the JSON lines: {texts:?}"
        );
    }
}
