//! `--stage NAME`: which stages of a pipeline a build runs when asked for one stage: that
//! stage and what it needs, directly or not. Without `needs:` in the file stages run in
//! order, so each stage needs the one before it; with them, a stage needs what it lists.

use super::model::Pipeline;

/// A `--stage` that names no stage of the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--stage `{name}`: ocelot.yml has no stage of that name{hint}; its stages are: {stages}",
    hint = .suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default(),
    stages = .stages.join(", "))]
pub struct UnknownStage {
    pub name: String,
    /// Every stage's name, in order.
    pub stages: Vec<String>,
    /// The closest name, when one is close.
    pub suggestion: Option<String>,
}

impl Pipeline {
    /// The indices (ascending) of the stages a build asked for `name` runs: the stage and
    /// every stage it needs (in a pipeline of stages in order: every stage before it).
    pub fn select_stage(&self, name: &str) -> Result<Vec<usize>, UnknownStage> {
        // a matrix stage's name brings every one of its jobs
        let named: Vec<usize> = self
            .stages
            .iter()
            .enumerate()
            .filter(|(_, stage)| {
                stage.name == name || stage.matrix.as_ref().is_some_and(|m| m.stage == name)
            })
            .map(|(index, _)| index)
            .collect();
        match named.first() {
            Some(_) => {
                let mut chosen: Vec<usize> = named
                    .iter()
                    .flat_map(|&index| self.with_dependencies(index))
                    .collect();
                chosen.sort_unstable();
                chosen.dedup();
                Ok(chosen)
            }
            None => {
                let stages: Vec<String> = self.stages.iter().map(|s| s.name.clone()).collect();
                let suggestion = stages
                    .iter()
                    .map(|s| (strsim::levenshtein(s, name), s))
                    .filter(|(distance, s)| *distance <= 2.max(s.len() / 3))
                    .min_by_key(|(distance, _)| *distance)
                    .map(|(_, s)| s.clone());
                Err(UnknownStage {
                    name: name.to_string(),
                    stages,
                    suggestion,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::pipeline::parse;

    const YML: &str = "image: alpine
stages:
  - name: build
    script: [b]
  - name: test
    script: [t]
  - name: deploy
    script: [d]
";

    #[test]
    fn a_stage_brings_every_stage_before_it() {
        let pipeline = parse(YML).unwrap();
        assert_eq!(pipeline.select_stage("build"), Ok(vec![0]));
        assert_eq!(pipeline.select_stage("test"), Ok(vec![0, 1]));
        assert_eq!(pipeline.select_stage("deploy"), Ok(vec![0, 1, 2]));
    }

    #[test]
    fn in_a_graph_a_stage_brings_only_what_it_needs() {
        let pipeline = parse(
            "image: alpine
stages:
  - name: build
    script: [b]
  - name: lint
    script: [l]
  - name: test
    needs: [build]
    script: [t]
  - name: package
    needs: [test, lint]
    script: [p]
",
        )
        .unwrap();
        assert_eq!(pipeline.select_stage("build"), Ok(vec![0]));
        assert_eq!(pipeline.select_stage("lint"), Ok(vec![1]));
        assert_eq!(pipeline.select_stage("test"), Ok(vec![0, 2]));
        assert_eq!(pipeline.select_stage("package"), Ok(vec![0, 1, 2, 3]));
    }

    #[test]
    fn an_unknown_stage_lists_the_stages_and_the_closest() {
        let pipeline = parse(YML).unwrap();
        let error = pipeline.select_stage("tset").unwrap_err();
        assert_eq!(
            error.to_string(),
            "--stage `tset`: ocelot.yml has no stage of that name (did you mean `test`?); its stages are: build, test, deploy"
        );
        let error = pipeline.select_stage("lint-everything").unwrap_err();
        assert_eq!(error.suggestion, None);
        assert!(
            error
                .to_string()
                .ends_with("its stages are: build, test, deploy")
        );
    }
}
