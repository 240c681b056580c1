//! Tasks that libraries spawn with `tokio::spawn`.
//!
//! axum, hyper, tonic and many more spawn their connection tasks with
//! `tokio::spawn`. A theseus runtime is a tokio runtime, so those tasks run
//! on the same workers as theseus's own; to see them, theseus needs tokio's
//! task hooks, which tokio offers only to programs built with
//! `--cfg tokio_unstable`.
//!
//! - With `tokio_unstable`, [`install_hooks`] times every tokio task that
//!   theseus did not spawn itself: its stack is captured on the spawning
//!   thread exactly as [`crate::spawn`] does (so the parent task's stack
//!   and library frames such as `axum::serve` show) with a leaf naming
//!   where `tokio::spawn` was called (tokio does not tell what future the
//!   task runs), its polls are timed and scoped so nested spawns and CPU
//!   samples attribute to it, and its end is one record (its last poll
//!   ends inside tokio's terminate hook, which runs before the hook after
//!   the poll). tokio does not tell when such a task is woken, so
//!   `Wakes` is counted as polls after the first, and `SchedNs` is tokio's
//!   own schedule latency. Nor do its hooks show the task's waker, which is
//!   how theseus's own tasks find their await points: these tasks have
//!   none, and their idle time stays on their leaf, but for what frames
//!   polled inside them hold (`frame`), await points included.
//! - Without it, theseus cannot see them; [`unseen_tokio_tasks`] says
//!   whether any ran, so the profile can say how to see them.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// What to add to see `tokio::spawn` tasks, said when they ran unseen.
pub const TOKIO_UNSTABLE_ADVICE: &str = "build with RUSTFLAGS=\"--cfg tokio_unstable\", \
or add to .cargo/config.toml:\n    [build]\n    rustflags = [\"--cfg\", \"tokio_unstable\"]";

/// The most tokio tasks seen alive at once that theseus did not spawn.
static UNSEEN_MAX: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// When this thread last compared counts, and whether it saw unseen
    /// tasks then.
    static LAST_CHECK: Cell<(Option<Instant>, bool)> = const { Cell::new((None, false)) };
}

/// Whether tasks spawned with `tokio::spawn` ran without being profiled,
/// and if so the most that were alive at once (a lower bound on how many
/// ran: tokio counts spawns only under `tokio_unstable`). Always `None` in
/// a build with `--cfg tokio_unstable`, where they are profiled.
///
/// ```
/// assert_eq!(theseus_executor::unseen_tokio_tasks(), None);
/// ```
pub fn unseen_tokio_tasks() -> Option<usize> {
    match UNSEEN_MAX.load(Relaxed) {
        0 => None,
        n => Some(n),
    }
}

/// How often a thread compares tokio's count of live tasks with theseus's.
const CHECK_EVERY: Duration = Duration::from_millis(10);

/// Called whenever a worker is about to park: at most every [`CHECK_EVERY`]
/// per thread, compares tokio's count of live tasks of the worker's runtime
/// with theseus's own there.
/// The two counts are read at slightly different moments, so a task that
/// starts or ends in between can make a difference of one that is not a
/// foreign task: only a difference seen at two checks in a row counts.
#[cfg_attr(tokio_unstable, allow(dead_code))]
fn check_for_unseen_tasks() {
    if !theseus_profiler::is_active() {
        return;
    }
    let (last, saw_before) = LAST_CHECK.get();
    let now = Instant::now();
    if last.is_some_and(|last| now - last < CHECK_EVERY) {
        return;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    // Both counts of this runtime: another runtime's tasks, seen or not,
    // must not hide this one's.
    let alive = handle.metrics().num_alive_tasks() as isize;
    let own = crate::census::tasks_alive(crate::census::runtime_of(&handle));
    let unseen = (alive - own).max(0) as usize;
    if unseen > 0 && saw_before {
        UNSEEN_MAX.fetch_max(unseen, Relaxed);
    }
    LAST_CHECK.set((Some(now), unseen > 0));
}

/// Adds theseus's hooks to a tokio runtime builder.
pub(crate) fn install_hooks(builder: &mut tokio::runtime::Builder) {
    #[cfg(tokio_unstable)]
    hooks::install(builder);
    #[cfg(not(tokio_unstable))]
    {
        builder.on_thread_park(check_for_unseen_tasks);
        // Said wherever a profile is written: at the end, on a signal.
        theseus_profiler::add_note(unseen_tasks_note);
    }
}

/// Whether tasks ran unseen, and how to see them, as said when a profile is
/// written.
#[cfg_attr(tokio_unstable, allow(dead_code))]
fn unseen_tasks_note() -> Option<String> {
    unseen_tokio_tasks().map(|count| {
        format!(
            "theseus: tasks spawned with tokio::spawn ran unseen (up to {count} at once), \
             e.g. by axum, hyper or tonic; to profile them, {TOKIO_UNSTABLE_ADVICE}"
        )
    })
}

/// Runs `spawn`, which spawns a theseus task on tokio: tokio's spawn hook
/// must leave it alone, since it times itself.
#[inline]
pub(crate) fn spawning_theseus_task<R>(spawn: impl FnOnce() -> R) -> R {
    #[cfg(tokio_unstable)]
    {
        hooks::spawning_own(spawn)
    }
    #[cfg(not(tokio_unstable))]
    {
        spawn()
    }
}

#[cfg(tokio_unstable)]
mod hooks {
    use crate::cell::{PollingGuard, TaskCell};
    use crate::id_hasher::{id_number, IdHasher};
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;
    use std::hash::BuildHasherDefault;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex, MutexGuard};
    use theseus_profiler::{Outcome, PollScope};
    use tokio::runtime::TaskMeta;
    use tokio::task::Id;

    thread_local! {
        /// Set while theseus itself spawns: its tasks time themselves.
        static SPAWNING_OWN: Cell<bool> = const { Cell::new(false) };
        /// The tokio task being polled on this thread, between the hooks
        /// before and after its poll.
        static POLLING: RefCell<Option<Polling>> = const { RefCell::new(None) };
    }

    struct Polling {
        id: Id,
        /// Frames polled inside the task find it here (dropped before
        /// `cell`, which it points to).
        _polled: PollingGuard,
        cell: Arc<TaskCell>,
        start: u64,
        _scope: PollScope,
    }

    pub(super) fn spawning_own<R>(spawn: impl FnOnce() -> R) -> R {
        struct RestoreSpawningOwn(bool);
        impl Drop for RestoreSpawningOwn {
            fn drop(&mut self) {
                SPAWNING_OWN.set(self.0);
            }
        }
        let _restore = RestoreSpawningOwn(SPAWNING_OWN.replace(true));
        spawn()
    }

    const SHARDS: usize = 32;

    type Tasks = HashMap<Id, Arc<TaskCell>, BuildHasherDefault<IdHasher>>;

    /// The timed tokio tasks, by id.
    static TASKS: [Mutex<Tasks>; SHARDS] =
        [const { Mutex::new(HashMap::with_hasher(BuildHasherDefault::new())) }; SHARDS];

    /// How many tasks are in [`TASKS`]. The hooks run for theseus's own
    /// tasks too, on every poll; while no other task is timed (a program
    /// that spawns only with `theseus::spawn`), they return without taking
    /// a lock. A task is counted in its spawn hook, which runs before tokio
    /// schedules it, so its first poll sees the count through the handoff
    /// to the worker that polls it.
    static TIMED: AtomicUsize = AtomicUsize::new(0);

    fn shard(id: Id) -> MutexGuard<'static, Tasks> {
        TASKS[id_number(&id) as usize % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn install(builder: &mut tokio::runtime::Builder) {
        builder
            .track_task_schedule_latency()
            .on_task_spawn(on_spawn)
            .on_before_task_poll(before_poll)
            .on_after_task_poll(after_poll)
            .on_task_terminate(on_terminate);
    }

    fn on_spawn(meta: &TaskMeta<'_>) {
        if SPAWNING_OWN.get() || !theseus_profiler::is_active() {
            return;
        }
        // tokio does not say what future the task runs, only where it was
        // spawned: its leaf is named after that.
        let stack = theseus_profiler::tokio_spawn_stack(meta.spawned_at());
        let cell = TaskCell::register(stack);
        if shard(meta.id()).insert(meta.id(), cell).is_none() {
            TIMED.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn before_poll(meta: &TaskMeta<'_>) {
        if TIMED.load(Ordering::Relaxed) == 0 || !theseus_profiler::is_active() {
            return;
        }
        let Some(cell) = shard(meta.id()).get(&meta.id()).cloned() else {
            return;
        };
        let start = cell.header.on_hooked_poll_start(meta.schedule_latency());
        // The hook runs a few frames below tokio's poll of the task, beside
        // the frames that will run it; a margin above this local keeps the
        // task's own outermost frames, and tokio's frames caught in the
        // margin are removed by name when the stack is resolved.
        let marker = 0u8;
        let boundary = std::hint::black_box(&marker) as *const u8 as usize + BOUNDARY_MARGIN;
        // SAFETY: a margin above this frame's local, within the frames of
        // tokio's poll that call this hook and then the task's poll; the
        // scope is dropped on this thread by `after_poll`, before they return.
        let scope = unsafe { theseus_profiler::enter_poll(cell.header.stack, boundary) };
        let polled = cell.enter_polling();
        POLLING.with(|polling| {
            *polling.borrow_mut() = Some(Polling {
                id: meta.id(),
                _polled: polled,
                cell,
                start,
                _scope: scope,
            })
        });
    }

    const BOUNDARY_MARGIN: usize = 2048;

    fn after_poll(_: &TaskMeta<'_>) {
        if let Some(polling) = POLLING.with(|polling| polling.borrow_mut().take()) {
            polling.cell.header.on_poll_end(polling.start);
        }
    }

    fn on_terminate(meta: &TaskMeta<'_>) {
        // A timed task terminating is still counted: none is, none of
        // theseus's own tasks needs the lookup.
        if TIMED.load(Ordering::Relaxed) == 0 {
            return;
        }
        let cell = shard(meta.id()).remove(&meta.id());
        if cell.is_some() {
            TIMED.fetch_sub(1, Ordering::Relaxed);
        }
        // Out of the live tasks before its end is timed (`TaskCell::unlist`).
        if let Some(cell) = &cell {
            cell.unlist();
        }
        // A task that completes (or is cancelled by its worker after an
        // abort) terminates inside its last poll, before the hook after the
        // poll runs: that poll ends here, or the record would lack it.
        let last_poll = POLLING.with(|polling| {
            let mut polling = polling.borrow_mut();
            match &*polling {
                Some(running) if running.id == meta.id() => polling.take(),
                _ => None,
            }
        });
        let now = match last_poll {
            Some(polling) => polling.cell.header.on_poll_end(polling.start),
            None => crate::clock::now(),
        };
        if let Some(cell) = cell {
            // tokio does not say whether the task completed or was
            // cancelled; see the README's events table.
            cell.finish(Outcome::Completed, now);
        }
    }
}
