//! Idle runners and how work wakes them: the scheduler's parking protocol.
//!
//! A runner that finds no task does not spin and does not block its thread
//! itself: it leaves its waker here ([`Sleepers::register`]), looks at the
//! queues one last time, and if they are still empty returns `Pending`
//! from `run`, so the thread's own `block_on` parks (and, under
//! `async_io::block_on`, drives the reactor meanwhile). Whoever makes a
//! task runnable pushes it first and then calls [`Sleepers::notify`], which
//! wakes one registered runner, if there is one.
//!
//! No wake-up is lost: the runner's registration is followed by a
//! sequentially consistent fence before its last look, and the pusher's
//! push by one before it reads how many runners are idle. Of the two
//! fences one comes first in their total order; if it is the runner's, the
//! pusher sees the runner registered and wakes it (or another idle runner,
//! which finds the task); if it is the pusher's, the runner's last look
//! sees the task. `scheduler/loom_models` checks this.

use crate::sync::{fence, AtomicUsize, Mutex};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::PoisonError;
use std::task::Waker;

/// The runners (and `tick` callers) waiting for work, by id.
#[derive(Default)]
pub(crate) struct Sleepers {
    /// How many are in `wakers`: read without the lock on every notify.
    idle: AtomicUsize,
    wakers: Mutex<Vec<(usize, Waker)>>,
}

impl Sleepers {
    /// Registers `id` as idle, to be woken through `waker`, then orders the
    /// registration before the caller's last look at the queues.
    pub(crate) fn register(&self, id: usize, waker: &Waker) {
        let mut wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        match wakers.iter_mut().find(|(sleeper, _)| *sleeper == id) {
            Some((_, old)) => old.clone_from(waker),
            None => {
                wakers.push((id, waker.clone()));
                self.idle.fetch_add(1, SeqCst);
            }
        }
        drop(wakers);
        fence(SeqCst);
    }

    /// `id` is no longer idle (it found work, or it leaves). A no-op when a
    /// notify took it out already.
    pub(crate) fn unregister(&self, id: usize) {
        // Our own registration is in `idle` unless a notify took it out:
        // 0 means nobody, us included, is registered.
        if self.idle.load(Relaxed) == 0 {
            return;
        }
        let mut wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = wakers.iter().position(|(sleeper, _)| *sleeper == id) {
            wakers.swap_remove(at);
            self.idle.fetch_sub(1, SeqCst);
        }
    }

    /// Wakes one idle runner, if any: called after a task was pushed where
    /// runners look for work.
    #[inline]
    pub(crate) fn notify(&self) {
        fence(SeqCst);
        if self.idle.load(Relaxed) == 0 {
            return;
        }
        self.wake_one();
    }

    #[cold]
    fn wake_one(&self) {
        let mut wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        let woken = wakers.pop();
        if woken.is_some() {
            self.idle.fetch_sub(1, SeqCst);
        }
        drop(wakers);
        // Outside the lock: a waker may run arbitrary code.
        if let Some((_, waker)) = woken {
            waker.wake();
        }
    }

    /// Wakes every idle runner (the executor is being dropped, or a runner
    /// left tasks behind).
    pub(crate) fn notify_all(&self) {
        fence(SeqCst);
        let mut wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        let woken = std::mem::take(&mut *wakers);
        self.idle.fetch_sub(woken.len(), SeqCst);
        drop(wakers);
        for (_, waker) in woken {
            waker.wake();
        }
    }
}
