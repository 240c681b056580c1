//! The runtime under theseus: tokio's scheduler, with every task timed.
//!
//! # Design
//!
//! A theseus runtime is a tokio runtime: tokio's work-stealing scheduler,
//! its I/O driver and its timers, on threads that park in tokio's driver
//! exactly as tokio's own do. theseus adds what a profiler needs at the
//! level of tasks, and nothing to scheduling, so that what it measures is
//! what the program would see under tokio:
//!
//! - [`spawn`] wraps the future in a timed task (`timed`): it times every
//!   poll, hands each poll its own waker so every wake is seen, and reports
//!   one record when the task ends;
//! - that waker also says where the task waits: cloned inside the task's
//!   poll, it asks the profiler for the await point on the stack, and its
//!   clones carry that point's tag, so the wake that ends a wait names it
//!   (`timed`, `header`);
//! - the per-task numbers live in a small header (`header`), written with
//!   plain relaxed stores on the hot path and readable from any thread;
//! - tasks still running when a profile is written are reached through a
//!   registry of live tasks (`registry`);
//! - `tokio::spawn` tasks, spawned by libraries, are timed through tokio's
//!   task hooks when the program is built with `--cfg tokio_unstable`
//!   (`tokio_tasks`).
//!
//! The data flows one way: spawn → header → one record per task → the
//! profiler's aggregate → its writers. The executor talks to
//! `theseus_profiler` through a small interface only: a stack id at spawn,
//! a poll scope around each poll, an await point when a poll registers its
//! waker, a record at the end, and a list of live tasks. When no tracer is
//! installed, tasks are not wrapped at all.
//!
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

mod clock;
mod header;
mod join;
mod registry;
mod runtime;
mod set_once;
mod sync;
mod timed;
mod tokio_tasks;

pub use join::{JoinError, JoinHandle};
pub use runtime::{
    spawn, spawn_blocking, Builder, EnterGuard, Handle, Runtime, MAX_WORKERS, WORKERS_ENV,
};
pub use tokio_tasks::{unseen_tokio_tasks, TOKIO_UNSTABLE_ADVICE};

/// Task-level functions, as in `tokio::task`.
pub mod task {
    pub use crate::join::{yield_now, JoinError, JoinHandle};
    pub use crate::runtime::{spawn, spawn_blocking};
}
