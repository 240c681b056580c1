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
//! - that waker also tells where the task waits: see below;
//! - a panic is caught long enough to record the task as panicked, then
//!   passed on to tokio, which hands it to the `JoinHandle` as usual;
//! - when the task ends (completed, panicked, or dropped unfinished: aborted
//!   or cancelled at shutdown) one record goes to the profiler.
//!
//! # The waker, and await points
//!
//! A future that cannot go on stores its task's waker (a clone of it) with
//! whatever will wake it: a timer, a socket's readiness, a channel, a lock.
//! It does so from inside the task's poll, with every async fn that led to
//! it still on the machine stack. So the waker is built from a
//! [`RawWakerVTable`] of theseus's own (not `std::task::Wake`, which hides
//! `clone`): when the poll's waker is cloned during the task's own poll, on
//! its own thread (a thread-local says which task this thread is polling),
//! the profiler captures that stack as an await point
//! ([`theseus_profiler::await_point`]), and the clone carries the await
//! point's tag, an index into the task's header, in the low bits of its
//! data pointer. A `wake_by_ref` on the poll's own waker during the poll
//! (how a future yields) is an await point the same way.
//!
//! When a clone wakes the task, its tag says which await point the wait
//! ended at, so under `select!` or `join!`, where a poll leaves several
//! wakers behind, the wait goes to the one that fired. Clones are distinct
//! from the poll's own waker, so futures that keep a waker and replace it
//! only when `will_wake` says it differs re-register on every poll, and
//! every pending poll is seen.

use crate::header::Header;
use crate::registry::{registry, Slot};
use crate::set_once::SetOnce;
use std::cell::Cell;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use theseus_profiler::{Outcome, StackId, MAX_AWAITS};

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

impl TaskCell {
    /// A wake through a waker tagged `tag`.
    fn wake(&self, tag: u8) {
        self.header.on_wake(tag);
        if let Some(waker) = self.tokio_waker.get() {
            waker.wake_by_ref();
        }
    }

    /// The tag for the await point registering a waker now, in this task's
    /// poll on this thread; 0 when there is none to tell.
    #[inline]
    fn await_tag(&self) -> u8 {
        match theseus_profiler::await_point() {
            Some(stack) => self.header.register_await(stack),
            None => 0,
        }
    }

    /// Whether this thread is inside this task's poll right now.
    #[inline]
    fn polled_here(&self) -> bool {
        POLLING.with(|p| p.get() == self as *const TaskCell as usize)
    }
}

thread_local! {
    /// The task being polled on this thread: its cell's address, 0 if none.
    static POLLING: Cell<usize> = const { Cell::new(0) };
}

/// Bits of a waker's data pointer that hold its await point's tag: the
/// cell is aligned to more than that, so they are free.
const TAG_MASK: usize = 0b111;
const _: () = assert!(std::mem::align_of::<TaskCell>() > TAG_MASK);
const _: () = assert!(MAX_AWAITS <= TAG_MASK);

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone_waker, wake, wake_by_ref, drop_waker);

/// A waker of `cell` with the await point tag `tag` (0: the poll's own
/// waker, or an await point that has none). The new waker owns one strong
/// count of the cell's `Arc`, which the caller must have added.
fn raw_waker(cell: *const TaskCell, tag: u8) -> RawWaker {
    RawWaker::new(
        cell.map_addr(|addr| addr | usize::from(tag)).cast(),
        &VTABLE,
    )
}

/// A waker's cell and tag.
fn split(data: *const ()) -> (*const TaskCell, u8) {
    (
        data.map_addr(|addr| addr & !TAG_MASK).cast(),
        (data.addr() & TAG_MASK) as u8,
    )
}

unsafe fn clone_waker(data: *const ()) -> RawWaker {
    let (cell, tag) = split(data);
    // SAFETY: `data` is a waker made by `raw_waker` over an `Arc<TaskCell>`
    // pointer, and that waker owns a strong count, so the cell is alive;
    // the new waker owns the count added here.
    let cell_ref = unsafe {
        Arc::increment_strong_count(cell);
        &*cell
    };
    let tag = if tag == 0 && cell_ref.polled_here() {
        cell_ref.await_tag()
    } else {
        // A clone of a clone is the same await point; a clone made outside
        // the task's poll registers nothing the poll is waiting on.
        tag
    };
    raw_waker(cell, tag)
}

unsafe fn wake(data: *const ()) {
    // SAFETY: the waker is consumed: its strong count is dropped right after.
    unsafe {
        wake_by_ref(data);
        drop_waker(data);
    }
}

unsafe fn wake_by_ref(data: *const ()) {
    let (cell, tag) = split(data);
    // SAFETY: the waker owns a strong count of the cell (see `clone_waker`).
    let cell = unsafe { &*cell };
    // A future that yields wakes the poll's own waker during the poll.
    let tag = if tag == 0 && cell.polled_here() {
        cell.await_tag()
    } else {
        tag
    };
    cell.wake(tag);
}

unsafe fn drop_waker(data: *const ()) {
    let (cell, _) = split(data);
    // SAFETY: the waker owns one strong count of the cell, given back here.
    unsafe { Arc::decrement_strong_count(cell) };
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
        // SAFETY: the vtable's contract holds for `raw_waker` data: it owns
        // the strong count `into_raw` leaves behind, and its functions are
        // thread-safe (atomics, and tokio's waker, which is `Send + Sync`).
        let waker = unsafe { Waker::from_raw(raw_waker(Arc::into_raw(cell.clone()), 0)) };
        Timed {
            waker,
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
        let outer = POLLING.with(|p| p.replace(Arc::as_ptr(cell) as usize));
        let polled = catch_unwind(AssertUnwindSafe(|| poll_below_boundary(inner, cx)));
        POLLING.with(|p| p.set(outer));
        polled
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
