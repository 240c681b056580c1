//! [`Runtime`], [`Builder`] and [`Handle`]: creating a runtime, entering it,
//! and spawning onto it.
//!
//! A theseus runtime *is* a tokio runtime, built by [`Builder`] with I/O and
//! timers enabled and, with `--cfg tokio_unstable`, task hooks that put
//! `tokio::spawn` tasks in the profile (see [`crate::tokio_tasks`]). What
//! theseus adds is at the task level: [`spawn`] wraps the future in
//! a timer of its polls (`timed`), and [`Runtime::block_on`] times the main future as
//! a frame, `[main]`, below which the tasks it spawns start their logical stacks.

mod builder;
mod handle;

pub use builder::{Builder, MAX_WORKERS, WORKERS_ENV};
pub use handle::{EnterGuard, Handle, TryCurrentError};

use crate::boundary::poll_as_task;
use crate::frame::Profiled;
use crate::join::JoinHandle;
use crate::spawn::{spawn_blocking_on, spawn_on};
use std::future::Future;
use std::io;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};
use theseus_profiler::{FrameKind, StackId};

/// A theseus runtime: a tokio runtime whose tasks theseus times.
///
/// Dropping it cancels every task that is left (each is recorded as
/// cancelled) and waits for the worker threads, as tokio's does.
///
/// ```
/// let rt = theseus_executor::Runtime::new().unwrap();
/// let sum = rt.block_on(async {
///     let a = theseus_executor::spawn(async { 20 });
///     let b = theseus_executor::spawn(async { 22 });
///     a.await.unwrap() + b.await.unwrap()
/// });
/// assert_eq!(sum, 42);
/// ```
pub struct Runtime {
    /// `None` only while shutting down.
    tokio: Option<tokio::runtime::Runtime>,
    handle: Handle,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl Runtime {
    /// A multi-thread runtime with the default configuration.
    pub fn new() -> io::Result<Runtime> {
        Builder::new_multi_thread().build()
    }

    fn tokio(&self) -> &tokio::runtime::Runtime {
        self.tokio
            .as_ref()
            .expect("the tokio runtime lives as long as the theseus runtime")
    }

    /// The runtime's handle, to spawn onto it from other threads.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Spawns a task; see [`crate::spawn`].
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        spawn_on(self.tokio().handle(), future, Location::caller())
    }

    /// Runs a blocking closure on the blocking pool; see [`crate::spawn_blocking`].
    #[track_caller]
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        spawn_blocking_on(self.tokio().handle(), f, Location::caller())
    }

    /// Makes this runtime current on this thread; see [`Handle::enter`].
    pub fn enter(&self) -> EnterGuard<'_> {
        self.handle.enter()
    }

    /// Runs `future` to completion on this thread, with the runtime entered.
    /// On a current-thread runtime, this is also where the tasks run.
    ///
    /// # Panics
    ///
    /// Where tokio's does: on a thread that drives tasks (inside a task, or
    /// another `block_on`), which it would block. It is allowed where tokio
    /// allows it: in a `spawn_blocking` closure, or inside
    /// `tokio::task::block_in_place`. A panic of `future` itself propagates
    /// from here, as under tokio, and the runtime stays usable.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.block_on_at(future, Location::caller())
    }

    /// [`Runtime::block_on`], with the future's `[main]` leaf placed at
    /// `at`: what `#[theseus::main]` runs, placed at the attribute.
    #[doc(hidden)]
    pub fn block_on_at<F: Future>(&self, future: F, at: &'static Location<'static>) -> F::Output {
        let name = std::any::type_name::<F>();
        let future = Profiled::marked(future, FrameKind::Main, name, at);
        self.tokio().block_on(MainFuture { future })
    }

    /// Cancels every remaining task and waits for the worker threads to
    /// stop. Dropping the runtime does the same.
    pub fn shutdown(self) {
        drop(self);
    }
}

/// The future given to `block_on`, polled with the profiler told that no
/// task is running and where the poll boundary is; it is a frame
/// (`[main]`), below which the tasks it spawns start their logical stacks.
struct MainFuture<F> {
    future: Profiled<F>,
}

impl<F: Future> Future for MainFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned; nothing moves it.
        let future = unsafe { self.map_unchecked_mut(|main| &mut main.future) };
        if theseus_profiler::is_active() {
            poll_as_task(StackId::ROOT, || future.poll(cx))
        } else {
            future.poll(cx)
        }
    }
}
