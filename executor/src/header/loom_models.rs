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
        let record = header.to_record(Outcome::Unfinished, now);
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
        let record = header.to_record(Outcome::Completed, e2);
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
        let record = header.to_record(Outcome::Unfinished, now);
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
        let record = header.to_record(Outcome::Unfinished, now);
        check_record(&header, &record, clock::now());
        poller.join().unwrap();
        check_schedules(&header, u64::from(waker.join().unwrap()));
        let now = clock::now();
        check_record(&header, &header.to_record(Outcome::Unfinished, now), now);
    });
}
