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
//! installed [`Tracer`]. When a profile is due, each distinct stack the
//! tracer holds is resolved once, into a [`ProfileTree`] inside a [`Profile`] (the
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
//! # Layers
//!
//! The modules in layers, bottom first, by the moment they run. A module
//! imports only from its own layer and the ones below it, so data flows
//! one way, from the executor's hot path up to the files.
//! `.ci/module-cycles` reads this table: it fails on an import that runs
//! up, and on a module in no row.
//!
//! | layer | modules | what it owns |
//! |---|---|---|
//! | 0. helpers | `forked`, [`source_file`] | telling a forked child from its parent; how a profile spells a source file |
//! | 1. capture | `capture` | the hot path: the poll context, capture at spawn and at await points, unwinding, interning, [`StackId`] |
//! | 2. records | `task_record` | what the executor hands over when a task ends; live tasks |
//! | 3. aggregation | [`aggregate`], [`interval`], `tracer` | records summed by stack; intervals and windows; the installed [`Tracer`] |
//! | 4. resolution | `resolution`, `tree` | write time: stack ids to frames (symbols, hidden frames, names) and to a tree of frames |
//! | 5. profile | [`profile`] | the [`Profile`] every writer reads, built from a tracer's data |
//! | 6. writers | [`format`](mod@format), `writers`, [`callgrind`], [`pprof`], [`folded`], [`flamegraph`], [`report`] | the formats' names; one writer per format; [`Profile::write`], the one place that knows every writer |
//! | 7. sampler | [`sampler`] | theseus's CPU sampler: reads the poll context from a signal handler, feeds the tracer |
//! | 8. session | [`config`], [`output`], [`snapshots`], [`exit_signal`], [`http`], `notes` | a program's session: settings, its life, delivery of files, messages, exit signals, interval files, the live endpoint |
//!
//! No module imports one that imports it, directly or through others, at
//! any level of nesting (`.ci/module-cycles` checks that too). Where a
//! module must reach one above it (the poll context setting a thread up
//! for the sampler, the tracer flushing the sampler's buffers), it is
//! handed a function to call.
//!
//! # Where things live
//!
//! | what | file |
//! |---|---|
//! | which task runs on this thread, the poll boundary | `capture/context.rs` |
//! | a task's stack at spawn; `THESEUS_STACKS` ([`CaptureMode`]) | `capture/spawn.rs` |
//! | await points; `THESEUS_AWAITS` ([`AwaitMode`]) | `capture/await_point.rs` |
//! | the stacks of marked futures (`#[theseus::profiled]`, requests) | `capture/frame.rs` |
//! | the trie of stack ids: frame keys, leaves | `capture/intern.rs` |
//! | unwinding to the poll boundary, safely beside a sampler | `capture/unwind.rs` |
//! | recognizing a chain of frames without unwinding it again | `capture/signature.rs` |
//! | task records, live tasks | `task_record.rs` |
//! | records summed by stack and outcome | `aggregate.rs` |
//! | a task's cost within an interval or a window | `interval.rs` |
//! | the installed tracer, per-thread ledgers | `tracer.rs` |
//! | stack ids to frames ([`resolve`]), a segment at a time | `resolution.rs` |
//! | symbolization of return addresses | `resolution/symbolize.rs` |
//! | which frames are not shown (theseus's, the runtimes', std's glue) | `resolution/filters.rs` |
//! | how functions and futures are named | `resolution/names.rs` |
//! | a spawn's frames and its task's leaf (`[task] ..`) | `resolution/spawn_frames.rs` |
//! | an await point's frames and its leaf (`[await] ..`) | `resolution/await_frames.rs` |
//! | the tree of frames, and building it from stack ids | `tree.rs`, `tree/build.rs` |
//! | a source file's name in a profile | `source_file.rs` |
//! | the profile every writer reads: events, samples | `profile.rs` |
//! | a tracer's whole run, intervals and windows as profiles | `profile/from_tracer.rs` |
//! | the formats and their extensions | `format.rs` |
//! | which writer writes each format | `writers.rs` |
//! | callgrind, and its call graph | `callgrind.rs`, `callgrind/graph.rs` |
//! | pprof, folded stacks, the flame graph, the terminal report | `pprof.rs`, `folded.rs`, `flamegraph.rs`, `report.rs` |
//! | the CPU sampler (`THESEUS_SAMPLE_HZ`) | `sampler/mod.rs`; on Linux `sampler/linux.rs`, its signal handler `sampler/linux/handler.rs`, its buffers `sampler/ring.rs` |
//! | settings from the environment (`THESEUS_*`) | `config.rs` |
//! | a session's life: start, the write at exit | `output.rs` |
//! | safe delivery of a file (atomic rename, FIFOs, fallback) | `output/delivery.rs` |
//! | what a session says on standard error | `output/messages.rs`; the executor's notes `notes.rs` |
//! | SIGINT and SIGTERM | `exit_signal.rs` |
//! | interval files (`THESEUS_INTERVAL`) | `snapshots.rs` |
//! | profiles pulled over HTTP (`THESEUS_HTTP`) | `http.rs`, `http/route.rs`, `http/query.rs`, `http/page.rs` |
//! | a forked child's share of the parent's threads | `forked.rs` |

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
    await_mode, await_point, await_point_after, awaiting, awaiting_task, set_await_mode, AwaitMode,
    AwaitScope, LastAwait,
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
