//! The executor's unfinished tasks, each by a waker: what `is_empty` reads,
//! and what dropping the executor wakes so that every task's future is
//! dropped before the executor (its futures may borrow for `'a`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// Slots of wakers, reused through a free list.
#[derive(Default)]
pub(crate) struct ActiveTasks {
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    wakers: Vec<Option<Waker>>,
    free: Vec<usize>,
    len: usize,
}

impl ActiveTasks {
    /// Creates a task with `make`, given the slot it gets, and keeps the
    /// waker `make` returns in that slot: one lock for both.
    pub(crate) fn insert<R>(&self, make: impl FnOnce(usize) -> (Waker, R)) -> R {
        let mut slots = self.lock();
        let index = match slots.free.pop() {
            Some(index) => index,
            None => {
                slots.wakers.push(None);
                slots.wakers.len() - 1
            }
        };
        let (waker, made) = make(index);
        slots.wakers[index] = Some(waker);
        slots.len += 1;
        made
    }

    /// The task in slot `index` ended (or was dropped).
    pub(crate) fn release(&self, index: usize) {
        let mut slots = self.lock();
        let waker = slots.wakers[index].take();
        slots.free.push(index);
        slots.len -= 1;
        drop(slots);
        // A waker's drop may run the task's last reference out: outside the lock.
        drop(waker);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().len == 0
    }

    /// Every unfinished task's waker, taken out (slots stay reserved until
    /// their tasks release them).
    pub(crate) fn take_wakers(&self) -> Vec<Waker> {
        self.lock()
            .wakers
            .iter_mut()
            .filter_map(Option::take)
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Releases a task's slot when dropped: the task's future carries one, so
/// the slot is freed when the future completes or is dropped unfinished.
pub(crate) struct ReleaseOnDrop {
    pub(crate) active: Arc<ActiveTasks>,
    pub(crate) index: usize,
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.active.release(self.index);
    }
}

/// A task's future and its slot, released when both drop: when async-task
/// drops the future, at its completion or unfinished. A struct rather than
/// an `async` block, which would hold the future twice over (before its
/// first poll and while awaited) and so be moved by `memcpy` at the spawn.
pub(crate) struct Released<F> {
    /// Declared first: dropped before the slot is released, as the task's
    /// record is written before (`timed`).
    future: F,
    _release: ReleaseOnDrop,
}

impl<F> Released<F> {
    pub(crate) fn new(future: F, release: ReleaseOnDrop) -> Released<F> {
        Released {
            future,
            _release: release,
        }
    }
}

impl<F: Future> Future for Released<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned: never moved out of
        // `self` nor given out unpinned; `_release` is not pinned, and
        // nothing else projects `self`.
        unsafe { self.map_unchecked_mut(|released| &mut released.future) }.poll(cx)
    }
}
