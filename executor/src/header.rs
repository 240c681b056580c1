//! The per-task header: the cheap home of a task's timestamps and counters.
//!
//! `async-task` stores a metadata value inside each task's single allocation;
//! [`Header`] is that value. Everything the profiler needs about one task lives
//! here, written with plain relaxed loads and stores:
//!
//! - the schedule path (a wake) writes `scheduled_at` and bumps `schedules`;
//! - the poll path (in `join.rs`) adds to `sched_ns`, `busy_ns`, `polls`.
//!
//! `async-task` never runs a task's schedule function and its poll at the same
//! time, so each field has one writer at a time; the atomics exist only so a
//! profile written mid-run can read a live task's costs so far without tearing.
//! When the task ends, the header is turned into one [`TaskRecord`] for the
//! profiler: nothing per poll ever crosses that interface.

use crate::clock;
use crate::registry::Registry;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use theseus_profiler::{Outcome, StackId, TaskRecord};

pub(crate) struct Header {
    /// Whether this task is timed: a tracer was installed when it was spawned.
    /// Untimed tasks never read the clock.
    pub(crate) timed: bool,
    /// The task's logical stack (ROOT when untimed).
    pub(crate) stack: StackId,
    /// Timestamps are raw clock ticks ([`clock::now`]); durations are ns.
    pub(crate) spawned_at: u64,
    /// When the pending schedule happened; 0 while none is pending.
    scheduled_at: AtomicU64,
    /// When the poll in progress began; 0 while not polling.
    poll_started: AtomicU64,
    /// When the last poll ended.
    poll_ended: AtomicU64,
    busy_ns: AtomicU64,
    sched_ns: AtomicU64,
    polls: AtomicU64,
    /// Spawn plus every wake.
    schedules: AtomicU64,
    /// Set by `JoinHandle::abort` and at shutdown; checked before each poll.
    pub(crate) aborted: AtomicBool,
    /// The runtime's registry of live tasks, and where the task sits in it.
    /// Held here once, so the task's future and its `JoinHandle` reach it
    /// through the header they both have.
    pub(crate) registry: Arc<Registry>,
    pub(crate) registry_slot: AtomicU64,
}

impl Header {
    pub(crate) fn new(timed: bool, stack: StackId, registry: Arc<Registry>) -> Header {
        let spawned_at = if timed { clock::now() } else { 0 };
        Header {
            timed,
            stack,
            spawned_at,
            // The spawn is the first schedule.
            scheduled_at: AtomicU64::new(spawned_at),
            poll_started: AtomicU64::new(0),
            poll_ended: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            sched_ns: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            schedules: AtomicU64::new(0),
            aborted: AtomicBool::new(false),
            registry,
            registry_slot: AtomicU64::new(u64::MAX),
        }
    }

    /// The task was just handed to a queue: at spawn, or by a wake.
    ///
    /// The spawn's time is the spawn time, already read. A task woken while
    /// it was running (`yield_now`, or a wake from another thread during its
    /// poll) is handed over the moment its poll returns, which `on_poll_end`
    /// has just read. Only other wakes read the clock.
    #[inline]
    pub(crate) fn on_schedule(&self, woken_while_running: bool) {
        if !self.timed {
            return;
        }
        let schedules = self.schedules.load(Relaxed);
        self.schedules.store(schedules + 1, Relaxed);
        if schedules == 0 {
            return;
        }
        let at = if woken_while_running {
            self.poll_ended.load(Relaxed)
        } else {
            clock::now()
        };
        self.scheduled_at.store(at, Relaxed);
    }

    /// A poll is starting; returns its start time in ticks (0 when untimed).
    #[inline]
    pub(crate) fn on_poll_start(&self) -> u64 {
        if !self.timed {
            return 0;
        }
        let now = clock::now();
        let scheduled = self.scheduled_at.load(Relaxed);
        self.scheduled_at.store(0, Relaxed);
        if scheduled != 0 {
            bump(&self.sched_ns, clock::nanos_between(scheduled, now));
        }
        self.poll_started.store(now, Relaxed);
        now
    }

    /// The poll that began at `start` is over; returns the time it ended, in ticks.
    #[inline]
    pub(crate) fn on_poll_end(&self, start: u64) -> u64 {
        if !self.timed {
            return 0;
        }
        let now = clock::now();
        bump(&self.busy_ns, clock::nanos_between(start, now));
        bump(&self.polls, 1);
        self.poll_started.store(0, Relaxed);
        self.poll_ended.store(now, Relaxed);
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
        }
        let scheduled = self.scheduled_at.load(Relaxed);
        if scheduled != 0 && poll_started == 0 {
            sched_ns += clock::nanos_between(scheduled, now);
        }
        TaskRecord {
            stack: self.stack,
            wall_ns: clock::nanos_between(self.spawned_at, now),
            busy_ns,
            sched_ns,
            polls: self.polls.load(Relaxed),
            wakes: self.schedules.load(Relaxed).saturating_sub(1),
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
