//! The registry of live profiled tasks.
//!
//! When a profile is written while tasks still run (a snapshot on SIGINT, or
//! a [`theseus_profiler::Tracer`] written mid-run), each live task is shown
//! with its costs so far. The registry is how the profiler reaches them: one
//! entry per timed task from its first poll (see `timed`), and per blocking
//! task, removed when the task ends.
//!
//! It is sharded by the spawning thread so that spawns on different workers
//! rarely touch the same lock. Untimed tasks are never registered.

use crate::clock;
use crate::timed::TaskCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use theseus_profiler::{LiveTasks, Outcome, TaskRecord};

const SHARDS: usize = 16;

/// Where a task sits in the registry: `shard << 32 | index`.
pub(crate) struct Slot(AtomicU64);

impl Slot {
    pub(crate) const fn new() -> Slot {
        Slot(AtomicU64::new(u64::MAX))
    }

    pub(crate) fn is_registered(&self) -> bool {
        self.0.load(Relaxed) != u64::MAX
    }
}

pub(crate) struct Registry {
    shards: [Mutex<Shard>; SHARDS],
    next_shard: AtomicUsize,
}

#[derive(Default)]
struct Shard {
    entries: Vec<Option<Arc<TaskCell>>>,
    free: Vec<u32>,
}

thread_local! {
    static HOME_SHARD: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// The process's registry, handed to the profiler once.
pub(crate) fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Arc<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let registry = Arc::new(Registry {
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
            next_shard: AtomicUsize::new(0),
        });
        let live: Arc<dyn LiveTasks> = registry.clone();
        // The static keeps the registry alive, so the weak reference the
        // profiler holds never dangles.
        theseus_profiler::register_live_tasks(Arc::downgrade(&live));
        registry
    })
}

impl Registry {
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

    pub(crate) fn insert(&self, task: &Arc<TaskCell>) {
        let shard_index = self.home_shard();
        let mut shard = self.shard(shard_index);
        let entry = Some(task.clone());
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
        task.slot
            .0
            .store(((shard_index as u64) << 32) | index as u64, Relaxed);
    }

    /// Removes a task; the reference it held is dropped outside the lock.
    pub(crate) fn remove(&self, task: &TaskCell) {
        let slot = task.slot.0.swap(u64::MAX, Relaxed);
        if slot == u64::MAX {
            return;
        }
        let (shard_index, index) = ((slot >> 32) as usize, slot as u32 as usize);
        let entry = {
            let mut shard = self.shard(shard_index);
            let entry = shard.entries[index].take();
            shard.free.push(index as u32);
            entry
        };
        drop(entry);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        (0..SHARDS)
            .map(|i| self.shard(i).entries.iter().flatten().count())
            .sum()
    }
}

impl LiveTasks for Registry {
    fn for_each_live(&self, f: &mut dyn FnMut(TaskRecord)) {
        let now = clock::now();
        for index in 0..SHARDS {
            let shard = self.shard(index);
            for task in shard.entries.iter().flatten() {
                f(task.header.record(Outcome::Unfinished, now));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Builder;

    #[test]
    fn tasks_leave_the_registry_however_they_end() {
        let tracer = theseus_profiler::Tracer::new();
        tracer.install();
        let runtime = Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        runtime.block_on(async {
            let handles: Vec<_> = (0..1000).map(|i| crate::spawn(async move { i })).collect();
            for handle in handles {
                handle.await.unwrap();
            }
            assert!(crate::spawn(async { panic!("leaves too") }).await.is_err());
            let aborted = crate::spawn(std::future::pending::<()>());
            aborted.abort();
            assert!(aborted.await.is_err());
            assert!(crate::spawn_blocking(|| 1).await.is_ok());
        });
        assert_eq!(registry().len(), 0);
        let (polled, first_poll) = std::sync::mpsc::channel();
        drop(runtime.spawn(async move {
            polled.send(()).unwrap();
            std::future::pending::<()>().await
        }));
        first_poll.recv().unwrap();
        assert_eq!(registry().len(), 1, "a waiting task is live");
        drop(runtime);
        assert_eq!(registry().len(), 0, "shutdown left tasks behind");
        tracer.uninstall();
    }
}
