//! `matrix:` of a stage: named axes (`RUST: ["1.80", "1.85"]`), `exclude:` and `include:`
//! combinations, and `allow_failure:` ones. The stage becomes one job per combination, named
//! by its values (`test (RUST=1.85, DB=pg16)`), with the values as variables; a stage that
//! needs it waits for every job. Expansion happens once the file is valid ([`expand`]), so
//! the rest of Ocelot sees ordinary stages (each knowing its [`MatrixJob`]).
//!
//! A file with a matrix and no `needs:` keeps its order: each stage's jobs need every job of
//! the stage before (so the jobs of one stage run at once, and a later stage waits for all).

use serde::{Deserialize, Serialize};

use super::model::{EnvVar, Stage, is_shell_name};
use super::reader::{Cx, Field, Pos, join_path};
use marked_yaml::types::MarkedMappingNode;

/// Every entry of a mapping, each as a field with its own path.
fn entries<'a>(map: &'a MarkedMappingNode, path: &str) -> Vec<(String, Field<'a>)> {
    map.iter()
        .map(|(key, value)| {
            let name = key.as_str().to_string();
            let field = Field::new(join_path(path, &name), value, Pos::of_span(key.span()));
            (name, field)
        })
        .collect()
}

/// The most jobs one file's matrices may make (a worker's `--max-matrix-jobs`, 64 by
/// default, is checked against each build).
pub const MAX_MATRIX_JOBS: usize = 256;

/// The keys of `matrix:` that are not axes.
const RESERVED: [&str; 3] = ["exclude", "include", "allow_failure"];

/// A stage's `matrix:` as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MatrixSpec {
    /// Axis names and their values, in the file's order.
    axes: Vec<(String, Vec<String>)>,
    exclude: Vec<Combination>,
    include: Vec<Combination>,
    allow_failure: Vec<Combination>,
}

/// Axis values: `[(NAME, value)]` in axis order.
type Combination = Vec<(String, String)>;

/// What a job of a matrix is: its stage as written, and its values.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MatrixJob {
    /// The name of the stage in the file (`test`).
    pub stage: String,
    /// `(AXIS, value)` in the file's order.
    pub values: Vec<(String, String)>,
    /// Its failure does not fail the build (`allow_failure`).
    pub allow_failure: bool,
}

/// Whether `combination` holds every pair of `partial`.
fn matches(combination: &Combination, partial: &Combination) -> bool {
    partial.iter().all(|pair| combination.contains(pair))
}

impl MatrixSpec {
    /// The combinations, in order: the axes' product without the excluded ones, then the
    /// included ones not already there.
    pub(super) fn combinations(&self) -> Vec<Combination> {
        let mut product: Vec<Combination> = vec![Vec::new()];
        for (name, values) in &self.axes {
            product = product
                .into_iter()
                .flat_map(|combination| {
                    values.iter().map(move |value| {
                        let mut next = combination.clone();
                        next.push((name.clone(), value.clone()));
                        next
                    })
                })
                .collect();
        }
        if self.axes.is_empty() {
            product.clear();
        }
        product.retain(|c| !self.exclude.iter().any(|e| matches(c, e)));
        for extra in &self.include {
            if !product
                .iter()
                .any(|c| matches(c, extra) && c.len() == extra.len())
            {
                product.push(extra.clone());
            }
        }
        product
    }

    fn allows_failure(&self, combination: &Combination) -> bool {
        self.allow_failure.iter().any(|a| matches(combination, a))
    }
}

/// `name (A=1, B=2)`.
pub fn job_name(stage: &str, values: &[(String, String)]) -> String {
    let values: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{stage} ({})", values.join(", "))
}

/// Reads `matrix: {AXIS: [values], exclude: [...], include: [...], allow_failure: [...]}`.
pub(super) fn read_matrix(cx: &mut Cx, field: &Field<'_>) -> Option<MatrixSpec> {
    let map = field.mapping(
        cx,
        "a mapping of axes like `{RUST: [\"1.80\", \"1.85\"], DB: [pg15, pg16]}`",
    )?;
    let errors_before = cx.errors.len();
    let mut axes: Vec<(String, Vec<String>)> = Vec::new();
    let mut lists: [Vec<Combination>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for (name, value) in entries(map, &field.path) {
        if let Some(slot) = RESERVED.iter().position(|r| *r == name) {
            lists[slot] = combinations_list(cx, &value)?;
            continue;
        }
        if !is_shell_name(&name) {
            cx.error(
                value.pos,
                &value.path,
                format!(
                    "`{name}` is not an axis name: axes become variables (letters, digits and `_`, not starting with a digit); the other keys are {}",
                    RESERVED.map(|r| format!("`{r}`")).join(", ")
                ),
            );
            continue;
        }
        let items = value.string_list(cx, "a list of values")?;
        if items.is_empty() {
            cx.error(value.pos, &value.path, "an axis needs at least one value");
            continue;
        }
        let mut values: Vec<String> = Vec::new();
        for (item, text) in items {
            if values.contains(&text) {
                cx.error(item.pos, &item.path, format!("`{text}` is listed twice"));
            } else {
                values.push(text);
            }
        }
        axes.push((name, values));
    }
    let [exclude, include, allow_failure] = lists;
    if axes.is_empty() && include.is_empty() {
        cx.error(
            field.pos,
            &field.path,
            "a matrix needs at least one axis, e.g. `RUST: [\"1.80\", \"1.85\"]`",
        );
    }
    let spec = MatrixSpec {
        axes,
        exclude,
        include,
        allow_failure,
    };
    if cx.errors.len() > errors_before {
        return None;
    }
    let count = spec.combinations().len();
    if count == 0 {
        cx.error(
            field.pos,
            &field.path,
            "every combination is excluded: the matrix makes no job",
        );
        return None;
    }
    if count > MAX_MATRIX_JOBS {
        cx.error(
            field.pos,
            &field.path,
            format!("the matrix makes {count} jobs; a file may make at most {MAX_MATRIX_JOBS}"),
        );
        return None;
    }
    Some(spec)
}

/// `[{RUST: "1.80", DB: pg15}, ...]`.
fn combinations_list(cx: &mut Cx, field: &Field<'_>) -> Option<Vec<Combination>> {
    let items = field.list(
        cx,
        "a list of combinations like `{RUST: \"1.80\", DB: pg15}`",
    )?;
    let mut out = Vec::new();
    for item in &items {
        let map = item.mapping(cx, "a combination like `{RUST: \"1.80\", DB: pg15}`")?;
        let mut combination = Vec::new();
        for (name, value) in entries(map, &item.path) {
            if !is_shell_name(&name) {
                cx.error(
                    value.pos,
                    &value.path,
                    format!("`{name}` is not an axis name"),
                );
                return None;
            }
            combination.push((name, value.string(cx)?));
        }
        if combination.is_empty() {
            cx.error(
                item.pos,
                &item.path,
                "an empty combination matches every job",
            );
            return None;
        }
        out.push(combination);
    }
    Some(out)
}

/// Replaces each stage that has a matrix by its jobs, and the names of matrix stages in
/// `needs` by their jobs; gives a file without `needs` its order explicitly. `specs[i]`
/// belongs to `stages[i]`. Returns the stages unchanged when there is no matrix.
pub(super) fn expand(stages: Vec<Stage>, specs: Vec<Option<MatrixSpec>>) -> Vec<Stage> {
    if specs.iter().all(Option::is_none) {
        return stages;
    }
    let graph = stages.iter().any(|s| s.needs.is_some());
    // the names each written stage becomes
    let mut jobs_of: Vec<Vec<String>> = Vec::new();
    let mut expanded: Vec<(usize, Stage)> = Vec::new();
    for (index, (stage, spec)) in stages.iter().zip(&specs).enumerate() {
        match spec {
            None => {
                jobs_of.push(vec![stage.name.clone()]);
                expanded.push((index, stage.clone()));
            }
            Some(spec) => {
                let mut names = Vec::new();
                for combination in spec.combinations() {
                    let mut job = stage.clone();
                    job.name = job_name(&stage.name, &combination);
                    job.env
                        .extend(combination.iter().map(|(key, value)| EnvVar {
                            key: key.clone(),
                            value: value.clone(),
                        }));
                    job.matrix = Some(MatrixJob {
                        stage: stage.name.clone(),
                        allow_failure: spec.allows_failure(&combination),
                        values: combination,
                    });
                    names.push(job.name.clone());
                    expanded.push((index, job));
                }
                jobs_of.push(names);
            }
        }
    }
    let written: Vec<String> = stages.iter().map(|s| s.name.clone()).collect();
    expanded
        .into_iter()
        .map(|(index, mut stage)| {
            stage.needs = if graph {
                stage.needs.map(|needs| {
                    needs
                        .iter()
                        .flat_map(|need| {
                            written
                                .iter()
                                .position(|w| w == need)
                                .and_then(|i| jobs_of.get(i).cloned())
                                .unwrap_or_else(|| vec![need.clone()])
                        })
                        .collect()
                })
            } else {
                // the file's order: every job of the stage before
                Some(
                    index
                        .checked_sub(1)
                        .and_then(|before| jobs_of.get(before).cloned())
                        .unwrap_or_default(),
                )
            };
            stage
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::pipeline::parse;

    const YML: &str = r#"image: alpine
stages:
  - name: build
    script: [make]
  - name: test
    matrix:
      RUST: ["1.80", "1.85"]
      DB: [pg15, pg16]
      exclude: [{RUST: "1.80", DB: pg15}]
      include: [{RUST: "1.86", DB: pg16}]
      allow_failure: [{RUST: "1.86"}]
    script: [make test]
  - name: package
    script: [make dist]
"#;

    #[test]
    fn a_matrix_becomes_one_job_per_combination_in_the_files_order() {
        let pipeline = parse(YML).unwrap();
        let names: Vec<&str> = pipeline.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "build",
                "test (RUST=1.80, DB=pg16)",
                "test (RUST=1.85, DB=pg15)",
                "test (RUST=1.85, DB=pg16)",
                "test (RUST=1.86, DB=pg16)",
                "package"
            ]
        );
        let job = &pipeline.stages[4];
        let env: Vec<String> = job
            .env
            .iter()
            .map(|e| format!("{}={}", e.key, e.value))
            .collect();
        assert_eq!(env, ["RUST=1.86", "DB=pg16"]);
        let matrix = job.matrix.as_ref().unwrap();
        assert_eq!(matrix.stage, "test");
        assert!(matrix.allow_failure);
        assert!(!pipeline.stages[1].matrix.as_ref().unwrap().allow_failure);
        // the order is kept: jobs need build, package needs every job
        assert!(pipeline.is_graph());
        assert_eq!(pipeline.stages[2].needed(), ["build"]);
        assert_eq!(pipeline.stages[5].needed().len(), 4);
        assert!(pipeline.stages[0].needed().is_empty());
    }

    #[test]
    fn needs_of_a_matrix_stage_wait_for_every_job() {
        let yml = "image: a\nstages:\n  - name: t\n    needs: []\n    matrix: {V: [a, b]}\n    script: [x]\n  - name: p\n    needs: [t]\n    script: [y]\n";
        let pipeline = parse(yml).unwrap();
        assert_eq!(pipeline.stages[2].needed(), ["t (V=a)", "t (V=b)"]);
        // a matrix stage selected by its name brings every job
        assert_eq!(pipeline.select_stage("t").unwrap(), [0, 1]);
    }

    #[test]
    fn bad_matrices_say_what_is_wrong() {
        for (matrix, expected) in [
            ("{}", "at least one axis"),
            ("{V: []}", "at least one value"),
            ("{V: [a, a]}", "listed twice"),
            ("{1V: [a]}", "not an axis name"),
            (
                "{V: [a], exclude: [{V: a}]}",
                "every combination is excluded",
            ),
            (
                "{A: [1,2,3,4,5,6,7,8], B: [1,2,3,4,5,6,7,8], C: [1,2,3,4,5]}",
                "makes 320 jobs",
            ),
        ] {
            let yml =
                format!("image: a\nstages:\n  - name: t\n    matrix: {matrix}\n    script: [x]\n");
            let errors = parse(&yml).unwrap_err().to_string();
            assert!(errors.contains(expected), "{matrix}: {errors}");
            assert!(errors.contains("line 4"), "{matrix}: {errors}");
        }
    }
}
