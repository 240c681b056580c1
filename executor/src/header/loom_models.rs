//! loom models of the header's protocol: a task's poller, its wakers on
//! other threads, and a profile writer reading it mid-run, on a few polls
//! and wakes, in every interleaving loom finds and with every value a
//! relaxed load may return.
//!
//! ```text
//! RUSTFLAGS="--cfg theseus_loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p theseus-executor --release --lib loom_models
//! ```
//!
//! Under loom the clock is a counter advanced by every reading (`clock`),
//! so timestamps are exact and the bounds below are checked to the tick.
//! The two-thread wake models are explored exhaustively; the models with a
//! reader, with a bound on preemptions (`LOOM_MAX_PREEMPTIONS` overrides
//! it), under which each fault the models know of (a wake's
//! compare-exchange as a store, a poll start's swap as a load and a store,
//! a schedule not clamped to the last poll's end, any of the release
//! stores made relaxed) is still found with two preemptions. The whole
//! run takes about a minute in release.
//! A wake is modelled as theseus's waker makes it: `on_wake`, then tokio's
//! wake, which queues the task for its next poll (here: a flag released
//! after `on_wake` and acquired before the poll).

use super::*;
use crate::cell::TaskCell;
use loom::sync::atomic::{
    AtomicBool,
    Ordering::{Acquire, Release},
};
use loom::sync::Arc;
use loom::thread;

/// Waits for another thread's release of `flag`.
fn wait_for(flag: &AtomicBool) {
    while !flag.load(Acquire) {
        thread::yield_now();
    }
}

/// Explores `model` in every interleaving loom finds with at most
/// `preemptions` preemptions each (`None`: all), unless
/// `LOOM_MAX_PREEMPTIONS` says otherwise.
fn explore(preemptions: Option<usize>, model: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = preemptions;
    }
    builder.check(model);
}

fn pending(header: &TaskHeader) -> bool {
    header.scheduled_at.load(Relaxed) != NOT_SCHEDULED
}

/// Every schedule made (the spawn, and each wake that returned true) was
/// taken by exactly one poll start, or is still pending: no wake is lost,
/// none counts twice.
fn check_schedules(header: &TaskHeader, wakes_that_scheduled: u64) {
    let taken = header.taken.load(Relaxed);
    assert_eq!(
        1 + wakes_that_scheduled,
        taken + u64::from(pending(header)),
        "{wakes_that_scheduled} wakes scheduled the task, {taken} polls took a schedule, pending: {}",
        pending(header)
    );
    assert_eq!(header.wakes.load(Relaxed), wakes_that_scheduled);
}

/// What any record promises, read at any moment: no time counted twice
/// (busy and waiting never overlap, and neither runs past the moment the
/// reading ended) and no underflow.
fn check_record(header: &TaskHeader, record: &TaskRecord, read_by: u64) {
    let lived = read_by - header.spawned_at;
    assert!(
        record.busy_ns + record.sched_ns <= lived,
        "{record:?} adds up to more than the {lived} ns the task has lived"
    );
}

/// A poller polls twice; the future hands its waker to another thread
/// during the first poll, which wakes it once (during that poll or after
/// it: loom tries both), queues it for the second poll, and wakes it again
/// while the second poll runs.
#[test]
fn loom_models_wakes_around_polls() {
    explore(None, || {
        let header = Arc::new(TaskHeader::new(StackId::ROOT));
        let handed_over = Arc::new(AtomicBool::new(false));
        let queued = Arc::new(AtomicBool::new(false));

        let poller = {
            let (header, handed_over, queued) =
                (header.clone(), handed_over.clone(), queued.clone());
            thread::spawn(move || {
                let s1 = header.on_poll_start();
                handed_over.store(true, Release);
                let e1 = header.on_poll_end(s1);
                wait_for(&queued);
                let s2 = header.on_poll_start();
                let e2 = header.on_poll_end(s2);
                (s1, e1, s2, e2)
            })
        };
        let waker = {
            let header = header.clone();
            thread::spawn(move || {
                wait_for(&handed_over);
                let first = header.on_wake(0);
                let woken_by = clock::now();
                queued.store(true, Release);
                let second = header.on_wake(0);
                (first, woken_by, second)
            })
        };
        let (s1, e1, s2, e2) = poller.join().unwrap();
        let (first, woken_by, second) = waker.join().unwrap();

        // A wake that finds the schedule consumed schedules the task, and
        // counts once.
        assert!(first, "the wake after the first poll began was lost");
        check_schedules(&header, u64::from(first) + u64::from(second));
        assert_eq!(header.polls.load(Relaxed), 2);
        // A wake that lands after the last poll began is not lost: it is
        // pending for the next poll.
        if second {
            assert!(pending(&header), "the wake during the last poll was lost");
        }
        assert_eq!(header.busy_ns.load(Relaxed), (e1 - s1) + (e2 - s2));
        // The first poll waited from the spawn; the second from the first
        // wake, or from the end of the first poll if the wake came during
        // it: never from a moment the task was running, never from after
        // the wake returned.
        let waited = header.sched_ns.load(Relaxed) - (s1 - header.spawned_at);
        assert!(
            waited <= s2 - e1,
            "waited {waited} ns, counted from before the first poll ended ({e1}, next poll at {s2})"
        );
        assert!(
            waited >= s2.saturating_sub(woken_by.max(e1)),
            "waited {waited} ns, counted from after the wake ({woken_by}) and the poll's end ({e1}) (next poll at {s2})"
        );
        let now = clock::now();
        let record = header.record(Outcome::Unfinished, now);
        check_record(&header, &record, now);
        // A wake during the last poll waits from its end.
        let waiting = record.sched_ns - header.sched_ns.load(Relaxed);
        assert!(
            waiting <= now - e2,
            "a pending wake waits {waiting} ns, from before the last poll ended at {e2} (now {now})"
        );
    });
}

/// Two threads wake a task at once, while its poll ends: exactly one of
/// them schedules it.
#[test]
fn loom_models_two_wakers_race() {
    explore(None, || {
        let header = Arc::new(TaskHeader::new(StackId::ROOT));
        let s1 = header.on_poll_start();
        let wakers: Vec<_> = (0..2)
            .map(|_| {
                let header = header.clone();
                thread::spawn(move || header.on_wake(0))
            })
            .collect();
        let e1 = header.on_poll_end(s1);
        let scheduled: Vec<bool> = wakers.into_iter().map(|w| w.join().unwrap()).collect();
        assert_eq!(scheduled.iter().filter(|&&s| s).count(), 1, "{scheduled:?}");
        assert!(pending(&header));
        let before = header.sched_ns.load(Relaxed);
        let s2 = header.on_poll_start();
        check_schedules(&header, 1);
        let waited = header.sched_ns.load(Relaxed) - before;
        assert!(
            waited <= s2 - e1,
            "waited {waited} ns, counted from before the poll ended ({e1}, next poll at {s2})"
        );
        let e2 = header.on_poll_end(s2);
        let record = header.record(Outcome::Completed, e2);
        check_record(&header, &record, e2);
    });
}

/// A profile written while the task runs: a poller polls twice and wakes
/// itself during each poll (as `yield_now` does), while another thread
/// reads the record.
#[test]
fn loom_models_record_while_polled() {
    explore(Some(4), || {
        let header = Arc::new(TaskHeader::new(StackId::ROOT));
        let poller = {
            let header = header.clone();
            thread::spawn(move || {
                let s1 = header.on_poll_start();
                assert!(header.on_wake(0));
                let e1 = header.on_poll_end(s1);
                // Waiting in tokio's queue: longer than the poll after it.
                clock::now();
                let s2 = header.on_poll_start();
                assert!(header.on_wake(0));
                header.on_poll_end(s2);
                e1
            })
        };
        let now = clock::now();
        let record = header.record(Outcome::Unfinished, now);
        check_record(&header, &record, clock::now());
        assert!(record.polls <= 2 && record.wakes <= 2, "{record:?}");
        poller.join().unwrap();
        check_schedules(&header, 2);
    });
}

/// A profile written while the task is polled twice and woken once from
/// another thread, none of them waiting for the others: the wake may also
/// race a poll's start with nothing pending.
#[test]
fn loom_models_record_while_polled_and_woken() {
    explore(Some(3), || {
        let header = Arc::new(TaskHeader::new(StackId::ROOT));
        let poller = {
            let header = header.clone();
            thread::spawn(move || {
                for _ in 0..2 {
                    let start = header.on_poll_start();
                    header.on_poll_end(start);
                }
            })
        };
        let waker = {
            let header = header.clone();
            thread::spawn(move || header.on_wake(0))
        };
        let now = clock::now();
        let record = header.record(Outcome::Unfinished, now);
        check_record(&header, &record, clock::now());
        poller.join().unwrap();
        check_schedules(&header, u64::from(waker.join().unwrap()));
        let now = clock::now();
        check_record(&header, &header.record(Outcome::Unfinished, now), now);
    });
}

/// tokio's side of a task, as far as the models need it: each wake it is
/// told of queues one more poll (a wake while the task is queued would
/// be merged, one while it runs polls it again; the protocol never lets
/// either happen with a schedule already pending, which the models check).
struct Tokio {
    wakes: AtomicU64,
}

impl std::task::Wake for Tokio {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.wakes.fetch_add(1, Release);
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
    let taken = header.taken.load(Relaxed);
    let start = header.on_poll_start();
    assert_eq!(
        header.taken.load(Relaxed),
        taken + 1,
        "a poll tokio made took no schedule: its wake is lost from the counts"
    );
    during(header);
    header.on_poll_end(start);
}

/// Polls the task for each wake tokio was told of until `done` is
/// released and every wake told has its poll; returns the polls made.
fn tokio_poller(cell: &TaskCell, tokio: &Tokio, done: &AtomicBool) -> u64 {
    let mut polled = 1;
    loop {
        let told = tokio.wakes.load(Acquire);
        if told + 1 > polled {
            poll_taking_a_schedule(cell, |_| {});
            polled += 1;
        } else if done.load(Acquire) && tokio.wakes.load(Acquire) + 1 == polled {
            return polled;
        } else {
            thread::yield_now();
        }
    }
}

/// Each poll after the first takes a schedule: two threads wake the task
/// through `TaskCell::wake`, the waker's wake, twice each, racing each
/// other, the task's polls and the poll starts that take their schedules,
/// and tokio polls the task once for each wake passed on to it. A wake
/// that finds a schedule pending is that schedule's, and is not passed on:
/// passed on, it could land after the pending schedule was taken, and
/// tokio's poll for it would find none.
#[test]
fn loom_models_each_poll_after_the_first_takes_a_schedule() {
    explore(Some(3), || {
        let tokio = std::sync::Arc::new(Tokio {
            wakes: AtomicU64::new(0),
        });
        let cell = cell_with(&tokio);
        let handed_over = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let poller = {
            let (cell, tokio) = (cell.clone(), tokio.clone());
            let (handed_over, done) = (handed_over.clone(), done.clone());
            thread::spawn(move || {
                poll_taking_a_schedule(&cell, |_| handed_over.store(true, Release));
                tokio_poller(&cell, &tokio, &done)
            })
        };
        let wakers: Vec<_> = (0..2)
            .map(|_| {
                let (cell, handed_over) = (cell.clone(), handed_over.clone());
                thread::spawn(move || {
                    wait_for(&handed_over);
                    cell.wake(0);
                    cell.wake(0);
                })
            })
            .collect();
        for waker in wakers {
            waker.join().unwrap();
        }
        done.store(true, Release);
        let polls = poller.join().unwrap();
        let header = &cell.header;
        assert_eq!(header.polls.load(Relaxed), polls);
        // Every wake passed on was counted, and made one poll.
        assert_eq!(header.wakes.load(Relaxed), tokio.wakes.load(Relaxed));
        assert_eq!(polls, 1 + header.wakes.load(Relaxed));
        assert!(!pending(header), "a schedule was left for no poll");
        assert!(
            polls >= 2,
            "four wakes after the first poll began made no poll"
        );
        let now = clock::now();
        check_record(header, &header.record(Outcome::Unfinished, now), now);
    });
}

/// The await-point table: the first poll registers await point A and the
/// second await point B. Two threads wake A at once, each through its own
/// clone of A's waker; one of them then waits for B and wakes it. Each
/// wait goes to the await point whose wake scheduled the poll that ended
/// it: that poll reads the tag the winning wake stored, never an earlier
/// one (a poll made by the losing wake, had it been passed on to tokio,
/// could run before the winner stored its tag). A record read meanwhile
/// never counts more waiting than there was.
#[test]
fn loom_models_waits_go_to_the_await_point_that_woke_the_task() {
    const A: StackId = StackId(5);
    const B: StackId = StackId(6);
    explore(Some(2), || {
        let tokio = std::sync::Arc::new(Tokio {
            wakes: AtomicU64::new(0),
        });
        let cell = cell_with(&tokio);
        let (a_handed, b_handed) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let poller = {
            let (cell, tokio) = (cell.clone(), tokio.clone());
            let (a_handed, b_handed) = (a_handed.clone(), b_handed.clone());
            thread::spawn(move || {
                poll_taking_a_schedule(&cell, |header| {
                    assert_eq!(header.register_await(A), 1);
                    a_handed.store(true, Release);
                });
                while tokio.wakes.load(Acquire) < 1 {
                    thread::yield_now();
                }
                poll_taking_a_schedule(&cell, |header| {
                    assert_eq!(header.register_await(B), 2);
                    b_handed.store(true, Release);
                });
            })
        };
        let wakers: Vec<_> = [false, true]
            .into_iter()
            .map(|then_b| {
                let (cell, a_handed, b_handed) = (cell.clone(), a_handed.clone(), b_handed.clone());
                thread::spawn(move || {
                    wait_for(&a_handed);
                    cell.wake(1);
                    if then_b {
                        wait_for(&b_handed);
                        cell.wake(2);
                    }
                })
            })
            .collect();
        let now = clock::now();
        let record = cell.header.record(Outcome::Unfinished, now);
        check_record(&cell.header, &record, clock::now());
        poller.join().unwrap();
        for waker in wakers {
            waker.join().unwrap();
        }
        let header = &cell.header;
        let woken_by = header.woken_by.load(Relaxed);
        // The third schedule (a late wake of A, or B's) is pending: the
        // wakes were passed on to tokio, which polls the task once more.
        assert!(pending(header));
        poll_taking_a_schedule(&cell, |_| {});
        let slots = header.awaits.get().expect("two await points");
        let wakes = |i: usize| slots[i].wakes.load(Relaxed);
        // The second poll was scheduled by a wake of A: its wait is A's.
        assert!(wakes(0) >= 1, "A's wait went elsewhere: {}", wakes(0));
        // The third by whichever wake came first after the second poll
        // began; its wait went to that wake's await point.
        assert_eq!(wakes(0) + wakes(1), header.wakes.load(Relaxed));
        assert_eq!(header.wakes.load(Relaxed), 2, "B's wake is always counted");
        assert_eq!(usize::from(woken_by), if wakes(1) == 1 { 2 } else { 1 });
        let now = clock::now();
        let record = header.record(Outcome::Completed, now);
        check_record(header, &record, now);
        let idle: u64 = record.awaits.iter().map(|a| a.idle_ns).sum();
        assert!(record.busy_ns + record.sched_ns + idle <= record.wall_ns);
    });
}
