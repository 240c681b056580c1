//! Per-task records: what the executor hands over when a task ends, and the
//! registry of sources of tasks that have not ended yet.
//!
//! Records are plain data; handing one over ([`crate::record`]) is the
//! tracer's business, which reads this module and never the other way round.

use crate::capture::StackId;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, Weak};

/// Identifies one task: no two tasks of a process get the same id.
///
/// Interval snapshots need it: a task still running at the end of one
/// interval is reported there with its cost so far, and when it ends in a
/// later interval only the rest is reported, which takes knowing that the
/// record is that task's. An executor gives each timed task an id from
/// [`TaskId::next`] and puts it in every [`TaskRecord`] of that task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TaskId(pub u64);

/// The next block of ids to hand to a thread.
static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);

/// Ids a thread takes from [`NEXT_BLOCK`] at a time, so that spawning
/// touches a shared counter once per this many tasks.
const BLOCK: u64 = 1024;

thread_local! {
    /// This thread's next id and the end of its block.
    static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

impl TaskId {
    /// A fresh id, never 0: a thread-local increment, and once every 1024
    /// ids an atomic add on a shared counter.
    #[inline]
    pub fn next() -> TaskId {
        IDS.try_with(|ids| {
            let (next, end) = ids.get();
            if next < end {
                ids.set((next + 1, end));
                return TaskId(next);
            }
            let start = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed);
            ids.set((start + 1, start + BLOCK));
            TaskId(start)
        })
        // A thread whose locals are being torn down takes a block of one.
        .unwrap_or_else(|_| TaskId(NEXT_BLOCK.fetch_add(1, Ordering::Relaxed)))
    }
}

/// How a task ended, or that it has not ended yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The future returned `Ready`.
    Completed,
    /// A poll panicked.
    Panicked,
    /// The task was aborted, or dropped unfinished at shutdown.
    Cancelled,
    /// Still running when the profile was written: costs so far.
    Unfinished,
}

/// Everything the executor measured about one task. Durations in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskRecord {
    /// The task, from [`TaskId::next`]: the same in all records of one task.
    pub id: TaskId,
    /// The task's logical stack, from [`crate::spawn_stack`].
    pub stack: StackId,
    /// Spawn to completion (or to now, for an unfinished task).
    pub wall_ns: u64,
    /// Sum of poll durations.
    pub busy_ns: u64,
    /// Sum over schedules (spawn and each wake) of the delay until the poll began.
    pub sched_ns: u64,
    /// Number of polls.
    pub polls: u64,
    /// Number of wakes (schedules after the spawn).
    pub wakes: u64,
    /// How the task ended.
    pub outcome: Outcome,
    /// Where the task waited: the part of its idle time (and the wakes that
    /// ended it) spent at each of its await points. What is here is taken
    /// off the task's own idle time and wakes when the record is added up;
    /// the rest stays on the task's leaf.
    pub awaits: AwaitCosts,
    /// Whether this is a task's record or a frame's (a marked future,
    /// timed from its creation to its completion wherever it was polled):
    /// counted in the `Tasks` or the `Frames` event.
    pub kind: RecordKind,
}

/// What a [`TaskRecord`] times.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// A spawned task.
    #[default]
    Task,
    /// A frame: a marked future (`#[theseus::profiled]`, a request), whose
    /// costs the enclosing task (or frame) no longer holds.
    Frame,
    /// The future given to `block_on`, timed as a frame is: counted
    /// neither in `Tasks` nor in `Frames`, since it is neither.
    Main,
}

/// Most await points one [`TaskRecord`] carries: the executor tells a
/// task's await points apart by tagging the task's wakers, which leaves room
/// for seven per task. Idle time at others stays on the task's leaf.
pub const MAX_AWAITS: usize = 7;

/// The waiting one task did at one await point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AwaitCost {
    /// The await point: a stack from [`crate::await_point`], which extends
    /// the task's own stack.
    pub stack: StackId,
    /// Time from the ends of the polls that left the task waiting here to
    /// the wakes that ended those waits, in nanoseconds.
    pub idle_ns: u64,
    /// The wakes that ended those waits.
    pub wakes: u64,
    /// Whether one more wait here was still going on when the record was
    /// read: no wake has ended it, so `wakes` does not count it, yet it is
    /// one of the waits at this point (its time so far is in `idle_ns`).
    pub waiting: bool,
}

/// A task's [`AwaitCost`]s: at most [`MAX_AWAITS`], kept inline so that a
/// record stays `Copy` and never allocates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AwaitCosts {
    entries: [AwaitCost; MAX_AWAITS],
    len: u8,
}

impl AwaitCosts {
    /// No await points.
    pub const NONE: AwaitCosts = AwaitCosts {
        entries: [AwaitCost {
            stack: StackId::ROOT,
            idle_ns: 0,
            wakes: 0,
            waiting: false,
        }; MAX_AWAITS],
        len: 0,
    };

    /// Adds `cost`; returns `false` (and adds nothing) when full.
    pub fn push(&mut self, cost: AwaitCost) -> bool {
        match self.entries.get_mut(usize::from(self.len)) {
            Some(slot) => {
                *slot = cost;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// The entries, in the order they were pushed.
    pub fn iter(&self) -> impl Iterator<Item = &AwaitCost> {
        self.entries[..usize::from(self.len)].iter()
    }

    /// The entries, in the order they were pushed, to change in place.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut AwaitCost> {
        self.entries[..usize::from(self.len)].iter_mut()
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What one task waited since `earlier`, an earlier reading of its
    /// waits so far: each await point's idle time and wakes less what
    /// `earlier` had for the same point (never below zero). `waiting` is
    /// this reading's: a wait going on at both readings is one of the
    /// waits of each stretch of time.
    pub fn after(&self, earlier: &AwaitCosts) -> AwaitCosts {
        let mut since = *self;
        for wait in since.entries[..usize::from(since.len)].iter_mut() {
            if let Some(then) = earlier.iter().find(|then| then.stack == wait.stack) {
                wait.idle_ns = wait.idle_ns.saturating_sub(then.idle_ns);
                wait.wakes = wait.wakes.saturating_sub(then.wakes);
            }
        }
        since
    }
}

/// A source of records for tasks that have not finished yet.
pub trait LiveTasks: Send + Sync {
    /// Calls `f` with a record, costs so far, of every live task.
    fn for_each_live(&self, f: &mut dyn FnMut(TaskRecord));
}

/// Registers a source of live tasks; it is dropped from the list once only
/// the registry's weak reference remains.
///
/// When a profile is written, every live source's
/// [`LiveTasks::for_each_live`] is called and its records are added, as
/// [`Outcome::Unfinished`], to that written profile only: they are not kept,
/// so a task that finishes later is not counted twice.
pub fn register_live_tasks(source: Weak<dyn LiveTasks>) {
    let mut sources = LIVE_SOURCES.lock().unwrap_or_else(PoisonError::into_inner);
    sources.retain(|s| s.strong_count() > 0);
    sources.push(source);
}

/// Every registered source of live tasks.
static LIVE_SOURCES: Mutex<Vec<Weak<dyn LiveTasks>>> = Mutex::new(Vec::new());

/// Records of all live tasks of all live sources, each marked
/// [`Outcome::Unfinished`].
pub(crate) fn live_records() -> Vec<TaskRecord> {
    // Upgrade under the lock, call the sources outside it: a source may take
    // its own locks, and must not be able to deadlock against registration.
    let sources: Vec<_> = {
        let mut sources = LIVE_SOURCES.lock().unwrap_or_else(PoisonError::into_inner);
        sources.retain(|s| s.strong_count() > 0);
        sources.iter().filter_map(Weak::upgrade).collect()
    };
    let mut out = Vec::new();
    for source in sources {
        source.for_each_live(&mut |mut rec| {
            rec.outcome = Outcome::Unfinished;
            out.push(rec);
        });
    }
    out
}
