//! The waker theseus hands each poll of a timed task, and how it finds
//! await points.
//!
//! A future that cannot go on stores its task's waker (a clone of it) with
//! whatever will wake it: a timer, a socket's readiness, a channel, a lock.
//! It does so from inside the task's poll, with every async fn that led to
//! it still on the machine stack. So the waker is built from a
//! [`RawWakerVTable`] of theseus's own (not `std::task::Wake`, which hides
//! `clone`): when the poll's waker is cloned during the task's own poll, on
//! its own thread ([`TaskCell::polled_here`]), the profiler captures that
//! stack as an await point ([`theseus_profiler::await_point`]), and the
//! clone carries the await point's tag, an index into the task's header,
//! in the low bits of its data pointer. A `wake_by_ref` on the poll's own
//! waker during the poll (how a future yields) is an await point the same
//! way.
//!
//! When a clone wakes the task, its tag says which await point the wait
//! ended at, so under `select!` or `join!`, where a poll leaves several
//! wakers behind, the wait goes to the one that fired. Clones are distinct
//! from the poll's own waker, so futures that keep a waker and replace it
//! only when `will_wake` says it differs re-register on every poll, and
//! every pending poll is seen.
//!
//! A task whose header still lives in its own future (`cell::TaskState`)
//! is polled with a waker lent from that state ([`with_state_waker`]): its
//! first clone or wake moves the header into a shared cell, and from there
//! on it is the cell's waker above.

use crate::cell::{TaskCell, TaskState};
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::task::{RawWaker, RawWakerVTable, Waker};
use theseus_profiler::MAX_AWAITS;

/// Calls `f` with the waker a poll of `cell`'s task gets: untagged, and
/// borrowed from `cell` for the call, so no reference count changes hands
/// (the wrapper that polls holds the cell anyway). A clone takes a count of
/// its own, as any waker's does.
#[inline]
pub(crate) fn with_task_waker<R>(cell: &Arc<TaskCell>, f: impl FnOnce(&Waker) -> R) -> R {
    // SAFETY: the vtable's contract holds for `raw_waker` data (see
    // `clone_waker`) as long as the cell lives, which `cell` ensures while
    // the waker is lent; `ManuallyDrop` keeps its drop from giving back a
    // count it never took. Only `&Waker` leaves here, so it cannot be
    // consumed by `wake` either.
    let waker = ManuallyDrop::new(unsafe { Waker::from_raw(raw_waker(Arc::as_ptr(cell), 0)) });
    f(&waker)
}

/// Calls `f` with the waker a poll of the task whose header is in `state`
/// gets, lent for the call like [`with_task_waker`]'s. Cloning it, or
/// waking it, shares the state ([`TaskState::share`]) and acts as the
/// shared cell's untagged waker would in the poll. The same vtable as a
/// cell's waker, the state's address marked [`LENT`]: the frames of a clone
/// or a wake, which an await point is recognized by, are the same whether
/// the task's header has moved into a cell or not.
#[inline]
pub(crate) fn with_state_waker<R>(state: &TaskState, f: impl FnOnce(&Waker) -> R) -> R {
    let data = (state as *const TaskState).map_addr(|addr| addr | LENT);
    // SAFETY: the vtable's functions take data marked `LENT` as a live
    // `TaskState`, which `state` keeps alive while the waker is lent;
    // `ManuallyDrop` and lending only `&Waker` keep it from being dropped
    // or consumed (and its drop gives back nothing anyway).
    let waker = ManuallyDrop::new(unsafe { Waker::from_raw(RawWaker::new(data.cast(), &VTABLE)) });
    f(&waker)
}

/// The bit of a waker's data pointer that marks a waker lent from a
/// [`TaskState`] ([`with_state_waker`]) rather than one of a cell.
const LENT: usize = 0b1000;
const _: () = assert!(std::mem::align_of::<TaskState>() > (LENT | TAG_MASK));

/// The data of the waker `data` acts as: a cell's waker's own, or for a
/// lent waker its state's shared cell's untagged waker's (the state shared
/// now if it was not yet).
///
/// # Safety
///
/// `data` must be that of a live waker of this vtable.
#[inline]
unsafe fn acting(data: *const ()) -> *const () {
    if data.addr() & LENT == 0 {
        return data;
    }
    // SAFETY: a lent waker's data is its state's address, marked, and the
    // state lives as long as the waker is lent (`with_state_waker`).
    let state = unsafe { &*data.map_addr(|addr| addr & !LENT).cast::<TaskState>() };
    Arc::as_ptr(state.share()).cast()
}

/// Bits of a waker's data pointer that hold its await point's tag: the
/// cell is aligned to more than that, so they are free.
const TAG_MASK: usize = 0b111;
const _: () = assert!(std::mem::align_of::<TaskCell>() > (LENT | TAG_MASK));
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
    // SAFETY: `data` is a live waker's (the vtable's contract).
    let (cell, tag) = split(unsafe { acting(data) });
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
    let (cell, tag) = split(data);
    // SAFETY: the waker is consumed: its strong count is dropped right
    // after. A cell's waker with a tag (most wakes: a clone that an await
    // point kept) names its await point already, and is woken here without
    // the call; any other goes through `wake_by_ref`, so that a capture
    // made there sees the same frames as always. A waker that is not lent
    // owns a count (`drop_waker`), given back here.
    unsafe {
        if data.addr() & LENT != 0 {
            wake_by_ref(data);
            return;
        }
        if tag != 0 {
            (*cell).wake(tag);
        } else {
            wake_by_ref(data);
        }
        Arc::decrement_strong_count(cell);
    }
}

unsafe fn wake_by_ref(data: *const ()) {
    // SAFETY: as in `clone_waker`.
    let (cell, tag) = split(unsafe { acting(data) });
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
    if data.addr() & LENT != 0 {
        // A lent waker owns no count.
        return;
    }
    let (cell, _) = split(data);
    // SAFETY: the waker owns one strong count of the cell, given back here.
    unsafe { Arc::decrement_strong_count(cell) };
}
