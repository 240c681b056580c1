//! The profiling half of theseus: logical task stacks, per-task records,
//! aggregation by stack, and the callgrind writer.
//!
//! This crate knows nothing about how tasks are scheduled. An executor feeds it
//! through a small interface:
//!
//! - [`spawn_stack`] when a task is spawned: returns the [`StackId`] of the new
//!   task's logical stack (its parent's stack, the frames of the current poll
//!   down to the spawn call, and a leaf naming the spawned future).
//! - [`enter_poll`] around every poll: tells the profiler which task runs on
//!   this thread, and where the poll boundary is on the machine stack.
//! - [`record`] once per task, when it completes, panics or is cancelled.
//! - [`register_live_tasks`] so that tasks still running when a profile is
//!   written are included with their cost so far.
//!
//! Everything else (symbols, files, callgrind) happens when a profile is
//! written, never on the executor's hot path.

mod record;
mod stack;

pub use record::{is_active, record, register_live_tasks, LiveTasks, Outcome, TaskRecord};
pub use stack::{
    current_stack, enter_poll, resolve, spawn_stack, CaptureMode, PollScope, ResolvedFrame, StackId,
};
