//! The wrapper that times a task: every poll, every wake, and its end.
//!
//! A profiled task is a tokio task whose future is [`Timed`]: the user's
//! future inside, and beside it the task's header of timestamps and
//! counters: during its first poll in a [`TaskState`] on the poller's
//! stack, and once it outlives that poll (or its waker does) in a shared
//! [`TaskCell`] (see `cell`). The wrapper is where the task's life is seen:
//!
//! - each poll is timed, and runs with the profiler told which task it is
//!   and where its frames begin on the machine stack (`boundary`), so tasks
//!   it spawns get its logical stack as their parent's;
//! - the future is polled with theseus's own waker (`waker`), which notes
//!   the wake and passes it on to tokio's waker for the task: that is how
//!   the time from a wake to the next poll (`SchedNs`) is exact, and how the
//!   task's waits are split by await point;
//! - a panic is caught long enough to record the task as panicked, then
//!   passed on to tokio, which hands it to the `JoinHandle` as usual;
//! - when the task ends (completed, panicked, or dropped unfinished: aborted
//!   or cancelled at shutdown) one record goes to the profiler.
//!
//! [`TimedBlocking`] does the same for a `spawn_blocking` closure: one poll.

use crate::boundary::poll_as_task;
use crate::cell::{TaskCell, TaskState};
use crate::census::RuntimeSlot;
use crate::header::{Spawned, TaskHeader};
use crate::waker::{with_state_waker, with_task_waker};
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use theseus_profiler::{Outcome, StackId};

/// A spawned future, timed. See the module docs.
pub(crate) struct Timed<F> {
    /// The task's stack, id and spawn time, its header's start.
    spawn: Spawned,
    /// The task's cell, from the end of a first poll it did not end in;
    /// until then its header lives on the stack of that poll (`cell::state`).
    cell: Option<Arc<TaskCell>>,
    /// The runtime whose census counts the task.
    runtime: RuntimeSlot,
    /// `None` once the inner future has been dropped.
    inner: Option<F>,
}

impl<F: Future> Timed<F> {
    /// A task of the runtime `runtime`, spawned now.
    pub(crate) fn new(stack: StackId, inner: F, runtime: RuntimeSlot) -> Timed<F> {
        crate::census::task_started(runtime);
        Timed {
            spawn: Spawned::now(stack),
            cell: None,
            runtime,
            inner: Some(inner),
        }
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `inner` is structurally pinned: it is never moved, only
        // dropped in place (`finish` assigns `None` over it). The other
        // fields are not pinned and nothing else projects `self`.
        let this = unsafe { self.get_unchecked_mut() };
        let Some(cell) = &this.cell else {
            return first_poll(this, cx.waker());
        };
        let own_waker = match cell.tokio_waker() {
            // Only polls write it, and tokio never polls a task on two
            // threads at once.
            None => {
                cell.set_tokio_waker(cx.waker().clone());
                true
            }
            Some(first) => first.will_wake(cx.waker()),
        };
        let (slot, runtime) = (&mut this.inner, this.runtime);
        if own_waker {
            with_task_waker(cell, |waker| poll_timed(cell, slot, runtime, waker))
        } else {
            // Polled with another waker than the first: not something tokio
            // does with a task. Pass the caller's waker through rather than
            // wake the wrong task; the poll is still timed, its wake is not.
            poll_timed(cell, slot, runtime, cx.waker())
        }
    }
}

/// The first poll of `timed`'s future, `tokio` its waker: the header on
/// this frame's stack, moved into a cell only if something shares it or
/// the task is still pending at the end (see `cell::state`).
fn first_poll<F: Future>(timed: &mut Timed<F>, tokio: &Waker) -> Poll<F::Output> {
    let state = pin!(TaskState::new(TaskHeader::spawned(timed.spawn)));
    let state = state.as_ref();
    let inner = timed
        .inner
        .as_mut()
        .expect("a theseus task was polled after it completed");
    // SAFETY: `inner` stays where it is until dropped in place by `finish`
    // (see `Timed::poll`).
    let inner = unsafe { Pin::new_unchecked(inner) };
    state.ensure_registered();
    let start = state.header().on_poll_start();
    let stack = timed.spawn.stack;
    let polled = catch_unwind(AssertUnwindSafe(|| {
        with_state_waker(&state, |waker| {
            state.polling(tokio, || poll_inner(stack, inner, waker))
        })
    }));
    if !matches!(polled, Ok(Poll::Pending)) {
        state.unlist();
    }
    // The header may have moved into a cell during the poll.
    let end = state.header().on_poll_end(start);
    let outcome = match polled {
        Ok(Poll::Pending) => {
            timed.cell = Some(state.keep(tokio));
            return Poll::Pending;
        }
        Ok(Poll::Ready(_)) => Outcome::Completed,
        Err(_) => Outcome::Panicked,
    };
    finish(&mut timed.inner, timed.runtime, || {
        state.finish(outcome, end)
    });
    polled.unwrap_or_else(|payload| resume_unwind(payload))
}

/// One timed poll of the future in `slot`, a task whose header is in
/// `cell`, and the task's end if it ends. Inlined into `Timed::poll`, the
/// poll start with it: one frame for the bookkeeping of every poll after
/// the first, rather than three.
#[inline(always)]
fn poll_timed<F: Future>(
    cell: &Arc<TaskCell>,
    slot: &mut Option<F>,
    runtime: RuntimeSlot,
    waker: &Waker,
) -> Poll<F::Output> {
    let inner = slot
        .as_mut()
        .expect("a theseus task was polled after it completed");
    // SAFETY: `inner` stays where it is until dropped in place by `finish`
    // (see `Timed::poll`).
    let inner = unsafe { Pin::new_unchecked(inner) };
    let header = &cell.header;
    let start = header.on_poll_start();
    let polled = catch_unwind(AssertUnwindSafe(|| {
        cell.polling(|| poll_inner(header.stack, inner, waker))
    }));
    if let Ok(Poll::Pending) = polled {
        header.on_poll_end(start);
        return Poll::Pending;
    }
    ended(cell, slot, runtime, start, polled)
}

/// The end of a task whose poll that began at `start` returned `polled`,
/// ready or panicking: its last poll timed, its end recorded. Out of line,
/// so that the pending polls before it keep a small frame.
#[inline(never)]
fn ended<F: Future>(
    cell: &Arc<TaskCell>,
    slot: &mut Option<F>,
    runtime: RuntimeSlot,
    start: u64,
    polled: std::thread::Result<Poll<F::Output>>,
) -> Poll<F::Output> {
    cell.unlist();
    let end = cell.header.on_poll_end(start);
    let outcome = match polled {
        Ok(_) => Outcome::Completed,
        Err(_) => Outcome::Panicked,
    };
    finish(slot, runtime, || cell.finish(outcome, end));
    polled.unwrap_or_else(|payload| resume_unwind(payload))
}

/// The poll itself, as the task whose logical stack is `stack`, with
/// `waker`. One function for every poll of a task, first or not, never
/// inlined: the machine frames below the poll boundary, which name the
/// task's spawns and await points, are then the same in every poll.
#[inline(never)]
fn poll_inner<F: Future>(stack: StackId, inner: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    poll_as_task(stack, || inner.poll(&mut Context::from_waker(waker)))
}

/// Drops the future in `slot` in place, then records the task's end
/// (`record`). Pinned futures (tokio's `Sleep` sits in a timer list by
/// address) must never be moved out to be dropped.
fn finish<F>(slot: &mut Option<F>, runtime: RuntimeSlot, record: impl FnOnce()) {
    // A destructor that panics must not lose the record.
    let dropped = catch_unwind(AssertUnwindSafe(|| *slot = None));
    record();
    crate::census::task_ended(runtime);
    if let Err(payload) = dropped {
        resume_unwind(payload);
    }
}

impl<F> Drop for Timed<F> {
    fn drop(&mut self) {
        // Dropped before it ended: aborted, or cancelled at shutdown.
        if self.inner.is_some() {
            if let Some(cell) = &self.cell {
                cell.unlist();
            }
            let now = crate::clock::now();
            let spawn = self.spawn;
            let cell = self.cell.take();
            finish(&mut self.inner, self.runtime, || match cell {
                Some(cell) => cell.finish(Outcome::Cancelled, now),
                // Never polled: its header is as it was at the spawn.
                None => TaskHeader::spawned(spawn).record_end(Outcome::Cancelled, now),
            });
        }
    }
}

/// A blocking closure, timed as a task with a single poll: `SchedNs` is its
/// wait for a blocking thread, `BusyNs` its run.
pub(crate) struct TimedBlocking<F> {
    cell: Arc<TaskCell>,
    f: Option<F>,
}

impl<F: FnOnce() -> R, R> TimedBlocking<F> {
    pub(crate) fn new(stack: StackId, f: F) -> TimedBlocking<F> {
        TimedBlocking {
            cell: TaskCell::register(stack),
            f: Some(f),
        }
    }

    pub(crate) fn run(mut self) -> R {
        let f = self.f.take().expect("a blocking task runs once");
        let header = &self.cell.header;
        let start = header.on_poll_start();
        let ran = catch_unwind(AssertUnwindSafe(|| poll_as_task(header.stack, f)));
        let end = header.on_poll_end(start);
        match ran {
            Ok(value) => {
                self.cell.finish(Outcome::Completed, end);
                value
            }
            Err(payload) => {
                self.cell.finish(Outcome::Panicked, end);
                resume_unwind(payload)
            }
        }
    }
}

impl<F> Drop for TimedBlocking<F> {
    fn drop(&mut self) {
        // Never ran: the runtime shut down first.
        if self.f.is_some() {
            self.cell.finish(Outcome::Cancelled, crate::clock::now());
        }
    }
}
