//! The work-stealing scheduler.
//!
//! # Policy
//!
//! Each worker thread owns a FIFO queue (a `crossbeam-deque` [`Worker`]) and a
//! one-task **LIFO slot**. A task spawned or woken by the task running on a
//! worker goes into that worker's LIFO slot, pushing the slot's previous
//! occupant to the back of the queue: in message-passing code the task just
//! woken is usually the one that should run next, while its data is still in
//! cache. The slot may be used [`MAX_LIFO_STREAK`] times in a row; after that
//! its task goes to the back of the queue, so two tasks waking each other
//! cannot starve the rest. A task that wakes itself while running (as
//! [`crate::task::yield_now`] does) goes to the back of the queue directly.
//!
//! Wakes from other threads (tokio's reactor, `spawn_blocking` threads, the
//! thread in `block_on`) go to the global **injector**. A worker takes from the
//! injector when its own queue is empty, and also first thing every
//! [`GLOBAL_QUEUE_INTERVAL`] ticks, so injected tasks are not starved by a busy
//! local queue. A local queue longer than [`LOCAL_QUEUE_CAPACITY`] moves half of
//! its tasks to the injector, where every worker can reach them.
//!
//! A worker whose queues are empty becomes a **searcher** and steals half of a
//! random victim's queue (then tries the injector). At most half the workers
//! search at once. A worker that finds nothing **parks**; see [`crate::park`]
//! for how a sleeping worker is woken when work appears, without spinning and
//! without lost wake-ups.

use crate::header::Header;
use crate::park::{Idle, Parker};
use crate::registry::Registry;
use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub(crate) type Runnable = async_task::Runnable<Header>;

/// Polls of the LIFO slot in a row before its task must queue like the rest.
pub(crate) const MAX_LIFO_STREAK: u32 = 3;
/// Every this many ticks a worker checks the injector before its own queue.
pub(crate) const GLOBAL_QUEUE_INTERVAL: u32 = 61;
/// Local queue length beyond which half of it is moved to the injector.
pub(crate) const LOCAL_QUEUE_CAPACITY: usize = 256;

/// State shared by all workers of one runtime.
pub(crate) struct Shared {
    injector: Injector<Runnable>,
    stealers: Vec<Stealer<Runnable>>,
    /// Each worker's queue, until the thread that runs that worker takes it.
    queues: Vec<Mutex<Option<Worker<Runnable>>>>,
    idle: Idle,
    parkers: Vec<Parker>,
    pub(crate) registry: Arc<Registry>,
    shutdown: AtomicBool,
}

impl Shared {
    pub(crate) fn new(num_workers: usize) -> Shared {
        let queues: Vec<_> = (0..num_workers).map(|_| Worker::new_fifo()).collect();
        Shared {
            injector: Injector::new(),
            stealers: queues.iter().map(Worker::stealer).collect(),
            queues: queues.into_iter().map(|q| Mutex::new(Some(q))).collect(),
            idle: Idle::new(num_workers),
            parkers: (0..num_workers).map(|_| Parker::default()).collect(),
            registry: Arc::new(Registry::new()),
            shutdown: AtomicBool::new(false),
        }
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// The schedule function of every task of this runtime.
    pub(crate) fn schedule(&self, runnable: Runnable, info: async_task::ScheduleInfo) {
        runnable.metadata().on_schedule(info.woken_while_running);
        if self.is_shutdown() {
            // Dropping the runnable cancels the task: its future is dropped
            // here and it reports itself as cancelled.
            drop(runnable);
            return;
        }
        let local = CURRENT_WORKER.get();
        if !local.is_null() {
            // SAFETY: `CURRENT_WORKER` is set only by `Local::run`, to a
            // `Local` that outlives the run, and cleared before it returns;
            // it is read only on that same thread.
            let local = unsafe { &*local };
            if std::ptr::eq(&*local.shared, self) {
                local.schedule(runnable, info.woken_while_running);
                return;
            }
        }
        self.injector.push(runnable);
        self.notify_one();
    }

    /// Wakes a parked worker if work is waiting and nobody is searching.
    pub(crate) fn notify_one(&self) {
        if let Some(worker) = self.idle.worker_to_notify() {
            self.parkers[worker].unpark();
        }
    }

    /// Wakes `worker` directly (the `block_on` thread of a current-thread
    /// runtime, whose main future was woken).
    pub(crate) fn unpark(&self, worker: usize) {
        self.parkers[worker].unpark();
    }

    fn has_work(&self) -> bool {
        !self.injector.is_empty() || self.stealers.iter().any(|s| !s.is_empty())
    }

    /// Takes worker `index`'s queue; `None` while another thread runs it.
    pub(crate) fn take_queue(&self, index: usize) -> Option<Worker<Runnable>> {
        self.queues[index]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    fn return_queue(&self, index: usize, queue: Worker<Runnable>) {
        *self.queues[index].lock().unwrap_or_else(|e| e.into_inner()) = Some(queue);
    }

    /// Stops the workers: they finish the poll in progress and return.
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
        for parker in &self.parkers {
            parker.unpark();
        }
    }

    /// After the workers stopped: drops every queued task (cancelling it),
    /// then every task that waits on a wake.
    pub(crate) fn cancel_remaining(&self) {
        loop {
            match self.injector.steal() {
                Steal::Success(runnable) => drop(runnable),
                Steal::Empty => break,
                Steal::Retry => {}
            }
        }
        for index in 0..self.queues.len() {
            if let Some(queue) = self.take_queue(index) {
                while let Some(runnable) = queue.pop() {
                    drop(runnable);
                }
            }
        }
        self.registry.cancel_all();
    }
}

thread_local! {
    /// The worker this thread is running, if any: lets a wake on a worker
    /// thread reach that worker's LIFO slot and queue without a lock.
    static CURRENT_WORKER: Cell<*const Local> = const { Cell::new(std::ptr::null()) };
}

/// One worker: the state only its own thread touches.
pub(crate) struct Local {
    shared: Arc<Shared>,
    index: usize,
    queue: Worker<Runnable>,
    lifo: Cell<Option<Runnable>>,
    lifo_streak: Cell<u32>,
    tick: Cell<u32>,
    searching: Cell<bool>,
    rng: Cell<u64>,
}

/// What a worker loop does besides running tasks: nothing, on a worker
/// thread; poll the main future when woken, on the thread in `block_on` of a
/// current-thread runtime.
pub(crate) trait MainFuture {
    /// Whether the main future has been woken since its last poll.
    fn take_woken(&self) -> bool;
    /// Polls it; `true` once it has completed.
    fn poll(&mut self) -> bool;
}

/// The worker-thread case: no main future.
pub(crate) struct NoMain;

impl MainFuture for NoMain {
    fn take_woken(&self) -> bool {
        false
    }
    fn poll(&mut self) -> bool {
        false
    }
}

impl Local {
    pub(crate) fn new(shared: Arc<Shared>, index: usize, queue: Worker<Runnable>) -> Local {
        Local {
            shared,
            index,
            queue,
            lifo: Cell::new(None),
            lifo_streak: Cell::new(0),
            tick: Cell::new(0),
            searching: Cell::new(false),
            // Any odd seed will do; distinct per worker so victims differ.
            rng: Cell::new(0x9E37_79B9_7F4A_7C15 ^ ((index as u64) << 1 | 1)),
        }
    }

    /// Runs tasks until shutdown, or until `main` completes. Returns whether
    /// `main` completed.
    pub(crate) fn run(&self, main: &mut impl MainFuture) -> bool {
        let previous = CURRENT_WORKER.replace(self);
        let completed = self.run_loop(main);
        CURRENT_WORKER.set(previous);
        // The searcher count must stay right for the other workers.
        if self.searching.replace(false) && self.shared.idle.stop_searching() {
            self.shared.notify_one();
        }
        completed
    }

    fn run_loop(&self, main: &mut impl MainFuture) -> bool {
        loop {
            if self.shared.is_shutdown() {
                return false;
            }
            if main.take_woken() && main.poll() {
                return true;
            }
            match self.next_task().or_else(|| self.search()) {
                Some(runnable) => {
                    runnable.run();
                }
                // A wake of the main future unparks this worker directly.
                None => self.park(),
            }
        }
    }

    /// Hands the queue back (current-thread `block_on`) or cancels what is
    /// left in it (a worker thread at shutdown).
    pub(crate) fn finish(self) {
        if let Some(runnable) = self.lifo.take() {
            self.push_back(runnable);
        }
        if self.shared.is_shutdown() {
            while let Some(runnable) = self.queue.pop() {
                drop(runnable);
            }
        } else {
            let Local {
                shared,
                index,
                queue,
                ..
            } = self;
            shared.return_queue(index, queue);
        }
    }

    fn schedule(&self, runnable: Runnable, yielded: bool) {
        let displaced = if yielded {
            Some(runnable)
        } else {
            self.lifo.replace(Some(runnable))
        };
        if let Some(runnable) = displaced {
            self.push_back(runnable);
            self.shared.notify_one();
        }
    }

    fn push_back(&self, runnable: Runnable) {
        if self.queue.len() >= LOCAL_QUEUE_CAPACITY {
            // Move the older half where idle workers can take it in one go.
            for _ in 0..LOCAL_QUEUE_CAPACITY / 2 {
                match self.queue.pop() {
                    Some(task) => self.shared.injector.push(task),
                    None => break,
                }
            }
        }
        self.queue.push(runnable);
    }

    fn next_task(&self) -> Option<Runnable> {
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        if tick % GLOBAL_QUEUE_INTERVAL == 0 {
            if let Some(runnable) = self.steal_injector() {
                return Some(runnable);
            }
        }
        if let Some(runnable) = self.lifo.take() {
            if self.lifo_streak.get() < MAX_LIFO_STREAK {
                self.lifo_streak.set(self.lifo_streak.get() + 1);
                return Some(runnable);
            }
            self.push_back(runnable);
        }
        self.lifo_streak.set(0);
        self.queue.pop().or_else(|| self.steal_injector())
    }

    fn steal_injector(&self) -> Option<Runnable> {
        loop {
            match self.shared.injector.steal_batch_and_pop(&self.queue) {
                Steal::Success(runnable) => {
                    if !self.queue.is_empty() {
                        self.shared.notify_one();
                    }
                    return Some(runnable);
                }
                Steal::Empty => return None,
                Steal::Retry => {}
            }
        }
    }

    /// Steals from a random victim, then the injector, as a searcher.
    fn search(&self) -> Option<Runnable> {
        let stealers = &self.shared.stealers;
        if stealers.len() == 1 {
            return None;
        }
        if !self.searching.get() {
            if !self.shared.idle.try_start_searching() {
                return None;
            }
            self.searching.set(true);
        }
        let start = self.next_random() as usize % stealers.len();
        let victims = (0..stealers.len())
            .map(|i| (start + i) % stealers.len())
            .filter(|&victim| victim != self.index);
        for victim in victims {
            loop {
                match stealers[victim].steal_batch_and_pop(&self.queue) {
                    Steal::Success(runnable) => return Some(self.found(runnable)),
                    Steal::Empty => break,
                    Steal::Retry => {}
                }
            }
        }
        self.steal_injector().map(|runnable| self.found(runnable))
    }

    /// A searcher found work: it stops searching, and if it was the last
    /// searcher it wakes another worker to keep looking.
    fn found(&self, runnable: Runnable) -> Runnable {
        self.searching.set(false);
        if self.shared.idle.stop_searching() {
            self.shared.notify_one();
        }
        runnable
    }

    fn park(&self) {
        let idle = &self.shared.idle;
        let was_searching = self.searching.replace(false);
        if idle.start_parking(self.index, was_searching) && self.shared.has_work() {
            // Work arrived while the last searcher was giving up; a notifier
            // saw it searching and woke nobody. Wake someone (maybe us).
            self.shared.notify_one();
        }
        self.shared.parkers[self.index].park();
        self.searching.set(idle.finish_parking(self.index));
    }

    /// xorshift64: victim choice needs spread, not quality.
    fn next_random(&self) -> u64 {
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        x
    }
}
