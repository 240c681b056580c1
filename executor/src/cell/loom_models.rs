//! loom models of a task cell's wake (`TaskCell::wake`, what every waker of
//! the task calls) against its polls, as tokio makes them: the header's
//! protocol (`header::loom_models`) seen from tokio's side.
//!
//! ```text
//! RUSTFLAGS="--cfg theseus_loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p theseus-executor --release --lib loom_models
//! ```
//!
//! tokio is modelled by what the models need of it: it polls the task once
//! for each wake it is told of (a wake while the task is queued would be
//! merged, one while it runs would poll it again; the protocol lets
//! neither happen with a schedule pending, which is what the models check:
//! every poll after the first takes exactly one schedule). Threads wait
//! for each other on a condition variable, never by spinning, so loom's
//! exploration stays finite. Both models are explored with at most two
//! preemptions (`LOOM_MAX_PREEMPTIONS` overrides it); either finds the
//! fault it is there for, a wake passed on to tokio with a schedule
//! pending, with one.

use super::TaskCell;
use crate::clock;
use crate::header::TaskHeader;
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use theseus_profiler::{Outcome, StackId};

/// Explores `model` with at most `preemptions` preemptions per
/// interleaving, unless `LOOM_MAX_PREEMPTIONS` says otherwise.
fn explore(preemptions: Option<usize>, model: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = preemptions;
    }
    builder.check(model);
}

/// A count threads wait on until it reaches a value.
#[derive(Default)]
struct Count {
    value: Mutex<u64>,
    changed: Condvar,
}

impl Count {
    fn add(&self) {
        *self.value.lock().unwrap() += 1;
        self.changed.notify_all();
    }

    fn get(&self) -> u64 {
        *self.value.lock().unwrap()
    }

    fn wait_for(&self, at_least: u64) {
        let mut value = self.value.lock().unwrap();
        while *value < at_least {
            value = self.changed.wait(value).unwrap();
        }
    }
}

/// tokio's side of the task: the wakes it was told of.
#[derive(Default)]
struct Tokio {
    wakes: Count,
}

impl std::task::Wake for Tokio {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.wakes.add();
    }
}

/// A task cell whose tokio waker is `tokio`'s, as `Timed` sets it before
/// the first poll.
fn cell_with(tokio: &std::sync::Arc<Tokio>) -> std::sync::Arc<TaskCell> {
    let cell = TaskCell::new(StackId::ROOT);
    cell.set_tokio_waker(std::task::Waker::from(tokio.clone()));
    cell
}

/// A poll as tokio makes one: it starts, must take exactly one schedule
/// (a wake's, or the spawn's on the first poll), and ends.
fn poll_taking_a_schedule(cell: &TaskCell, during: impl FnOnce(&TaskHeader)) {
    let header = &cell.header;
    let taken = header.schedules_taken();
    let start = header.on_poll_start();
    assert_eq!(
        header.schedules_taken(),
        taken + 1,
        "a poll tokio made took no schedule: its wake is lost from the counts"
    );
    during(header);
    header.on_poll_end(start);
}

/// After the models' threads are done: tokio polls the task for every wake
/// it was told of and has not polled it for yet (`polls` made so far).
fn poll_the_rest(cell: &TaskCell, tokio: &Tokio, mut polls: u64) -> u64 {
    while polls < 1 + tokio.wakes.get() {
        poll_taking_a_schedule(cell, |_| {});
        polls += 1;
    }
    polls
}

/// What any record promises: no time counted twice.
fn check_record(cell: &TaskCell) {
    let now = clock::now();
    let record = cell.header.to_record(Outcome::Unfinished, now);
    let idle: u64 = record.awaits.iter().map(|a| a.idle_ns).sum();
    assert!(
        record.busy_ns + record.sched_ns + idle <= record.wall_ns,
        "{record:?} adds up to more than the task has lived"
    );
}

/// Each poll after the first takes a schedule: two threads wake the task
/// through `TaskCell::wake`, racing each other, the task's second poll and
/// the poll start that takes their schedule; tokio polls the task once for
/// each wake passed on to it. A wake that finds a schedule pending is that
/// schedule's, and is not passed on: passed on, it could land after the
/// pending schedule was taken, and tokio's poll for it would find none.
#[test]
fn loom_models_each_poll_after_the_first_takes_a_schedule() {
    explore(Some(2), || {
        let tokio = std::sync::Arc::new(Tokio::default());
        let cell = cell_with(&tokio);
        let handed_over = Arc::new(Count::default());
        // The first poll, then the one the first wake passed on makes.
        let poller = {
            let (cell, tokio, handed_over) = (cell.clone(), tokio.clone(), handed_over.clone());
            thread::spawn(move || {
                poll_taking_a_schedule(&cell, |_| handed_over.add());
                tokio.wakes.wait_for(1);
                poll_taking_a_schedule(&cell, |_| {});
            })
        };
        let wakers: Vec<_> = (0..2)
            .map(|_| {
                let (cell, handed_over) = (cell.clone(), handed_over.clone());
                thread::spawn(move || {
                    handed_over.wait_for(1);
                    cell.wake(0);
                })
            })
            .collect();
        poller.join().unwrap();
        for waker in wakers {
            waker.join().unwrap();
        }
        let polls = poll_the_rest(&cell, &tokio, 2);
        let (polled, wakes) = cell.header.polls_and_wakes();
        assert_eq!(polled, polls);
        // Every wake passed on was counted, and made one poll.
        assert_eq!(wakes, tokio.wakes.get());
        assert!(
            !cell.header.is_scheduled(),
            "a schedule was left for no poll"
        );
        check_record(&cell);
    });
}

/// The await-point table: the first poll registers await point A and the
/// second await point B. Two threads wake A at once, each through its own
/// clone of A's waker; one of them then waits for B and wakes it. Each
/// wait goes to the await point whose wake scheduled the poll that ended
/// it: that poll reads the tag the winning wake stored, never an earlier
/// one (a poll made by the losing wake, had it been passed on to tokio,
/// could run before the winner stored its tag). The record then counts no
/// more waiting than there was.
#[test]
fn loom_models_waits_go_to_the_await_point_that_woke_the_task() {
    const A: StackId = StackId(5);
    const B: StackId = StackId(6);
    explore(Some(2), || {
        let tokio = std::sync::Arc::new(Tokio::default());
        let cell = cell_with(&tokio);
        // 1: A's waker handed over; 2: B's too.
        let handed = Arc::new(Count::default());
        let poller = {
            let (cell, tokio, handed) = (cell.clone(), tokio.clone(), handed.clone());
            thread::spawn(move || {
                poll_taking_a_schedule(&cell, |header| {
                    assert_eq!(header.register_await(A), 1);
                    handed.add();
                });
                tokio.wakes.wait_for(1);
                poll_taking_a_schedule(&cell, |header| {
                    assert_eq!(header.register_await(B), 2);
                    handed.add();
                });
            })
        };
        let wakers: Vec<_> = [false, true]
            .into_iter()
            .map(|then_b| {
                let (cell, handed) = (cell.clone(), handed.clone());
                thread::spawn(move || {
                    handed.wait_for(1);
                    cell.wake(1);
                    if then_b {
                        handed.wait_for(2);
                        cell.wake(2);
                    }
                })
            })
            .collect();
        poller.join().unwrap();
        for waker in wakers {
            waker.join().unwrap();
        }
        // The third schedule (a late wake of A, or B's) is pending: its
        // wake was passed on to tokio, which polls the task once more.
        let woken_by = cell.header.woken_by();
        assert!(cell.header.is_scheduled());
        assert_eq!(poll_the_rest(&cell, &tokio, 2), 3);
        let waits = cell.header.await_wakes();
        // The second poll was scheduled by a wake of A: its wait is A's.
        assert!(waits[0] >= 1, "A's wait went elsewhere: {waits:?}");
        // The third by whichever wake came first after the second poll
        // began; its wait went to that wake's await point.
        let (_, wakes) = cell.header.polls_and_wakes();
        assert_eq!(wakes, 2, "B's wake is always counted");
        assert_eq!(waits[0] + waits[1], wakes, "{waits:?}");
        assert_eq!(usize::from(woken_by), if waits[1] == 1 { 2 } else { 1 });
        check_record(&cell);
    });
}
