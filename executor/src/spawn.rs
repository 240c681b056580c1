//! Spawning: where a task gets its logical stack and, when a tracer is
//! installed, its timer.
//!
//! Every spawn (the free functions here, [`Handle`](crate::Handle)'s and
//! [`Runtime`](crate::Runtime)'s methods) ends in [`spawn_on`] or
//! [`spawn_blocking_on`]: with no tracer installed, the task is tokio's
//! own, untouched; with one, its stack is captured at the caller's
//! location and the task is wrapped in [`Timed`] (or [`TimedBlocking`]).

use crate::census::RuntimeSlot;
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
    let (stack, task) = timed(future, location, crate::census::runtime_of(tokio));
    JoinHandle::new(
        crate::tokio_tasks::spawning_theseus_task(|| tokio.spawn(task)),
        stack,
    )
}

/// `future` with its logical stack, captured at `location`, and its timer,
/// ready to hand to tokio inside [`crate::tokio_tasks::spawning_theseus_task`]
/// (by a runtime, a `JoinSet` or a `LocalSet`), counted in the census of
/// `runtime`. Only when a tracer is installed.
pub(crate) fn timed<F: Future>(
    future: F,
    location: &'static Location<'static>,
    runtime: RuntimeSlot,
) -> (StackId, Timed<F>) {
    let stack = stack_of::<F>(location);
    (stack, Timed::new(stack, future, runtime))
}

/// The logical stack of a task of future type `F` spawned at `location`:
/// the first half of [`timed`], for a spawner that makes the [`Timed`]
/// where the task will live rather than move it there.
pub(crate) fn stack_of<F>(location: &'static Location<'static>) -> StackId {
    theseus_profiler::spawn_stack(location, std::any::type_name::<F>())
}

/// [`timed`] for a `spawn_blocking` closure.
pub(crate) fn timed_blocking<F: FnOnce() -> R, R>(
    f: F,
    location: &'static Location<'static>,
) -> (StackId, TimedBlocking<F>) {
    let stack = theseus_profiler::spawn_blocking_stack(location, std::any::type_name::<F>());
    (stack, TimedBlocking::new(stack, f))
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
    let (stack, task) = timed_blocking(f, location);
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

/// Spawns a future that need not be `Send` onto the current
/// [`LocalSet`](crate::task::LocalSet), as `tokio::task::spawn_local`: it
/// runs on this thread, timed like any theseus task.
///
/// # Panics
///
/// Outside a `LocalSet` (its `run_until`, `block_on`, or while it is
/// awaited), as tokio's does.
///
/// ```
/// use std::rc::Rc;
/// let rt = theseus_executor::Builder::new_current_thread().build().unwrap();
/// let local = theseus_executor::task::LocalSet::new();
/// let total = local.block_on(&rt, async {
///     let shared = Rc::new(20);
///     let task = theseus_executor::task::spawn_local(async move { *shared + 22 });
///     task.await.unwrap()
/// });
/// assert_eq!(total, 42);
/// ```
#[track_caller]
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let location = Location::caller();
    if !theseus_profiler::is_active() {
        return JoinHandle::new(tokio::task::spawn_local(future), StackId::ROOT);
    }
    let (stack, task) = timed(future, location, crate::census::current_runtime());
    JoinHandle::new(
        crate::tokio_tasks::spawning_theseus_task(|| tokio::task::spawn_local(task)),
        stack,
    )
}

/// Runs a blocking closure right here, on the worker thread that polls the
/// current task, after handing the worker's other tasks to another thread,
/// as `tokio::task::block_in_place`. The time it takes counts as the
/// calling task's poll (`BusyNs`).
///
/// # Panics
///
/// On a current-thread runtime, as tokio's does.
///
/// ```
/// let rt = theseus_executor::Runtime::new().unwrap();
/// let sum = rt.block_on(async {
///     theseus_executor::spawn(async {
///         theseus_executor::task::block_in_place(|| (1..=10).sum::<u32>())
///     })
///     .await
///     .unwrap()
/// });
/// assert_eq!(sum, 55);
/// ```
pub fn block_in_place<F, R>(f: F) -> R
where
    F: FnOnce() -> R,
{
    tokio::task::block_in_place(f)
}
