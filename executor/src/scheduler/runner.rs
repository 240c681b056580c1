//! A runner: one thread's share of an executor while it is inside `run`,
//! with its own queue, its LIFO slot, and the order it looks for work in.
//! Also where a task that is made runnable goes (`schedule`).

use super::state::State;
use async_task::{Runnable, ScheduleInfo};
use crossbeam_deque::Worker;
use std::cell::Cell;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Every this many ticks a runner takes from the injector before its own
/// queue, so tasks woken from outside are not starved by a busy runner.
const INJECTOR_INTERVAL: u32 = 61;

/// Most consecutive polls from the LIFO slot: two tasks that keep waking
/// each other would otherwise hold the runner forever.
const MAX_LIFO_POLLS: u32 = 3;

/// Tasks run per poll of `run` before it hands the thread back to its
/// `block_on` for a moment (to poll `run`'s own future, and the reactor).
const BUDGET: u32 = 200;

thread_local! {
    /// The runner whose `run` this thread is polling, or null.
    static CURRENT: Cell<*const Runner> = const { Cell::new(std::ptr::null()) };
}

pub(crate) struct Runner {
    state: Arc<State>,
    /// Where this runner's stealer is in `state`.
    slot: usize,
    /// This runner's id among the idle ones.
    sleeper: usize,
    local: Worker<Runnable>,
    /// The task most recently made runnable by this runner's tasks: run
    /// next, while its data is still in cache.
    lifo: Cell<Option<Runnable>>,
    lifo_polls: Cell<u32>,
    ticks: Cell<u32>,
    /// Registered in `state.sleepers`, unless a notify took it out since.
    idle: Cell<bool>,
    /// xorshift state, for the victim of a steal.
    random: Cell<u64>,
}

impl Runner {
    /// A runner of `state`, on the calling thread, joining the others.
    pub(crate) fn new(state: Arc<State>) -> Runner {
        let local = Worker::new_fifo();
        let slot = state.join(local.stealer());
        let sleeper = state.sleeper_id();
        Runner {
            state,
            slot,
            sleeper,
            local,
            lifo: Cell::new(None),
            lifo_polls: Cell::new(0),
            ticks: Cell::new(0),
            idle: Cell::new(false),
            random: Cell::new(0x9E37_79B9_7F4A_7C15 ^ (sleeper as u64 + 1)),
        }
    }

    /// Runs tasks until there are none (registered as idle, `Pending`: the
    /// caller's `block_on` parks until a task arrives) or the budget is
    /// spent (`Pending`, woken at once). With this runner current on the
    /// thread, so the tasks it runs schedule into its own queues.
    pub(crate) fn run_tasks(&self, cx: &mut Context<'_>) -> Poll<Infallible> {
        let _current = self.enter();
        if self.idle.replace(false) {
            self.state.sleepers.unregister(self.sleeper);
        }
        for _ in 0..BUDGET {
            let runnable = match self.next_task() {
                Some(runnable) => runnable,
                None => match self.park(cx) {
                    Some(runnable) => runnable,
                    None => return Poll::Pending,
                },
            };
            runnable.run();
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Found no task: registers as idle, then looks once more. A task
    /// found then unregisters it; none leaves it registered, to be woken.
    fn park(&self, cx: &Context<'_>) -> Option<Runnable> {
        self.state.sleepers.register(self.sleeper, cx.waker());
        self.idle.set(true);
        let runnable = self.search()?;
        self.idle.set(false);
        self.state.sleepers.unregister(self.sleeper);
        Some(runnable)
    }

    /// The next task to run: now and then the injector first (fairness),
    /// then the LIFO slot (up to `MAX_LIFO_POLLS` in a row), then the
    /// runner's own queue, the injector and the other runners'.
    fn next_task(&self) -> Option<Runnable> {
        let tick = self.ticks.get().wrapping_add(1);
        self.ticks.set(tick);
        if tick % INJECTOR_INTERVAL == 0 {
            if let Some(runnable) = self.state.take_injected(&self.local) {
                self.lifo_polls.set(0);
                return Some(runnable);
            }
        }
        if let Some(runnable) = self.lifo.take() {
            if self.lifo_polls.get() < MAX_LIFO_POLLS {
                self.lifo_polls.set(self.lifo_polls.get() + 1);
                return Some(runnable);
            }
            self.push_local(runnable);
        }
        self.lifo_polls.set(0);
        self.search()
    }

    /// A task from the runner's queue, else a batch from the injector, else
    /// a batch stolen from a random other runner.
    fn search(&self) -> Option<Runnable> {
        self.local
            .pop()
            .or_else(|| self.state.take_injected(&self.local))
            .or_else(|| self.state.steal(&self.local, self.slot, self.next_random()))
    }

    fn push_local(&self, runnable: Runnable) {
        self.local.push(runnable);
        // Stealable now: an idle runner may take it.
        self.state.sleepers.notify();
    }

    fn push_lifo(&self, runnable: Runnable) {
        if let Some(displaced) = self.lifo.replace(Some(runnable)) {
            self.push_local(displaced);
        }
    }

    fn next_random(&self) -> usize {
        let mut x = self.random.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.random.set(x);
        x as usize
    }

    /// Makes this runner the thread's current one until the guard drops.
    fn enter(&self) -> CurrentGuard {
        CurrentGuard {
            previous: CURRENT.replace(self),
        }
    }
}

/// Restores the thread's previous runner (an executor run inside a task of
/// another).
struct CurrentGuard {
    previous: *const Runner,
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        CURRENT.set(self.previous);
    }
}

impl Drop for Runner {
    /// The runner leaves: its queued tasks go to the injector, for the
    /// others (or the next runner) to take.
    fn drop(&mut self) {
        if self.idle.get() {
            self.state.sleepers.unregister(self.sleeper);
        }
        // A notify may have picked this runner, which leaves without
        // looking, or skipped waking another because this one was about to
        // look: tasks it did not take may wait in the shared queues. Pass
        // the wake on.
        self.state.sleepers.notify();
        self.state.leave(self.slot);
        let lifo = self.lifo.take();
        for runnable in lifo
            .into_iter()
            .chain(std::iter::from_fn(|| self.local.pop()))
        {
            self.state.inject(runnable);
        }
    }
}

/// Where a task of `state` that was made runnable goes: spawned or woken
/// by a task running on one of `state`'s runners, into that runner's LIFO
/// slot (a task that woke itself, yielding, to the back of its queue
/// instead); from anywhere else, into the injector.
pub(crate) fn schedule(state: &Arc<State>, runnable: Runnable, info: ScheduleInfo) {
    let current = CURRENT.try_with(Cell::get).unwrap_or(std::ptr::null());
    // SAFETY: `CURRENT` is non-null only while a `run_tasks` of that runner
    // is on this thread's stack (`CurrentGuard` resets it when the call
    // ends), and the runner outlives that call: the pointer is live, and
    // only used on this thread.
    let runner = unsafe { current.as_ref() };
    match runner {
        Some(runner) if Arc::ptr_eq(&runner.state, state) => {
            if info.woken_while_running {
                runner.push_local(runnable);
            } else {
                runner.push_lifo(runnable);
            }
        }
        _ => state.inject(runnable),
    }
}
