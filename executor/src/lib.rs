//! The runtime under theseus: a work-stealing executor shaped like tokio's
//! multi-thread runtime, so a tokio program moves to it by changing its
//! `spawn` calls and its main attribute.
//!
//! It is built on `async-task` (task allocation, wakers, cancellation) and
//! `crossbeam-deque` (per-worker queues, stealing, a global injector). The
//! scheduling policy is described in [`scheduler`](self#scheduling); tokio's
//! I/O, timers and sync types work inside theseus tasks because a small
//! background tokio runtime drives the reactor and timers, and its handle is
//! entered on every theseus thread. `tokio::spawn` still runs on that tokio
//! runtime and is not profiled.
//!
//! # Profiling
//!
//! Each task carries a small header (`async-task` metadata) with its spawn
//! time, schedule and poll timestamps and counters. When the task ends, the
//! header becomes one [`theseus_profiler::TaskRecord`]. The executor talks to
//! the profiler through `theseus_profiler`'s small interface only: a stack id
//! at spawn, a poll scope around each poll, a record at the end, and a list
//! of live tasks. When no tracer is installed, tasks are not timed at all.
//!
//! # Scheduling
//!
//! See the `scheduler` module's documentation: per-worker FIFO queues with a
//! LIFO slot, a global injector checked every 61 ticks, stealing half of a
//! random victim's queue, at most half the workers searching, and idle
//! workers parked without spinning.
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

mod blocking;
mod clock;
mod header;
mod join;
mod park;
mod registry;
mod runtime;
mod scheduler;

pub use join::{JoinError, JoinHandle};
pub use runtime::{
    spawn, spawn_blocking, Builder, EnterGuard, Handle, Runtime, MAX_WORKERS, WORKERS_ENV,
};

/// Task-level functions, as in `tokio::task`.
pub mod task {
    pub use crate::join::{yield_now, JoinError, JoinHandle};
    pub use crate::runtime::{spawn, spawn_blocking};
}
