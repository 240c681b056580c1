//! The runtime under theseus: tokio's scheduler, with every task timed.
//!
//! # Design
//!
//! A theseus runtime is a tokio runtime: tokio's work-stealing scheduler,
//! its I/O driver and its timers, on threads that park in tokio's driver
//! exactly as tokio's own do. Parking, stealing and the I/O driver are all
//! tokio's; theseus adds what a profiler needs at the level of tasks, and
//! nothing to scheduling, so that what it measures is what the program
//! would see under tokio.
//!
//! # How data flows
//!
//! spawn → header → record → the profiler's aggregate → its writers:
//!
//! 1. **spawn** (`spawn`): the profiler gives the new task's logical stack
//!    (a [`theseus_profiler::StackId`]) and the future is wrapped in a
//!    timer of its polls (`timed`).
//! 2. **header** (`header`: during a task's first poll on that poll's
//!    stack, `cell::state`, and in a shared `cell` once a waker leaves the
//!    poll or the task outlives it): every poll's start and end, and every
//!    wake, are written there with plain relaxed stores on the hot path. The poll runs below a marked frame (`boundary`), so
//!    the profiler can tell the task's machine frames from the runtime's.
//!    It gets theseus's own waker (`waker`), which sees each wake and, when
//!    the poll registers it, asks the profiler for the await point on the
//!    stack, so a wait is booked where the task waited.
//! 3. **record**: when the task ends, its header becomes one
//!    [`theseus_profiler::TaskRecord`], handed to the profiler; nothing per
//!    poll ever crosses. Tasks still running when a profile is written are
//!    read from the registry of live tasks (`registry`).
//!
//! The executor talks to `theseus_profiler` through that small interface
//! only: a stack id at spawn (or at a frame's first poll), a poll scope
//! around each poll, an await point when a poll registers its waker, a
//! record at the end, and the list of live tasks. When no tracer is installed, tasks are not wrapped at all.
//!
//! # Where things are
//!
//! - `runtime`: [`Runtime`] and `block_on`; `runtime/builder` the settings
//!   and their checks; `runtime/handle` the [`Handle`].
//! - `spawn`: [`spawn`] and [`spawn_blocking`], and the one place a task
//!   gets its stack and its timer.
//! - `timed`: the wrapper that times a task's polls and records its end.
//! - `cell`, `header`, `waker`: a timed task's state (on its first poll's
//!   stack, `cell/state`, then shared), its numbers and their protocol
//!   (with `loom` models in `header/loom_models`), and the waker that feeds
//!   them.
//! - `boundary`: the marked frame below which a poll's frames are the task's.
//! - `registry`: live tasks, for profiles written mid-run.
//! - `tokio_tasks` and `census`: tasks spawned with `tokio::spawn`, timed
//!   through tokio's hooks, or counted when they cannot be; `id_hasher`:
//!   tokio's ids as the integers they are.
//! - `frame`: [`profiled`] futures, timed like tasks wherever they are
//!   polled, with their costs taken off the task polling them.
//! - `join`: [`JoinHandle`], [`AbortHandle`] and [`task::yield_now`];
//!   `join_set`: [`task::JoinSet`]; `local_set`: [`task::LocalSet`], whose
//!   tasks need not be `Send`; `clock`: the timestamps.
//! - `scheduler`: [`Executor`] and [`LocalExecutor`], theseus's own
//!   work-stealing executor for programs that do not run on tokio (the
//!   smol family), whose tasks get the same timer.

//! ```
//! let rt = theseus_executor::Runtime::new().unwrap();
//! let total = rt.block_on(async {
//!     let handles: Vec<_> = (0..10u64).map(|i| theseus_executor::spawn(async move { i * i })).collect();
//!     let mut total = 0;
//!     for handle in handles {
//!         total += handle.await.unwrap();
//!     }
//!     total
//! });
//! assert_eq!(total, 285);
//! ```

#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(clippy::too_many_lines)]

mod boundary;
mod cell;
mod census;
mod clock;
mod frame;
mod header;
mod id_hasher;
mod join;
mod join_set;
mod local_set;
mod registry;
mod runtime;
mod scheduler;
mod set_once;
mod spawn;
mod sync;
mod timed;
mod tokio_tasks;
mod waker;

pub use frame::{profiled, Profiled};
pub use join::{AbortHandle, JoinError, JoinHandle};
pub use runtime::{
    Builder, EnterGuard, Handle, Runtime, TryCurrentError, MAX_WORKERS, WORKERS_ENV,
};
pub use scheduler::{Executor, FallibleTask, LocalExecutor, Task};
pub use spawn::{spawn, spawn_blocking};
pub use tokio_tasks::{unseen_tokio_tasks, TOKIO_UNSTABLE_ADVICE};

/// Task-level functions, as in `tokio::task`.
pub mod task {
    pub use crate::join::{yield_now, AbortHandle, JoinError, JoinHandle};
    pub use crate::join_set::JoinSet;
    pub use crate::local_set::{LocalEnterGuard, LocalSet};
    pub use crate::spawn::{block_in_place, spawn, spawn_blocking, spawn_local};
}
