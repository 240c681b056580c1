//! [`Runtime`], [`Builder`] and [`Handle`]: creating a runtime, entering it,
//! and spawning onto it.
//!
//! A theseus runtime *is* a tokio runtime, built by [`Builder`] with I/O and
//! timers enabled and, with `--cfg tokio_unstable`, task hooks that put
//! `tokio::spawn` tasks in the profile (see [`crate::tokio_tasks`]). What
//! theseus adds is at the task level: [`spawn`] wraps the future in
//! [`Timed`](crate::timed), and [`Runtime::block_on`] polls the main future so
//! that tasks it spawns start their logical stacks at `main`.

use crate::join::JoinHandle;
use crate::timed::{poll_below_boundary, Timed, TimedBlocking};
use std::future::Future;
use std::io;
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use theseus_profiler::StackId;

/// The environment variable that sets the default number of worker threads.
pub const WORKERS_ENV: &str = "THESEUS_WORKERS";

/// Most worker threads a runtime accepts.
pub const MAX_WORKERS: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavor {
    CurrentThread,
    MultiThread,
}

/// Configures and builds a [`Runtime`], like `tokio::runtime::Builder`.
///
/// ```
/// let rt = theseus_executor::Builder::new_multi_thread()
///     .worker_threads(2)
///     .thread_name("my-worker")
///     .enable_all()
///     .build()
///     .unwrap();
/// assert_eq!(rt.block_on(async { 1 + 1 }), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    flavor: Flavor,
    worker_threads: Option<usize>,
    thread_name: String,
    start_paused: bool,
}

impl Builder {
    /// A runtime with a pool of worker threads that steal work from each other.
    pub fn new_multi_thread() -> Builder {
        Builder {
            flavor: Flavor::MultiThread,
            worker_threads: None,
            thread_name: "theseus".to_string(),
            start_paused: false,
        }
    }

    /// A runtime that runs every task on the thread that calls
    /// [`Runtime::block_on`], while it is inside `block_on`.
    pub fn new_current_thread() -> Builder {
        Builder {
            flavor: Flavor::CurrentThread,
            ..Builder::new_multi_thread()
        }
    }

    /// Sets the number of worker threads (multi-thread runtimes). Without it,
    /// `THESEUS_WORKERS` decides, and without that, the number of cores.
    pub fn worker_threads(&mut self, count: usize) -> &mut Builder {
        self.worker_threads = Some(count);
        self
    }

    /// Names the runtime's threads `{name}-{index}` (workers first, then
    /// the threads that run `spawn_blocking` closures), so profilers and
    /// debuggers can tell them from the program's own. Linux keeps 15 bytes
    /// of a thread's name: keep `name` short. The default is `theseus`.
    pub fn thread_name(&mut self, name: impl Into<String>) -> &mut Builder {
        self.thread_name = name.into();
        self
    }

    /// Starts the clock paused, as tokio's `start_paused`: timers advance
    /// only when every task waits. Current-thread runtimes only, and it
    /// needs theseus's `test-util` feature, as tokio's needs tokio's;
    /// [`Builder::build`] says so otherwise.
    pub fn start_paused(&mut self, paused: bool) -> &mut Builder {
        self.start_paused = paused;
        self
    }

    /// Accepted for tokio compatibility: I/O and timers are always enabled.
    pub fn enable_all(&mut self) -> &mut Builder {
        self
    }

    /// Accepted for tokio compatibility: I/O is always enabled.
    pub fn enable_io(&mut self) -> &mut Builder {
        self
    }

    /// Accepted for tokio compatibility: timers are always enabled.
    pub fn enable_time(&mut self) -> &mut Builder {
        self
    }

    /// Builds the runtime and starts its threads.
    ///
    /// Fails with [`io::ErrorKind::InvalidInput`] if the worker count (from
    /// [`Builder::worker_threads`] or `THESEUS_WORKERS`) is not in
    /// `1..=1024`, and with the OS error if a thread cannot be started.
    pub fn build(&mut self) -> io::Result<Runtime> {
        let mut tokio = match self.flavor {
            Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
            Flavor::MultiThread => {
                let workers = match self.worker_threads {
                    Some(count @ 1..=MAX_WORKERS) => count,
                    Some(count) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!(
                                "worker_threads({count}) is out of range: a runtime needs 1 to {MAX_WORKERS} worker threads"
                            ),
                        ));
                    }
                    None => workers_from_env(std::env::var_os(WORKERS_ENV))?,
                };
                let mut builder = tokio::runtime::Builder::new_multi_thread();
                builder.worker_threads(workers);
                builder
            }
        };
        let name = self.thread_name.clone();
        let next = AtomicUsize::new(0);
        // tokio runs its workers on threads of its blocking pool, which may
        // later run `spawn_blocking` closures too: one name for all.
        tokio
            .enable_all()
            .thread_name_fn(move || format!("{name}-{}", next.fetch_add(1, Ordering::Relaxed)));
        if self.start_paused {
            if self.flavor == Flavor::MultiThread {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "start_paused needs a current-thread runtime (Builder::new_current_thread), \
                     as tokio's does: paused time advances only when the one thread is idle",
                ));
            }
            start_paused(&mut tokio)?;
        }
        crate::tokio_tasks::install_hooks(&mut tokio);
        crate::clock::init();
        let tokio = tokio.build()?;
        Ok(Runtime {
            handle: Handle {
                tokio: tokio.handle().clone(),
            },
            tokio: Some(tokio),
        })
    }
}

#[cfg(feature = "test-util")]
fn start_paused(tokio: &mut tokio::runtime::Builder) -> io::Result<()> {
    tokio.start_paused(true);
    Ok(())
}

#[cfg(not(feature = "test-util"))]
fn start_paused(_: &mut tokio::runtime::Builder) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "start_paused needs theseus's `test-util` feature (as tokio's needs tokio's): \
         add `features = [\"test-util\"]` to theseus in [dev-dependencies]",
    ))
}

/// Parses `THESEUS_WORKERS`; unset means one worker per core.
fn workers_from_env(value: Option<std::ffi::OsString>) -> io::Result<usize> {
    let Some(value) = value else {
        return Ok(std::thread::available_parallelism().map_or(1, |n| n.get()));
    };
    let parsed = value.to_str().and_then(|v| v.trim().parse::<usize>().ok());
    match parsed {
        Some(count @ 1..=MAX_WORKERS) => Ok(count),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{WORKERS_ENV}={value:?} is not a valid worker count: expected a whole number from 1 to {MAX_WORKERS}, or unset for one worker per core"
            ),
        )),
    }
}

/// A handle to a runtime: spawns tasks onto it from anywhere.
///
/// ```
/// let rt = theseus_executor::Runtime::new().unwrap();
/// let handle = rt.handle().clone();
/// let join = std::thread::spawn(move || handle.spawn(async { 7 }));
/// let task = join.join().unwrap();
/// assert_eq!(rt.block_on(task).unwrap(), 7);
/// ```
#[derive(Clone, Debug)]
pub struct Handle {
    tokio: tokio::runtime::Handle,
}

const NO_RUNTIME: &str = "there is no theseus runtime here: `spawn` and `Handle::current` \
     must be called from inside `#[theseus::main]`, `Runtime::block_on`, a task, or \
     `spawn_blocking`; from another thread, use a `Handle` (see `Runtime::handle`)";

impl Handle {
    /// The handle of the runtime this thread is running in.
    ///
    /// # Panics
    ///
    /// Outside a runtime, with a message that says where to call it from;
    /// see [`Handle::try_current`].
    #[track_caller]
    pub fn current() -> Handle {
        Handle::try_current().expect(NO_RUNTIME)
    }

    /// The handle of the runtime this thread is running in, if any. Inside
    /// a plain tokio runtime this is that runtime: theseus tasks can be
    /// spawned there too.
    pub fn try_current() -> Option<Handle> {
        tokio::runtime::Handle::try_current()
            .ok()
            .map(|tokio| Handle { tokio })
    }

    /// Spawns a task onto this runtime; see [`crate::spawn`].
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        spawn_on(&self.tokio, future, Location::caller())
    }

    /// Runs a blocking closure on the blocking pool; see [`crate::spawn_blocking`].
    #[track_caller]
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        spawn_blocking_on(&self.tokio, f, Location::caller())
    }

    /// Makes this runtime the current one on this thread until the guard is
    /// dropped, so `spawn` and tokio's I/O and timers work here.
    pub fn enter(&self) -> EnterGuard<'_> {
        EnterGuard {
            _tokio: self.tokio.enter(),
        }
    }
}

/// Restores the previous runtime context when dropped; see [`Handle::enter`].
pub struct EnterGuard<'a> {
    _tokio: tokio::runtime::EnterGuard<'a>,
}

impl std::fmt::Debug for EnterGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnterGuard")
    }
}

/// Spawns `future` on `tokio`, timed when a tracer is installed.
fn spawn_on<F>(
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
    let task = Timed::new(stack, future);
    JoinHandle::new(
        crate::tokio_tasks::spawning_theseus_task(|| tokio.spawn(task)),
        stack,
    )
}

fn spawn_blocking_on<F, R>(
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
        EnterGuard {
            _tokio: self.tokio().enter(),
        }
    }

    /// Runs `future` to completion on this thread, with the runtime entered.
    /// On a current-thread runtime, this is also where the tasks run.
    ///
    /// # Panics
    ///
    /// If called from inside a runtime (a task, or another `block_on`): that
    /// would block a thread that drives tasks. A panic of `future` itself
    /// propagates from here, as under tokio, and the runtime stays usable.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        if tokio::task::try_id().is_some() {
            panic!(
                "cannot call `block_on` from inside a theseus runtime: it would block a thread \
                 that drives tasks; `.await` the future instead"
            );
        }
        self.tokio().block_on(MainFuture { future })
    }

    /// Cancels every remaining task and waits for the worker threads to
    /// stop. Dropping the runtime does the same.
    pub fn shutdown(self) {
        drop(self);
    }
}

/// The future given to `block_on`, polled with the profiler told that no
/// task is running and where the poll boundary is, so tasks spawned by
/// `main` get `main`'s frames as the top of their logical stacks.
struct MainFuture<F> {
    future: F,
}

impl<F: Future> Future for MainFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned; nothing moves it.
        let future = unsafe { self.map_unchecked_mut(|main| &mut main.future) };
        let marker = 0u8;
        let boundary = std::hint::black_box(&marker) as *const u8 as usize;
        let _scope = theseus_profiler::is_active()
            .then(|| theseus_profiler::enter_poll(StackId::ROOT, boundary));
        poll_below_boundary(future, cx)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_env_values() {
        assert_eq!(workers_from_env(Some("3".into())).unwrap(), 3);
        assert!(workers_from_env(None).unwrap() >= 1);
        for bad in ["0", "-1", "many", "", "1025"] {
            let error = workers_from_env(Some(bad.into())).unwrap_err();
            let message = error.to_string();
            assert!(message.contains("THESEUS_WORKERS"), "{message}");
            assert!(message.contains("1 to 1024"), "{message}");
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn builder_rejects_zero_workers() {
        let error = Builder::new_multi_thread()
            .worker_threads(0)
            .build()
            .unwrap_err();
        assert!(error.to_string().contains("1 to 1024"), "{error}");
    }
}
