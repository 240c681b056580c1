//! [`Runtime`], [`Builder`] and [`Handle`]: creating a runtime, entering it,
//! and spawning onto it.

use crate::blocking::BlockingPool;
use crate::header::Header;
use crate::join::{JoinHandle, TaskFuture};
use crate::scheduler::{Local, MainFuture, NoMain, Shared};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::panic::Location;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
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
}

impl Builder {
    /// A runtime with a pool of worker threads that steal work from each other.
    pub fn new_multi_thread() -> Builder {
        Builder {
            flavor: Flavor::MultiThread,
            worker_threads: None,
            thread_name: "theseus-worker".to_string(),
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

    /// Names worker threads `{name}-{index}`, so profilers and debuggers can
    /// tell them apart.
    pub fn thread_name(&mut self, name: impl Into<String>) -> &mut Builder {
        self.thread_name = name.into();
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
        let workers = match self.flavor {
            Flavor::CurrentThread => 1,
            Flavor::MultiThread => match self.worker_threads {
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
            },
        };
        Runtime::start(self.flavor, workers, &self.thread_name)
    }
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
#[derive(Clone)]
pub struct Handle {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) shared: Arc<Shared>,
    blocking: Arc<BlockingPool>,
    tokio: tokio::runtime::Handle,
    thread_name: String,
    flavor: Flavor,
    /// Serializes `block_on` calls of a current-thread runtime, which each
    /// drive worker 0.
    core: Mutex<()>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("flavor", &self.inner.flavor)
            .finish_non_exhaustive()
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Handle>> = const { RefCell::new(None) };
    /// Set while this thread drives tasks (a worker, or inside `block_on`).
    static DRIVING: Cell<bool> = const { Cell::new(false) };
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

    /// The handle of the runtime this thread is running in, if any.
    pub fn try_current() -> Option<Handle> {
        CURRENT.with(|current| current.borrow().clone())
    }

    /// Spawns a task onto this runtime; see [`crate::spawn`].
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.inner.spawn_at(future, Location::caller())
    }

    /// Runs a blocking closure on the blocking pool; see [`crate::spawn_blocking`].
    #[track_caller]
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.spawn_blocking_at(f, Location::caller())
    }

    fn spawn_blocking_at<F, R>(&self, f: F, location: &'static Location<'static>) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let pool = self.inner.blocking.clone();
        let handle = self.clone();
        let name = format!("{}-blocking", self.inner.thread_name);
        let schedule = move |runnable: crate::scheduler::Runnable| {
            runnable.metadata().on_schedule(false);
            if pool.push(runnable) {
                let pool = pool.clone();
                let handle = handle.clone();
                let started = std::thread::Builder::new()
                    .name(name.clone())
                    .spawn(move || {
                        let _enter = handle.enter();
                        pool.run_thread();
                    });
                if let Err(error) = started {
                    panic!("theseus could not start a spawn_blocking thread: {error}");
                }
            }
        };
        let future = async move { f() };
        self.inner
            .spawn_with(future, location, schedule, std::any::type_name::<F>())
    }

    /// Makes this runtime the current one on this thread until the guard is
    /// dropped, so `spawn` and tokio's I/O and timers work here.
    pub fn enter(&self) -> EnterGuard<'_> {
        let previous = CURRENT.with(|current| current.replace(Some(self.clone())));
        EnterGuard {
            previous: Some(previous),
            _tokio: self.inner.tokio.enter(),
        }
    }
}

/// Restores the previous runtime context when dropped; see [`Handle::enter`].
pub struct EnterGuard<'a> {
    previous: Option<Option<Handle>>,
    _tokio: tokio::runtime::EnterGuard<'a>,
}

impl Drop for EnterGuard<'_> {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            CURRENT.with(|current| *current.borrow_mut() = previous);
        }
    }
}

impl std::fmt::Debug for EnterGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnterGuard")
    }
}

impl Inner {
    pub(crate) fn spawn_at<F>(
        &self,
        future: F,
        location: &'static Location<'static>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let shared = self.shared.clone();
        let schedule = async_task::WithInfo(move |runnable, info| shared.schedule(runnable, info));
        self.spawn_with(future, location, schedule, std::any::type_name::<F>())
    }

    pub(crate) fn spawn_with<F, S>(
        &self,
        future: F,
        location: &'static Location<'static>,
        schedule: S,
        future_type: &'static str,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
        S: async_task::Schedule<Header> + Send + Sync + 'static,
    {
        let timed = theseus_profiler::is_active();
        let stack = if timed {
            theseus_profiler::spawn_stack(location, future_type)
        } else {
            StackId::ROOT
        };
        let header = Header::new(timed, stack, self.shared.registry.clone());
        let builder = async_task::Builder::new().metadata(header);
        // SAFETY: `spawn_unchecked` lifts the `Send` and `'static` bounds of
        // `spawn`. Its conditions hold:
        // - the future is `Send` (`F: Send`, and `&Header` with
        //   `Header: Sync`), so its `Runnable` may move between threads;
        // - the future borrows nothing but the task's own metadata, which
        //   `async-task` keeps alive until after the future is dropped;
        // - `schedule` is `Send + Sync + 'static`.
        let (runnable, task) = unsafe {
            builder.spawn_unchecked(move |header| TaskFuture::new(header, future), schedule)
        };
        let header = runnable.metadata();
        header.registry.insert(header, runnable.waker());
        let handle = JoinHandle::new(task);
        runnable.schedule();
        handle
    }
}

/// A theseus runtime: worker threads, a blocking pool, and a background tokio
/// runtime that drives tokio's I/O reactor and timers for theseus tasks.
///
/// Dropping it cancels every task that is left, then shuts down the tokio
/// runtime underneath.
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
    handle: Handle,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Dropped after the theseus tasks: their resources deregister from it.
    tokio: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.threads.len())
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// A multi-thread runtime with the default configuration.
    pub fn new() -> io::Result<Runtime> {
        Builder::new_multi_thread().build()
    }

    fn start(flavor: Flavor, workers: usize, thread_name: &str) -> io::Result<Runtime> {
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("{thread_name}-io"))
            .enable_all()
            .build()?;
        crate::clock::init();
        let shared = Arc::new(Shared::new(workers));
        let live: Arc<dyn theseus_profiler::LiveTasks> = shared.registry.clone();
        theseus_profiler::register_live_tasks(Arc::downgrade(&live));
        let inner = Arc::new(Inner {
            shared,
            blocking: Arc::new(BlockingPool::new()),
            tokio: tokio.handle().clone(),
            thread_name: thread_name.to_string(),
            flavor,
            core: Mutex::new(()),
        });
        let mut runtime = Runtime {
            handle: Handle { inner },
            threads: Vec::new(),
            tokio: Some(tokio),
        };
        if flavor == Flavor::MultiThread {
            for index in 0..workers {
                let handle = runtime.handle.clone();
                let thread = std::thread::Builder::new()
                    .name(format!("{thread_name}-{index}"))
                    .spawn(move || run_worker(handle, index))?;
                runtime.threads.push(thread);
            }
        }
        Ok(runtime)
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
        self.handle.spawn(future)
    }

    /// Runs a blocking closure on the blocking pool; see [`crate::spawn_blocking`].
    #[track_caller]
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.handle.spawn_blocking(f)
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
    /// If called from inside a runtime (a task, or another `block_on`): that
    /// would block a thread that drives tasks. A panic of `future` itself
    /// propagates from here, as under tokio.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        if DRIVING.get() {
            panic!(
                "cannot call `block_on` from inside a theseus runtime: it would block a thread \
                 that drives tasks; `.await` the future instead"
            );
        }
        let _enter = self.handle.enter();
        let _driving = Driving::start();
        let inner = &self.handle.inner;
        let mut future = pin!(future);
        match inner.flavor {
            Flavor::MultiThread => {
                let signal = Arc::new(MainSignal::new(None));
                let waker = Waker::from(signal.clone());
                let mut cx = Context::from_waker(&waker);
                loop {
                    if signal.woken.swap(false, Ordering::AcqRel) {
                        if let Poll::Ready(output) = poll_main(future.as_mut(), &mut cx) {
                            return output;
                        }
                    } else {
                        signal.parker.park();
                    }
                }
            }
            Flavor::CurrentThread => {
                let _core = inner.core.lock().unwrap_or_else(|e| e.into_inner());
                let queue = inner
                    .shared
                    .take_queue(0)
                    .expect("the current-thread queue is held only under `core`");
                let signal = Arc::new(MainSignal::new(Some(inner.shared.clone())));
                let waker = Waker::from(signal.clone());
                let mut main = CurrentThreadMain {
                    signal,
                    cx: Context::from_waker(&waker),
                    future: future.as_mut(),
                    output: None,
                };
                let local = Local::new(inner.shared.clone(), 0, queue);
                local.run(&mut main);
                local.finish();
                main.output
                    .expect("the main future ends only by completing")
            }
        }
    }

    /// Cancels every remaining task, waits for the workers to stop, and
    /// shuts down the tokio runtime underneath. Dropping the runtime does the
    /// same.
    pub fn shutdown(mut self) {
        self.shutdown_now();
    }

    fn shutdown_now(&mut self) {
        let inner = &self.handle.inner;
        inner.shared.begin_shutdown();
        let current = std::thread::current().id();
        for thread in self.threads.drain(..) {
            if thread.thread().id() != current {
                let _ = thread.join();
            }
        }
        // Dropped futures may touch tokio resources: keep tokio entered.
        let _enter = self.handle.enter();
        inner.shared.cancel_remaining();
        inner.blocking.shutdown();
        drop(_enter);
        if let Some(tokio) = self.tokio.take() {
            tokio.shutdown_background();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if self.tokio.is_some() {
            self.shutdown_now();
        }
    }
}

/// Marks this thread as driving tasks, for the nested `block_on` check.
struct Driving {
    was: bool,
}

impl Driving {
    fn start() -> Driving {
        Driving {
            was: DRIVING.replace(true),
        }
    }
}

impl Drop for Driving {
    fn drop(&mut self) {
        DRIVING.set(self.was);
    }
}

fn run_worker(handle: Handle, index: usize) {
    let _enter = handle.enter();
    let _driving = Driving::start();
    let shared = handle.inner.shared.clone();
    let Some(queue) = shared.take_queue(index) else {
        return;
    };
    let local = Local::new(shared, index, queue);
    local.run(&mut NoMain);
    local.finish();
}

/// Polls the main future with the profiler told that no task is running,
/// and where the poll boundary is, so tasks spawned by `main` get `main`'s
/// frames as the top of their logical stacks.
fn poll_main<F: Future>(future: std::pin::Pin<&mut F>, cx: &mut Context<'_>) -> Poll<F::Output> {
    let marker = 0u8;
    let boundary = std::hint::black_box(&marker) as *const u8 as usize;
    let _scope = theseus_profiler::is_active()
        .then(|| theseus_profiler::enter_poll(StackId::ROOT, boundary));
    crate::join::poll_below_boundary(future, cx)
}

/// The waker of a `block_on` future.
struct MainSignal {
    woken: AtomicBool,
    /// The thread in `block_on` of a multi-thread runtime sleeps here...
    parker: crate::park::Parker,
    /// ...and that of a current-thread runtime sleeps as worker 0.
    current_thread: Option<Arc<Shared>>,
}

impl MainSignal {
    fn new(current_thread: Option<Arc<Shared>>) -> MainSignal {
        MainSignal {
            woken: AtomicBool::new(true),
            parker: crate::park::Parker::default(),
            current_thread,
        }
    }
}

impl Wake for MainSignal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        match &self.current_thread {
            Some(shared) => shared.unpark(0),
            None => self.parker.unpark(),
        }
    }
}

struct CurrentThreadMain<'a, 'w, F: Future> {
    signal: Arc<MainSignal>,
    cx: Context<'w>,
    future: std::pin::Pin<&'a mut F>,
    output: Option<F::Output>,
}

impl<F: Future> MainFuture for CurrentThreadMain<'_, '_, F> {
    fn take_woken(&self) -> bool {
        self.signal.woken.swap(false, Ordering::AcqRel)
    }

    fn poll(&mut self) -> bool {
        if let Poll::Ready(output) = poll_main(self.future.as_mut(), &mut self.cx) {
            self.output = Some(output);
        }
        self.output.is_some()
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
    let inner = CURRENT.with(|current| current.borrow().as_ref().map(|h| h.inner.clone()));
    match inner {
        Some(inner) => inner.spawn_at(future, location),
        None => panic!("{NO_RUNTIME}"),
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
    match Handle::try_current() {
        Some(handle) => handle.spawn_blocking_at(f, location),
        None => panic!("{NO_RUNTIME}"),
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
    fn finished_tasks_leave_the_registry() {
        let runtime = Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let registry = runtime.handle().inner.shared.registry.clone();
        runtime.block_on(async {
            let handles: Vec<_> = (0..1000).map(|i| spawn(async move { i })).collect();
            for handle in handles {
                handle.await.unwrap();
            }
            let panicked = spawn(async { panic!("leaves too") });
            assert!(panicked.await.is_err());
            let aborted = spawn(std::future::pending::<()>());
            aborted.abort();
            assert!(aborted.await.is_err());
        });
        assert_eq!(registry.len(), 0);
        let waiting = runtime.spawn(std::future::pending::<()>());
        drop(waiting);
        assert_eq!(registry.len(), 1);
        drop(runtime);
        assert_eq!(registry.len(), 0, "shutdown left tasks behind");
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
