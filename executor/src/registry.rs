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
//! Each shard also has one place of its own, kept for a task in its first
//! poll ([`LiveRegistry::insert_brief`]): most tasks end there, and taking
//! and giving back that place is one atomic each, without the shard's lock
//! (`brief`: the readers still see every entry, and none after it is
//! gone). A task that outlives the poll moves into the list
//! ([`LiveRegistry::replace`]), so the place is free for the next first
//! poll on the thread.
//!
//! It holds entries by address, not by reference count: an entry takes
//! itself out before it goes (its owner's end, or its `Drop`), under the
//! shard's lock, which every reader holds while it reads. So a task that
//! lives in its own future (`cell::TaskState`) can be listed too, and
//! entering costs no count taken and given back.

mod brief;
#[cfg(all(test, theseus_loom))]
mod loom_models;

use crate::clock;
use brief::BriefPlace;
use std::cell::{Cell, UnsafeCell};
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

/// Where an entry sits in the registry: `shard << 32 | index` (index
/// [`BRIEF`]: the shard's place for a first poll), or `u64::MAX` while it
/// is not in it; and, for a reader that finds the slot in a first-poll
/// place, the entry it belongs to.
pub(crate) struct LiveSlot {
    at: AtomicU64,
    /// The entry whose slot this is: written by [`LiveRegistry::insert_brief`]
    /// before the slot goes in a first-poll place, read by the readers
    /// that find it there.
    entry: UnsafeCell<Option<Entry>>,
}

// SAFETY: `entry` is written only by `insert_brief`, while the slot is in
// no place (nothing reads it), and read only by readers that found the slot
// in a first-poll place, which published that write (`BriefPlace::take`);
// the rest is atomic.
unsafe impl Sync for LiveSlot {}

impl LiveSlot {
    pub(crate) const fn new() -> LiveSlot {
        LiveSlot {
            at: AtomicU64::new(u64::MAX),
            entry: UnsafeCell::new(None),
        }
    }

    pub(crate) fn is_registered(&self) -> bool {
        self.at.load(Relaxed) != u64::MAX
    }

    /// The entry's record as of `now`, for a reader that found this slot
    /// in a first-poll place.
    fn read_record(&self, now: u64) -> Option<TaskRecord> {
        // SAFETY: see the `Sync` impl: the place published the write, and
        // the entry is alive while the slot is in it (`insert_brief`'s
        // contract).
        let entry = unsafe { (*self.entry.get()).as_ref()? };
        // SAFETY: as above.
        Some(unsafe { entry.0.as_ref() }.live_record(now))
    }
}

/// The live entries, in shards.
pub(crate) struct LiveRegistry {
    shards: [Shard; SHARDS],
    next_shard: AtomicUsize,
}

/// One shard: its first-poll place, and the list of the rest.
struct Shard {
    /// A task in its first poll on a thread of this shard, if any: the
    /// entry's slot. Read under `list`'s lock, which keeps readers in turn.
    brief: BriefPlace<LiveSlot>,
    list: Mutex<List>,
}

/// An entry, by address.
struct Entry(NonNull<dyn LiveEntry>);

// SAFETY: the address of a `LiveEntry`, which is `Send + Sync`; it is only
// dereferenced under the shard's lock while the entry is in (see
// `LiveRegistry::insert`).
unsafe impl Send for Entry {}

struct List {
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
}

/// The index of a shard's [`Shard::brief`] place in a [`LiveSlot`].
const BRIEF: u32 = u32::MAX;

impl List {
    /// Puts `held` in the list; returns its index there.
    fn list(&mut self, held: Entry) -> u32 {
        match self.free.pop() {
            Some(index) => {
                self.entries[index as usize] = Some(held);
                index
            }
            None => {
                self.entries.push(Some(held));
                (self.entries.len() - 1) as u32
            }
        }
    }

    /// Takes out what is at `index`.
    fn take(&mut self, index: u32) {
        self.entries[index as usize] = None;
        self.free.push(index);
    }
}

thread_local! {
    /// The shard this thread inserts into; `usize::MAX` until chosen.
    static HOME_SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

impl LiveRegistry {
    pub(crate) fn new() -> LiveRegistry {
        LiveRegistry {
            shards: std::array::from_fn(|_| Shard {
                brief: BriefPlace::new(),
                list: Mutex::new(List {
                    entries: Vec::new(),
                    free: Vec::new(),
                }),
            }),
            next_shard: AtomicUsize::new(0),
        }
    }

    #[inline]
    fn list(&self, index: usize) -> MutexGuard<'_, List> {
        self.shards[index]
            .list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    #[inline]
    fn home_shard(&self) -> usize {
        match HOME_SHARD.with(Cell::get) {
            usize::MAX => self.choose_home_shard(),
            home => home,
        }
    }

    /// Chooses this thread's shard, once.
    #[cold]
    #[inline(never)]
    fn choose_home_shard(&self) -> usize {
        let home = self.next_shard.fetch_add(1, Relaxed) % SHARDS;
        HOME_SHARD.with(|cell| cell.set(home));
        home
    }

    /// Enters `entry`, by address.
    ///
    /// # Safety
    ///
    /// `entry` must stay where it is, alive, until it is removed
    /// ([`LiveRegistry::remove`]): the registry reads it there meanwhile.
    pub(crate) unsafe fn insert<T: LiveEntry>(&self, entry: &T) {
        // SAFETY: this function's contract.
        unsafe { self.insert_listed(self.home_shard(), entry) };
    }

    /// [`LiveRegistry::insert`] for an entry that is mostly removed soon,
    /// by this thread (a task in its first poll): in its shard's own place
    /// when that is free.
    ///
    /// # Safety
    ///
    /// As [`LiveRegistry::insert`]'s.
    #[inline]
    pub(crate) unsafe fn insert_brief<T: LiveEntry>(&self, entry: &T) {
        let shard_index = self.home_shard();
        let slot = entry.live_slot();
        // SAFETY: the slot is in no place yet, so no reader reads `entry`
        // (see `LiveSlot`'s `Sync` impl).
        unsafe { *slot.entry.get() = Some(Entry(NonNull::from(entry as &dyn LiveEntry))) };
        // SAFETY: the slot lies in `entry`, which stays alive where it is
        // until removed (this function's contract); removing it empties
        // the place (`remove`, `replace`).
        if unsafe { self.shards[shard_index].brief.take(slot) } {
            slot.at
                .store(((shard_index as u64) << 32) | u64::from(BRIEF), Relaxed);
        } else {
            // Another first poll in progress on this shard (nested, or a
            // thread that shares the shard).
            // SAFETY: this function's contract.
            unsafe { self.insert_listed(shard_index, entry) };
        }
    }

    /// [`LiveRegistry::insert`] into shard `shard_index`: out of the way
    /// of [`LiveRegistry::insert_brief`], which mostly finds its place free.
    ///
    /// # Safety
    ///
    /// As [`LiveRegistry::insert`]'s.
    #[cold]
    #[inline(never)]
    unsafe fn insert_listed(&self, shard_index: usize, entry: &dyn LiveEntry) {
        let index = self.list(shard_index).list(Entry(NonNull::from(entry)));
        entry
            .live_slot()
            .at
            .store(((shard_index as u64) << 32) | u64::from(index), Relaxed);
    }

    /// Puts `new` where `old` is, if it is in, in one step: a reader sees
    /// one or the other, never both or neither.
    ///
    /// # Safety
    ///
    /// As [`LiveRegistry::insert`]'s, for `new`.
    pub(crate) unsafe fn replace<A: LiveEntry, B: LiveEntry>(&self, old: &A, new: &B) {
        let slot = old.live_slot().at.load(Relaxed);
        if slot == u64::MAX {
            return;
        }
        let (shard_index, index) = ((slot >> 32) as usize, slot as u32);
        // Readers read the first-poll place under this lock too: they see
        // the old entry or the new one, never both or neither.
        let mut list = self.list(shard_index);
        let held = Entry(NonNull::from(new as &dyn LiveEntry));
        // Out of the shard's first-poll place, which is for the next one.
        let index = if index == BRIEF {
            self.shards[shard_index].brief.leave_unread();
            list.list(held)
        } else {
            list.entries[index as usize] = Some(held);
            index
        };
        new.live_slot()
            .at
            .store(((shard_index as u64) << 32) | u64::from(index), Relaxed);
        old.live_slot().at.store(u64::MAX, Relaxed);
    }

    /// Removes an entry, if it is in: once this returns, no reader of the
    /// registry looks at it any more.
    #[inline]
    pub(crate) fn remove<T: LiveEntry>(&self, entry: &T) {
        if !entry.live_slot().is_registered() {
            return;
        }
        let slot = entry.live_slot().at.swap(u64::MAX, Relaxed);
        if slot == u64::MAX {
            return;
        }
        let (shard_index, index) = ((slot >> 32) as usize, slot as u32);
        if index == BRIEF {
            self.shards[shard_index].brief.leave();
        } else {
            self.remove_listed(shard_index, index);
        }
    }

    /// [`LiveRegistry::remove`] of what is at `index` in shard
    /// `shard_index`'s list: out of the way of a first poll's removal.
    #[cold]
    #[inline(never)]
    fn remove_listed(&self, shard_index: usize, index: u32) {
        self.list(shard_index).take(index);
    }

    /// How many entries are in.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        (0..SHARDS)
            .map(|i| {
                let list = self.list(i);
                let brief = self.shards[i].brief.read(|_| ()).is_some();
                list.entries.iter().flatten().count() + usize::from(brief)
            })
            .sum()
    }
}

impl LiveTasks for LiveRegistry {
    fn for_each_live(&self, f: &mut dyn FnMut(TaskRecord)) {
        let now = clock::now();
        for index in 0..SHARDS {
            let list = self.list(index);
            // Read inside the place's turn, handed on after it: its owner
            // waits while the place is read.
            if let Some(record) = self.shards[index]
                .brief
                .read(|slot| slot.read_record(now))
                .flatten()
            {
                f(record);
            }
            for entry in list.entries.iter().flatten() {
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
    fn first_polls_are_listed_in_their_place_and_move_out_of_it() {
        let registry = LiveRegistry::new();
        let (first, nested, kept, next) = (entry(1), entry(2), entry(3), entry(4));
        // SAFETY: each entry outlives the registry's use of it: it is
        // removed, or the registry is dropped, first.
        unsafe { registry.insert_brief(&*first) };
        // The place is taken: a second first poll goes in the list.
        // SAFETY: as above.
        unsafe { registry.insert_brief(&*nested) };
        assert_eq!(live_stacks(&registry), [1, 2]);
        // The first outlives its poll: its cell takes its place, in one step.
        // SAFETY: as above.
        unsafe { registry.replace(&*first, &*kept) };
        assert!(!first.slot.is_registered() && kept.slot.is_registered());
        assert_eq!(live_stacks(&registry), [2, 3]);
        // The place is free again for the next first poll.
        // SAFETY: as above.
        unsafe { registry.insert_brief(&*next) };
        assert_eq!(registry.len(), 3);
        assert_eq!(live_stacks(&registry), [2, 3, 4]);
        for gone in [&next, &nested, &kept] {
            registry.remove(&**gone);
            assert!(!gone.slot.is_registered());
        }
        assert_eq!(registry.len(), 0);
        assert_eq!(live_stacks(&registry), Vec::<u32>::new());
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
