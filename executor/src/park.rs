//! Idle workers: who sleeps, who searches, and who gets woken.
//!
//! A worker with nothing to run first tries to become a *searcher* and steal;
//! at most half the workers search at once, so a burst of wakes does not send
//! every thread hammering every other's queue. A worker that finds nothing
//! parks on its own [`Parker`] (a mutex and condvar: no spinning, and the
//! standard library retries interrupted waits).
//!
//! The rule that prevents lost wake-ups, after tokio's: whoever makes work
//! visible (a push to a queue) then calls [`Idle::notify_one`], which wakes a
//! sleeper only if nobody is searching, because a searcher will find the work.
//! The last searcher to give up re-checks every queue after registering as a
//! sleeper (see `Worker::park` in the scheduler), so work pushed while it was
//! giving up is never stranded. Both sides order their steps with `SeqCst`.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Condvar, Mutex};

/// A single thread's sleep: `unpark` before `park` is remembered, never lost.
#[derive(Default)]
pub(crate) struct Parker {
    notified: Mutex<bool>,
    condvar: Condvar,
}

impl Parker {
    pub(crate) fn park(&self) {
        let mut notified = self.notified.lock().unwrap_or_else(|e| e.into_inner());
        while !*notified {
            notified = self
                .condvar
                .wait(notified)
                .unwrap_or_else(|e| e.into_inner());
        }
        *notified = false;
    }

    pub(crate) fn unpark(&self) {
        *self.notified.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.condvar.notify_one();
    }
}

/// Bookkeeping of unparked and searching workers, packed in one word so both
/// are read and changed together.
pub(crate) struct Idle {
    /// `unparked << SHIFT | searching`.
    state: AtomicUsize,
    /// Indices of parked workers.
    sleepers: Mutex<Vec<usize>>,
    num_workers: usize,
}

const SHIFT: u32 = 16;
const SEARCHING_MASK: usize = (1 << SHIFT) - 1;
const ONE_UNPARKED: usize = 1 << SHIFT;

impl Idle {
    pub(crate) fn new(num_workers: usize) -> Idle {
        Idle {
            state: AtomicUsize::new(num_workers << SHIFT),
            sleepers: Mutex::new(Vec::with_capacity(num_workers)),
            num_workers,
        }
    }

    fn sleepers(&self) -> std::sync::MutexGuard<'_, Vec<usize>> {
        self.sleepers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn should_notify(&self) -> bool {
        let state = self.state.load(SeqCst);
        state & SEARCHING_MASK == 0 && state >> SHIFT < self.num_workers
    }

    /// After making work visible: wakes one sleeper if nobody is searching.
    /// Returns the index of the worker to unpark; the caller unparks it.
    pub(crate) fn worker_to_notify(&self) -> Option<usize> {
        std::sync::atomic::fence(SeqCst);
        if !self.should_notify() {
            return None;
        }
        let mut sleepers = self.sleepers();
        if !self.should_notify() {
            return None;
        }
        let worker = sleepers.pop()?;
        // It wakes up as a searcher: count it before it runs, so that no
        // other notifier wakes a second worker for the same work.
        self.state.fetch_add(ONE_UNPARKED | 1, SeqCst);
        Some(worker)
    }

    /// Tries to become a searcher; refused while half the workers search.
    pub(crate) fn try_start_searching(&self) -> bool {
        let state = self.state.load(SeqCst);
        if 2 * (state & SEARCHING_MASK) >= self.num_workers {
            return false;
        }
        self.state.fetch_add(1, SeqCst);
        true
    }

    /// A searcher found work or gave up. Returns whether it was the last one.
    pub(crate) fn stop_searching(&self) -> bool {
        self.state.fetch_sub(1, SeqCst) & SEARCHING_MASK == 1
    }

    /// Registers `worker` as parked. Returns whether it was the last
    /// searcher, in which case it must re-check all queues before sleeping.
    pub(crate) fn start_parking(&self, worker: usize, searching: bool) -> bool {
        let mut sleepers = self.sleepers();
        let dec = ONE_UNPARKED + usize::from(searching);
        let prev = self.state.fetch_sub(dec, SeqCst);
        sleepers.push(worker);
        searching && prev & SEARCHING_MASK == 1
    }

    /// After waking up. Returns `true` if `worker` was woken by
    /// [`Idle::worker_to_notify`] (it is now counted as a searcher), `false`
    /// if it woke for another reason and has just taken itself off the list.
    pub(crate) fn finish_parking(&self, worker: usize) -> bool {
        let mut sleepers = self.sleepers();
        match sleepers.iter().position(|&w| w == worker) {
            Some(at) => {
                sleepers.swap_remove(at);
                self.state.fetch_add(ONE_UNPARKED, SeqCst);
                false
            }
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_wakes_one_sleeper_only_when_nobody_searches() {
        let idle = Idle::new(4);
        assert!(!idle.start_parking(3, false));
        assert!(!idle.start_parking(2, false));
        assert_eq!(idle.worker_to_notify(), Some(2));
        // Worker 2 now counts as searching: a second notify wakes nobody.
        assert_eq!(idle.worker_to_notify(), None);
        assert!(idle.finish_parking(2));
        assert!(idle.stop_searching());
        assert_eq!(idle.worker_to_notify(), Some(3));
    }

    #[test]
    fn at_most_half_search() {
        let idle = Idle::new(4);
        assert!(idle.try_start_searching());
        assert!(idle.try_start_searching());
        assert!(!idle.try_start_searching());
        assert!(!idle.stop_searching());
        assert!(idle.stop_searching());
    }

    #[test]
    fn last_searcher_to_park_is_told_to_recheck() {
        let idle = Idle::new(2);
        assert!(idle.try_start_searching());
        assert!(idle.start_parking(0, true));
        assert!(
            !idle.finish_parking(0),
            "woken by someone else: off the list"
        );
        assert_eq!(idle.worker_to_notify(), None, "nobody sleeps");
    }

    #[test]
    fn unpark_before_park_is_not_lost() {
        let parker = Parker::default();
        parker.unpark();
        parker.park();
    }
}
