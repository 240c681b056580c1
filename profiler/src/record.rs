//! Per-task records: what the executor hands over when a task ends, and the
//! registry of sources of tasks that have not ended yet.

use crate::StackId;
use std::sync::{Mutex, PoisonError, Weak};

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
}

/// A source of records for tasks that have not finished yet.
pub trait LiveTasks: Send + Sync {
    /// Calls `f` with a record, costs so far, of every live task.
    fn for_each_live(&self, f: &mut dyn FnMut(TaskRecord));
}

/// Whether a tracer is installed: the executor skips all timing when not.
///
/// One relaxed atomic load, so it can be asked on every poll.
#[inline]
pub fn is_active() -> bool {
    crate::tracer::is_active()
}

/// Adds a finished task's costs to this thread's aggregate for the installed
/// tracer. Does nothing when no tracer is installed.
///
/// Costs a thread-local lookup, an uncontended lock and a hash update; the
/// aggregate has one entry per distinct `(stack, outcome)`, whatever the
/// number of tasks.
pub fn record(rec: &TaskRecord) {
    crate::tracer::record(rec);
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
