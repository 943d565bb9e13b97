//! Tests for `ocelot.yml` parsing: fixtures, original-format files, error
//! collection and positions, hints, the trigger language, branches, timeouts.

use std::path::PathBuf;
use std::time::Duration;

use super::*;

fn fixtures(kind: &str) -> Vec<(PathBuf, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pipeline")
        .join(kind);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

fn errors(text: &str) -> PipelineErrors {
    match parse(text) {
        Ok(p) => panic!("expected errors, parsed {p:#?}"),
        Err(e) => e,
    }
}

fn ctx<'a>(branch: &'a str, messages: &'a [String], paths: &'a [String]) -> TriggerContext<'a> {
    TriggerContext {
        branch,
        commit_messages: messages,
        changed_paths: paths,
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn every_good_fixture_parses() {
    for (path, text) in fixtures("good") {
        if let Err(e) = parse(&text) {
            panic!("{} should parse:\n{e}", path.display());
        }
    }
}

/// Bad fixtures fail; a first line `# expect-lines: 3 7` lists the line of
/// every expected error, in order.
#[test]
fn every_bad_fixture_fails_with_the_expected_lines() {
    for (path, text) in fixtures("bad") {
        let errs = match parse(&text) {
            Ok(_) => panic!("{} should fail", path.display()),
            Err(e) => e,
        };
        assert!(!errs.is_empty());
        if let Some(spec) = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect-lines:"))
        {
            let expected: Vec<usize> = spec
                .split_whitespace()
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(errs.lines(), expected, "{}:\n{errs}", path.display());
        }
        for e in &errs {
            assert!(e.line >= 1 && e.column >= 1, "{}: {e}", path.display());
            assert!(!e.to_string().contains('\n'), "{}: {e}", path.display());
        }
    }
}

const DESIGN: &str = r#"image: maven:3.5.2
buildTool: maven
branches: [master, "release/.*"]
env: ["MARIANNE=1"]
machineTag: linux
notify:
  slack:
    identifier: my-slack
    channel: "@jessi-shank"
    on: [PASS, FAIL]
stages:
  - name: build
    env: ["MAVEN_OPTS=-Xmx1g"]
    trigger: { branches: [master] }
    script:
      - mvn clean install
  - name: deploy
    triggers:
      - \branch master||develop and \filepath src/main
    script: [echo deploy]
"#;

#[test]
fn design_example_parses_to_the_expected_model() {
    let p = parse(DESIGN).unwrap();
    assert_eq!(p.image.as_deref(), Some("maven:3.5.2"));
    assert_eq!(p.machine_tag.as_deref(), Some("linux"));
    assert_eq!(p.build_tool.as_deref(), Some("maven"));
    assert_eq!(
        p.branches,
        vec![
            BranchPattern::Regex("master".into()),
            BranchPattern::Regex("release/.*".into())
        ]
    );
    assert_eq!(
        p.env,
        vec![EnvVar {
            key: "MARIANNE".into(),
            value: "1".into()
        }]
    );
    assert_eq!(p.timeout, None);
    let slack = p.notify.as_ref().and_then(|n| n.slack.as_ref()).unwrap();
    assert_eq!(slack.identifier, "my-slack");
    assert_eq!(slack.channel, "@jessi-shank");
    assert_eq!(slack.on, vec![NotifyOn::Pass, NotifyOn::Fail]);

    assert_eq!(p.stages.len(), 2);
    let build = &p.stages[0];
    assert_eq!(build.name, "build");
    assert_eq!(build.script, vec!["mvn clean install"]);
    assert_eq!(build.env[0].key, "MAVEN_OPTS");
    assert_eq!(build.env[0].value, "-Xmx1g");
    assert_eq!(
        build.condition,
        StageCondition::Branches(vec![BranchPattern::Regex("master".into())])
    );

    let deploy = &p.stages[1];
    let StageCondition::Triggers(lines) = &deploy.condition else {
        panic!("expected triggers, got {:?}", deploy.condition);
    };
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].join, Join::All);
    assert_eq!(lines[0].sections[0].kind, SectionKind::Branch);
    assert_eq!(lines[0].sections[0].join, Join::Any);
    assert_eq!(lines[0].sections[0].values, vec!["master", "develop"]);
    assert_eq!(lines[0].sections[1].kind, SectionKind::Filepath);
    assert_eq!(
        lines[0].to_string(),
        "\\branch master||develop and \\filepath src/main"
    );

    let main = strings(&["src/main/App.java"]);
    let docs = strings(&["docs/readme.md"]);
    assert!(build.should_run(&ctx("master", &[], &[])));
    assert!(!build.should_run(&ctx("develop", &[], &[])));
    assert!(deploy.should_run(&ctx("develop", &[], &main)));
    assert!(!deploy.should_run(&ctx("develop", &[], &docs)));
    assert!(!deploy.should_run(&ctx("feature/x", &[], &main)));
}

#[test]
fn stage_without_trigger_always_runs() {
    let p = parse("image: a\nstages:\n  - name: s\n    script: [x]\n").unwrap();
    assert_eq!(p.stages[0].condition, StageCondition::Always);
    assert!(p.stages[0].should_run(&ctx("anything", &[], &[])));
    assert!(
        p.branch_matches("any/branch"),
        "no `branches` = every branch"
    );
}

#[test]
fn model_is_serde_and_triggers_serialize_as_text() {
    fn assert_serde<T: serde::Serialize + serde::de::DeserializeOwned>() {}
    assert_serde::<Pipeline>();
    assert_serde::<PipelineErrors>();
    let p = parse(DESIGN).unwrap();
    let StageCondition::Triggers(lines) = &p.stages[1].condition else {
        panic!()
    };
    let text: String = lines[0].clone().into();
    assert_eq!(TriggerExpr::try_from(text).unwrap(), lines[0]);
}

#[test]
fn multiple_errors_are_all_reported_with_positions() {
    let text = "\
imagee: alpine
branches: ['(bad']
stages:
  - name: build
    scrpt: [make]
  - name: build
    script: [make]
    timeout: 0s
  - name: test
    script: make test
";
    let errs = errors(text);
    let got: Vec<(usize, usize)> = errs.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(
        got,
        vec![
            (1, 1),
            (1, 1),
            (2, 12),
            (4, 5),
            (5, 5),
            (6, 11),
            (8, 14),
            (10, 13)
        ],
        "{errs}"
    );
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "imagee",
            "image",
            "branches[0]",
            "stages[0].script",
            "stages[0].scrpt",
            "stages[1].name",
            "stages[1].timeout",
            "stages[2].script",
        ]
    );
    assert_eq!(errs.len(), 8);
    assert_eq!(errs.to_string().lines().count(), 8);
}

#[test]
fn typo_gets_a_did_you_mean_hint() {
    let text =
        "image: alpine\nstages:\n  - name: a\n    script: [x]\n  - name: b\n    scrpt: [x]\n";
    let errs = errors(text);
    let unknown = errs.iter().find(|e| e.message == "unknown field").unwrap();
    assert_eq!(unknown.field, "stages[1].scrpt");
    assert_eq!(unknown.hint.as_deref(), Some("did you mean `script`?"));
    assert_eq!(
        unknown.to_string(),
        "line 6, column 5: stages[1].scrpt: unknown field (did you mean `script`?)"
    );

    let errs = errors("machine_tag: linux\nstages: [{name: a, script: [x]}]\n");
    assert!(
        errs.iter()
            .any(|e| e.hint.as_deref() == Some("did you mean `machineTag`?")),
        "{errs}"
    );
    let errs = errors("image: a\nstages: [{name: a, script: [x], trigger: {branch: [m]}}]\n");
    assert!(
        errs.to_string().contains("did you mean `branches`?"),
        "{errs}"
    );
    let errs = errors("image: a\nzzzz: 1\nstages: [{name: a, script: [x]}]\n");
    assert_eq!(errs.0[0].hint, None, "nothing close to `zzzz`");
}

#[test]
fn image_or_machine_tag_is_required() {
    let errs = errors("stages: [{name: a, script: [x]}]\n");
    assert_eq!(errs.len(), 1);
    assert!(errs.0[0].message.contains("`image`"));
    assert!(errs.0[0].message.contains("`machineTag`"));
    assert!(parse("machineTag: m\nstages: [{name: a, script: [x]}]\n").is_ok());
    let errs = errors("image: ''\nstages: [{name: a, script: [x]}]\n");
    assert_eq!(errs.0[0].message, "must not be empty");
}

#[test]
fn empty_and_non_mapping_files_get_a_clear_error() {
    for text in ["", "   \n", "# just a comment\n", "{}"] {
        let errs = errors(text);
        assert_eq!(errs.len(), 1, "{text:?}");
        assert!(errs.0[0].message.contains("empty"), "{errs}");
    }
    for text in ["- a\n- b\n", "just a string\n", "42"] {
        let errs = errors(text);
        assert_eq!(errs.len(), 1);
        assert!(
            errs.0[0].message.contains("top level must be a mapping"),
            "{errs}"
        );
    }
}

#[test]
fn yaml_syntax_error_has_its_line() {
    let errs = errors("image: alpine\nstages:\n  - name: a\n   script: [x\n");
    assert_eq!(errs.len(), 1);
    assert!(errs.0[0].message.starts_with("YAML syntax error"), "{errs}");
    assert!(errs.0[0].line >= 3, "{errs}");
}

#[test]
fn wrong_types_name_the_field_and_the_expectation() {
    let errs = errors("image: [a]\nenv: A=1\nstages:\n  - name: a\n    script: make\n");
    let text = errs.to_string();
    assert!(
        text.contains("line 1, column 8: image: expected a string, found a list"),
        "{text}"
    );
    assert!(
        text.contains("env: expected a list of `KEY=value` strings, found a string"),
        "{text}"
    );
    assert!(text.contains("write it as a list: `[A=1]`"), "{text}");
    assert!(
        text.contains("stages[0].script: expected a list of commands, found a string"),
        "{text}"
    );

    let errs = errors("image: a\nstages:\n  - name: a\n    script:\n      - echo key: value\n");
    assert_eq!(errs.0[0].field, "stages[0].script[0]");
    assert!(
        errs.0[0]
            .hint
            .as_deref()
            .unwrap_or("")
            .contains("single quotes"),
        "{errs}"
    );
}

#[test]
fn env_values_may_contain_equals_and_keys_are_checked() {
    let p = parse("image: a\nenv: ['A=b=c', 'B=']\nstages: [{name: a, script: [x]}]\n").unwrap();
    assert_eq!(
        p.env[0],
        EnvVar {
            key: "A".into(),
            value: "b=c".into()
        }
    );
    assert_eq!(p.env[1].value, "");
    for bad in ["NOEQ", "=x", "1A=x", "A-B=x", "A B=x"] {
        assert!(EnvVar::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn both_trigger_and_triggers_is_an_error() {
    let text = "image: a\nstages:\n  - name: a\n    trigger: {branches: [m]}\n    triggers: ['\\branch m']\n    script: [x]\n";
    let errs = errors(text);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs.0[0].line, 5);
    assert!(errs.0[0].message.contains("both"));
}

#[test]
fn malformed_trigger_lines_are_errors_with_their_line() {
    let text = "image: a\nstages:\n  - name: a\n    script: [x]\n    triggers:\n      - \\branch master\n      - \\text\n      - \"\\branch master\"\n";
    let errs = errors(text);
    assert_eq!(errs.lines(), vec![7, 8], "{errs}");
    assert!(errs.0[0].message.contains("has no value"), "{errs}");
    assert!(
        errs.0[1]
            .hint
            .as_deref()
            .unwrap_or("")
            .contains("double quotes"),
        "{errs}"
    );
}

#[test]
fn timeouts_use_humantime_and_must_be_positive() {
    let p = parse(
        "image: a\ntimeout: 1h 30m\nstages:\n  - name: a\n    timeout: 90s\n    script: [x]\n",
    )
    .unwrap();
    assert_eq!(p.timeout, Some(Duration::from_secs(5400)));
    assert_eq!(p.stages[0].timeout, Some(Duration::from_secs(90)));
    let p = parse("image: a\ntimeout: 30m\nstages: [{name: a, script: [x]}]\n").unwrap();
    assert_eq!(p.timeout, Some(Duration::from_secs(1800)));

    for bad in ["0s", "0", "30", "soon", "-5m", "[30m]"] {
        let text = format!("image: a\ntimeout: {bad}\nstages: [{{name: a, script: [x]}}]\n");
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{bad}: {errs}");
        assert_eq!(errs.0[0].field, "timeout");
        assert_eq!((errs.0[0].line, errs.0[0].column), (2, 10), "{bad}");
    }
}

#[test]
fn branch_matching_is_anchored() {
    let p = |branches: &str| {
        parse(&format!(
            "image: a\nbranches: {branches}\nstages: [{{name: a, script: [x]}}]\n"
        ))
        .unwrap()
    };
    let all = p("[ALL]");
    assert!(all.branch_matches("master") && all.branch_matches("feature/x"));

    let master = p("[master]");
    assert!(master.branch_matches("master"));
    assert!(!master.branch_matches("master2"));
    assert!(!master.branch_matches("my-master"));

    let rel = p("['rel.*']");
    assert!(rel.branch_matches("rel") && rel.branch_matches("release/1.0"));
    assert!(!rel.branch_matches("prerelease"));

    let alt = p("['master|develop']");
    assert!(alt.branch_matches("develop"));
    assert!(
        !alt.branch_matches("master-old"),
        "alternation stays anchored"
    );

    let none = p("[]");
    assert!(none.branch_matches("whatever"));

    let errs = errors("image: a\nbranches: ['*-hotfix', all]\nstages: [{name: a, script: [x]}]\n");
    assert!(errs.0[0].message.contains("invalid branch regex"), "{errs}");
    assert!(
        errs.0[0]
            .hint
            .as_deref()
            .unwrap_or("")
            .contains("`.*-hotfix`"),
        "{errs}"
    );
    assert_eq!(
        errs.len(),
        1,
        "`all` is a valid regex matching the branch `all`"
    );
}

#[test]
fn stage_with_several_trigger_lines_runs_when_any_holds() {
    let text = "image: a\nstages:\n  - name: s\n    script: [x]\n    triggers:\n      - \\branch master\n      - \\text deploy-now\n";
    let stage = &parse(text).unwrap().stages[0];
    let deploy = strings(&["deploy-now please"]);
    assert!(stage.should_run(&ctx("master", &[], &[])));
    assert!(stage.should_run(&ctx("dev", &deploy, &[])));
    assert!(!stage.should_run(&ctx("dev", &[], &[])));
}

#[test]
fn parse_never_panics_on_odd_inputs() {
    let inputs = [
        "---\n---\n",
        "a: *x\n",
        "a: &x 1\nb: *x\n",
        "? [a]\n: b\n",
        "!!map {}\n",
        "image: !tag a\n",
        "\t\n",
        "{",
        "[",
        "'",
        "image: a\nstages:\n  - \n",
        "image: a\nstages:\n  - name:\n    script:\n      -\n",
        "stages: [[[]]]\n",
        "image: a\nstages: [{name: a, script: [x], triggers: [[]], trigger: []}]\n",
        "image: a\nnotify: {slack: [1]}\nstages: [{name: a, script: [x]}]\n",
        "image: a\nnotify:\nstages: [{name: a, script: [x]}]\n",
        "\u{0}\u{1}: \u{7f}\n",
        "image: a\nbranches: ['(?:a{1000}){1000}']\nstages: [{name: a, script: [x]}]\n",
        "...\n",
        "%YAML 1.2\n---\nimage: a\n",
        "image: a\n...\nmore: junk\n",
    ];
    for text in inputs {
        let _ = parse(text);
    }
}

mod prop {
    use super::super::{TriggerExpr, parse};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn parse_never_panics(text in any::<String>()) {
            let _ = parse(&text);
        }

        #[test]
        fn parse_never_panics_on_yaml_like_text(
            text in proptest::collection::vec(
                prop_oneof![
                    Just("image: a\n"), Just("stages:\n"), Just("  - name: b\n"),
                    Just("    script: [x]\n"), Just("    triggers:\n"), Just("      - \\branch m||d\n"),
                    Just("- "), Just(": "), Just("["), Just("]"), Just("{"), Just("}"), Just("&a "),
                    Just("*a "), Just("'"), Just("\""), Just("\n"), Just("  "), Just("#"), Just("!t "),
                    Just("---\n"), Just("? "), Just("|\n"), Just(">\n"), Just("timeout: 0s\n"),
                    Just("\\text and or && ||"), Just("env: [\"A=1\"]\n"), Just("\t"),
                ],
                0..40,
            ).prop_map(|parts| parts.concat())
        ) {
            if let Err(errs) = parse(&text) {
                prop_assert!(!errs.0.is_empty());
                for e in &errs.0 {
                    prop_assert!(e.line >= 1 && e.column >= 1);
                    prop_assert!(!e.to_string().contains('\n'));
                }
            }
        }

        #[test]
        fn trigger_parse_never_panics_and_round_trips(text in "[a-z\\\\|& :.*]{0,40}") {
            if let Ok(expr) = TriggerExpr::parse(&text) {
                let again = TriggerExpr::parse(&expr.to_string());
                prop_assert_eq!(again.ok(), Some(expr));
            }
        }
    }
}

#[test]
fn deeply_nested_yaml_is_an_error_not_a_crash() {
    for depth in [1_000usize, 100_000] {
        let text = format!("a: {}{}\n", "[".repeat(depth), "]".repeat(depth));
        let errs = errors(&text);
        assert_eq!(errs.len(), 1);
        assert!(errs.0[0].message.starts_with("YAML syntax error"), "{errs}");
    }
}

#[test]
fn resources_lower_the_workers_limits() {
    let p = parse(
        "image: a\nresources:\n  memory: 512m\n  cpus: 0.5\n  pids: 128\nstages: [{name: a, script: [x]}]\n",
    )
    .unwrap();
    assert_eq!(
        p.resources,
        Resources {
            memory: Some(512 << 20),
            nano_cpus: Some(500_000_000),
            pids: Some(128),
        }
    );
    let p = parse("image: a\nresources: {pids: 64}\nstages: [{name: a, script: [x]}]\n").unwrap();
    assert_eq!(p.resources.pids, Some(64));
    assert_eq!(p.resources.memory, None);
    let p = parse("image: a\nstages: [{name: a, script: [x]}]\n").unwrap();
    assert_eq!(p.resources, Resources::default());
}

#[test]
fn bad_resources_name_their_line_and_field() {
    let errs = errors(
        "image: a\nresources:\n  memory: lots\n  cpus: -1\n  pids: 2\n  disk: 1g\nstages: [{name: a, script: [x]}]\n",
    );
    let found: Vec<(usize, &str)> = errs.iter().map(|e| (e.line, e.field.as_str())).collect();
    assert_eq!(
        found,
        [
            (3, "resources.memory"),
            (4, "resources.cpus"),
            (5, "resources.pids"),
            (6, "resources.disk"),
        ],
        "{errs}"
    );
    assert!(
        errs.to_string().contains("not a memory size like `512m`"),
        "{errs}"
    );
    let errs = errors("image: a\nresources: 2g\nstages: [{name: a, script: [x]}]\n");
    assert_eq!(errs.lines(), vec![2], "{errs}");
    assert!(
        errs.to_string().contains("resources: expected a mapping"),
        "{errs}"
    );
}

#[test]
fn artifacts_parse_with_their_defaults() {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pipeline/good/artifacts.yml"),
    )
    .unwrap();
    let pipeline = parse(&text).unwrap();
    let build = pipeline.stages[0].artifacts.as_ref().unwrap();
    let paths: Vec<&str> = build.paths.iter().map(|p| p.as_str()).collect();
    assert_eq!(paths, ["target/app", "reports/*.xml", "coverage"]);
    assert_eq!(build.when, ArtifactWhen::Always);
    assert_eq!(build.expire_in, Some(Duration::from_secs(7 * 24 * 3600)));
    let test = pipeline.stages[1].artifacts.as_ref().unwrap();
    assert_eq!(test.when, ArtifactWhen::OnSuccess);
    assert_eq!(test.expire_in, None);
    let errs = errors(
        "image: a\nstages:\n  - name: b\n    script: [x]\n    artifacts: {paths: [out], when: on_sucess}\n",
    );
    assert_eq!(
        errs.0[0].hint.as_deref(),
        Some("did you mean `on_success`?"),
        "{errs}"
    );
}

#[test]
fn caches_parse_with_their_templates() {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pipeline/good/cache.yml"),
    )
    .unwrap();
    let pipeline = parse(&text).unwrap();
    assert_eq!(pipeline.cache.len(), 2);
    let cargo = &pipeline.cache[0];
    assert_eq!(cargo.key.as_str(), r#"cargo-{{ checksum "Cargo.lock" }}"#);
    let paths: Vec<&str> = cargo.paths.iter().map(|p| p.as_str()).collect();
    assert_eq!(paths, [".cargo", "target"]);
    let restore: Vec<&str> = cargo.restore_keys.iter().map(|k| k.as_str()).collect();
    assert_eq!(restore, ["cargo-{{ branch }}-", "cargo-"]);
    let one = parse(
        "image: a\ncache: {key: deps, paths: [vendor]}\nstages:\n  - name: b\n    script: [x]\n",
    )
    .unwrap();
    assert_eq!(one.cache.len(), 1);
    assert!(one.cache[0].restore_keys.is_empty());
    let errs = errors(
        "image: a\ncache:\n  key: {{ branch }}\n  paths: [x]\nstages:\n  - name: b\n    script: [x]\n",
    );
    assert!(
        errs.0[0]
            .hint
            .as_deref()
            .is_some_and(|h| h.contains("quote it")),
        "{errs}"
    );
}
