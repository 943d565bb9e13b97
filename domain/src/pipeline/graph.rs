//! `needs:`: the order in which stages run.
//!
//! A file where no stage has `needs` runs its stages in order: each stage needs the one
//! before it, and the first failure stops the build (the original Ocelot's meaning). As soon
//! as one stage has `needs`, the file is a graph: a stage needs exactly what it lists (one
//! without `needs` needs nothing and starts at once), independent stages run at the same
//! time, and a failure only skips what depends on it.
//!
//! The validator ([`check_needs`]) makes sure every name is a stage, none is listed twice,
//! no stage needs itself and there is no cycle, each error at its line.

use std::collections::HashMap;

use super::error::did_you_mean;
use super::model::Pipeline;
use super::reader::{Cx, Pos};

impl Pipeline {
    /// True when any stage has `needs` (even `needs: []`): stages then wait only for what
    /// they list.
    pub fn is_graph(&self) -> bool {
        self.stages.iter().any(|stage| stage.needs.is_some())
    }

    /// The indices of the stages stage `index` waits for: its `needs` in a graph, else the
    /// stage before it (none for the first).
    pub fn dependencies(&self, index: usize) -> Vec<usize> {
        if !self.is_graph() {
            return index.checked_sub(1).into_iter().collect();
        }
        let Some(stage) = self.stages.get(index) else {
            return Vec::new();
        };
        stage
            .needed()
            .iter()
            .filter_map(|name| self.stages.iter().position(|s| &s.name == name))
            .collect()
    }

    /// Stage `index` and everything it needs, directly or not (ascending indices).
    pub fn with_dependencies(&self, index: usize) -> Vec<usize> {
        let mut chosen = vec![false; self.stages.len()];
        let mut todo = vec![index];
        while let Some(next) = todo.pop() {
            match chosen.get_mut(next) {
                Some(seen) if !*seen => *seen = true,
                _ => continue,
            }
            todo.extend(self.dependencies(next));
        }
        (0..chosen.len()).filter(|&i| chosen[i]).collect()
    }
}

/// One `needs` entry as written: the name and where it is.
pub(super) struct NeedAt {
    pub(super) name: String,
    pub(super) pos: Pos,
    pub(super) path: String,
}

/// Checks the `needs` of every stage (`needs[i]` belongs to `names[i]`): unknown names (with
/// the closest one), and cycles, each reported once with the stages on it. Returns whether
/// all is well.
pub(super) fn check_needs(cx: &mut Cx, names: &[String], needs: &[Vec<NeedAt>]) -> bool {
    let errors_before = cx.errors.len();
    let index_of: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, name)| (name.as_str(), i))
        .collect();
    let candidates: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut edges: Vec<Vec<(usize, &NeedAt)>> = vec![Vec::new(); names.len()];
    for (stage, stage_needs) in needs.iter().enumerate() {
        for need in stage_needs {
            match index_of.get(need.name.as_str()) {
                Some(&target) => {
                    if let Some(out) = edges.get_mut(stage) {
                        out.push((target, need));
                    }
                }
                None => {
                    let others: Vec<&str> = candidates
                        .iter()
                        .copied()
                        .filter(|c| Some(*c) != names.get(stage).map(String::as_str))
                        .collect();
                    let hint = did_you_mean(&need.name, &others)
                        .or_else(|| Some(format!("the stages are: {}", others.join(", "))));
                    cx.error_hint(
                        need.pos,
                        &need.path,
                        format!("no stage is named `{}`", need.name),
                        hint,
                    );
                }
            }
        }
    }
    for cycle in cycles(&edges) {
        // reported at the `needs` entry that leads from the cycle's first stage to the next
        let Some(&first) = cycle.first() else {
            continue;
        };
        let next = cycle.get(1).copied().unwrap_or(first);
        let Some((_, need)) = edges
            .get(first)
            .and_then(|out| out.iter().find(|(target, _)| *target == next))
        else {
            continue;
        };
        let mut path: Vec<&str> = cycle
            .iter()
            .filter_map(|&i| names.get(i).map(String::as_str))
            .collect();
        path.extend(names.get(first).map(String::as_str));
        cx.error_hint(
            need.pos,
            &need.path,
            format!(
                "the stages need each other in a cycle: {}",
                path.join(" → ")
            ),
            Some("a stage can only need stages that do not need it, directly or not".to_string()),
        );
    }
    cx.errors.len() == errors_before
}

/// Every cycle of the graph (`edges[i]`: what stage `i` needs), each once, as the stages on
/// it in order from its lowest index (a stage that needs itself is a cycle of one; those are
/// reported by the parser already and left out here).
fn cycles(edges: &[Vec<(usize, &NeedAt)>]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut marks = vec![Mark::New; edges.len()];
    let mut found: Vec<Vec<usize>> = Vec::new();
    for start in 0..edges.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // iterative depth-first search: (stage, next edge to follow)
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        marks[start] = Mark::OnPath;
        while let Some(&(stage, edge)) = path.last() {
            let Some(&(target, _)) = edges[stage].get(edge) else {
                marks[stage] = Mark::Done;
                path.pop();
                continue;
            };
            if let Some(top) = path.last_mut() {
                top.1 += 1;
            }
            match marks[target] {
                Mark::New => {
                    marks[target] = Mark::OnPath;
                    path.push((target, 0));
                }
                Mark::OnPath if target != stage => {
                    let from = path.iter().position(|(s, _)| *s == target).unwrap_or(0);
                    let mut cycle: Vec<usize> = path[from..].iter().map(|(s, _)| *s).collect();
                    let lowest = cycle
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, s)| **s)
                        .map_or(0, |(i, _)| i);
                    cycle.rotate_left(lowest);
                    if !found.contains(&cycle) {
                        found.push(cycle);
                    }
                }
                _ => {}
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use crate::pipeline::parse;

    fn messages(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(pipeline) => panic!("expected errors, parsed {pipeline:#?}"),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    const DIAMOND: &str = "image: alpine
stages:
  - name: build
    script: [b]
  - name: test-a
    needs: [build]
    script: [a]
  - name: test-b
    needs: [build]
    script: [b]
  - name: package
    needs: [test-a, test-b]
    script: [p]
";

    #[test]
    fn a_diamond_is_a_graph_of_what_each_stage_lists() {
        let pipeline = parse(DIAMOND).unwrap();
        assert!(pipeline.is_graph());
        assert_eq!(pipeline.dependencies(0), Vec::<usize>::new());
        assert_eq!(pipeline.dependencies(1), vec![0]);
        assert_eq!(pipeline.dependencies(2), vec![0]);
        assert_eq!(pipeline.dependencies(3), vec![1, 2]);
        assert_eq!(pipeline.stages[3].needed(), ["test-a", "test-b"]);
    }

    #[test]
    fn without_needs_each_stage_needs_the_one_before() {
        let pipeline = parse(
            "image: alpine
stages:
  - name: a
    script: [a]
  - name: b
    script: [b]
  - name: c
    script: [c]
",
        )
        .unwrap();
        assert!(!pipeline.is_graph());
        assert_eq!(pipeline.dependencies(0), Vec::<usize>::new());
        assert_eq!(pipeline.dependencies(1), vec![0]);
        assert_eq!(pipeline.dependencies(2), vec![1]);
        assert_eq!(pipeline.with_dependencies(2), vec![0, 1, 2]);
    }

    #[test]
    fn an_empty_needs_makes_a_graph_where_the_stage_needs_nothing() {
        let pipeline = parse(
            "image: alpine
stages:
  - name: a
    script: [a]
  - name: b
    needs: []
    script: [b]
",
        )
        .unwrap();
        assert!(pipeline.is_graph());
        assert_eq!(pipeline.dependencies(1), Vec::<usize>::new());
        assert_eq!(pipeline.with_dependencies(1), vec![1]);
    }

    #[test]
    fn an_unknown_name_says_which_stage_was_meant() {
        let errors = messages(
            "image: alpine
stages:
  - name: build
    script: [b]
  - name: test
    needs: [biuld, deploy]
    script: [t]
",
        );
        assert_eq!(
            errors,
            [
                "line 6, column 13: stages[1].needs[0]: no stage is named `biuld` (did you mean `build`?)",
                "line 6, column 20: stages[1].needs[1]: no stage is named `deploy` (the stages are: build)",
            ]
        );
    }

    #[test]
    fn a_cycle_is_named_at_its_line() {
        let errors = messages(
            "image: alpine
stages:
  - name: a
    needs: [c]
    script: [a]
  - name: b
    needs: [a]
    script: [b]
  - name: c
    needs: [b]
    script: [c]
  - name: d
    needs: [a]
    script: [d]
",
        );
        assert_eq!(
            errors,
            [
                "line 4, column 13: stages[0].needs[0]: the stages need each other in a cycle: a → c → b → a (a stage can only need stages that do not need it, directly or not)"
            ]
        );
    }

    #[test]
    fn two_stages_needing_each_other_is_one_cycle() {
        let errors = messages(
            "image: alpine
stages:
  - name: a
    script: [a]
  - name: b
    needs: [a, c]
    script: [b]
  - name: c
    needs: [b]
    script: [c]
",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(
                "line 6, column 16: stages[1].needs[1]: the stages need each other in a cycle: b → c → b"
            ),
            "{errors:?}"
        );
    }

    #[test]
    fn a_stage_needing_itself_or_a_name_twice_is_an_error() {
        let errors = messages(
            "image: alpine
stages:
  - name: a
    script: [a]
  - name: b
    needs: [b, a, a]
    script: [b]
  - name: c
    needs: build
    script: [c]
",
        );
        assert_eq!(
            errors,
            [
                "line 6, column 13: stages[1].needs[0]: stage `b` needs itself (a stage can only need other stages)",
                "line 6, column 19: stages[1].needs[2]: `a` is listed twice (first listed at line 6)",
                "line 9, column 12: stages[2].needs: expected a list of stage names, found a string (write it as a list: `[build]`)",
            ]
        );
    }
}
