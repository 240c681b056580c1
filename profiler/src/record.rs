//! Per-task records and their aggregation by stack. (being written)

use crate::StackId;
use std::sync::Arc;

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
pub fn is_active() -> bool {
    false
}

/// Adds a finished task's costs to this thread's aggregate.
pub fn record(rec: &TaskRecord) {
    let _ = rec;
}

/// Registers a source of live tasks; it is dropped from the list once only
/// the registry's weak reference remains.
pub fn register_live_tasks(source: std::sync::Weak<dyn LiveTasks>) {
    let _: Option<Arc<dyn LiveTasks>> = source.upgrade();
}
