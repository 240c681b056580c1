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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use theseus_profiler::{Outcome, StackId, TaskRecord};

pub(crate) struct Header {
    /// Whether this task is timed: a tracer was installed when it was spawned.
    /// Untimed tasks never read the clock.
    pub(crate) timed: bool,
    /// The task's logical stack (ROOT when untimed).
    pub(crate) stack: StackId,
    pub(crate) spawned_at: u64,
    /// When the pending schedule happened; 0 while none is pending.
    scheduled_at: AtomicU64,
    /// When the poll in progress began; 0 while not polling.
    poll_started: AtomicU64,
    busy_ns: AtomicU64,
    sched_ns: AtomicU64,
    polls: AtomicU64,
    /// Spawn plus every wake.
    schedules: AtomicU64,
    /// Set by `JoinHandle::abort` and at shutdown; checked before each poll.
    pub(crate) aborted: AtomicBool,
    /// Where the task sits in the runtime's registry of live tasks.
    pub(crate) registry_slot: AtomicU64,
}

impl Header {
    pub(crate) fn new(timed: bool, stack: StackId) -> Header {
        Header {
            timed,
            stack,
            spawned_at: if timed { clock::now() } else { 0 },
            scheduled_at: AtomicU64::new(0),
            poll_started: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            sched_ns: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            schedules: AtomicU64::new(0),
            aborted: AtomicBool::new(false),
            registry_slot: AtomicU64::new(u64::MAX),
        }
    }

    /// The task was just handed to a queue (at spawn, or by a wake).
    #[inline]
    pub(crate) fn on_schedule(&self) {
        if self.timed {
            self.scheduled_at.store(clock::now(), Relaxed);
            bump(&self.schedules, 1);
        }
    }

    /// A poll is starting; returns its start time (0 when untimed).
    #[inline]
    pub(crate) fn on_poll_start(&self) -> u64 {
        if !self.timed {
            return 0;
        }
        let now = clock::now();
        let scheduled = self.scheduled_at.swap(0, Relaxed);
        if scheduled != 0 {
            bump(&self.sched_ns, now.saturating_sub(scheduled));
        }
        self.poll_started.store(now, Relaxed);
        now
    }

    /// The poll that began at `start` is over; returns the time it ended.
    #[inline]
    pub(crate) fn on_poll_end(&self, start: u64) -> u64 {
        if !self.timed {
            return 0;
        }
        let now = clock::now();
        bump(&self.busy_ns, now.saturating_sub(start));
        bump(&self.polls, 1);
        self.poll_started.store(0, Relaxed);
        now
    }

    /// The record of this task as of `now` (a clock reading).
    pub(crate) fn record(&self, outcome: Outcome, now: u64) -> TaskRecord {
        let mut busy_ns = self.busy_ns.load(Relaxed);
        let mut sched_ns = self.sched_ns.load(Relaxed);
        // A live task may be mid-poll or waiting in a queue: count that too.
        let poll_started = self.poll_started.load(Relaxed);
        if poll_started != 0 {
            busy_ns += now.saturating_sub(poll_started);
        }
        let scheduled = self.scheduled_at.load(Relaxed);
        if scheduled != 0 && poll_started == 0 {
            sched_ns += now.saturating_sub(scheduled);
        }
        TaskRecord {
            stack: self.stack,
            wall_ns: now.saturating_sub(self.spawned_at),
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
