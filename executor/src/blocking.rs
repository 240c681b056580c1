//! The pool of threads for `spawn_blocking`.
//!
//! Blocking closures run on their own threads so they never stall a worker.
//! A closure is wrapped in a one-poll task, so it gets the same
//! [`crate::JoinHandle`], panic capture and profiling record as any task. A
//! thread is started when no idle one is waiting, up to [`MAX_THREADS`]; an
//! idle thread exits after [`KEEP_ALIVE`].

use crate::scheduler::Runnable;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

pub(crate) const MAX_THREADS: usize = 512;
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(10);

pub(crate) struct BlockingPool {
    state: Mutex<State>,
    condvar: Condvar,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Runnable>,
    threads: usize,
    idle: usize,
    shutdown: bool,
}

impl BlockingPool {
    pub(crate) fn new() -> BlockingPool {
        BlockingPool {
            state: Mutex::new(State::default()),
            condvar: Condvar::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `runnable`. Returns `true` if the caller must start a thread
    /// (and then call [`BlockingPool::run_thread`] on it).
    pub(crate) fn push(&self, runnable: Runnable) -> bool {
        let mut state = self.state();
        if state.shutdown {
            drop(state);
            // Cancels the task.
            drop(runnable);
            return false;
        }
        state.queue.push_back(runnable);
        if state.idle > 0 {
            self.condvar.notify_one();
            false
        } else if state.threads < MAX_THREADS {
            state.threads += 1;
            true
        } else {
            false
        }
    }

    /// The body of a pool thread: runs queued closures until idle too long.
    pub(crate) fn run_thread(self: &Arc<Self>) {
        let mut state = self.state();
        loop {
            if let Some(runnable) = state.queue.pop_front() {
                drop(state);
                runnable.run();
                state = self.state();
                continue;
            }
            if state.shutdown {
                break;
            }
            state.idle += 1;
            let (next, timeout) = self
                .condvar
                .wait_timeout(state, KEEP_ALIVE)
                .unwrap_or_else(|e| e.into_inner());
            state = next;
            state.idle -= 1;
            if timeout.timed_out() && state.queue.is_empty() {
                break;
            }
        }
        state.threads -= 1;
    }

    /// Lets idle threads exit and cancels closures that have not started.
    pub(crate) fn shutdown(&self) {
        let queued = {
            let mut state = self.state();
            state.shutdown = true;
            std::mem::take(&mut state.queue)
        };
        self.condvar.notify_all();
        drop(queued);
    }
}
