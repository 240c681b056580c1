//! The registry of live tasks.
//!
//! A task that waits on something nobody will ever signal is reachable only
//! through the wakers its resources hold. The registry keeps one more waker per
//! live task so the runtime can always reach it: to wake it for `abort`, to
//! cancel it at shutdown (tokio's rule: when the main future returns, every
//! remaining task is dropped), and to report its costs so far when a profile
//! is written while it still runs.
//!
//! It is sharded by the spawning thread so that spawns on different workers
//! rarely touch the same lock; a task removes itself when it finishes.

use crate::clock;
use crate::header::Header;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::task::Waker;
use theseus_profiler::{LiveTasks, Outcome, TaskRecord};

const SHARDS: usize = 16;

pub(crate) struct Registry {
    shards: [Mutex<Shard>; SHARDS],
    next_shard: AtomicUsize,
}

#[derive(Default)]
struct Shard {
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
}

struct Entry {
    header: NonNull<Header>,
    waker: Waker,
}

// SAFETY: `header` points into the task allocation that `waker` keeps alive,
// and `Header` is `Sync` (atomics and immutable fields), so sharing the
// pointer across threads is as safe as sharing `&Header`.
unsafe impl Send for Entry {}

impl Entry {
    fn header(&self) -> &Header {
        // SAFETY: the waker stored beside the pointer holds a reference count
        // on the task allocation that contains the header.
        unsafe { self.header.as_ref() }
    }
}

thread_local! {
    static HOME_SHARD: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

impl Registry {
    pub(crate) fn new() -> Registry {
        Registry {
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
            next_shard: AtomicUsize::new(0),
        }
    }

    fn shard(&self, index: usize) -> MutexGuard<'_, Shard> {
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn home_shard(&self) -> usize {
        HOME_SHARD.with(|home| {
            if home.get() == usize::MAX {
                home.set(self.next_shard.fetch_add(1, Relaxed) % SHARDS);
            }
            home.get()
        })
    }

    /// Adds a task. `header` must be the metadata of the task `waker` wakes.
    pub(crate) fn insert(&self, header: &Header, waker: Waker) {
        let shard_index = self.home_shard();
        let mut shard = self.shard(shard_index);
        let entry = Some(Entry {
            header: NonNull::from(header),
            waker,
        });
        let index = match shard.free.pop() {
            Some(index) => {
                shard.entries[index as usize] = entry;
                index as usize
            }
            None => {
                shard.entries.push(entry);
                shard.entries.len() - 1
            }
        };
        header
            .registry_slot
            .store(((shard_index as u64) << 32) | index as u64, Relaxed);
    }

    /// Removes a task, returning its waker (to be dropped outside any lock).
    pub(crate) fn remove(&self, header: &Header) -> Option<Waker> {
        let (shard_index, index) = split(header.registry_slot.load(Relaxed))?;
        let mut shard = self.shard(shard_index);
        let slot = shard.entries.get_mut(index)?;
        // At shutdown the registry is emptied before tasks drop themselves,
        // so the slot may already be empty or reused: check it is ours.
        if slot.as_ref()?.header != NonNull::from(header) {
            return None;
        }
        let entry = slot.take()?;
        shard.free.push(index as u32);
        Some(entry.waker)
    }

    /// Wakes a live task (for `abort`).
    pub(crate) fn wake(&self, header: &Header) {
        let Some((shard_index, index)) = split(header.registry_slot.load(Relaxed)) else {
            return;
        };
        let waker = {
            let shard = self.shard(shard_index);
            match shard.entries.get(index) {
                Some(Some(entry)) if entry.header == NonNull::from(header) => entry.waker.clone(),
                _ => return,
            }
        };
        // Outside the lock: waking may run the schedule function, which may
        // drop the task, which removes it from this registry.
        waker.wake();
    }

    /// Marks every live task aborted and wakes it, until none is left.
    /// Called at shutdown, once the workers have stopped: each wake then
    /// drops the task, which records it as cancelled.
    pub(crate) fn cancel_all(&self) {
        for index in 0..SHARDS {
            let Shard { entries, .. } = std::mem::take(&mut *self.shard(index));
            for entry in entries.into_iter().flatten() {
                entry.header().aborted.store(true, Relaxed);
                entry.waker.wake();
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        (0..SHARDS)
            .map(|i| self.shard(i).entries.iter().flatten().count())
            .sum()
    }
}

fn split(slot: u64) -> Option<(usize, usize)> {
    (slot != u64::MAX).then_some(((slot >> 32) as usize, slot as u32 as usize))
}

impl LiveTasks for Registry {
    fn for_each_live(&self, f: &mut dyn FnMut(TaskRecord)) {
        let now = clock::now();
        for index in 0..SHARDS {
            let shard = self.shard(index);
            for entry in shard.entries.iter().flatten() {
                let header = entry.header();
                if header.timed {
                    f(header.record(Outcome::Unfinished, now));
                }
            }
        }
    }
}
