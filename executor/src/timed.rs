//! The wrapper that times a task: every poll, every wake, and its end.
//!
//! A profiled task is a tokio task whose future is [`Timed`]: the user's
//! future inside, and beside it a shared [`TaskCell`] (its header of
//! timestamps and counters). The wrapper is where the task's life is seen:
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
use crate::cell::TaskCell;
use crate::census::RuntimeSlot;
use crate::waker::with_task_waker;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use theseus_profiler::{Outcome, StackId};

/// A spawned future, timed. See the module docs.
pub(crate) struct Timed<F> {
    cell: Arc<TaskCell>,
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
            cell: TaskCell::new(stack),
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
        let Timed {
            cell,
            inner,
            runtime,
        } = unsafe { self.get_unchecked_mut() };
        let own_waker = match cell.tokio_waker() {
            // Only polls write it, and tokio never polls a task on two
            // threads at once.
            None => {
                cell.set_tokio_waker(cx.waker().clone());
                true
            }
            Some(first) => first.will_wake(cx.waker()),
        };
        if own_waker {
            with_task_waker(cell, |waker| {
                poll_timed(cell, inner, *runtime, &mut Context::from_waker(waker))
            })
        } else {
            // Polled with another waker than the first: not something tokio
            // does with a task. Pass the caller's waker through rather than
            // wake the wrong task; the poll is still timed, its wake is not.
            poll_timed(cell, inner, *runtime, cx)
        }
    }
}

/// One timed poll of the future in `slot`, and the task's end if it ends.
fn poll_timed<F: Future>(
    cell: &Arc<TaskCell>,
    slot: &mut Option<F>,
    runtime: RuntimeSlot,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    let inner = slot
        .as_mut()
        .expect("a theseus task was polled after it completed");
    // SAFETY: `inner` stays where it is until dropped in place by `finish`
    // (see `Timed::poll`).
    let inner = unsafe { Pin::new_unchecked(inner) };
    let header = &cell.header;
    cell.ensure_registered();
    let start = header.on_poll_start();
    let polled = catch_unwind(AssertUnwindSafe(|| {
        cell.polling(|| poll_as_task(header.stack, || inner.poll(cx)))
    }));
    let end = header.on_poll_end(start);
    match polled {
        Ok(Poll::Pending) => Poll::Pending,
        Ok(Poll::Ready(value)) => {
            finish(cell, slot, runtime, Outcome::Completed, end);
            Poll::Ready(value)
        }
        Err(payload) => {
            finish(cell, slot, runtime, Outcome::Panicked, end);
            resume_unwind(payload)
        }
    }
}

/// Drops the future in `slot` in place, then records the task's end.
/// Pinned futures (tokio's `Sleep` sits in a timer list by address) must
/// never be moved out to be dropped.
fn finish<F>(
    cell: &TaskCell,
    slot: &mut Option<F>,
    runtime: RuntimeSlot,
    outcome: Outcome,
    now: u64,
) {
    // A destructor that panics must not lose the record.
    let dropped = catch_unwind(AssertUnwindSafe(|| *slot = None));
    cell.finish(outcome, now);
    crate::census::task_ended(runtime);
    if let Err(payload) = dropped {
        resume_unwind(payload);
    }
}

impl<F> Drop for Timed<F> {
    fn drop(&mut self) {
        // Dropped before it ended: aborted, or cancelled at shutdown.
        if self.inner.is_some() {
            finish(
                &self.cell,
                &mut self.inner,
                self.runtime,
                Outcome::Cancelled,
                crate::clock::now(),
            );
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
