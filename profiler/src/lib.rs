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
//!
//! Beside a CPU sampler: [`current_stack`] and [`poll_boundary`] can be read
//! from a signal handler, so any sampler can tag its samples with the
//! running task and [`resolve`] them afterwards; theseus's own [`Sampler`]
//! (`THESEUS_SAMPLE_HZ`) does exactly that and writes the result as the
//! `CpuNs` event of the same profile.

pub mod aggregate;
pub mod callgrind;
pub mod config;
pub mod output;
mod record;
pub mod sampler;
pub mod signal;
mod stack;
mod tracer;

pub use aggregate::{Aggregate, Costs};
pub use callgrind::{write_callgrind, write_callgrind_with_cpu, CpuStack, Header, ProfileStack};
pub use config::{Config, ConfigError};
pub use output::{Destination, Session};
pub use sampler::Sampler;
pub use tracer::Tracer;

pub use record::{is_active, record, register_live_tasks, LiveTasks, Outcome, TaskRecord};
pub use stack::{
    capture_mode, interned_nodes, poll_boundary, set_capture_mode, ParseCaptureModeError,
};
pub use stack::{
    current_stack, enter_poll, resolve, spawn_stack, CaptureMode, PollScope, ResolvedFrame, StackId,
};
