//! theseus's own work-stealing executor, for programs that do not run on
//! tokio (the smol family: async-io, async-net, async-channel), with every
//! task timed as the tokio runtime's are.
//!
//! # Scheduling policy
//!
//! An [`Executor`] has no threads of its own. A thread that awaits
//! [`Executor::run`] (under `futures_lite::future::block_on`,
//! `async_io::block_on`, or from an `easy_parallel` pool) becomes one of its
//! *runners* for as long as it does; runners join and leave at any time.
//!
//! Each runner has a queue of its own (a `crossbeam-deque` `Worker`, first
//! in first out) whose other end, a `Stealer`, the other runners can take
//! from, and beside it a *LIFO slot*. A task made runnable by a task that
//! runs on a runner (spawned or woken by it) goes into that runner's LIFO
//! slot, pushing what was there to the back of its queue: it is run next,
//! while what it was woken to read is still in cache, which is what a
//! message passed from task to task wants. At most three tasks in a row
//! are taken from the LIFO slot; then its task goes to the back of the
//! queue, so two tasks that keep waking each other cannot hold a runner
//! forever. A task that wakes itself (that yields) goes to the back of the
//! queue at once. Tasks made runnable anywhere else (by another thread, a
//! reactor, the caller of `spawn` outside the executor) go into the shared
//! *injector*.
//!
//! A runner looks for its next task in this order: every 61st time, the
//! injector first, so that tasks woken from outside wait a bounded time
//! behind a busy runner's own; the LIFO slot; its own queue; a batch from
//! the injector (half of it, moved into its queue); a batch stolen from the
//! queue of another runner, the first with work found going round from a
//! victim chosen at random, so that thieves spread over their victims.
//!
//! A runner that finds nothing registers itself as idle, looks once more
//! (the two sides of that protocol are in `park`), and returns `Pending`
//! from `run`, so its thread's `block_on` parks: no runner ever spins. A
//! push of a task where runners look for work wakes one idle runner, if
//! there is one and no runner woken before has yet begun to look (that one
//! will find the task), so a burst of spawns wakes one runner, not one per
//! spawn; a runner that leaves wakes another in its place. After 200 tasks a runner returns `Pending` with its waker
//! woken, so the caller's future, and the reactor of an `async_io::block_on`,
//! get their turn even when there is always work.
//!
//! # Instrumentation
//!
//! With a tracer installed, a spawned future is wrapped in the same timer
//! of polls (`timed`) that the tokio runtime's tasks get: logical stacks
//! through parent tasks, polls, wakes, await points, records at the end
//! and the registry of live tasks are all the shared core's. The first use
//! of an executor starts the profiling session from the environment if no
//! tracer is installed (`session`); `THESEUS=0` leaves it a plain executor.
//!
//! # Where things are
//!
//! - `state`: what the runners share (injector, stealers, idle runners,
//!   unfinished tasks); `active`: the unfinished tasks.
//! - `runner`: one thread's runner and the order it looks for work in, and
//!   where a runnable task goes; `run`: the future of [`Executor::run`].
//! - `park`: idle runners and the notify protocol (with `loom` models in
//!   `loom_models`).
//! - `tick`: waiting for one task, for [`Executor::tick`].
//! - `session`: the profiling session of a program without
//!   `#[theseus::main]`, written at exit.
//! - `local`: [`LocalExecutor`], for futures that are not `Send`.

mod active;
mod local;
#[cfg(all(test, theseus_loom))]
mod loom_models;
mod park;
mod run;
mod runner;
mod session;
mod state;
mod tick;

/// The handle of an [`Executor`]'s task: async-task's, as async-executor's.
pub use async_task::{FallibleTask, Task};
pub use local::LocalExecutor;

use crate::census::RuntimeSlot;
use crate::timed::Timed;
use active::{ReleaseOnDrop, Released};
use async_task::{Builder, WithInfo};
use run::Run;
use state::State;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{Location, RefUnwindSafe, UnwindSafe};
use std::sync::{Arc, OnceLock};

/// A work-stealing executor whose tasks theseus times: a drop-in for
/// `async_executor::Executor` (see the module docs for its policy).
///
/// ```
/// # std::env::set_var("THESEUS_OUT", "/dev/null");
/// use futures_lite::future;
/// use theseus_executor::Executor;
///
/// let ex = Executor::new();
/// let task = ex.spawn(async { 1 + 2 });
/// assert_eq!(future::block_on(ex.run(task)), 3);
/// ```
pub struct Executor<'a> {
    /// Made at first use, so that `new` can be `const`.
    state: OnceLock<Arc<State>>,
    /// Invariant in `'a`, as the futures it may hold.
    _borrows: PhantomData<fn(&'a ()) -> &'a ()>,
}

// The locks inside are never left in a broken state by a panic (every
// one is taken with poisoning ignored, around code that cannot panic).
impl UnwindSafe for Executor<'_> {}
impl RefUnwindSafe for Executor<'_> {}

impl<'a> Executor<'a> {
    /// A new executor, with no task and no runner.
    ///
    /// ```
    /// static EX: theseus_executor::Executor<'static> = theseus_executor::Executor::new();
    /// ```
    pub const fn new() -> Executor<'a> {
        Executor {
            state: OnceLock::new(),
            _borrows: PhantomData,
        }
    }

    /// Whether every task spawned on it has finished (or been dropped).
    ///
    /// ```
    /// # std::env::set_var("THESEUS_OUT", "/dev/null");
    /// let ex = theseus_executor::Executor::new();
    /// assert!(ex.is_empty());
    /// let task = ex.spawn(async {});
    /// assert!(!ex.is_empty());
    /// assert!(ex.try_tick());
    /// assert!(ex.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.state().active.is_empty()
    }

    /// Spawns a task, which runs on whichever runner takes it. Its handle
    /// gives the output when awaited; dropping the handle cancels the task
    /// (`detach` lets it run on).
    ///
    /// ```
    /// # std::env::set_var("THESEUS_OUT", "/dev/null");
    /// let ex = theseus_executor::Executor::new();
    /// let task = ex.spawn(async { "hello" });
    /// assert_eq!(futures_lite::future::block_on(ex.run(task)), "hello");
    /// ```
    #[track_caller]
    pub fn spawn<T: Send + 'a>(&self, future: impl Future<Output = T> + Send + 'a) -> Task<T> {
        // SAFETY: the future and its output are `Send`.
        unsafe { self.spawn_inner(future, Location::caller()) }
    }

    /// Spawns every future of `futures`, putting their handles in `handles`.
    ///
    /// ```
    /// # std::env::set_var("THESEUS_OUT", "/dev/null");
    /// let ex = theseus_executor::Executor::new();
    /// let mut tasks = Vec::new();
    /// ex.spawn_many((0..4u32).map(|i| async move { i * 10 }), &mut tasks);
    /// let sum = futures_lite::future::block_on(ex.run(async {
    ///     let mut sum = 0;
    ///     for task in tasks {
    ///         sum += task.await;
    ///     }
    ///     sum
    /// }));
    /// assert_eq!(sum, 60);
    /// ```
    #[track_caller]
    pub fn spawn_many<T: Send + 'a, F: Future<Output = T> + Send + 'a>(
        &self,
        futures: impl IntoIterator<Item = F>,
        handles: &mut impl Extend<Task<F::Output>>,
    ) {
        let location = Location::caller();
        // SAFETY: the futures and their outputs are `Send`.
        handles.extend(
            futures
                .into_iter()
                .map(|future| unsafe { self.spawn_inner(future, location) }),
        );
    }

    /// Runs one task if one is scheduled; whether one was.
    ///
    /// ```
    /// # std::env::set_var("THESEUS_OUT", "/dev/null");
    /// let ex = theseus_executor::Executor::new();
    /// assert!(!ex.try_tick());
    /// ex.spawn(async {}).detach();
    /// assert!(ex.try_tick());
    /// ```
    pub fn try_tick(&self) -> bool {
        match self.state().take_one() {
            Some(runnable) => {
                runnable.run();
                true
            }
            None => false,
        }
    }

    /// Runs one task, waiting for one to be scheduled.
    ///
    /// ```
    /// # std::env::set_var("THESEUS_OUT", "/dev/null");
    /// let ex = theseus_executor::Executor::new();
    /// let task = ex.spawn(async { 7 });
    /// futures_lite::future::block_on(ex.tick());
    /// assert!(task.is_finished());
    /// ```
    pub async fn tick(&self) {
        let runnable = tick::wait_for_task(self.state()).await;
        runnable.run();
    }

    /// Runs the executor's tasks on this thread until `future` completes,
    /// and returns its output. Any number of threads may run it at once;
    /// each is one more runner.
    ///
    /// ```
    /// # std::env::set_var("THESEUS_OUT", "/dev/null");
    /// use theseus_executor::Executor;
    ///
    /// let ex = Executor::new();
    /// let total = futures_lite::future::block_on(ex.run(async {
    ///     let parts: Vec<_> = (1..=4u64).map(|i| ex.spawn(async move { i * i })).collect();
    ///     let mut total = 0;
    ///     for part in parts {
    ///         total += part.await;
    ///     }
    ///     total
    /// }));
    /// assert_eq!(total, 30);
    /// ```
    pub async fn run<T>(&self, future: impl Future<Output = T>) -> T {
        Run::new(self.state().clone(), future).await
    }

    fn state(&self) -> &Arc<State> {
        self.state.get_or_init(|| {
            session::start_once();
            Arc::new(State::default())
        })
    }

    /// Spawns `future`, timed when a tracer is installed.
    ///
    /// # Safety
    ///
    /// If `F` or its output is not `Send`, every call of `run`, `tick`,
    /// `try_tick` and the executor's drop must be on the thread that
    /// spawns (what [`LocalExecutor`] ensures).
    pub(crate) unsafe fn spawn_inner<F: Future + 'a>(
        &self,
        future: F,
        location: &'static Location<'static>,
    ) -> Task<F::Output>
    where
        F::Output: 'a,
    {
        // The executor's first use starts the session (`state`): before
        // asking whether a tracer is installed, or a first spawn from a
        // thread that runs nothing would go untimed.
        self.state();
        if theseus_profiler::is_active() {
            let stack = crate::spawn::stack_of::<F>(location);
            let timed = move || Timed::new(stack, future, RuntimeSlot::NOT_TOKIO);
            // SAFETY: the caller's contract, passed on.
            unsafe { self.spawn_task(timed) }
        } else {
            // SAFETY: the caller's contract, passed on.
            unsafe { self.spawn_task(move || future) }
        }
    }

    /// Creates the task of the future `make` makes, counts it among the
    /// unfinished ones, and schedules it. Same contract as `spawn_inner`.
    /// The future is made where async-task puts it, not moved there: a
    /// timed one is some words bigger than the user's, and every move of
    /// it was a `memcpy`.
    unsafe fn spawn_task<W: Future + 'a>(&self, make: impl FnOnce() -> W) -> Task<W::Output>
    where
        W::Output: 'a,
    {
        let state = self.state();
        let (runnable, task) = state.active.insert(|index| {
            let release = ReleaseOnDrop {
                active: state.active.clone(),
                index,
            };
            let schedule_state = state.clone();
            let schedule = move |runnable, info| runner::schedule(&schedule_state, runnable, info);
            // SAFETY: a future that is not `Send` is run and dropped only on
            // its spawning thread (this function's contract). The future
            // may borrow for `'a`, which outlives the executor, and no
            // future outlives the executor: its drop wakes every unfinished
            // task and drops every runnable one, which drops its future.
            // `schedule` is `Send + Sync + 'static` (an `Arc<State>`).
            let (runnable, task) = unsafe {
                Builder::new()
                    .propagate_panic(true)
                    .spawn_unchecked(|()| Released::new(make(), release), WithInfo(schedule))
            };
            (runnable.waker(), (runnable, task))
        });
        runnable.schedule();
        task
    }
}

impl Drop for Executor<'_> {
    /// Cancels every unfinished task, dropping its future here.
    fn drop(&mut self) {
        let Some(state) = self.state.get() else {
            return;
        };
        for waker in state.active.take_wakers() {
            waker.wake();
        }
        while let Some(runnable) = state.take_one() {
            drop(runnable);
        }
        state.sleepers.notify_all();
    }
}

impl Default for Executor<'_> {
    fn default() -> Self {
        Executor::new()
    }
}

impl std::fmt::Debug for Executor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("empty", &self.is_empty())
            .finish_non_exhaustive()
    }
}
