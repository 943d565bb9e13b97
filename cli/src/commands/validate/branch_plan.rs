//! `ocelot validate --branch B`: which stages a build of branch `B` would run, as the admin
//! and the worker decide it, offline. The file's `branches` filter decides whether a push or
//! poll of `B` builds at all (`--force` builds anyway); each stage's trigger decides whether
//! it runs. A trigger may also test the commit (`\text`: its message, `\filepath`: the paths
//! it changed), which only a real push tells: such a stage "may run". In a graph
//! (`needs:`), a stage skipped by its triggers counts as passed for the stages that need
//! it: they still run (only a failure skips what needs it).

use ocelot_domain::pipeline::{
    BranchPattern, Join, Pipeline, SectionKind, Stage, StageCondition, TriggerExpr, TriggerSection,
};
use serde::Serialize;

/// Whether a stage runs on the branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Runs {
    Yes,
    No,
    /// It depends on the commit (`\text`, `\filepath`).
    Maybe,
}

impl Runs {
    /// Any of `all` holds (`||`, `or`, several trigger lines).
    fn any(all: impl IntoIterator<Item = Runs>) -> Runs {
        all.into_iter()
            .fold(Runs::No, |so_far, next| match (so_far, next) {
                (Runs::Yes, _) | (_, Runs::Yes) => Runs::Yes,
                (Runs::Maybe, _) | (_, Runs::Maybe) => Runs::Maybe,
                _ => Runs::No,
            })
    }

    /// All of `all` hold (`&&`, `and`).
    fn every(all: impl IntoIterator<Item = Runs>) -> Runs {
        all.into_iter()
            .fold(Runs::Yes, |so_far, next| match (so_far, next) {
                (Runs::No, _) | (_, Runs::No) => Runs::No,
                (Runs::Maybe, _) | (_, Runs::Maybe) => Runs::Maybe,
                _ => Runs::Yes,
            })
    }

    fn joined(join: Join, all: impl IntoIterator<Item = Runs>) -> Runs {
        match join {
            Join::Any => Runs::any(all),
            Join::All => Runs::every(all),
        }
    }

    pub(super) fn word(self) -> &'static str {
        match self {
            Runs::Yes => "runs",
            Runs::No => "skipped",
            Runs::Maybe => "may run",
        }
    }
}

/// One stage on the branch: whether it runs, and why (empty: it has no trigger).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct StagePlan {
    pub(super) name: String,
    pub(super) runs: Runs,
    pub(super) why: String,
}

/// What a build of the branch would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct BranchPlan {
    pub(super) branch: String,
    /// Whether the `branches` filter lets a push or poll of the branch build.
    pub(super) builds: bool,
    /// Why it builds or not (the filter and its patterns).
    pub(super) filter: String,
    /// What each stage does when it builds (with `--force`, if the filter stops it).
    pub(super) stages: Vec<StagePlan>,
}

pub(super) fn plan(pipeline: &Pipeline, branch: &str) -> BranchPlan {
    let patterns = list(&pipeline.branches);
    let builds = pipeline.branch_matches(branch);
    let filter = match (pipeline.branches.is_empty(), builds) {
        (true, _) => "every branch builds (no `branches` filter)".to_string(),
        (false, true) => format!("`branches` ({patterns}) matches {branch}"),
        (false, false) => format!(
            "`branches` ({patterns}) does not match {branch}: pushes and polls of it build nothing; \
             `ocelot build --force` builds it anyway, so:"
        ),
    };
    let mut stages: Vec<StagePlan> = pipeline
        .stages
        .iter()
        .map(|stage| stage_plan(stage, branch))
        .collect();
    if pipeline.is_graph() {
        add_skipped_needs(pipeline, &mut stages);
    }
    BranchPlan {
        branch: branch.to_string(),
        builds,
        filter,
        stages,
    }
}

fn list(patterns: &[BranchPattern]) -> String {
    patterns
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn stage_plan(stage: &Stage, branch: &str) -> StagePlan {
    let (runs, why) = match &stage.condition {
        StageCondition::Always => (Runs::Yes, String::new()),
        StageCondition::Branches(patterns) => {
            let runs = if patterns.iter().any(|p| p.matches(branch)) {
                Runs::Yes
            } else {
                Runs::No
            };
            let verb = if runs == Runs::Yes {
                "match"
            } else {
                "do not match"
            };
            (
                runs,
                format!("its trigger branches ({}) {verb} {branch}", list(patterns)),
            )
        }
        StageCondition::Triggers(lines) => triggers(lines, branch),
    };
    StagePlan {
        name: stage.name.clone(),
        runs,
        why,
    }
}

/// Whether any `triggers:` line holds on `branch`, and which.
fn triggers(lines: &[TriggerExpr], branch: &str) -> (Runs, String) {
    let each: Vec<(Runs, &TriggerExpr)> = lines
        .iter()
        .map(|line| {
            let sections = line.sections.iter().map(|s| section(s, branch));
            (Runs::joined(line.join, sections), line)
        })
        .collect();
    let runs = Runs::any(each.iter().map(|(runs, _)| *runs));
    let quoted = |wanted: Runs| {
        each.iter()
            .filter(|(runs, _)| *runs == wanted)
            .map(|(_, line)| format!("`{line}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let why = match runs {
        Runs::Yes => format!("its trigger {} holds on {branch}", quoted(Runs::Yes)),
        Runs::Maybe => format!(
            "if the commit's message or changed files match its trigger {}",
            quoted(Runs::Maybe)
        ),
        Runs::No => format!(
            "no line of its triggers holds on {branch} ({})",
            quoted(Runs::No)
        ),
    };
    (runs, why)
}

/// One section: `\branch` is known from the branch; `\text` and `\filepath` depend on the
/// commit.
fn section(section: &TriggerSection, branch: &str) -> Runs {
    if section.values.is_empty() {
        return Runs::No;
    }
    let each = section.values.iter().map(|value| match section.kind {
        SectionKind::Branch => {
            let pattern = if value == "ALL" {
                BranchPattern::All
            } else {
                BranchPattern::Regex(value.clone())
            };
            if pattern.matches(branch) {
                Runs::Yes
            } else {
                Runs::No
            }
        }
        SectionKind::Text | SectionKind::Filepath => Runs::Maybe,
    });
    Runs::joined(section.join, each)
}

/// In a graph: says of each stage that runs which of its needs are skipped, and that they
/// count as passed.
fn add_skipped_needs(pipeline: &Pipeline, stages: &mut [StagePlan]) {
    let runs: Vec<(String, Runs)> = stages.iter().map(|s| (s.name.clone(), s.runs)).collect();
    for (stage, plan) in pipeline.stages.iter().zip(stages.iter_mut()) {
        if plan.runs == Runs::No {
            continue;
        }
        let skipped: Vec<&str> = stage
            .needed()
            .iter()
            .filter(|need| {
                runs.iter()
                    .any(|(name, runs)| name == *need && *runs != Runs::Yes)
            })
            .map(String::as_str)
            .collect();
        if skipped.is_empty() {
            continue;
        }
        let note = format!(
            "it needs {}, which may be skipped: a stage skipped by its triggers counts as passed",
            skipped.join(", ")
        );
        plan.why = if plan.why.is_empty() {
            note
        } else {
            format!("{}; {note}", plan.why)
        };
    }
}

/// The human lines of the plan.
pub(super) fn lines(plan: &BranchPlan) -> Vec<String> {
    let mut lines = vec![format!("branch {}: {}", plan.branch, plan.filter)];
    let width = plan
        .stages
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(0);
    for stage in &plan.stages {
        let mut line = format!("  {:<width$}  {}", stage.name, stage.runs.word());
        if !stage.why.is_empty() {
            line.push_str(": ");
            line.push_str(&stage.why);
        }
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocelot_domain::pipeline::parse;

    const FILE: &str = r#"image: alpine:3
branches: [main, release/.*]
stages:
  - name: build
    script: [make]
  - name: deploy
    trigger: { branches: [main] }
    script: [make deploy]
  - name: docs
    triggers:
      - \branch main and \filepath docs/
      - \branch release/.*
    script: [make docs]
  - name: notes
    triggers: ['\text release-notes']
    script: [make notes]
"#;

    fn runs(plan: &BranchPlan) -> Vec<(&str, Runs)> {
        plan.stages
            .iter()
            .map(|s| (s.name.as_str(), s.runs))
            .collect()
    }

    #[test]
    fn each_stage_runs_is_skipped_or_depends_on_the_commit() {
        let pipeline = parse(FILE).unwrap();
        let main = plan(&pipeline, "main");
        assert!(main.builds);
        assert_eq!(
            runs(&main),
            [
                ("build", Runs::Yes),
                ("deploy", Runs::Yes),
                ("docs", Runs::Maybe),
                ("notes", Runs::Maybe),
            ]
        );
        let release = plan(&pipeline, "release/2");
        assert_eq!(
            runs(&release),
            [
                ("build", Runs::Yes),
                ("deploy", Runs::No),
                ("docs", Runs::Yes),
                ("notes", Runs::Maybe),
            ]
        );
        assert_eq!(
            lines(&release),
            [
                "branch release/2: `branches` (main, release/.*) matches release/2",
                "  build   runs",
                "  deploy  skipped: its trigger branches (main) do not match release/2",
                "  docs    runs: its trigger `\\branch release/.*` holds on release/2",
                "  notes   may run: if the commit's message or changed files match its trigger `\\text release-notes`",
            ]
        );
    }

    #[test]
    fn a_branch_the_filter_refuses_builds_nothing_unless_forced() {
        let pipeline = parse(FILE).unwrap();
        let feature = plan(&pipeline, "feature/x");
        assert!(!feature.builds);
        assert!(
            feature.filter.contains("does not match feature/x"),
            "{}",
            feature.filter
        );
        assert!(feature.filter.contains("--force"), "{}", feature.filter);
        assert_eq!(
            lines(&feature)[3],
            "  docs    skipped: no line of its triggers holds on feature/x \
             (`\\branch main and \\filepath docs/`, `\\branch release/.*`)"
        );
        let open = parse("image: a\nstages:\n  - name: s\n    script: [x]\n").unwrap();
        assert_eq!(
            lines(&plan(&open, "any")),
            [
                "branch any: every branch builds (no `branches` filter)",
                "  s  runs"
            ]
        );
    }

    #[test]
    fn in_a_graph_a_stage_whose_need_is_skipped_still_runs() {
        let graph = parse(
            "image: a
stages:
  - name: lint
    trigger: { branches: [main] }
    script: [x]
  - name: test
    needs: [lint]
    script: [x]
  - name: ship
    needs: [test]
    triggers: ['\\branch main']
    script: [x]
",
        )
        .unwrap();
        let dev = plan(&graph, "dev");
        assert_eq!(
            runs(&dev),
            [("lint", Runs::No), ("test", Runs::Yes), ("ship", Runs::No)]
        );
        assert_eq!(
            dev.stages[1].why,
            "it needs lint, which may be skipped: a stage skipped by its triggers counts as passed"
        );
        let main = plan(&graph, "main");
        assert!(main.stages.iter().all(|s| s.runs == Runs::Yes));
        assert_eq!(main.stages[1].why, "");
    }
}
