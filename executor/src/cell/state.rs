//! [`TaskState`]: a spawned task's header during its first poll, on the
//! poller's stack, and its move into a shared [`TaskCell`] when something
//! must share it or the task outlives that poll.
//!
//! Most short tasks never hand their waker to anything: they end in their
//! first poll. Their header can then live in the frame that polls them,
//! and they cost no cell of their own (an allocation, and a free that is
//! often on another thread), nor a bigger future for tokio to allocate and
//! move. The poll gets a waker lent from the state (`waker`); the first
//! time anything needs the header beyond the poll (that waker cloned or
//! woken, or a frame polled inside the task, which keeps its owner), the
//! header is copied into a new cell ([`TaskState::share`]), which from then
//! on is the task's header for everyone: its wakers, its polls and its
//! record. A task still pending when the poll ends moves into a cell then
//! ([`TaskState::keep`]).
//!
//! The copy is exact: until the move only the poller's thread writes the
//! header, and the move happens inside the poll (a lent waker lives no
//! longer than the poll it was lent to), after the poller's writes at the
//! poll's start and before those at its end, or after the poll on the
//! poller's thread. The registry lists the state itself (by address: it is
//! pinned), which reads whichever header is the task's, and then the cell
//! in its place, in one step under the registry's lock.

use super::{enter_polling, live_tasks, PollingGuard, TaskCell, UNSHARED};
use crate::header::TaskHeader;
use crate::registry::{LiveEntry, LiveSlot};
use std::marker::PhantomPinned;
use std::pin::Pin;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering::Acquire, Ordering::Release};
use std::sync::{Arc, OnceLock};
use std::task::Waker;
use theseus_profiler::{Outcome, TaskRecord};

/// A spawned task's header, on the stack of its first poll until shared.
/// See the module docs. Aligned so that a waker's data pointer has bits to
/// spare (`waker`).
#[repr(align(16))]
pub(crate) struct TaskState {
    /// The header while nothing shares it.
    header: TaskHeader,
    /// The cell the header moved into, once something had to share it.
    shared: OnceLock<Arc<TaskCell>>,
    slot: LiveSlot,
    /// tokio's waker for the poll running now, null between polls: the
    /// cell the header moves into passes wakes on to it.
    poll_waker: AtomicPtr<Waker>,
    /// The registry and lent wakers hold the state's address.
    _pinned: PhantomPinned,
}

impl TaskState {
    /// The state of a task whose header is `header`.
    pub(crate) fn new(header: TaskHeader) -> TaskState {
        TaskState {
            header,
            shared: OnceLock::new(),
            slot: LiveSlot::new(),
            poll_waker: AtomicPtr::new(ptr::null_mut()),
            _pinned: PhantomPinned,
        }
    }

    /// The task's header: its own, or the shared cell's once it moved.
    #[inline]
    pub(crate) fn header(&self) -> &TaskHeader {
        match self.shared.get() {
            Some(cell) => &cell.header,
            None => &self.header,
        }
    }

    /// The shared cell, if the header moved into one.
    #[inline]
    pub(crate) fn shared(&self) -> Option<&Arc<TaskCell>> {
        self.shared.get()
    }

    /// The shared cell, the header moved into it now if it was not yet.
    /// Only during a poll of the task ([`TaskState::polling`]).
    pub(crate) fn share(&self) -> &Arc<TaskCell> {
        self.shared.get_or_init(|| {
            let cell = TaskCell::with_header(self.header.copied());
            let tokio = self.poll_waker.load(Acquire);
            assert!(
                !tokio.is_null(),
                "a task's state was shared outside its poll"
            );
            // SAFETY: `poll_waker` points to the waker of the poll running
            // now, which outlives the poll (see `polling`), and this runs
            // inside that poll.
            cell.set_tokio_waker(unsafe { &*tokio }.clone());
            cell
        })
    }

    /// Enters the task in the live-task registry, if it is not in yet.
    /// See [`TaskCell::ensure_registered`].
    #[inline]
    pub(crate) fn ensure_registered(self: Pin<&Self>) {
        if !self.slot.is_registered() {
            // SAFETY: the state is pinned, so it stays where it is until
            // dropped, and its `Drop` takes it out of the registry first.
            unsafe { live_tasks().insert_brief(self.get_ref()) };
        }
    }

    /// Runs `poll`, a poll of this task with `tokio` as tokio's waker for
    /// it, as this task's poll on this thread (see [`TaskCell::polling`]):
    /// wakers lent from this state during it may share it.
    #[inline]
    pub(crate) fn polling<R>(self: Pin<&Self>, tokio: &Waker, poll: impl FnOnce() -> R) -> R {
        self.poll_waker
            .store(tokio as *const Waker as *mut Waker, Release);
        // Restored on unwind too: the caller catches a panicking poll.
        let _restore = UnsharedPoll {
            state: self.get_ref(),
            _polling: enter_polling(self.get_ref() as *const TaskState as usize | UNSHARED),
        };
        poll()
    }

    /// The cell the task lives in from now on, its first poll over and
    /// the task pending, `tokio` that poll's waker: the shared one, or a
    /// new one with this header; in the registry in the state's place.
    pub(crate) fn keep(self: Pin<&Self>, tokio: &Waker) -> Arc<TaskCell> {
        let cell = match self.shared.get() {
            Some(cell) => cell.clone(),
            None => {
                let cell = TaskCell::with_header(self.header.copied());
                cell.set_tokio_waker(tokio.clone());
                cell
            }
        };
        // SAFETY: the cell stays where its `Arc` put it, and its `Drop`
        // takes it out of the registry before it goes.
        unsafe { live_tasks().replace(self.get_ref(), &*cell) };
        cell
    }

    /// Takes the task out of the registry: see [`TaskCell::unlist`].
    pub(crate) fn unlist(&self) {
        live_tasks().remove(self);
    }

    /// Takes the task out of the registry and records its end: in that
    /// order, as [`TaskCell::finish`].
    pub(crate) fn finish(&self, outcome: Outcome, now: u64) {
        // Mostly out already (`unlist`): then not even the registry is
        // looked up.
        if self.slot.is_registered() {
            live_tasks().remove(self);
        }
        self.header().record_end(outcome, now);
    }
}

/// The end of a poll of an unshared state: the poll's waker is gone.
struct UnsharedPoll<'a> {
    state: &'a TaskState,
    _polling: PollingGuard,
}

impl Drop for UnsharedPoll<'_> {
    fn drop(&mut self) {
        self.state.poll_waker.store(ptr::null_mut(), Release);
    }
}

impl LiveEntry for TaskState {
    fn live_slot(&self) -> &LiveSlot {
        &self.slot
    }

    fn live_record(&self, now: u64) -> TaskRecord {
        self.header().to_record(Outcome::Unfinished, now)
    }
}

impl Drop for TaskState {
    fn drop(&mut self) {
        if self.slot.is_registered() {
            live_tasks().remove(self);
        }
    }
}
