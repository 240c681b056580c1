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
//!
//! A notify wakes nobody while a runner it woke has not yet begun to look
//! (`waking`): that runner will see the task, as it looks after clearing
//! the flag (with the same fences as above), and a burst of pushes, such
//! as a task spawning thousands, does not wake every idle runner once per
//! task. A woken runner that leaves without looking clears the flag and
//! passes the wake on.

use crate::sync::{fence, AtomicBool, AtomicUsize, Mutex};
use std::sync::atomic::Ordering::{Acquire, Relaxed, SeqCst};
use std::sync::PoisonError;
use std::task::Waker;

/// The runners (and `tick` callers) waiting for work, by id.
#[derive(Default)]
pub(crate) struct Sleepers {
    /// How many are in `wakers`: read without the lock on every notify.
    idle: AtomicUsize,
    /// A runner was woken and has not yet unregistered (begun to look).
    waking: AtomicBool,
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

    /// `id` is no longer idle: it is about to look for work, or it leaves
    /// (and then notifies, to pass on a wake it may have taken). Called
    /// after a notify took it out already, it is the woken runner: the
    /// next notify may wake another.
    pub(crate) fn unregister(&self, id: usize) {
        if !self.remove(id) {
            self.waking.store(false, SeqCst);
            fence(SeqCst);
        }
    }

    /// Takes `id` out of the idle; whether it was there.
    fn remove(&self, id: usize) -> bool {
        // Our own registration is in `idle` unless a notify took it out:
        // 0 means nobody, us included, is registered. Acquire: a notify
        // that took us out set `waking` first, and our clearing of it must
        // come after.
        if self.idle.load(Acquire) == 0 {
            return false;
        }
        let mut wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        let at = wakers.iter().position(|(sleeper, _)| *sleeper == id);
        if let Some(at) = at {
            wakers.swap_remove(at);
            self.idle.fetch_sub(1, SeqCst);
        }
        at.is_some()
    }

    /// Wakes one idle runner, if any: called after a task was pushed where
    /// runners look for work.
    #[inline]
    pub(crate) fn notify(&self) {
        fence(SeqCst);
        if self.idle.load(Relaxed) == 0 || self.waking.load(Relaxed) {
            return;
        }
        self.wake_one();
    }

    #[cold]
    fn wake_one(&self) {
        let mut wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        if self.waking.load(Relaxed) {
            // Another notify woke a runner meanwhile.
            return;
        }
        let woken = wakers.pop();
        if woken.is_some() {
            // Before `idle` goes down: the woken one may see it down
            // (`remove`'s acquire) and clear the flag at once, after this.
            self.waking.store(true, SeqCst);
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
