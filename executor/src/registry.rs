//! The registry of live tasks: how a profile written mid-run reaches them.
//!
//! When a profile is written while tasks still run (a snapshot on SIGINT, or
//! a [`theseus_profiler::Tracer`] written mid-run), each live task is shown
//! with its costs so far. A task enters the registry when it starts running
//! (see `cell`) and leaves it, before its end is recorded, when it ends.
//!
//! The registry knows nothing of what it holds beyond [`LiveEntry`]: where
//! the entry sits, and its record as of now. It is sharded by the inserting
//! thread so that workers rarely touch the same lock; an entry remembers its
//! shard, so removal from another thread finds it directly.
//!
//! It holds entries by address, not by reference count: an entry takes
//! itself out before it goes (its owner's end, or its `Drop`), under the
//! shard's lock, which every reader holds while it reads. So a task that
//! lives in its own future (`cell::TaskState`) can be listed too, and
//! entering costs no count taken and given back.

use crate::clock;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use theseus_profiler::{LiveTasks, TaskRecord};

const SHARDS: usize = 16;

/// What the registry needs of an entry.
pub(crate) trait LiveEntry: Send + Sync + 'static {
    /// Where the entry sits in the registry.
    fn live_slot(&self) -> &LiveSlot;
    /// The entry's record as of `now` (a [`clock::now`] reading).
    fn live_record(&self, now: u64) -> TaskRecord;
}

/// Where an entry sits in the registry: `shard << 32 | index`, or
/// `u64::MAX` while it is not in it.
pub(crate) struct LiveSlot(AtomicU64);

impl LiveSlot {
    pub(crate) const fn new() -> LiveSlot {
        LiveSlot(AtomicU64::new(u64::MAX))
    }

    pub(crate) fn is_registered(&self) -> bool {
        self.0.load(Relaxed) != u64::MAX
    }
}

/// The live entries, in shards.
pub(crate) struct LiveRegistry {
    shards: [Mutex<Shard>; SHARDS],
    next_shard: AtomicUsize,
}

/// An entry, by address.
struct Entry(NonNull<dyn LiveEntry>);

// SAFETY: the address of a `LiveEntry`, which is `Send + Sync`; it is only
// dereferenced under the shard's lock while the entry is in (see
// `LiveRegistry::insert`).
unsafe impl Send for Entry {}

struct Shard {
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
}

thread_local! {
    /// The shard this thread inserts into; `usize::MAX` until chosen.
    static HOME_SHARD: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

impl LiveRegistry {
    pub(crate) fn new() -> LiveRegistry {
        LiveRegistry {
            shards: std::array::from_fn(|_| {
                Mutex::new(Shard {
                    entries: Vec::new(),
                    free: Vec::new(),
                })
            }),
            next_shard: AtomicUsize::new(0),
        }
    }

    #[inline]
    fn shard(&self, index: usize) -> MutexGuard<'_, Shard> {
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    #[inline]
    fn home_shard(&self) -> usize {
        HOME_SHARD.with(|home| {
            if home.get() == usize::MAX {
                home.set(self.next_shard.fetch_add(1, Relaxed) % SHARDS);
            }
            home.get()
        })
    }

    /// Enters `entry`, by address.
    ///
    /// # Safety
    ///
    /// `entry` must stay where it is, alive, until it is removed
    /// ([`LiveRegistry::remove`]): the registry reads it there meanwhile.
    pub(crate) unsafe fn insert<T: LiveEntry>(&self, entry: &T) {
        let shard_index = self.home_shard();
        let mut shard = self.shard(shard_index);
        let held = Some(Entry(NonNull::from(entry as &dyn LiveEntry)));
        let index = match shard.free.pop() {
            Some(index) => {
                shard.entries[index as usize] = held;
                index as usize
            }
            None => {
                shard.entries.push(held);
                shard.entries.len() - 1
            }
        };
        entry
            .live_slot()
            .0
            .store(((shard_index as u64) << 32) | index as u64, Relaxed);
    }

    /// Puts `new` where `old` is, if it is in, in one step: a reader sees
    /// one or the other, never both or neither.
    ///
    /// # Safety
    ///
    /// As [`LiveRegistry::insert`]'s, for `new`.
    pub(crate) unsafe fn replace<A: LiveEntry, B: LiveEntry>(&self, old: &A, new: &B) {
        let slot = old.live_slot().0.load(Relaxed);
        if slot == u64::MAX {
            return;
        }
        let (shard_index, index) = ((slot >> 32) as usize, slot as u32 as usize);
        let mut shard = self.shard(shard_index);
        shard.entries[index] = Some(Entry(NonNull::from(new as &dyn LiveEntry)));
        new.live_slot().0.store(slot, Relaxed);
        old.live_slot().0.store(u64::MAX, Relaxed);
    }

    /// Removes an entry, if it is in: once this returns, no reader of the
    /// registry looks at it any more.
    #[inline]
    pub(crate) fn remove<T: LiveEntry>(&self, entry: &T) {
        if !entry.live_slot().is_registered() {
            return;
        }
        let slot = entry.live_slot().0.swap(u64::MAX, Relaxed);
        if slot == u64::MAX {
            return;
        }
        let (shard_index, index) = ((slot >> 32) as usize, slot as u32 as usize);
        let mut shard = self.shard(shard_index);
        shard.entries[index] = None;
        shard.free.push(index as u32);
    }

    /// How many entries are in.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        (0..SHARDS)
            .map(|i| self.shard(i).entries.iter().flatten().count())
            .sum()
    }
}

impl LiveTasks for LiveRegistry {
    fn for_each_live(&self, f: &mut dyn FnMut(TaskRecord)) {
        let now = clock::now();
        for index in 0..SHARDS {
            let shard = self.shard(index);
            for entry in shard.entries.iter().flatten() {
                // SAFETY: the entry is in, and the shard's lock is held: it
                // cannot be removed, so it is alive where it was entered
                // (`insert`'s contract).
                f(unsafe { entry.0.as_ref() }.live_record(now));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use theseus_profiler::{AwaitCosts, Outcome, StackId, TaskId};

    struct Listed {
        slot: LiveSlot,
        stack: u32,
    }

    impl LiveEntry for Listed {
        fn live_slot(&self) -> &LiveSlot {
            &self.slot
        }
        fn live_record(&self, _now: u64) -> TaskRecord {
            TaskRecord {
                id: TaskId::next(),
                stack: StackId(self.stack),
                wall_ns: 0,
                busy_ns: 0,
                sched_ns: 0,
                polls: 0,
                wakes: 0,
                outcome: Outcome::Unfinished,
                awaits: AwaitCosts::default(),
                kind: theseus_profiler::RecordKind::Task,
            }
        }
    }

    fn entry(stack: u32) -> Arc<Listed> {
        Arc::new(Listed {
            slot: LiveSlot::new(),
            stack,
        })
    }

    fn live_stacks(registry: &LiveRegistry) -> Vec<u32> {
        let mut stacks = Vec::new();
        registry.for_each_live(&mut |record| stacks.push(record.stack.0));
        stacks.sort_unstable();
        stacks
    }

    #[test]
    fn entries_are_listed_until_removed_from_any_thread() {
        let registry = Arc::new(LiveRegistry::new());
        let entries: Vec<_> = (1..=4).map(entry).collect();
        for entry in &entries {
            // SAFETY: every entry outlives the registry's use of it: it is
            // removed, or the registry is dropped, first.
            unsafe { registry.insert(&**entry) };
            assert!(entry.slot.is_registered());
        }
        assert_eq!(live_stacks(&registry), [1, 2, 3, 4]);
        let elsewhere = {
            let (registry, second) = (registry.clone(), entries[1].clone());
            std::thread::spawn(move || registry.remove(&*second))
        };
        elsewhere.join().unwrap();
        registry.remove(&*entries[3]);
        registry.remove(&*entries[3]);
        assert!(!entries[3].slot.is_registered());
        assert_eq!(live_stacks(&registry), [1, 3]);
        // A freed place is reused, and the entry that takes it is listed.
        let fifth = entry(5);
        // SAFETY: as above.
        unsafe { registry.insert(&*fifth) };
        assert_eq!(registry.len(), 3);
        assert_eq!(live_stacks(&registry), [1, 3, 5]);
        assert!(!entries[3].slot.is_registered(), "removed twice, still out");
    }
}
