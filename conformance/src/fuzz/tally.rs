//! The programs of a run counted in index order, whatever order the lanes finish them in.
//!
//! Lanes take indices in order but finish them in any order, and any of them may be the
//! first not to agree. So that a run's result does not depend on how many lanes ran it (or
//! on which lane was quicker), the run's finding is the *lowest* index that did not agree,
//! and its counts are those of the prefix up to it: every index below it runs, every index
//! above it is forgotten. Results that finish ahead of a lower index still running wait here
//! until the prefix reaches them (a handful: as many as finish while the slowest runs).

use std::collections::BTreeMap;

/// The prefix of a run's indices finished so far, and the results waiting to join it.
#[derive(Debug)]
pub struct Tally {
    /// The first index not yet counted.
    next: u64,
    /// Finished above `next`: index → (steps, agreed).
    waiting: BTreeMap<u64, (u64, bool)>,
    /// The lowest index known not to agree.
    lowest: Option<u64>,
    /// Counted: `start..next`, or `start..=lowest` once the prefix reached it.
    programs: u64,
    agreements: u64,
    steps: u64,
}

impl Tally {
    pub fn new(start: u64) -> Tally {
        Tally {
            next: start,
            waiting: BTreeMap::new(),
            lowest: None,
            programs: 0,
            agreements: 0,
            steps: 0,
        }
    }

    /// Whether program `index` is still worth running: no lower index failed to agree.
    pub fn wanted(&self, index: u64) -> bool {
        self.lowest.is_none_or(|lowest| index < lowest)
    }

    /// The lowest index known not to agree.
    pub fn lowest(&self) -> Option<u64> {
        self.lowest
    }

    /// Records that program `index` (of `steps` legalized steps) finished, agreeing or not.
    pub fn finish(&mut self, index: u64, steps: u64, agreed: bool) {
        if !self.wanted(index) {
            return;
        }
        if !agreed {
            self.lowest = Some(index);
            self.waiting.split_off(&index);
        }
        self.waiting.insert(index, (steps, agreed));
        while let Some((steps, agreed)) = self.waiting.remove(&self.next) {
            self.programs += 1;
            self.steps += steps;
            self.next += 1;
            if !agreed {
                break; // the lowest divergence: nothing above it counts
            }
            self.agreements += 1;
        }
    }

    /// Programs counted: those of the prefix, the lowest divergence included.
    pub fn programs(&self) -> u64 {
        self.programs
    }

    pub fn agreements(&self) -> u64 {
        self.agreements
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_finishing_out_of_order_count_as_the_prefix() {
        let mut t = Tally::new(10);
        t.finish(12, 5, true);
        t.finish(11, 4, true);
        assert_eq!(t.programs(), 0, "10 is still running");
        t.finish(10, 3, true);
        assert_eq!((t.programs(), t.agreements(), t.steps()), (3, 3, 12));
    }

    #[test]
    fn the_lowest_index_that_does_not_agree_wins_and_nothing_above_it_counts() {
        let mut t = Tally::new(0);
        t.finish(0, 1, true);
        t.finish(5, 1, false);
        t.finish(6, 1, true);
        assert!(t.wanted(4) && !t.wanted(6));
        t.finish(3, 1, false);
        assert_eq!(t.lowest(), Some(3));
        t.finish(4, 1, true); // above the lowest: forgotten
        t.finish(2, 1, true);
        assert_eq!(t.programs(), 1, "1 is still running");
        t.finish(1, 1, true);
        assert_eq!((t.programs(), t.agreements(), t.steps()), (4, 3, 4));
    }
}
