//! Interval accounting: what each task cost within one interval of a
//! long-running program, so that a profile can be cut off every minute
//! without the memory growing and without counting anything twice.
//!
//! An interval's profile holds the tasks that ended in it and the tasks
//! still running at its end (as ` (unfinished)`), each with its cost
//! *within* the interval. A task that runs across a cut is reported live at
//! that cut with its cost so far; what was reported is kept here, by
//! [`TaskId`], and taken off when the task is next seen, live at a later
//! cut or ended. So every duration and count (all events but `Tasks`) of
//! the interval profiles adds up to the whole run's, and `Tasks` counts a
//! task in every interval it had cost in. `IdleNs` adds up to within a
//! nanosecond or two per task running across a cut: it is `wall - busy -
//! sched`, three durations each rounded to the nanosecond, so a running
//! task's idle time can read a little less at a later cut, and a piece is
//! never negative.
//!
//! A task's waits at its await points are carried the same way, point by
//! point, so an await point's pieces add up too. (A wait still going on at
//! a cut is reported at the first await point its last poll registered; if
//! another point's waker ends it, the rest of it goes there, and the two
//! points share that wait between them; the task's totals stay exact.)
//!
//! Memory is one entry per task running at the last cut, never per task
//! run, and the finished tasks of an interval are summed by stack as they
//! end, as always.
//!
//! # How a cut stays exact while tasks keep ending
//!
//! A record that might belong to a task reported at the last cut is kept
//! whole (with its id) instead of being summed, so the next cut can take
//! off what was reported: the recording thread asks its routing whether the
//! id is among those reported, which is an empty check for programs that
//! never cut. While a cut is under way every record is kept whole: the cut
//! sees the live tasks at one moment and takes the finished ones a little
//! later, and a task that ends in between is in both; its id tells. The
//! executor takes a task out of its live list before handing over its
//! record, so a task that the cut did not see live has not been summed
//! under the old routing either. A task taken off the live list but not yet
//! recorded at a cut (its thread was preempted in between) is neither live
//! nor ended there: what was reported of it is kept for one more cut.

use crate::aggregate::KeyHasher;
use crate::aggregate::{Aggregate, Costs};
use crate::capture::StackId;
use crate::task_record::{AwaitCosts, Outcome, TaskId, TaskRecord};
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

type Hasher = BuildHasherDefault<KeyHasher>;

/// The ids of tasks reported live at the last cut.
pub(crate) type Reported = HashSet<TaskId, Hasher>;

/// How a thread files the records of tasks that end: summed, or kept whole.
#[derive(Default)]
pub(crate) struct Routing {
    /// A cut is under way: keep every record whole.
    pub(crate) cutting: bool,
    /// Keep whole the records of these tasks; `None` when there are none.
    pub(crate) reported: Option<Arc<Reported>>,
}

impl Routing {
    /// Whether the record of task `id` is to be kept whole.
    #[inline]
    pub(crate) fn keep_whole(&self, id: TaskId) -> bool {
        self.cutting || self.reported.as_ref().is_some_and(|ids| ids.contains(&id))
    }
}

/// Finished tasks not yet taken by a cut.
#[derive(Default)]
pub(crate) struct Finished {
    /// Tasks summed by stack and outcome.
    pub(crate) aggregate: Aggregate,
    /// Records kept whole (see [`Routing`]).
    pub(crate) whole: Vec<TaskRecord>,
    pub(crate) routing: Routing,
}

impl Finished {
    /// Files one finished task.
    #[inline]
    pub(crate) fn add(&mut self, rec: &TaskRecord) {
        if self.routing.keep_whole(rec.id) {
            self.whole.push(*rec);
        } else {
            self.aggregate.add_record(rec);
        }
    }

    /// Adds everything here, at full cost, to `into`.
    pub(crate) fn add_to(&self, into: &mut Aggregate) {
        into.merge(&self.aggregate);
        for rec in &self.whole {
            into.add_record(rec);
        }
    }

    /// Moves everything of `other` here, keeping this routing.
    pub(crate) fn absorb(&mut self, other: Finished) {
        self.aggregate.merge(&other.aggregate);
        self.whole.extend(other.whole);
    }

    /// Takes what was recorded, leaving the routing.
    pub(crate) fn take(&mut self) -> Finished {
        Finished {
            aggregate: std::mem::take(&mut self.aggregate),
            whole: std::mem::take(&mut self.whole),
            routing: Routing::default(),
        }
    }
}

/// What was reported of each task live at the last cut.
#[derive(Default)]
pub(crate) struct Carry {
    tasks: HashMap<TaskId, Carried, Hasher>,
}

struct Carried {
    /// Costs so far, as reported.
    costs: Costs,
    /// Waits at await points so far, as reported.
    awaits: AwaitCosts,
    /// Cuts this entry may still go unclaimed before it is dropped.
    cuts_left: u8,
}

impl Carry {
    /// The costs within the interval that ends now: `finished`, taken from
    /// every thread since the last cut, and `live`, the tasks running now
    /// (their costs so far). Remembers what was reported of the live ones.
    pub(crate) fn cut(&mut self, finished: Finished, live: Vec<TaskRecord>) -> Aggregate {
        let mut interval = finished.aggregate;
        let mut ended: HashSet<TaskId, Hasher> = HashSet::default();
        for rec in &finished.whole {
            ended.insert(rec.id);
            let mut costs = Costs::from_record(rec);
            let mut awaits = rec.awaits;
            if let Some(reported) = self.tasks.remove(&rec.id) {
                costs = costs.after(&reported.costs);
                awaits = awaits.after(&reported.awaits);
            }
            interval.add_split(rec.stack, rec.outcome, costs, &awaits);
        }
        let mut next: HashMap<TaskId, Carried, Hasher> = HashMap::default();
        for rec in live {
            // Seen running, then ended before its thread's records were
            // taken: its record above is the whole story.
            if ended.contains(&rec.id) {
                continue;
            }
            let so_far = Costs::from_record(&rec);
            let (costs, awaits) = match self.tasks.remove(&rec.id) {
                Some(reported) => (
                    so_far.after(&reported.costs),
                    rec.awaits.after(&reported.awaits),
                ),
                None => (so_far, rec.awaits),
            };
            interval.add_split(rec.stack, Outcome::Unfinished, costs, &awaits);
            next.insert(
                rec.id,
                Carried {
                    costs: so_far,
                    awaits: rec.awaits,
                    cuts_left: 1,
                },
            );
        }
        for (id, mut carried) in self.tasks.drain() {
            if carried.cuts_left > 0 {
                carried.cuts_left -= 1;
                next.insert(id, carried);
            }
        }
        self.tasks = next;
        interval
    }

    /// The ids whose records must be kept whole until the next cut.
    #[cfg(test)]
    fn reported(&self) -> Option<Arc<Reported>> {
        (!self.tasks.is_empty()).then(|| Arc::new(self.tasks.keys().copied().collect()))
    }

    /// How many tasks are remembered: those running at the last cut.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether what was reported of task `id` is remembered.
    fn holds(&self, id: TaskId) -> bool {
        self.tasks.contains_key(&id)
    }
}

/// One reader's place in the run, cut on its own schedule: the interval
/// snapshots have one, and each window ([`crate::Window`]) another. Every
/// cut, whoever asks for it, takes the finished tasks from all threads at
/// once; a cursor that is not the one cut keeps its share of them here
/// until its own cut, so readers with overlapping times each see every
/// task of theirs exactly once.
pub(crate) struct Cursor {
    carry: Carry,
    /// Finished tasks taken by other readers' cuts since this one's last:
    /// summed, except the records of tasks `carry` remembers, kept whole.
    kept: Finished,
    /// The CPU samples by stack at this cursor's last cut.
    cpu_at_cut: HashMap<StackId, u64>,
    /// When this cursor's current stretch began.
    started: (SystemTime, Instant),
}

/// What one cut of a [`Cursor`] gives: costs by stack and outcome, the CPU
/// samples by stack, and when the stretch began.
pub(crate) type Stretch = (Aggregate, Vec<(StackId, u64)>, (SystemTime, Instant));

impl Cursor {
    /// A cursor whose first stretch began at `started`, with the finished
    /// tasks `before` and the CPU samples `cpu_at_start` already in it
    /// (for the interval snapshots, which start with the run) or not (a
    /// window opened now, which gets the running tasks through
    /// [`Cursor::start_with`]).
    pub(crate) fn new(
        started: (SystemTime, Instant),
        before: Aggregate,
        cpu_at_start: HashMap<StackId, u64>,
    ) -> Cursor {
        Cursor {
            carry: Carry::default(),
            kept: Finished {
                aggregate: before,
                ..Finished::default()
            },
            cpu_at_cut: cpu_at_start,
            started,
        }
    }

    /// Counts the tasks running now as already reported up to now, so only
    /// what they cost from here on is this cursor's.
    pub(crate) fn start_with(&mut self, live: Vec<TaskRecord>) {
        self.carry.cut(Finished::default(), live);
    }

    /// Keeps this cursor's share of finished tasks another reader's cut took.
    pub(crate) fn keep(&mut self, finished: &Finished) {
        self.kept.aggregate.merge(&finished.aggregate);
        for rec in &finished.whole {
            if self.carry.holds(rec.id) {
                self.kept.whole.push(*rec);
            } else {
                self.kept.aggregate.add_record(rec);
            }
        }
    }

    /// Ends this cursor's stretch now: `finished`, just taken from every
    /// thread, with what it kept, and `live`, the tasks running now;
    /// `cpu` is the CPU samples so far. The next stretch starts now.
    pub(crate) fn cut(
        &mut self,
        finished: Finished,
        live: Vec<TaskRecord>,
        cpu: &HashMap<StackId, u64>,
    ) -> Stretch {
        let mut all = self.kept.take();
        all.absorb(finished);
        let aggregate = self.carry.cut(all, live);
        let cpu_since: Vec<(StackId, u64)> = cpu
            .iter()
            .map(|(&stack, &ns)| {
                let before = self.cpu_at_cut.get(&stack).copied().unwrap_or(0);
                (stack, ns.saturating_sub(before))
            })
            .filter(|&(_, ns)| ns > 0)
            .collect();
        self.cpu_at_cut = cpu.clone();
        let started = std::mem::replace(&mut self.started, (SystemTime::now(), Instant::now()));
        (aggregate, cpu_since, started)
    }

    /// Adds the ids of the tasks whose records this cursor needs whole.
    pub(crate) fn add_reported(&self, ids: &mut Reported) {
        ids.extend(self.carry.tasks.keys().copied());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64, outcome: Outcome, wall: u64, busy: u64) -> TaskRecord {
        TaskRecord {
            id: TaskId(id),
            stack: StackId(1),
            wall_ns: wall,
            busy_ns: busy,
            sched_ns: 0,
            polls: busy,
            wakes: 0,
            outcome,
            awaits: AwaitCosts::NONE,
            kind: crate::task_record::RecordKind::Task,
        }
    }

    fn finished(whole: Vec<TaskRecord>, summed: &[TaskRecord]) -> Finished {
        let mut f = Finished::default();
        for r in summed {
            f.aggregate.add_record(r);
        }
        f.whole = whole;
        f
    }

    fn costs(a: &Aggregate, outcome: Outcome) -> (u64, u64, u64) {
        let c = a.get(StackId(1), outcome).unwrap_or_default();
        (c.wall_ns, c.busy_ns, c.tasks)
    }

    #[test]
    fn a_task_across_cuts_is_reported_once_in_pieces() {
        let mut carry = Carry::default();
        // Cut 1: task 7 has run 100 ns, busy 10; task 8 ended whole.
        let i1 = carry.cut(
            finished(vec![], &[rec(8, Outcome::Completed, 50, 5)]),
            vec![rec(7, Outcome::Unfinished, 100, 10)],
        );
        assert_eq!(costs(&i1, Outcome::Unfinished), (100, 10, 1));
        assert_eq!(costs(&i1, Outcome::Completed), (50, 5, 1));
        assert!(carry.reported().unwrap().contains(&TaskId(7)));
        // Cut 2: still running at 250 ns, busy 30.
        let i2 = carry.cut(
            Finished::default(),
            vec![rec(7, Outcome::Unfinished, 250, 30)],
        );
        assert_eq!(costs(&i2, Outcome::Unfinished), (150, 20, 1));
        // Cut 3: it ended at 400 ns, busy 31, recorded whole.
        let i3 = carry.cut(
            finished(vec![rec(7, Outcome::Cancelled, 400, 31)], &[]),
            vec![],
        );
        assert_eq!(costs(&i3, Outcome::Cancelled), (150, 1, 1));
        assert_eq!(costs(&i3, Outcome::Unfinished), (0, 0, 0));
        assert_eq!(carry.len(), 0);
        assert!(carry.reported().is_none());
    }

    #[test]
    fn a_task_seen_live_and_ended_in_one_cut_counts_once() {
        let mut carry = Carry::default();
        let i = carry.cut(
            finished(vec![rec(3, Outcome::Completed, 90, 9)], &[]),
            vec![rec(3, Outcome::Unfinished, 80, 8)],
        );
        assert_eq!(costs(&i, Outcome::Completed), (90, 9, 1));
        assert_eq!(costs(&i, Outcome::Unfinished), (0, 0, 0));
        assert_eq!(carry.len(), 0);
    }

    #[test]
    fn a_task_neither_live_nor_ended_is_remembered_for_one_more_cut() {
        let mut carry = Carry::default();
        carry.cut(
            Finished::default(),
            vec![rec(5, Outcome::Unfinished, 100, 10)],
        );
        // Off the live list, record not yet handed over.
        let i = carry.cut(Finished::default(), vec![]);
        assert!(i.is_empty());
        assert!(carry.reported().unwrap().contains(&TaskId(5)));
        let i = carry.cut(
            finished(vec![rec(5, Outcome::Completed, 130, 12)], &[]),
            vec![],
        );
        assert_eq!(costs(&i, Outcome::Completed), (30, 2, 1));
        // An entry never claimed goes after one spare cut.
        carry.cut(Finished::default(), vec![rec(6, Outcome::Unfinished, 1, 1)]);
        carry.cut(Finished::default(), vec![]);
        carry.cut(Finished::default(), vec![]);
        assert_eq!(carry.len(), 0);
    }

    #[test]
    fn routing_keeps_reported_tasks_and_everything_during_a_cut() {
        let mut f = Finished::default();
        let add = |f: &mut Finished, id| {
            let r = rec(id, Outcome::Completed, 1, 1);
            f.add(&r);
        };
        add(&mut f, 1);
        assert_eq!((f.whole.len(), f.aggregate.len()), (0, 1));
        f.routing.reported = Some(Arc::new([TaskId(2)].into_iter().collect()));
        add(&mut f, 2);
        add(&mut f, 3);
        assert_eq!(f.whole.len(), 1);
        f.routing.cutting = true;
        add(&mut f, 4);
        assert_eq!(f.whole.len(), 2);
        let mut all = Aggregate::new();
        f.add_to(&mut all);
        assert_eq!(all.total().tasks, 4);
    }
}
