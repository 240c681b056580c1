//! loom models of the scheduler's parking protocol (`park`): a runner that
//! finds no task registers as idle and looks once more before it parks, a
//! pusher pushes and then notifies, and no task is ever left in a queue
//! with every runner parked.
//!
//! ```text
//! RUSTFLAGS="--cfg theseus_loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p theseus-executor --release --lib loom_models
//! ```
//!
//! The queues are modelled by a count of tasks pushed with a release store
//! and taken with a compare-exchange, no stronger than crossbeam-deque's
//! own orderings, so that only `park`'s fences keep a wake-up from being
//! lost. A parked runner waits on a condition variable for its waker, as a
//! thread parks in `block_on`; a lost wake-up leaves it waiting forever,
//! which loom reports as a deadlock.

use super::park::Sleepers;
use loom::sync::atomic::AtomicUsize;
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::task::{Wake, Waker};

fn explore(model: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(model);
}

/// The tasks waiting in the queues, as a count.
#[derive(Default)]
struct Queue(AtomicUsize);

impl Queue {
    fn push(&self) {
        self.0.fetch_add(1, Release);
    }

    fn take(&self) -> bool {
        let mut tasks = self.0.load(Acquire);
        while tasks > 0 {
            match self.0.compare_exchange(tasks, tasks - 1, Acquire, Relaxed) {
                Ok(_) => return true,
                Err(now) => tasks = now,
            }
        }
        false
    }
}

/// A parked thread's wake-up: what `block_on`'s waker does.
#[derive(Default)]
struct Parker {
    woken: Mutex<bool>,
    changed: Condvar,
}

impl Parker {
    fn park(&self) {
        let mut woken = self.woken.lock().unwrap();
        while !*woken {
            woken = self.changed.wait(woken).unwrap();
        }
        *woken = false;
    }
}

impl Wake for Parker {
    fn wake(self: std::sync::Arc<Self>) {
        *self.woken.lock().unwrap() = true;
        self.changed.notify_one();
    }
}

/// The shared state of a model: the queues and the idle runners.
#[derive(Default)]
struct Executor {
    queue: Queue,
    sleepers: Sleepers,
}

impl Executor {
    /// What a schedule does: push, then notify.
    fn push(&self) {
        self.queue.push();
        self.sleepers.notify();
    }

    /// A runner's `run_tasks` as far as parking goes, until it has taken
    /// `tasks` tasks.
    /// Then it leaves, as a runner whose `run` ends: it notifies, in case
    /// a push saw it woken and woke nobody else.
    fn run(&self, id: usize, tasks: usize) {
        let parker = std::sync::Arc::new(Parker::default());
        let waker = Waker::from(parker.clone());
        let mut taken = 0;
        let mut idle = false;
        while taken < tasks {
            if std::mem::take(&mut idle) {
                self.sleepers.unregister(id);
            }
            if self.queue.take() {
                taken += 1;
                continue;
            }
            self.sleepers.register(id, &waker);
            if self.queue.take() {
                self.sleepers.unregister(id);
                taken += 1;
                continue;
            }
            idle = true;
            parker.park();
        }
        if idle {
            self.sleepers.unregister(id);
        }
        self.sleepers.notify();
    }
}

#[test]
fn a_push_wakes_a_parked_runner() {
    explore(|| {
        let executor = Arc::new(Executor::default());
        let pusher = executor.clone();
        let pushing = thread::spawn(move || pusher.push());
        executor.run(0, 1);
        pushing.join().unwrap();
    });
}

#[test]
fn two_pushers_wake_one_runner_twice() {
    explore(|| {
        let executor = Arc::new(Executor::default());
        let pushers: Vec<_> = (0..2)
            .map(|_| {
                let pusher = executor.clone();
                thread::spawn(move || pusher.push())
            })
            .collect();
        executor.run(0, 2);
        for pushing in pushers {
            pushing.join().unwrap();
        }
    });
}

#[test]
fn a_runner_that_leaves_after_its_wake_passes_it_on() {
    explore(|| {
        let executor = Arc::new(Executor::default());
        let leaver = executor.clone();
        // A runner whose `run` ends (its caller's future completed) right
        // after it registered: it may have been picked by the notify.
        let leaving = thread::spawn(move || {
            let parker = std::sync::Arc::new(Parker::default());
            leaver.sleepers.register(1, &Waker::from(parker));
            leaver.sleepers.unregister(1);
            leaver.sleepers.notify();
        });
        let pusher = executor.clone();
        let pushing = thread::spawn(move || pusher.push());
        executor.run(0, 1);
        leaving.join().unwrap();
        pushing.join().unwrap();
    });
}

#[test]
fn two_pushes_reach_two_runners_that_each_take_one_and_leave() {
    // A push wakes nobody while a runner another push woke has not looked
    // yet: that runner sees both tasks, takes one and leaves, and its
    // leaving must wake the other runner for the second.
    explore(|| {
        let executor = Arc::new(Executor::default());
        let runners: Vec<_> = (0..2)
            .map(|id| {
                let executor = executor.clone();
                thread::spawn(move || executor.run(id, 1))
            })
            .collect();
        executor.push();
        executor.push();
        for runner in runners {
            runner.join().unwrap();
        }
    });
}
