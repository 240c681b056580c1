//! What an executor's runners share: the injector, every runner's stealer,
//! the idle runners, and the unfinished tasks.

use super::active::ActiveTasks;
use super::park::Sleepers;
use async_task::Runnable;
use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, PoisonError, RwLock};

/// The shared half of an executor. Runners hold it through an `Arc`, and so
/// does every task's schedule function.
#[derive(Default)]
pub(crate) struct State {
    /// Tasks made runnable off the executor's runners (spawned or woken
    /// from another thread), and those a leaving runner left behind.
    pub(crate) injector: Injector<Runnable>,
    /// Each running runner's stealer, by the runner's slot; `None` where a
    /// runner left.
    stealers: RwLock<Vec<Option<Stealer<Runnable>>>>,
    pub(crate) sleepers: Sleepers,
    pub(crate) active: Arc<ActiveTasks>,
    /// Ids for `Sleepers`: one per runner and per `tick` call.
    next_sleeper: AtomicUsize,
}

impl State {
    /// A task made runnable away from this executor's runners.
    pub(crate) fn inject(&self, runnable: Runnable) {
        self.injector.push(runnable);
        self.sleepers.notify();
    }

    /// A new id to register in `sleepers`.
    pub(crate) fn sleeper_id(&self) -> usize {
        self.next_sleeper.fetch_add(1, Relaxed)
    }

    /// Puts `stealer` where other runners look, returning its slot.
    pub(crate) fn join(&self, stealer: Stealer<Runnable>) -> usize {
        let mut stealers = self
            .stealers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match stealers.iter().position(Option::is_none) {
            Some(slot) => {
                stealers[slot] = Some(stealer);
                slot
            }
            None => {
                stealers.push(Some(stealer));
                stealers.len() - 1
            }
        }
    }

    /// The runner in `slot` left.
    pub(crate) fn leave(&self, slot: usize) {
        self.stealers
            .write()
            .unwrap_or_else(PoisonError::into_inner)[slot] = None;
    }

    /// A batch from the injector into `local`, and one task of it.
    pub(crate) fn take_injected(&self, local: &Worker<Runnable>) -> Option<Runnable> {
        retry(|| self.injector.steal_batch_and_pop(local))
    }

    /// A batch stolen from another runner into `local` (the runner in slot
    /// `own`), starting at the victim `start` (taken at random) and going
    /// round; one task of it.
    pub(crate) fn steal(
        &self,
        local: &Worker<Runnable>,
        own: usize,
        start: usize,
    ) -> Option<Runnable> {
        let stealers = self.stealers.read().unwrap_or_else(PoisonError::into_inner);
        let count = stealers.len();
        (0..count)
            .map(|offset| (start + offset) % count)
            .filter(|&slot| slot != own)
            .filter_map(|slot| stealers[slot].as_ref())
            .find_map(|victim| retry(|| victim.steal_batch_and_pop(local)))
    }

    /// One task from anywhere, for a thread that is not a runner
    /// (`try_tick`): the injector, then the runners' queues.
    pub(crate) fn take_one(&self) -> Option<Runnable> {
        if let Some(runnable) = retry(|| self.injector.steal()) {
            return Some(runnable);
        }
        let stealers = self.stealers.read().unwrap_or_else(PoisonError::into_inner);
        stealers
            .iter()
            .flatten()
            .find_map(|victim| retry(|| victim.steal()))
    }
}

/// Tries `steal` until it gives a task or finds nothing.
fn retry(mut steal: impl FnMut() -> Steal<Runnable>) -> Option<Runnable> {
    loop {
        match steal() {
            Steal::Success(runnable) => return Some(runnable),
            Steal::Empty => return None,
            Steal::Retry => std::hint::spin_loop(),
        }
    }
}
