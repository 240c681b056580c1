//! The wrapper that times a task: every poll, every wake, and its end.
//!
//! A profiled task is a tokio task whose future is [`Timed`]: the user's
//! future inside, and beside it a shared [`TaskCell`] (its [`Header`] of
//! timestamps and counters). The wrapper is where the task's life is seen:
//!
//! - each poll is timed, and runs with the profiler told which task it is
//!   and where its frames begin on the machine stack (the poll boundary), so
//!   tasks it spawns get its logical stack as their parent's;
//! - the future is polled with theseus's own waker, the `TaskCell`, which
//!   notes the wake and passes it on to tokio's waker for the task: that is
//!   how the time from a wake to the next poll (`SchedNs`) is exact;
//! - a panic is caught long enough to record the task as panicked, then
//!   passed on to tokio, which hands it to the `JoinHandle` as usual;
//! - when the task ends (completed, panicked, or dropped unfinished: aborted
//!   or cancelled at shutdown) one record goes to the profiler.

use crate::header::Header;
use crate::registry::{registry, Slot};
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use theseus_profiler::{Outcome, StackId};

/// What a profiled task shares with its wakers and the registry.
pub(crate) struct TaskCell {
    pub(crate) header: Header,
    pub(crate) slot: Slot,
    /// tokio's waker for this task, from its first poll. A tokio task's
    /// waker never changes, so it is set once and read without a lock.
    tokio_waker: OnceLock<Waker>,
}

impl TaskCell {
    /// A cell for a task spawned now, entered in the live-task registry.
    pub(crate) fn register(stack: StackId) -> Arc<TaskCell> {
        let cell = Arc::new(TaskCell {
            header: Header::new(stack),
            slot: Slot::new(),
            tokio_waker: OnceLock::new(),
        });
        registry().insert(&cell);
        cell
    }

    /// Takes the task out of the registry and records its end: in that
    /// order, so a profile written meanwhile never counts the task both as
    /// live and as ended.
    pub(crate) fn finish(&self, outcome: Outcome, now: u64) {
        registry().remove(self);
        theseus_profiler::record(&self.header.record(outcome, now));
    }
}

impl Wake for TaskCell {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.header.on_wake();
        if let Some(waker) = self.tokio_waker.get() {
            waker.wake_by_ref();
        }
    }
}

/// A spawned future, timed. See the module docs.
pub(crate) struct Timed<F> {
    cell: Arc<TaskCell>,
    /// The waker every poll of the inner future gets: `cell`, as a `Waker`.
    waker: Waker,
    /// `None` once the inner future has been dropped.
    inner: Option<F>,
}

impl<F: Future> Timed<F> {
    pub(crate) fn new(stack: StackId, inner: F) -> Timed<F> {
        crate::tokio_tasks::own_task_started();
        let cell = TaskCell::register(stack);
        Timed {
            waker: Waker::from(cell.clone()),
            cell,
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
        let Timed { cell, waker, inner } = unsafe { self.get_unchecked_mut() };
        let own_waker = match cell.tokio_waker.get() {
            None => {
                let _ = cell.tokio_waker.set(cx.waker().clone());
                true
            }
            Some(first) => first.will_wake(cx.waker()),
        };
        if own_waker {
            poll_timed(cell, inner, &mut Context::from_waker(waker))
        } else {
            // Polled with another waker than the first: not something tokio
            // does with a task. Pass the caller's waker through rather than
            // wake the wrong task; the poll is still timed, its wake is not.
            poll_timed(cell, inner, cx)
        }
    }
}

/// One timed poll of the future in `slot`, and the task's end if it ends.
fn poll_timed<F: Future>(
    cell: &TaskCell,
    slot: &mut Option<F>,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    let inner = slot
        .as_mut()
        .expect("a theseus task was polled after it completed");
    // SAFETY: `inner` stays where it is until dropped in place by `finish`
    // (see `Timed::poll`).
    let inner = unsafe { Pin::new_unchecked(inner) };
    let header = &cell.header;
    let start = header.on_poll_start();
    let polled = {
        // The poll boundary: frames deeper than this local belong to the task.
        let marker = 0u8;
        let boundary = std::hint::black_box(&marker) as *const u8 as usize;
        let _scope = theseus_profiler::enter_poll(header.stack, boundary);
        catch_unwind(AssertUnwindSafe(|| poll_below_boundary(inner, cx)))
    };
    let end = header.on_poll_end(start);
    match polled {
        Ok(Poll::Pending) => Poll::Pending,
        Ok(Poll::Ready(value)) => {
            finish(cell, slot, Outcome::Completed, end);
            Poll::Ready(value)
        }
        Err(payload) => {
            finish(cell, slot, Outcome::Panicked, end);
            resume_unwind(payload)
        }
    }
}

/// Drops the future in `slot` in place, then records the task's end.
/// Pinned futures (tokio's `Sleep` sits in a timer list by address) must
/// never be moved out to be dropped.
fn finish<F>(cell: &TaskCell, slot: &mut Option<F>, outcome: Outcome, now: u64) {
    // A destructor that panics must not lose the record.
    let dropped = catch_unwind(AssertUnwindSafe(|| *slot = None));
    cell.finish(outcome, now);
    crate::tokio_tasks::own_task_ended();
    if let Err(payload) = dropped {
        resume_unwind(payload);
    }
}

/// Polls `future` in a machine frame of its own.
///
/// The profiler keeps the machine frames below the poll boundary (a local in
/// the caller's frame). Were the task's `poll` inlined into the caller, its
/// frames would share the caller's machine frame and be cut with it; in this
/// never-inlined frame, everything inlined into it is below the boundary.
#[inline(never)]
pub(crate) fn poll_below_boundary<F: Future + ?Sized>(
    future: Pin<&mut F>,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    future.poll(cx)
}

impl<F> Drop for Timed<F> {
    fn drop(&mut self) {
        // Dropped before it ended: aborted, or cancelled at shutdown.
        if self.inner.is_some() {
            finish(
                &self.cell,
                &mut self.inner,
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
        let ran = {
            let marker = 0u8;
            let boundary = std::hint::black_box(&marker) as *const u8 as usize;
            let _scope = theseus_profiler::enter_poll(header.stack, boundary);
            catch_unwind(AssertUnwindSafe(|| call_below_boundary(f)))
        };
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

/// [`poll_below_boundary`] for a blocking closure.
#[inline(never)]
fn call_below_boundary<R>(f: impl FnOnce() -> R) -> R {
    f()
}

impl<F> Drop for TimedBlocking<F> {
    fn drop(&mut self) {
        // Never ran: the runtime shut down first.
        if self.f.is_some() {
            self.cell.finish(Outcome::Cancelled, crate::clock::now());
        }
    }
}
