//! The per-task header: the cheap home of a task's timestamps and counters.
//!
//! Everything the profiler needs about one task lives here, in atomics that
//! the task's poller writes with plain relaxed loads and stores (tokio never
//! polls one task on two threads at once) and that any thread may read, so a
//! profile written mid-run can show a live task's costs so far.
//!
//! Three moments are timed:
//!
//! - **a wake** ([`Header::on_wake`], from any thread): the first wake since
//!   the last poll began marks the task scheduled; later wakes before the
//!   poll are the same schedule, as in tokio, which queues a task once. A
//!   wake that arrives while the task is being polled means "scheduled when
//!   this poll ends": it costs no clock read, and the time to the poll's end
//!   stays busy time, never waiting time.
//! - **a poll's start** ([`Header::on_poll_start`]): the delay since the
//!   schedule is `SchedNs`.
//! - **a poll's end** ([`Header::on_poll_end`]): the poll's length is `BusyNs`.
//!
//! When the task ends, the header becomes one [`TaskRecord`]: nothing per
//! poll ever crosses to the profiler.

use crate::clock;
use crate::sync::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use theseus_profiler::{Outcome, StackId, TaskId, TaskRecord};

/// `scheduled_at` while nothing is pending.
const NOT_SCHEDULED: u64 = 0;
/// `scheduled_at` for a wake that came during a poll: scheduled at that
/// poll's end, which is `poll_ended` once the poll is over.
const AT_POLL_END: u64 = u64::MAX;

pub(crate) struct Header {
    /// The task's logical stack.
    pub(crate) stack: StackId,
    /// Names this task in its records, so the profiler can tell a task it
    /// saw running from one that has just ended (interval snapshots).
    id: TaskId,
    /// Timestamps are raw clock ticks ([`clock::now`]); durations are ns.
    spawned_at: u64,
    /// When the pending schedule happened; see the module docs.
    scheduled_at: AtomicU64,
    /// When the poll in progress began; 0 while not polling.
    poll_started: AtomicU64,
    /// When the last poll ended.
    poll_ended: AtomicU64,
    busy_ns: AtomicU64,
    sched_ns: AtomicU64,
    polls: AtomicU64,
    wakes: AtomicU64,
}

impl Header {
    /// A header for a task spawned now: the spawn is its first schedule.
    pub(crate) fn new(stack: StackId) -> Header {
        let spawned_at = clock::now();
        Header {
            stack,
            id: TaskId::next(),
            spawned_at,
            scheduled_at: AtomicU64::new(spawned_at),
            poll_started: AtomicU64::new(0),
            poll_ended: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            sched_ns: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            wakes: AtomicU64::new(0),
        }
    }

    /// The task's waker was called. Returns whether this wake scheduled the
    /// task (false: it was already scheduled).
    #[inline]
    pub(crate) fn on_wake(&self) -> bool {
        if self.scheduled_at.load(Relaxed) != NOT_SCHEDULED {
            return false;
        }
        let at = if self.poll_started.load(Relaxed) != 0 {
            AT_POLL_END
        } else {
            clock::now()
        };
        let scheduled = self
            .scheduled_at
            .compare_exchange(NOT_SCHEDULED, at, Relaxed, Relaxed)
            .is_ok();
        if scheduled {
            self.wakes.fetch_add(1, Relaxed);
        }
        scheduled
    }

    /// A poll is starting; returns its start time in ticks.
    #[inline]
    pub(crate) fn on_poll_start(&self) -> u64 {
        let now = clock::now();
        // A swap, not a load and a store: a wake racing with this poll's
        // start must either be consumed here or stay pending for the next.
        let scheduled = match self.scheduled_at.swap(NOT_SCHEDULED, Relaxed) {
            AT_POLL_END => self.poll_ended.load(Relaxed),
            at => at,
        };
        if scheduled != NOT_SCHEDULED {
            bump(&self.sched_ns, clock::nanos_between(scheduled, now));
        }
        self.poll_started.store(now, Relaxed);
        now
    }

    /// A poll of a `tokio::spawn` task is starting, seen through tokio's
    /// hooks, which tell no wakes: each poll after the first had one, and
    /// `latency` is tokio's own measure of the wait since it. Returns the
    /// poll's start time in ticks.
    #[cfg(tokio_unstable)]
    pub(crate) fn on_hooked_poll_start(&self, latency: Option<std::time::Duration>) -> u64 {
        let now = clock::now();
        let first = self.polls.load(Relaxed) == 0;
        if !first {
            self.wakes.fetch_add(1, Relaxed);
        }
        let waited = match latency {
            Some(latency) => latency.as_nanos() as u64,
            None if first => clock::nanos_between(self.spawned_at, now),
            None => 0,
        };
        bump(&self.sched_ns, waited);
        self.scheduled_at.store(NOT_SCHEDULED, Relaxed);
        self.poll_started.store(now, Relaxed);
        now
    }

    /// The poll that began at `start` is over; returns the time it ended.
    #[inline]
    pub(crate) fn on_poll_end(&self, start: u64) -> u64 {
        let now = clock::now();
        bump(&self.busy_ns, clock::nanos_between(start, now));
        bump(&self.polls, 1);
        self.poll_ended.store(now, Relaxed);
        self.poll_started.store(0, Relaxed);
        // A wake that read the clock just before this poll began, but
        // landed after it: the task could not run again before now.
        let scheduled = self.scheduled_at.load(Relaxed);
        if scheduled != NOT_SCHEDULED && scheduled != AT_POLL_END && scheduled < now {
            let _ = self
                .scheduled_at
                .compare_exchange(scheduled, AT_POLL_END, Relaxed, Relaxed);
        }
        now
    }

    /// The record of this task as of `now` (a [`clock::now`] reading).
    pub(crate) fn record(&self, outcome: Outcome, now: u64) -> TaskRecord {
        let mut busy_ns = self.busy_ns.load(Relaxed);
        let mut sched_ns = self.sched_ns.load(Relaxed);
        // A live task may be mid-poll or waiting in a queue: count that too.
        let poll_started = self.poll_started.load(Relaxed);
        if poll_started != 0 {
            busy_ns += clock::nanos_between(poll_started, now);
        } else {
            let scheduled = match self.scheduled_at.load(Relaxed) {
                AT_POLL_END => self.poll_ended.load(Relaxed),
                at => at,
            };
            // A task dropped while queued (cancelled at shutdown) waited
            // for a worker until then.
            if scheduled != NOT_SCHEDULED {
                sched_ns += clock::nanos_between(scheduled, now);
            }
        }
        TaskRecord {
            id: self.id,
            stack: self.stack,
            wall_ns: clock::nanos_between(self.spawned_at, now),
            busy_ns,
            sched_ns,
            polls: self.polls.load(Relaxed),
            wakes: self.wakes.load(Relaxed),
            outcome,
        }
    }
}

/// Adds to a counter that has one writer at a time: a load and a store, no
/// locked read-modify-write on the hot path.
#[inline]
fn bump(counter: &AtomicU64, by: u64) {
    counter.store(counter.load(Relaxed) + by, Relaxed);
}

#[cfg(all(test, not(theseus_loom)))]
mod tests {
    use super::*;

    #[test]
    fn wakes_are_counted_once_per_schedule() {
        let header = Header::new(StackId::ROOT);
        let start = header.on_poll_start();
        header.on_poll_end(start);
        assert!(header.on_wake());
        assert!(!header.on_wake(), "already scheduled");
        let start = header.on_poll_start();
        header.on_poll_end(start);
        let record = header.record(Outcome::Completed, clock::now());
        assert_eq!((record.polls, record.wakes), (2, 1));
    }

    #[test]
    fn a_wake_during_a_poll_is_scheduled_at_its_end() {
        let header = Header::new(StackId::ROOT);
        let start = header.on_poll_start();
        assert!(header.on_wake());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let end = header.on_poll_end(start);
        let next = header.on_poll_start();
        header.on_poll_end(next);
        let record = header.record(Outcome::Completed, clock::now());
        // The 20 ms poll is busy time; waiting began only at its end.
        assert!(record.busy_ns >= 20_000_000, "{record:?}");
        assert!(
            record.sched_ns < clock::nanos_between(start, end) / 2,
            "{record:?}"
        );
        assert_eq!(record.wakes, 1);
    }

    #[test]
    fn a_task_never_woken_shows_no_wakes() {
        let header = Header::new(StackId::ROOT);
        let start = header.on_poll_start();
        header.on_poll_end(start);
        let record = header.record(Outcome::Cancelled, clock::now());
        assert_eq!((record.polls, record.wakes), (1, 0));
    }
}
