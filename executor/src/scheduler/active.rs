//! The executor's unfinished tasks, each by a waker: what `is_empty` reads,
//! and what dropping the executor wakes so that every task's future is
//! dropped before the executor (its futures may borrow for `'a`).
//!
//! A spawn takes a slot under the lock; a task's end gives it back under
//! the lock too when the lock is free, and otherwise leaves its index in a
//! lock-free queue that whoever holds the lock next empties. So a runner
//! ending tasks never waits for a thread that spawns them (one lock taken
//! in turn by both, as in async-executor, made each wait on the other in
//! the futex), and a slot given back that way waits at most for the next
//! spawn, end, `is_empty` or the executor's drop.

use crossbeam_deque::{Injector, Steal};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::task::{Context, Poll, Waker};

/// Slots of wakers, reused through a free list.
#[derive(Default)]
pub(crate) struct ActiveTasks {
    slots: Mutex<Slots>,
    /// Slots whose tasks ended while the lock was held: given back by the
    /// next holder ([`ActiveTasks::lock`]).
    ended: Injector<usize>,
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
        let mut slots = match self.slots.try_lock() {
            Ok(slots) => slots,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {
                // The holder, or the next one, gives it back.
                self.ended.push(index);
                return;
            }
        };
        let waker = slots.give_back(index);
        let ended = self.give_back_ended(&mut slots);
        drop(slots);
        // A waker's drop may run the task's last reference out (and drop
        // its output, which may use this executor): outside the lock.
        drop(waker);
        drop(ended);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().len == 0
    }

    /// Gives back the slots of tasks that ended while another held the
    /// lock; returns their wakers, to be dropped once it is let go.
    fn give_back_ended(&self, slots: &mut Slots) -> Vec<Option<Waker>> {
        // No allocation unless some ended meanwhile.
        let mut wakers = Vec::new();
        loop {
            match self.ended.steal() {
                Steal::Success(index) => wakers.push(slots.give_back(index)),
                Steal::Empty => return wakers,
                Steal::Retry => {}
            }
        }
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

    /// The slots, with every ended task's given back.
    fn lock(&self) -> MutexGuard<'_, Slots> {
        loop {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            if self.ended.is_empty() {
                return slots;
            }
            let wakers = self.give_back_ended(&mut slots);
            drop(slots);
            drop(wakers);
        }
    }
}

impl Slots {
    /// Frees slot `index`; returns the waker it held.
    fn give_back(&mut self, index: usize) -> Option<Waker> {
        let waker = self.wakers[index].take();
        self.free.push(index);
        self.len -= 1;
        waker
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

#[cfg(all(test, not(theseus_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::task::Wake;

    /// A waker whose drop asks the executor's slots whether they are empty,
    /// as a task's output dropped with its last reference may.
    struct AsksOnDrop {
        active: Arc<ActiveTasks>,
        asked: Arc<AtomicBool>,
    }

    impl Wake for AsksOnDrop {
        fn wake(self: Arc<Self>) {}
    }

    impl Drop for AsksOnDrop {
        fn drop(&mut self) {
            let _ = self.active.is_empty();
            self.asked.store(true, SeqCst);
        }
    }

    fn task(active: &Arc<ActiveTasks>, asked: &Arc<AtomicBool>) -> usize {
        let waker = Waker::from(Arc::new(AsksOnDrop {
            active: active.clone(),
            asked: asked.clone(),
        }));
        active.insert(|index| (waker, index))
    }

    #[test]
    fn a_slot_given_back_while_the_lock_is_held_is_freed_by_the_next_holder() {
        let active = Arc::new(ActiveTasks::default());
        let asked = Arc::new(AtomicBool::new(false));
        let (first, second) = (task(&active, &asked), task(&active, &asked));
        {
            let _held = active.slots.lock().unwrap();
            // Another thread ends a task meanwhile: it does not wait.
            let active = active.clone();
            std::thread::spawn(move || active.release(first))
                .join()
                .unwrap();
        }
        assert!(!asked.load(SeqCst), "a waker was dropped under the lock");
        assert!(!active.is_empty());
        assert!(asked.load(SeqCst), "the ended task's waker was kept");
        active.release(second);
        assert!(active.is_empty());
        assert_eq!(active.slots.lock().unwrap().free.len(), 2);
    }
}
