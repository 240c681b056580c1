//! Spawning: where a task gets its logical stack and, when a tracer is
//! installed, its timer.
//!
//! Every spawn (the free functions here, [`Handle`](crate::Handle)'s and
//! [`Runtime`](crate::Runtime)'s methods) ends in [`spawn_on`] or
//! [`spawn_blocking_on`]: with no tracer installed, the task is tokio's
//! own, untouched; with one, its stack is captured at the caller's
//! location and the task is wrapped in [`Timed`] (or [`TimedBlocking`]).

use crate::join::JoinHandle;
use crate::timed::{Timed, TimedBlocking};
use std::future::Future;
use std::panic::Location;
use theseus_profiler::StackId;

pub(crate) const NO_RUNTIME: &str =
    "there is no theseus runtime here: `spawn` and `Handle::current` \
     must be called from inside `#[theseus::main]`, `Runtime::block_on`, a task, or \
     `spawn_blocking`; from another thread, use a `Handle` (see `Runtime::handle`)";

/// Spawns `future` on `tokio`, timed when a tracer is installed.
pub(crate) fn spawn_on<F>(
    tokio: &tokio::runtime::Handle,
    future: F,
    location: &'static Location<'static>,
) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if !theseus_profiler::is_active() {
        return JoinHandle::new(tokio.spawn(future), StackId::ROOT);
    }
    let stack = theseus_profiler::spawn_stack(location, std::any::type_name::<F>());
    let task = Timed::new(stack, future, crate::census::runtime_of(tokio));
    JoinHandle::new(
        crate::tokio_tasks::spawning_theseus_task(|| tokio.spawn(task)),
        stack,
    )
}

pub(crate) fn spawn_blocking_on<F, R>(
    tokio: &tokio::runtime::Handle,
    f: F,
    location: &'static Location<'static>,
) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    if !theseus_profiler::is_active() {
        return JoinHandle::new(tokio.spawn_blocking(f), StackId::ROOT);
    }
    let stack = theseus_profiler::spawn_blocking_stack(location, std::any::type_name::<F>());
    let task = TimedBlocking::new(stack, f);
    JoinHandle::new(
        crate::tokio_tasks::spawning_theseus_task(|| tokio.spawn_blocking(move || task.run())),
        stack,
    )
}

/// Spawns a task on the current runtime and returns a handle to await its
/// output. The task starts running right away, on some worker.
///
/// # Panics
///
/// Outside a runtime, with a message saying where `spawn` can be called.
///
/// ```
/// let rt = theseus_executor::Runtime::new().unwrap();
/// rt.block_on(async {
///     let handle = theseus_executor::spawn(async { "hello" });
///     assert_eq!(handle.await.unwrap(), "hello");
/// });
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let location = Location::caller();
    match tokio::runtime::Handle::try_current() {
        Ok(tokio) => spawn_on(&tokio, future, location),
        Err(_) => panic!("{NO_RUNTIME}"),
    }
}

/// Runs a blocking closure on a thread of the runtime's blocking pool, so it
/// does not stall the workers, and returns a handle to await its result.
///
/// # Panics
///
/// Outside a runtime, like [`spawn`].
///
/// ```
/// let rt = theseus_executor::Runtime::new().unwrap();
/// rt.block_on(async {
///     let sum = theseus_executor::spawn_blocking(|| (1..=10).sum::<u32>());
///     assert_eq!(sum.await.unwrap(), 55);
/// });
/// ```
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let location = Location::caller();
    match tokio::runtime::Handle::try_current() {
        Ok(tokio) => spawn_blocking_on(&tokio, f, location),
        Err(_) => panic!("{NO_RUNTIME}"),
    }
}
