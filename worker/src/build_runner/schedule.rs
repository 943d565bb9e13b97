//! Which stage may start, as pure bookkeeping (no I/O): each stage waits for the stages it
//! needs ([`Pipeline::dependencies`](ocelot_core::pipeline::Pipeline::dependencies)); once
//! they have all ended it is decided: it runs, or it is skipped because it was not selected
//! (`--stage`) or because something it needs failed (directly or not). A stage skipped by
//! its triggers or not selected counts as passed for the stages that need it.

/// Where a stage is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Waiting,
    Running,
    Ended(Ended),
}

/// How a stage ended, as the stages that need it see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// Passed, or skipped by its triggers or the selection: what needs it may run.
    Done,
    /// Failed or timed out (or cancelled): what needs it is skipped.
    Failed,
    /// Skipped because stage `.0` failed: what needs it is skipped too.
    Blocked(usize),
}

/// What happens to a stage whose needs have all ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// It may run (if the build's limit of stages at once allows).
    Ready,
    /// It is not one the build was asked for (`--stage`): skipped.
    NotSelected,
    /// It needs stage `need`, which failed (`root` is `need`) or was skipped because `root`
    /// failed: skipped.
    Blocked { need: usize, root: usize },
}

#[derive(Debug)]
pub(super) struct Schedule {
    needs: Vec<Vec<usize>>,
    chosen: Vec<bool>,
    slots: Vec<Slot>,
}

impl Schedule {
    /// `needs[i]`: the stages stage `i` waits for; `chosen[i]`: whether the build runs it.
    pub(super) fn new(needs: Vec<Vec<usize>>, chosen: Vec<bool>) -> Self {
        let slots = vec![Slot::Waiting; needs.len()];
        Schedule {
            needs,
            chosen,
            slots,
        }
    }

    /// The waiting stages whose needs have all ended, in file order, with what happens to
    /// each.
    pub(super) fn decidable(&self) -> Vec<(usize, Decision)> {
        (0..self.slots.len())
            .filter(|&index| self.slots[index] == Slot::Waiting)
            .filter_map(|index| self.decide(index).map(|decision| (index, decision)))
            .collect()
    }

    fn decide(&self, index: usize) -> Option<Decision> {
        let mut blocked = None;
        for &need in self.needs.get(index)? {
            match self.slots.get(need)? {
                Slot::Waiting | Slot::Running => return None,
                Slot::Ended(Ended::Done) => {}
                Slot::Ended(Ended::Failed) => {
                    blocked = blocked.or(Some(Decision::Blocked { need, root: need }));
                }
                Slot::Ended(Ended::Blocked(root)) => {
                    blocked = blocked.or(Some(Decision::Blocked { need, root: *root }));
                }
            }
        }
        if !self.chosen.get(index).copied().unwrap_or(false) {
            return Some(Decision::NotSelected);
        }
        Some(blocked.unwrap_or(Decision::Ready))
    }

    pub(super) fn start(&mut self, index: usize) {
        if let Some(slot) = self.slots.get_mut(index) {
            *slot = Slot::Running;
        }
    }

    pub(super) fn end(&mut self, index: usize, ended: Ended) {
        if let Some(slot) = self.slots.get_mut(index) {
            *slot = Slot::Ended(ended);
        }
    }

    /// How many stages run now.
    pub(super) fn running(&self) -> usize {
        self.slots.iter().filter(|s| **s == Slot::Running).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// build → test-a, test-b → package, and lint on its own.
    fn diamond() -> Schedule {
        Schedule::new(
            vec![vec![], vec![0], vec![0], vec![1, 2], vec![]],
            vec![true; 5],
        )
    }

    #[test]
    fn stages_start_once_what_they_need_has_passed() {
        let mut schedule = diamond();
        assert_eq!(
            schedule.decidable(),
            [(0, Decision::Ready), (4, Decision::Ready)]
        );
        schedule.start(0);
        schedule.start(4);
        assert_eq!(schedule.running(), 2);
        assert_eq!(schedule.decidable(), []);
        schedule.end(0, Ended::Done);
        assert_eq!(
            schedule.decidable(),
            [(1, Decision::Ready), (2, Decision::Ready)]
        );
        schedule.start(1);
        schedule.start(2);
        schedule.end(1, Ended::Done);
        assert_eq!(schedule.decidable(), [], "package waits for test-b");
        schedule.end(2, Ended::Done);
        assert_eq!(schedule.decidable(), [(3, Decision::Ready)]);
    }

    #[test]
    fn a_failure_blocks_only_what_depends_on_it_transitively() {
        let mut schedule = Schedule::new(
            vec![vec![], vec![0], vec![0], vec![1, 2], vec![3]],
            vec![true; 5],
        );
        schedule.start(0);
        schedule.end(0, Ended::Done);
        schedule.start(1);
        schedule.start(2);
        schedule.end(1, Ended::Failed);
        assert_eq!(schedule.decidable(), [], "package still waits for test-b");
        schedule.end(2, Ended::Done);
        assert_eq!(
            schedule.decidable(),
            [(3, Decision::Blocked { need: 1, root: 1 })]
        );
        schedule.end(3, Ended::Blocked(1));
        assert_eq!(
            schedule.decidable(),
            [(4, Decision::Blocked { need: 3, root: 1 })]
        );
    }

    #[test]
    fn stages_not_chosen_are_decided_in_order() {
        let mut schedule = Schedule::new(vec![vec![], vec![0], vec![1]], vec![true, false, false]);
        assert_eq!(schedule.decidable(), [(0, Decision::Ready)]);
        schedule.start(0);
        schedule.end(0, Ended::Done);
        assert_eq!(schedule.decidable(), [(1, Decision::NotSelected)]);
        schedule.end(1, Ended::Done);
        assert_eq!(schedule.decidable(), [(2, Decision::NotSelected)]);
    }
}
