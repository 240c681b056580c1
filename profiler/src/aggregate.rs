//! Costs of tasks summed by (logical stack, outcome).
//!
//! An [`Aggregate`] has one entry per distinct `(StackId, Outcome)` pair, so
//! its size follows the number of distinct spawn stacks of a program, never
//! the number of tasks it ran.

use crate::capture::StackId;
use crate::task_record::{AwaitCosts, Outcome, RecordKind, TaskRecord};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The summed costs of one or more tasks. Durations in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Costs {
    /// Spawn to completion (or to the moment of writing, for unfinished tasks).
    pub wall_ns: u64,
    /// Time spent inside `poll`.
    pub busy_ns: u64,
    /// Time between being scheduled (spawn or wake) and the poll that followed.
    pub sched_ns: u64,
    /// Time awaiting something: `wall - busy - sched`, saturating at zero for
    /// each task before summing.
    pub idle_ns: u64,
    /// Number of polls.
    pub polls: u64,
    /// Number of wakes.
    pub wakes: u64,
    /// At an await point, the number of waits there: those a wake ended
    /// and those still going on when the record was read, each once, as
    /// the `calls=` of the chain to it. Zero elsewhere; no event of its own.
    pub waits: u64,
    /// Number of tasks these costs belong to.
    pub tasks: u64,
    /// Number of frames (marked futures, requests) these costs belong to.
    pub frames: u64,
}

impl Costs {
    /// The costs of the single task described by `rec`.
    pub fn from_record(rec: &TaskRecord) -> Costs {
        Costs {
            wall_ns: rec.wall_ns,
            busy_ns: rec.busy_ns,
            sched_ns: rec.sched_ns,
            idle_ns: rec
                .wall_ns
                .saturating_sub(rec.busy_ns)
                .saturating_sub(rec.sched_ns),
            polls: rec.polls,
            wakes: rec.wakes,
            waits: 0,
            tasks: u64::from(rec.kind == RecordKind::Task),
            frames: u64::from(rec.kind == RecordKind::Frame),
        }
    }

    /// The costs of the task described by `rec`, split between the task's
    /// own stack (returned) and the stacks of its await points (each passed
    /// to `awaits`, in the record's order): [`Costs::split_awaits`] of the
    /// record's costs.
    #[inline]
    pub fn split(rec: &TaskRecord, awaits: impl FnMut(StackId, &Costs)) -> Costs {
        Costs::from_record(rec).split_awaits(&rec.awaits, awaits)
    }

    /// These costs of one task, less its waits at the await points in
    /// `waits`, each of which is passed to `awaits` with its stack.
    ///
    /// An await point gets the idle time spent there as both `IdleNs` and
    /// `WallNs` (its wall time is the waiting), and the wakes that ended
    /// those waits; all of that is taken off the task's own costs, so each
    /// event's sum over the task and its await points is what the task
    /// measured. Polls, busy and scheduling time, and the task itself stay
    /// with the task. An await point can never take more idle time or wakes
    /// than the task had left (clock rounding could otherwise make a few
    /// nanoseconds appear), and one with nothing to show is skipped.
    #[inline]
    pub fn split_awaits(
        self,
        waits: &AwaitCosts,
        mut awaits: impl FnMut(StackId, &Costs),
    ) -> Costs {
        let mut own = self;
        for wait in waits.iter() {
            let idle = wait.idle_ns.min(own.idle_ns);
            let wakes = wait.wakes.min(own.wakes);
            if idle == 0 && wakes == 0 && !wait.waiting {
                continue;
            }
            own.idle_ns -= idle;
            own.wall_ns = own.wall_ns.saturating_sub(idle);
            own.wakes -= wakes;
            let waited = Costs {
                wall_ns: idle,
                idle_ns: idle,
                wakes,
                waits: wakes + u64::from(wait.waiting),
                ..Costs::default()
            };
            awaits(wait.stack, &waited);
        }
        own
    }

    /// Adds `other` to `self`, saturating instead of wrapping.
    pub fn add(&mut self, other: &Costs) {
        self.wall_ns = self.wall_ns.saturating_add(other.wall_ns);
        self.busy_ns = self.busy_ns.saturating_add(other.busy_ns);
        self.sched_ns = self.sched_ns.saturating_add(other.sched_ns);
        self.idle_ns = self.idle_ns.saturating_add(other.idle_ns);
        self.polls = self.polls.saturating_add(other.polls);
        self.wakes = self.wakes.saturating_add(other.wakes);
        self.waits = self.waits.saturating_add(other.waits);
        self.tasks = self.tasks.saturating_add(other.tasks);
        self.frames = self.frames.saturating_add(other.frames);
    }

    /// What one task accrued since `earlier`, an earlier reading of its
    /// costs so far: each duration and count grows by the difference
    /// (never below zero), while `tasks` and `frames` stay as they are,
    /// since the cost still belongs to this one task or frame.
    ///
    /// ```
    /// use theseus_profiler::Costs;
    ///
    /// let then = Costs { wall_ns: 100, busy_ns: 10, sched_ns: 5, idle_ns: 85, polls: 1, wakes: 0, waits: 0, tasks: 1, frames: 0 };
    /// let now = Costs { wall_ns: 250, busy_ns: 30, sched_ns: 5, idle_ns: 215, polls: 3, wakes: 2, waits: 0, tasks: 1, frames: 0 };
    /// let since = now.after(&then);
    /// assert_eq!((since.wall_ns, since.busy_ns, since.idle_ns, since.polls, since.tasks), (150, 20, 130, 2, 1));
    /// ```
    pub fn after(&self, earlier: &Costs) -> Costs {
        Costs {
            wall_ns: self.wall_ns.saturating_sub(earlier.wall_ns),
            busy_ns: self.busy_ns.saturating_sub(earlier.busy_ns),
            sched_ns: self.sched_ns.saturating_sub(earlier.sched_ns),
            idle_ns: self.idle_ns.saturating_sub(earlier.idle_ns),
            polls: self.polls.saturating_sub(earlier.polls),
            wakes: self.wakes.saturating_sub(earlier.wakes),
            waits: self.waits.saturating_sub(earlier.waits),
            tasks: self.tasks,
            frames: self.frames,
        }
    }

    /// The costs in the order of the callgrind `events:` line:
    /// `WallNs BusyNs SchedNs IdleNs Polls Wakes Tasks Frames`.
    pub fn to_array(&self) -> [u64; 8] {
        [
            self.wall_ns,
            self.busy_ns,
            self.sched_ns,
            self.idle_ns,
            self.polls,
            self.wakes,
            self.tasks,
            self.frames,
        ]
    }
}

/// Costs keyed by `(StackId, Outcome)`.
///
/// Memory is proportional to the number of distinct keys: adding a million
/// records of the same stack and outcome leaves one entry.
#[derive(Clone, Debug, Default)]
pub struct Aggregate {
    /// Each key's costs, in the order the keys were first added.
    entries: Vec<(u64, Costs)>,
    /// Where each key is in `entries`.
    index: HashMap<u64, usize, BuildHasherDefault<KeyHasher>>,
    /// The entry added to last: tasks end in runs of one stack (a loop
    /// that spawns, a pool of one kind of worker), so the next add is
    /// mostly to it, and then no key is hashed or looked up.
    last: usize,
}

impl Aggregate {
    /// An empty aggregate.
    pub fn new() -> Aggregate {
        Aggregate::default()
    }

    /// Adds one task's record under its stack and outcome, and its waits
    /// at await points under theirs (see [`Costs::split`]).
    #[inline]
    pub fn add_record(&mut self, rec: &TaskRecord) {
        // Most tasks never wait: nothing to split, and nothing but the
        // add itself on the way of every task's end.
        if rec.awaits.is_empty() {
            return self.add(rec.stack, rec.outcome, &Costs::from_record(rec));
        }
        self.add_split(rec.stack, rec.outcome, Costs::from_record(rec), &rec.awaits);
    }

    /// Adds the costs of one task (or of a piece of its life) whose stack is
    /// `stack`, less its waits at await points, which go under theirs (see
    /// [`Costs::split_awaits`]).
    pub fn add_split(
        &mut self,
        stack: StackId,
        outcome: Outcome,
        costs: Costs,
        waits: &AwaitCosts,
    ) {
        // Most tasks never wait: nothing to split.
        if waits.is_empty() {
            return self.add(stack, outcome, &costs);
        }
        let own = costs.split_awaits(waits, |at, waited| self.add(at, outcome, waited));
        self.add(stack, outcome, &own);
    }

    /// Adds `costs` under `(stack, outcome)`.
    #[inline]
    pub fn add(&mut self, stack: StackId, outcome: Outcome, costs: &Costs) {
        let key = pack(stack, outcome);
        if let Some((last, entry)) = self.entries.get_mut(self.last) {
            if *last == key {
                return entry.add(costs);
            }
        }
        self.add_elsewhere(key, costs);
    }

    /// [`Aggregate::add`] to another key than the last one added to.
    fn add_elsewhere(&mut self, key: u64, costs: &Costs) {
        match self.index.get(&key) {
            Some(&at) => {
                self.entries[at].1.add(costs);
                self.last = at;
            }
            None => {
                self.last = self.entries.len();
                self.index.insert(key, self.last);
                self.entries.push((key, *costs));
            }
        }
    }

    /// Adds every entry of `other` to `self`.
    pub fn merge(&mut self, other: &Aggregate) {
        for (stack, outcome, costs) in other.iter() {
            self.add(stack, outcome, &costs);
        }
    }

    /// The number of distinct `(stack, outcome)` entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no task has been added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The summed costs of `(stack, outcome)`, if any task had them.
    pub fn get(&self, stack: StackId, outcome: Outcome) -> Option<Costs> {
        let at = *self.index.get(&pack(stack, outcome))?;
        Some(self.entries[at].1)
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (StackId, Outcome, Costs)> + '_ {
        self.entries.iter().map(|&(key, costs)| {
            let (stack, outcome) = unpack(key);
            (stack, outcome, costs)
        })
    }

    /// The sum of all entries.
    pub fn total(&self) -> Costs {
        let mut total = Costs::default();
        for (_, costs) in &self.entries {
            total.add(costs);
        }
        total
    }
}

/// Packs a key into one integer: the stack id above two bits of outcome.
/// One integer keeps the per-record hash to a multiply and a shift.
fn pack(stack: StackId, outcome: Outcome) -> u64 {
    let tag = match outcome {
        Outcome::Completed => 0,
        Outcome::Panicked => 1,
        Outcome::Cancelled => 2,
        Outcome::Unfinished => 3,
    };
    (u64::from(stack.0) << 2) | tag
}

fn unpack(key: u64) -> (StackId, Outcome) {
    let outcome = match key & 3 {
        0 => Outcome::Completed,
        1 => Outcome::Panicked,
        2 => Outcome::Cancelled,
        _ => Outcome::Unfinished,
    };
    // The key was built from a u32 shifted left by two, so this fits.
    (StackId((key >> 2) as u32), outcome)
}

/// A hasher for the packed `u64` keys. The keys are small integers chosen by
/// this crate, not by an attacker, so a multiplicative hash is enough and
/// much cheaper than SipHash on the per-task path.
#[derive(Default)]
pub(crate) struct KeyHasher {
    hash: u64,
}

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.hash
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // An odd constant close to 2^64 / golden ratio spreads consecutive
        // keys; folding the high half down feeds the bucket index, which uses
        // the low bits.
        let h = (self.hash ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.hash = h ^ (h >> 32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(stack: u32, outcome: Outcome, wall: u64, busy: u64, sched: u64) -> TaskRecord {
        TaskRecord {
            id: crate::TaskId::next(),
            stack: StackId(stack),
            wall_ns: wall,
            busy_ns: busy,
            sched_ns: sched,
            polls: 2,
            wakes: 1,
            outcome,
            awaits: crate::AwaitCosts::NONE,
            kind: crate::RecordKind::Task,
        }
    }

    #[test]
    fn idle_is_wall_minus_busy_minus_sched_saturating() {
        let c = Costs::from_record(&rec(1, Outcome::Completed, 100, 30, 20));
        assert_eq!(c.idle_ns, 50);
        let c = Costs::from_record(&rec(1, Outcome::Completed, 10, 30, 20));
        assert_eq!(c.idle_ns, 0);
    }

    #[test]
    fn a_wait_still_going_on_counts_as_a_wait_with_no_wake() {
        let mut a = Aggregate::new();
        for _ in 0..3 {
            let mut r = rec(1, Outcome::Unfinished, 1_000, 100, 50);
            r.wakes = 1;
            let ended = crate::AwaitCost {
                stack: StackId(10),
                idle_ns: 200,
                wakes: 1,
                waiting: false,
            };
            let open = crate::AwaitCost {
                stack: StackId(11),
                idle_ns: 500,
                wakes: 0,
                waiting: true,
            };
            assert!(r.awaits.push(ended) && r.awaits.push(open));
            a.add_record(&r);
        }
        let ended = a.get(StackId(10), Outcome::Unfinished).unwrap();
        assert_eq!((ended.idle_ns, ended.wakes, ended.waits), (600, 3, 3));
        let open = a.get(StackId(11), Outcome::Unfinished).unwrap();
        assert_eq!((open.idle_ns, open.wakes, open.waits), (1_500, 0, 3));
        assert_eq!(a.get(StackId(1), Outcome::Unfinished).unwrap().waits, 0);
    }

    #[test]
    fn waits_at_await_points_leave_the_task_and_totals_stay() {
        let mut r = rec(1, Outcome::Cancelled, 1_000, 100, 50);
        r.wakes = 3;
        let wait = |stack, idle_ns, wakes| crate::AwaitCost {
            stack: StackId(stack),
            idle_ns,
            wakes,
            waiting: false,
        };
        assert!(r.awaits.push(wait(10, 600, 2)));
        assert!(r.awaits.push(wait(11, 0, 0)));
        // More than is left: clock rounding, capped.
        assert!(r.awaits.push(wait(12, 300, 2)));
        let mut a = Aggregate::new();
        a.add_record(&r);
        let own = a.get(StackId(1), Outcome::Cancelled).unwrap();
        assert_eq!(
            (own.wall_ns, own.idle_ns, own.wakes, own.tasks, own.polls),
            (100 + 50, 0, 0, 1, 2)
        );
        let first = a.get(StackId(10), Outcome::Cancelled).unwrap();
        assert_eq!(
            (
                first.wall_ns,
                first.idle_ns,
                first.wakes,
                first.waits,
                first.tasks
            ),
            (600, 600, 2, 2, 0)
        );
        assert_eq!(
            a.get(StackId(11), Outcome::Cancelled),
            None,
            "nothing to show"
        );
        let capped = a.get(StackId(12), Outcome::Cancelled).unwrap();
        assert_eq!((capped.idle_ns, capped.wakes), (250, 1));
        let total = a.total();
        assert_eq!(
            (
                total.wall_ns,
                total.busy_ns,
                total.sched_ns,
                total.idle_ns,
                total.wakes,
                total.tasks
            ),
            (1_000, 100, 50, 850, 3, 1)
        );
    }

    #[test]
    fn pack_round_trips_every_outcome_and_large_ids() {
        for outcome in [
            Outcome::Completed,
            Outcome::Panicked,
            Outcome::Cancelled,
            Outcome::Unfinished,
        ] {
            for id in [0, 1, 7, u32::MAX] {
                assert_eq!(unpack(pack(StackId(id), outcome)), (StackId(id), outcome));
            }
        }
    }

    #[test]
    fn entries_are_keyed_by_stack_and_outcome() {
        let mut a = Aggregate::new();
        a.add_record(&rec(1, Outcome::Completed, 10, 1, 1));
        a.add_record(&rec(1, Outcome::Completed, 20, 2, 2));
        a.add_record(&rec(1, Outcome::Cancelled, 5, 1, 1));
        a.add_record(&rec(2, Outcome::Completed, 7, 1, 1));
        assert_eq!(a.len(), 3);
        let c = a.get(StackId(1), Outcome::Completed).unwrap();
        assert_eq!((c.wall_ns, c.tasks, c.polls, c.idle_ns), (30, 2, 4, 24));
        assert_eq!(a.total().tasks, 4);
        let mut b = Aggregate::new();
        b.merge(&a);
        b.merge(&a);
        assert_eq!(b.len(), 3);
        assert_eq!(b.total().wall_ns, 2 * a.total().wall_ns);
    }
}
