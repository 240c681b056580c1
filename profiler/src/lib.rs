//! The profiling half of theseus: logical task stacks, per-task records,
//! aggregation by stack, and the writers of every output format.
//!
//! This crate knows nothing about how tasks are scheduled. An executor feeds it
//! through a small interface:
//!
//! - [`spawn_stack`] when a task is spawned: returns the [`StackId`] of the new
//!   task's logical stack (its parent's stack, the frames of the current poll
//!   down to the spawn call, and a leaf naming the spawned future).
//! - [`enter_poll`] around every poll: tells the profiler which task runs on
//!   this thread, and where the poll boundary is on the machine stack.
//! - [`frame_stack`] when a marked future (a frame) is first polled: the
//!   [`StackId`] of its stack, below the task or frame polling it.
//! - [`await_point`] from the task's waker, when the task's poll registers
//!   it: the [`StackId`] of the await point the task is about to wait at.
//! - [`record`] once per task, when it completes, panics or is cancelled,
//!   with its idle time split by await point ([`AwaitCosts`]).
//! - [`register_live_tasks`] so that tasks still running when a profile is
//!   written are included with their cost so far.
//!
//! Everything else (symbols, files, formats) happens when a profile is
//! written, never on the executor's hot path.
//!
//! # How data flows
//!
//! One way, from the executor to the files:
//!
//! ```text
//! spawn ──> the task's header ──> record ──> aggregate ──> profile ──> writers
//! (stack id)  (executor: timed    (one per   (summed by    (stacks     (callgrind, pprof,
//!              polls and waits)    task)      stack)        resolved)   folded, svg, report)
//! ```
//!
//! At spawn, the task gets the [`StackId`] of its logical stack; the
//! executor times its polls and waits in a header of its own; when the task
//! ends, one [`TaskRecord`] comes here ([`record`]) and is summed by stack
//! and outcome into the calling thread's [`Aggregate`], inside the
//! installed [`Tracer`]. When a profile is due, the tracer resolves each
//! distinct stack once, into a [`ProfileTree`] inside a [`Profile`] (the
//! whole run, one interval of it, [`Tracer::take_interval`], or a window
//! of it, [`Tracer::open_window`]); and one
//! small writer per format prints that profile. The writers share
//! [`Profile::samples`], so every format shows the same stacks, names and
//! numbers. [`Format`] picks the writer; a [`Session`] does all of it for a
//! program, from the `THESEUS_*` settings ([`Config`]).
//!
//! Beside a CPU sampler: [`current_stack`] and [`poll_boundary`] can be read
//! from a signal handler, so any sampler can tag its samples with the
//! running task and [`resolve`] them afterwards; theseus's own [`Sampler`]
//! (`THESEUS_SAMPLE_HZ`) does exactly that and writes the result as the
//! `CpuNs` event of the same profile.
//!
//! # Where things live
//!
//! | what | module |
//! |---|---|
//! | logical stacks: poll context, capture at spawn, await points | `stack` (`context`, `capture`, `awaits`) |
//! | unwinding to the poll boundary, safely beside a sampler | `stack::unwind` |
//! | the trie of stack ids | `stack::intern` |
//! | symbolization of return addresses | `stack::symbolize` |
//! | frame cleaning and naming | `stack::filters`, `stack::names`, `stack::spawned`, `stack::awaited` |
//! | task records, live tasks | `task_record` |
//! | summing records by stack | [`aggregate`]; intervals: [`interval`] |
//! | installed tracers, per-thread ledgers | `tracer` |
//! | stack ids to a tree of frames | `tree` (`tree::resolve`) |
//! | the profile every writer reads | [`profile`] |
//! | writers | [`callgrind`], [`pprof`], [`folded`], [`flamegraph`], [`report`]; the formats named by [`format`](mod@format), each given its writer by `writers` |
//! | a program's session: settings, files, exit | [`config`], [`output`], [`snapshots`], [`exit_signal`] |
//! | profiles pulled over HTTP (`THESEUS_HTTP`) | [`http`] (`http::route`, `http::query`, `http::page`) |
//! | theseus's CPU sampler | [`sampler`] |
//!
//! No module imports one that imports it, directly or through others
//! (`.ci/module-cycles` checks). Where a module must reach one that depends
//! on it (the poll context setting a thread up for the sampler, the tracer
//! flushing the sampler's buffers), it is handed a function to call.

#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(clippy::too_many_lines)]

pub mod aggregate;
pub mod callgrind;
mod capture;
pub mod config;
pub mod exit_signal;
pub mod flamegraph;
pub mod folded;
mod forked;
pub mod format;
pub mod http;
pub mod interval;
mod notes;
pub mod output;
pub mod pprof;
pub mod profile;
pub mod report;
mod resolution;
pub mod sampler;
pub mod snapshots;
pub mod source_file;
mod task_record;
mod tracer;
mod tree;
mod writers;

pub use aggregate::{Aggregate, Costs};
pub use config::{Config, ConfigError, ParseModeError};
pub use format::{Format, ParseFormatError};
pub use notes::{add_note, Note};
pub use output::{Destination, Session};
pub use profile::{Event, ParseEventError, Profile, ProfileHeader, Sample};
pub use sampler::Sampler;
pub use tracer::{is_active, record, Tracer, Window};
pub use tree::{CpuStack, NodeId, ProfileStack, ProfileTree};

pub use capture::{
    await_mode, await_point, awaiting, awaiting_task, set_await_mode, AwaitMode, AwaitScope,
};
pub use capture::{capture_mode, interned_nodes, poll_boundary, set_capture_mode};
pub use capture::{
    current_stack, enter_poll, frame_stack, intern_name, spawn_blocking_stack, spawn_stack,
    tokio_spawn_stack, CaptureMode, FrameKind, PollScope, StackId,
};
pub use resolution::{resolve, ResolvedFrame};
pub use task_record::{
    register_live_tasks, AwaitCost, AwaitCosts, LiveTasks, Outcome, RecordKind, TaskId, TaskRecord,
    MAX_AWAITS,
};
