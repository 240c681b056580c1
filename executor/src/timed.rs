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
use std::cell::UnsafeCell;
use std::future::Future;
use std::mem::MaybeUninit;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use theseus_profiler::{Outcome, StackId};

/// What a profiled task shares with its wakers and the registry.
pub(crate) struct TaskCell {
    pub(crate) header: Header,
    pub(crate) slot: Slot,
    /// tokio's waker for this task, from its first poll. A tokio task's
    /// waker never changes, so it is set once and read without a lock.
    tokio_waker: SetOnce<Waker>,
}

impl TaskCell {
    /// A cell for a task spawned now.
    pub(crate) fn new(stack: StackId) -> Arc<TaskCell> {
        Arc::new(TaskCell {
            header: Header::new(stack),
            slot: Slot::new(),
            tokio_waker: SetOnce::new(),
        })
    }

    /// A cell for a task spawned now, entered in the live-task registry.
    pub(crate) fn register(stack: StackId) -> Arc<TaskCell> {
        let cell = TaskCell::new(stack);
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
        let cell = TaskCell::new(stack);
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
            // Only polls write it, and tokio never polls a task on two
            // threads at once.
            None => {
                cell.tokio_waker.set(cx.waker().clone());
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
    cell: &Arc<TaskCell>,
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
    // Registered when first polled, in the polling thread's shard, rather
    // than at spawn in the spawner's: a short task then takes and leaves
    // its entry on one thread, and no lock is shared between the thread
    // that spawns and the one that runs. The price: a profile written
    // mid-run does not show tasks still queued for their first poll.
    if !cell.slot.is_registered() {
        registry().insert(cell);
    }
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

/// A value written once, by one writer, and read by any thread after that.
///
/// `OnceLock` would do, but its first write takes the slow path of a
/// `Once` (a compare-and-swap loop and a futex check), once per task; here
/// the single writer (the task's poller) makes a release store enough.
struct SetOnce<T> {
    set: AtomicBool,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: the value is written once, before `set` is released, and only
// read (as `&T`) after `set` is acquired; `T: Send + Sync` makes sharing
// that reference and dropping the value on any thread sound.
unsafe impl<T: Send + Sync> Sync for SetOnce<T> {}

impl<T> SetOnce<T> {
    fn new() -> SetOnce<T> {
        SetOnce {
            set: AtomicBool::new(false),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    fn get(&self) -> Option<&T> {
        if self.set.load(Ordering::Acquire) {
            // SAFETY: `set` is true only after the value was written, and
            // it is never written again.
            Some(unsafe { (*self.value.get()).assume_init_ref() })
        } else {
            None
        }
    }

    /// Sets the value. The caller must be the only writer, and call this at
    /// most once: `Timed::poll` on the first poll, which tokio never runs
    /// on two threads at once.
    fn set(&self, value: T) {
        debug_assert!(!self.set.load(Ordering::Relaxed), "set twice");
        // SAFETY: no reader looks at the value before `set` is true, and
        // there is one writer (see above), so nothing aliases this write.
        unsafe { (*self.value.get()).write(value) };
        self.set.store(true, Ordering::Release);
    }
}

impl<T> Drop for SetOnce<T> {
    fn drop(&mut self) {
        if *self.set.get_mut() {
            // SAFETY: set means initialized; `&mut self` means no reader.
            unsafe { self.value.get_mut().assume_init_drop() };
        }
    }
}
