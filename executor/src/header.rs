//! The per-task header: the cheap home of a task's timestamps and counters.
//!
//! Everything the profiler needs about one task lives here, in atomics that
//! the task's poller writes with plain loads and stores (tokio never polls
//! one task on two threads at once) and that any thread may read, so a
//! profile written mid-run can show a live task's costs so far.
//!
//! Three moments are timed:
//!
//! - **a wake** ([`TaskHeader::on_wake`], from any thread): the first wake since
//!   the last poll began marks the task scheduled; later wakes before the
//!   poll are the same schedule, as in tokio, which queues a task once, and
//!   are not passed on to tokio: each poll after the first then takes
//!   exactly one schedule, however many threads wake the task at once. A
//!   wake that arrives while the task is being polled means "scheduled when
//!   this poll ends": it costs no clock read, and the time to the poll's end
//!   stays busy time, never waiting time.
//! - **a poll's start** ([`TaskHeader::on_poll_start`]): the delay since the
//!   schedule is `SchedNs`.
//! - **a poll's end** ([`TaskHeader::on_poll_end`]): the poll's length is `BusyNs`.
//!
//! A schedule never counts from a moment the task was running: a wake that
//! read the clock before a poll ended, but landed after it, is scheduled at
//! that poll's end.
//!
//! # Await points
//!
//! The time from a poll's end to the wake that ends the wait is idle time,
//! and it belongs to the await point whose waker was woken. The header
//! keeps up to [`MAX_AWAITS`] await points per task, each with its idle
//! time and wakes so far; the waker of await point `i` carries the tag
//! `i + 1` (see `waker`), so a wake says which point it ends
//! ([`TaskHeader::on_wake`] notes the tag of the wake that schedules the task),
//! and the next poll's start adds the wait to that point. A wake through an
//! untagged waker (a point beyond the seventh, or none) leaves the wait on
//! the task. A wait that has not ended when a record is made (a task
//! cancelled, or still running) goes to the first await point the last
//! poll registered: nothing woke it, so that is the best guess there is.
//!
//! # Frames
//!
//! A frame (a marked future, see `frame`) has a header of its own, timed
//! the same way from its creation. When it ends inside a task (or another
//! frame), its costs leave that task's ([`TaskHeader::hold`]): the task's
//! records show what it held itself, and the frame's hang below it.
//!
//! When the task ends, the header becomes one [`TaskRecord`], its waits by
//! await point included: nothing per poll ever crosses to the profiler. A
//! record read mid-run ([`TaskHeader::to_record`])
//! never counts one moment twice, as both busy and waiting, or a poll as
//! both done and in progress: the poller writes in an order, with three
//! release stores (plain stores on x86), that the reader reads back in
//! reverse. The protocol is checked by loom models (`loom_models`).

use crate::clock;
use crate::set_once::SetOnce;
use crate::sync::{AtomicU32, AtomicU64, AtomicU8};
use std::sync::atomic::AtomicU64 as StdAtomicU64;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::OnceLock;
use theseus_profiler::{
    AwaitCost, AwaitCosts, Outcome, RecordKind, StackId, TaskId, TaskRecord, MAX_AWAITS,
};

/// `scheduled_at` while nothing is pending.
const NOT_SCHEDULED: u64 = 0;
/// `scheduled_at` for a wake that came during a poll: scheduled at that
/// poll's end, which is `poll_ended` once the poll is over.
const AT_POLL_END: u64 = u64::MAX;

pub(crate) struct TaskHeader {
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
    /// Under loom only: the schedules that poll starts took, for the
    /// models to check that each is taken once (a std atomic: bookkeeping
    /// of the model, not a step loom should interleave).
    #[cfg(theseus_loom)]
    taken: std::sync::atomic::AtomicU64,
    /// The task's await points, from the first one it registers: wakers
    /// tagged `i + 1` belong to slot `i`. Out of line, so that the many
    /// tasks that never wait do not carry it.
    awaits: SetOnce<Box<[AwaitSlot; MAX_AWAITS]>>,
    /// The tag of the waker whose wake last scheduled the task (0: none).
    woken_by: AtomicU8,
    /// The tag of the first await point the last poll registered (0: none).
    pending: AtomicU8,
    /// What frames polled inside this task (or frame) took of its costs;
    /// out of line, as most tasks hold none. See [`TaskHeader::hold`].
    held: OnceLock<Box<Held>>,
}

/// What a task's header starts from: its stack, its id, and when it was
/// spawned. A spawned task keeps only this until its first poll (`timed`).
#[derive(Clone, Copy)]
pub(crate) struct Spawned {
    pub(crate) stack: StackId,
    pub(crate) id: TaskId,
    /// A [`clock::now`] reading.
    pub(crate) at: u64,
}

impl Spawned {
    /// A task with the logical stack `stack`, spawned now.
    #[inline]
    pub(crate) fn now(stack: StackId) -> Spawned {
        Spawned {
            stack,
            id: TaskId::next(),
            at: clock::now(),
        }
    }
}

/// The costs frames inside a task took away from it, so that each of its
/// records shows only what the task held itself: a frame's costs are
/// recorded under the frame, below the task's leaf, and the task's leaf's
/// inclusive cost stays the task's whole cost.
#[derive(Default)]
struct Held {
    wall_ns: StdAtomicU64,
    busy_ns: StdAtomicU64,
    sched_ns: StdAtomicU64,
    polls: StdAtomicU64,
    wakes: StdAtomicU64,
}

/// One await point of a task, and the waiting done there so far. Written
/// by the task's poller only (the tag is decided in the poll, the waits are
/// added at the next poll's start); read by anyone making a record.
struct AwaitSlot {
    /// The await point's stack; 0 (the root, never an await point): free.
    stack: AtomicU32,
    idle_ns: AtomicU64,
    wakes: AtomicU64,
}

impl AwaitSlot {
    /// A task's await table, all slots free.
    fn table() -> Box<[AwaitSlot; MAX_AWAITS]> {
        Box::new(std::array::from_fn(|_| AwaitSlot {
            stack: AtomicU32::new(0),
            idle_ns: AtomicU64::new(0),
            wakes: AtomicU64::new(0),
        }))
    }
}

impl TaskHeader {
    /// A header for a task spawned now: the spawn is its first schedule.
    pub(crate) fn new(stack: StackId) -> TaskHeader {
        TaskHeader::created_at(stack, clock::now())
    }

    /// A header for a task (or a frame) that began at `spawned_at` (a
    /// [`clock::now`] reading): that is its first schedule.
    pub(crate) fn created_at(stack: StackId, spawned_at: u64) -> TaskHeader {
        TaskHeader::spawned(Spawned {
            stack,
            id: TaskId::next(),
            at: spawned_at,
        })
    }

    /// The header of the task `spawn` describes, as it was at its spawn.
    pub(crate) fn spawned(spawn: Spawned) -> TaskHeader {
        let Spawned {
            stack,
            id,
            at: spawned_at,
        } = spawn;
        TaskHeader {
            stack,
            id,
            spawned_at,
            scheduled_at: AtomicU64::new(spawned_at),
            poll_started: AtomicU64::new(0),
            poll_ended: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            sched_ns: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            wakes: AtomicU64::new(0),
            #[cfg(theseus_loom)]
            taken: std::sync::atomic::AtomicU64::new(0),
            awaits: SetOnce::new(),
            woken_by: AtomicU8::new(0),
            pending: AtomicU8::new(0),
            held: OnceLock::new(),
        }
    }

    /// This header, as it is now, for a task whose state moves into a
    /// shared cell (`cell::TaskState::share`). Only the poller's thread has
    /// written it (no waker of the task has been shared yet, so no await
    /// point or frame has touched it), and the copy is made during a poll,
    /// between the poller's writes at its start and at its end.
    pub(crate) fn copied(&self) -> TaskHeader {
        debug_assert!(self.awaits.get().is_none() && self.held.get().is_none());
        let copy = |value: &AtomicU64| AtomicU64::new(value.load(Relaxed));
        TaskHeader {
            stack: self.stack,
            id: self.id,
            spawned_at: self.spawned_at,
            scheduled_at: copy(&self.scheduled_at),
            poll_started: copy(&self.poll_started),
            poll_ended: copy(&self.poll_ended),
            busy_ns: copy(&self.busy_ns),
            sched_ns: copy(&self.sched_ns),
            polls: copy(&self.polls),
            wakes: copy(&self.wakes),
            #[cfg(theseus_loom)]
            taken: std::sync::atomic::AtomicU64::new(self.taken.load(Relaxed)),
            awaits: SetOnce::new(),
            woken_by: AtomicU8::new(self.woken_by.load(Relaxed)),
            pending: AtomicU8::new(self.pending.load(Relaxed)),
            held: OnceLock::new(),
        }
    }

    /// A frame polled inside this task (or frame) ends with the record
    /// `frame`: its costs leave this task's. A frame's costs lie within the
    /// task's, but not event by event (its scheduling delay runs from its
    /// own wake to its own poll, part of which the task spends polling
    /// other things), so each of them is capped at what the task has left
    /// of it now, and every event of the task's records stays the task's
    /// measure less what its frames took. Called on any thread, once per
    /// frame.
    pub(crate) fn hold(&self, frame: &mut TaskRecord, now: u64) {
        let own = self.to_record(Outcome::Unfinished, now);
        frame.wall_ns = frame.wall_ns.min(own.wall_ns);
        frame.busy_ns = frame.busy_ns.min(own.busy_ns);
        frame.sched_ns = frame.sched_ns.min(own.sched_ns);
        let idle = |r: &TaskRecord| r.wall_ns.saturating_sub(r.busy_ns + r.sched_ns);
        let excess = idle(frame).saturating_sub(idle(&own));
        frame.wall_ns -= excess;
        frame.polls = frame.polls.min(own.polls);
        frame.wakes = frame.wakes.min(own.wakes);
        let held = self.held.get_or_init(Box::default);
        held.wall_ns.fetch_add(frame.wall_ns, Relaxed);
        held.busy_ns.fetch_add(frame.busy_ns, Relaxed);
        held.sched_ns.fetch_add(frame.sched_ns, Relaxed);
        held.polls.fetch_add(frame.polls, Relaxed);
        held.wakes.fetch_add(frame.wakes, Relaxed);
    }

    /// The poll running now registers a waker for the await point `stack`:
    /// returns the tag its wakers carry, 0 when the task already has
    /// [`MAX_AWAITS`] others. Called on the poller's thread, during the poll.
    #[inline]
    pub(crate) fn register_await(&self, stack: StackId) -> u8 {
        let slots = match self.awaits.get() {
            Some(slots) => slots,
            None => {
                // Only the poller writes it (see `SetOnce::set`).
                self.awaits.set(AwaitSlot::table());
                self.awaits.get().expect("set just now")
            }
        };
        for (tag, slot) in (1u8..).zip(slots.iter()) {
            let here = slot.stack.load(Relaxed);
            if here == 0 {
                slot.stack.store(stack.0, Relaxed);
            } else if here != stack.0 {
                continue;
            }
            self.registered_again(tag);
            return tag;
        }
        0
    }

    /// The poll running now registers a waker for the await point whose
    /// tag [`TaskHeader::register_await`] gave already: `tag`, not 0.
    /// Called on the poller's thread, during the poll.
    #[inline]
    pub(crate) fn registered_again(&self, tag: u8) {
        if self.pending.load(Relaxed) == 0 {
            self.pending.store(tag, Relaxed);
        }
    }

    /// The task's waker was called. Returns whether this wake scheduled the
    /// task, and must be passed on to tokio; false: a schedule is pending,
    /// and the poll start that takes it is still to come, so this wake is
    /// that poll's too, and tokio must not hear of it (a second tokio wake
    /// landing after that poll began would poll the task again, and that
    /// poll would find no schedule: a wake lost from the counts).
    #[inline]
    pub(crate) fn on_wake(&self, tag: u8) -> bool {
        // A read-modify-write, not a load: it reads the latest schedule,
        // never one a poll start has already taken; and its release makes
        // what this thread did before waking visible to the poll that
        // takes the pending schedule (an acquire swap later in the order).
        if self.scheduled_at.fetch_or(NOT_SCHEDULED, Release) != NOT_SCHEDULED {
            return false;
        }
        let at = if self.poll_started.load(Relaxed) != 0 {
            AT_POLL_END
        } else {
            clock::now()
        };
        // Acquire: the poll start whose swap this follows set the task's
        // tokio waker, which the caller uses next. Failing, it lost to
        // another wake after the read above, whose schedule is pending and
        // ordered after this thread's release.
        let scheduled = self
            .scheduled_at
            .compare_exchange(NOT_SCHEDULED, at, AcqRel, Relaxed)
            .is_ok();
        if scheduled {
            // Before the wake reaches tokio, and only tokio's wake makes
            // the poll that takes this schedule (no other wake does while
            // it is pending), so that poll reads this tag.
            self.woken_by.store(tag, Relaxed);
            self.wakes.fetch_add(1, Relaxed);
        }
        scheduled
    }

    /// Adds a wait that ended with a wake through a waker tagged `tag`.
    #[inline]
    fn waited(&self, tag: u8, idle_ns: u64) {
        let slot = usize::from(tag)
            .checked_sub(1)
            .and_then(|i| self.awaits.get()?.get(i));
        if let Some(slot) = slot {
            bump(&slot.wakes, 1);
            // After the swap of `scheduled_at` that took this wait, for
            // `to_record`: a reader that sees it no longer sees the schedule.
            slot.idle_ns
                .store(slot.idle_ns.load(Relaxed) + idle_ns, Release);
        }
    }

    /// A poll is starting; returns its start time in ticks. Inlined into
    /// the poll: a call of its own saved and restored six registers.
    #[inline(always)]
    pub(crate) fn on_poll_start(&self) -> u64 {
        let now = clock::now();
        // A swap, not a load and a store: a wake racing with this poll's
        // start must either be consumed here or stay pending for the next.
        // Acquire: the wakes this schedule stood for, their writes; release:
        // the tokio waker set before the first poll, to the next wake.
        let scheduled = self.scheduled_at.swap(NOT_SCHEDULED, AcqRel);
        // Before `sched_ns`, for `to_record`.
        self.poll_started.store(now, Relaxed);
        if scheduled != NOT_SCHEDULED {
            let ended = self.poll_ended.load(Relaxed);
            let ready = ready_at(scheduled, ended);
            bump_published(&self.sched_ns, clock::nanos_between(ready, now));
            #[cfg(theseus_loom)]
            self.taken.fetch_add(1, Relaxed);
            // Not the spawn: a wake ended a wait that began when the last
            // poll did.
            if ended != 0 {
                let tag = self.woken_by.load(Relaxed);
                self.waited(tag, clock::nanos_between(ended, ready));
            }
        }
        self.pending.store(0, Relaxed);
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
        self.scheduled_at.store(NOT_SCHEDULED, Relaxed);
        self.poll_started.store(now, Relaxed);
        bump_published(&self.sched_ns, waited);
        now
    }

    /// The poll that began at `start` is over; returns the time it ended.
    #[inline]
    pub(crate) fn on_poll_end(&self, start: u64) -> u64 {
        let now = clock::now();
        // In this order, for `to_record`.
        self.poll_ended.store(now, Relaxed);
        self.poll_started.store(0, Release);
        bump_published(&self.busy_ns, clock::nanos_between(start, now));
        bump(&self.polls, 1);
        now
    }

    /// The record of this task as of `now` (a [`clock::now`] reading).
    ///
    /// Read while the task runs, it may miss, for that instant, the poll or
    /// the wait that is just ending, never count it twice: once `busy_ns`
    /// holds a poll, `poll_started` no longer shows it; once `sched_ns`
    /// holds a wait, `scheduled_at` no longer does; once `poll_started`
    /// shows a poll ended, `poll_ended` is its end (the poller's release
    /// stores of all three, the acquire loads here).
    pub(crate) fn to_record(&self, outcome: Outcome, now: u64) -> TaskRecord {
        let mut record = self.blank_record(outcome, now);
        self.fill_record(&mut record, now);
        record
    }

    /// Hands the profiler this task's record as of `now` (its end): as
    /// [`TaskHeader::to_record`] makes it, but filled where it is handed
    /// over. A record is a few hundred bytes, and copying it out of a
    /// function cost more than filling it.
    pub(crate) fn record_end(&self, outcome: Outcome, now: u64) {
        let mut record = self.blank_record(outcome, now);
        self.fill_record(&mut record, now);
        theseus_profiler::record(&record);
    }

    /// The record of this task with what never changes (its id, stack and
    /// wall time to `now`), and nothing yet of its polls and waits.
    #[inline(always)]
    fn blank_record(&self, outcome: Outcome, now: u64) -> TaskRecord {
        TaskRecord {
            id: self.id,
            stack: self.stack,
            wall_ns: clock::nanos_between(self.spawned_at, now),
            busy_ns: 0,
            sched_ns: 0,
            polls: 0,
            wakes: 0,
            outcome,
            awaits: AwaitCosts::NONE,
            kind: RecordKind::Task,
        }
    }

    /// Fills `record`, a [`TaskHeader::blank_record`], with this task's
    /// polls and waits as of `now`: see [`TaskHeader::to_record`].
    #[inline(always)]
    fn fill_record(&self, record: &mut TaskRecord, now: u64) {
        // The await points first: a wait added to one (after the poll start
        // took its schedule) is then no longer pending below.
        if let Some(slots) = self.awaits.get() {
            for slot in slots.iter() {
                let stack = slot.stack.load(Relaxed);
                if stack == 0 {
                    break;
                }
                record.awaits.push(AwaitCost {
                    stack: StackId(stack),
                    idle_ns: slot.idle_ns.load(Acquire),
                    wakes: slot.wakes.load(Relaxed),
                    waiting: false,
                });
            }
        }
        record.busy_ns = self.busy_ns.load(Acquire);
        record.sched_ns = self.sched_ns.load(Acquire);
        // The wait going on now, if any, not yet added to its await point.
        if let Some((tag, idle_ns, wakes)) = self.pending_now(record, now) {
            let open_slot = usize::from(tag).checked_sub(1);
            if let Some(wait) = open_slot.and_then(|i| record.awaits.iter_mut().nth(i)) {
                wait.idle_ns += idle_ns;
                wait.wakes += wakes;
                // Not yet woken: a wait of its own, which no wake counts.
                wait.waiting = wakes == 0;
            }
        }
        record.polls = self.polls.load(Relaxed);
        record.wakes = self.wakes.load(Relaxed);
        self.less_held(record);
    }

    /// For [`TaskHeader::to_record`], after it read `busy_ns` and
    /// `sched_ns` into `record`: adds what is going on now, a poll in
    /// progress or a wait in a queue, to `record`, and returns the wait
    /// going on now that no await point holds yet, if any: (tag, idle ns,
    /// wakes).
    #[inline(always)]
    fn pending_now(&self, record: &mut TaskRecord, now: u64) -> Option<(u8, u64, u64)> {
        // A live task may be mid-poll or waiting in a queue: count that too.
        let poll_started = self.poll_started.load(Acquire);
        if poll_started != 0 {
            record.busy_ns += clock::nanos_between(poll_started, now);
            return None;
        }
        // A task dropped while queued (cancelled at shutdown) waited
        // for a worker until then.
        let ended = self.poll_ended.load(Relaxed);
        let ready = match self.scheduled_at.load(Relaxed) {
            NOT_SCHEDULED => NOT_SCHEDULED,
            at => ready_at(at, ended),
        };
        // (Not when scheduled at the end of a first poll still running.)
        if ready != NOT_SCHEDULED {
            record.sched_ns += clock::nanos_between(ready, now);
            if ended != 0 {
                let waited = clock::nanos_between(ended, ready);
                return Some((self.woken_by.load(Relaxed), waited, 1));
            }
        } else if ended != 0 {
            // Still waiting: nothing woke it, so no waker says where.
            let waited = clock::nanos_between(ended, now);
            return Some((self.pending.load(Relaxed), waited, 0));
        }
        None
    }

    /// Takes what this task's frames held ([`TaskHeader::hold`]) off
    /// `record`.
    fn less_held(&self, record: &mut TaskRecord) {
        if let Some(held) = self.held.get() {
            let less = |value: &mut u64, by: &StdAtomicU64| {
                *value = value.saturating_sub(by.load(Relaxed));
            };
            less(&mut record.wall_ns, &held.wall_ns);
            less(&mut record.busy_ns, &held.busy_ns);
            less(&mut record.sched_ns, &held.sched_ns);
            less(&mut record.polls, &held.polls);
            less(&mut record.wakes, &held.wakes);
        }
    }
}

/// What the loom models of the task cell (`cell::loom_models`) read of the
/// header's state.
#[cfg(theseus_loom)]
impl TaskHeader {
    /// The schedules poll starts took.
    pub(crate) fn schedules_taken(&self) -> u64 {
        self.taken.load(Relaxed)
    }

    /// The polls ended and the wakes counted.
    pub(crate) fn polls_and_wakes(&self) -> (u64, u64) {
        (self.polls.load(Relaxed), self.wakes.load(Relaxed))
    }

    /// Whether a schedule is pending for the next poll.
    pub(crate) fn is_scheduled(&self) -> bool {
        self.scheduled_at.load(Relaxed) != NOT_SCHEDULED
    }

    /// The tag of the wake that made the last schedule.
    pub(crate) fn woken_by(&self) -> u8 {
        self.woken_by.load(Relaxed)
    }

    /// The wakes that ended waits at each await point so far.
    pub(crate) fn await_wakes(&self) -> Vec<u64> {
        self.awaits.get().map_or_else(Vec::new, |slots| {
            slots.iter().map(|slot| slot.wakes.load(Relaxed)).collect()
        })
    }
}

/// When the task became ready to run for a schedule made at `at` (not
/// `NOT_SCHEDULED`), given the end of its last poll: not before that end,
/// which matters for a wake that read the clock before the poll ended but
/// landed after (or during the poll, `AT_POLL_END`).
#[inline]
fn ready_at(at: u64, poll_ended: u64) -> u64 {
    match at {
        AT_POLL_END => poll_ended,
        at => at.max(poll_ended),
    }
}

/// Adds to a counter that has one writer at a time: a load and a store, no
/// locked read-modify-write on the hot path.
#[inline]
fn bump(counter: &AtomicU64, by: u64) {
    counter.store(counter.load(Relaxed) + by, Relaxed);
}

/// [`bump`], publishing the writer's earlier stores to a reader that loads
/// the counter with `Acquire` ([`TaskHeader::to_record`]). A plain store on x86.
#[inline]
fn bump_published(counter: &AtomicU64, by: u64) {
    counter.store(counter.load(Relaxed) + by, Release);
}

#[cfg(all(test, theseus_loom))]
mod loom_models;

#[cfg(all(test, not(theseus_loom)))]
mod tests {
    use super::*;

    #[test]
    fn wakes_are_counted_once_per_schedule() {
        let header = TaskHeader::new(StackId::ROOT);
        let start = header.on_poll_start();
        header.on_poll_end(start);
        assert!(header.on_wake(0));
        assert!(!header.on_wake(0), "already scheduled");
        let start = header.on_poll_start();
        header.on_poll_end(start);
        let record = header.to_record(Outcome::Completed, clock::now());
        assert_eq!((record.polls, record.wakes), (2, 1));
    }

    #[test]
    fn a_wake_during_a_poll_is_scheduled_at_its_end() {
        let header = TaskHeader::new(StackId::ROOT);
        let start = header.on_poll_start();
        assert!(header.on_wake(0));
        std::thread::sleep(std::time::Duration::from_millis(20));
        let end = header.on_poll_end(start);
        let next = header.on_poll_start();
        header.on_poll_end(next);
        let record = header.to_record(Outcome::Completed, clock::now());
        // The 20 ms poll is busy time; waiting began only at its end.
        assert!(record.busy_ns >= 20_000_000, "{record:?}");
        assert!(
            record.sched_ns < clock::nanos_between(start, end) / 2,
            "{record:?}"
        );
        assert_eq!(record.wakes, 1);
    }

    #[test]
    fn a_wake_that_lands_after_a_poll_waits_from_its_end() {
        let header = TaskHeader::new(StackId::ROOT);
        // The waker reads the clock before the poll starts...
        let woken_at = clock::now();
        let start = header.on_poll_start();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let end = header.on_poll_end(start);
        // ...and its compare-exchange lands after the poll has ended.
        let waited_before = header.sched_ns.load(Relaxed);
        assert!(header
            .scheduled_at
            .compare_exchange(NOT_SCHEDULED, woken_at, Relaxed, Relaxed)
            .is_ok());
        let pending = header.to_record(Outcome::Unfinished, clock::now());
        let next = header.on_poll_start();
        let waited = header.sched_ns.load(Relaxed) - waited_before;
        // Waiting began at the poll's end, not during the poll.
        assert!(waited <= clock::nanos_between(end, next), "{waited}");
        assert!(
            pending.busy_ns + pending.sched_ns <= pending.wall_ns,
            "{pending:?}"
        );
    }

    #[test]
    fn a_task_never_woken_shows_no_wakes() {
        let header = TaskHeader::new(StackId::ROOT);
        let start = header.on_poll_start();
        header.on_poll_end(start);
        let record = header.to_record(Outcome::Cancelled, clock::now());
        assert_eq!((record.polls, record.wakes), (1, 0));
    }
}
