//! [`TaskCell`]: what a timed task shares with its wakers and the registry.
//!
//! A task's wakers may outlive the task (a timer or a socket keeps one
//! after the task was aborted), and a profile written mid-run reads the
//! task from another thread, so the task's header lives in a reference
//! counted cell rather than in the future tokio stores: the `Timed`
//! wrapper, each of its wakers (`waker`) and the live-task registry each
//! hold a count.
//!
//! A spawned task's header starts out in its own future, though
//! (`state`: [`TaskState`]), and moves into a cell only when something must
//! share it: a waker that leaves the poll, or a frame polled inside it. A
//! task that ends in the poll that needs nothing shared costs no cell.
//!
//! A frame (a marked future polled inside a task, see `frame`) has a cell
//! too, with its own wakers: they pass wakes on to the waker its poll was
//! given, and its costs leave those of the task it was first polled in.

use crate::header::TaskHeader;
use crate::registry::{LiveEntry, LiveRegistry, LiveSlot};
use crate::set_once::SetOnce;
use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::Waker;
use theseus_profiler::{LastAwait, LiveTasks, Outcome, RecordKind, StackId, TaskRecord};

mod state;

pub(crate) use state::TaskState;

/// What a profiled task shares with its wakers and the registry. Aligned
/// so that a waker's data pointer has bits to spare (`waker`).
#[repr(align(16))]
pub(crate) struct TaskCell {
    pub(crate) header: TaskHeader,
    slot: LiveSlot,
    /// tokio's waker for this task, from its first poll. A tokio task's
    /// waker never changes, so it is set once and read without a lock.
    tokio_waker: SetOnce<Waker>,
    /// Set for a frame (see `frame`): what wakes it, and what it is inside.
    frame: Option<Box<FrameLinks>>,
    /// The await point this task registered last: most tasks wait at the
    /// same one poll after poll, and it is checked first ([`await_tag`]).
    ///
    /// [`await_tag`]: TaskCell::await_tag
    last_await: LastAwait,
}

/// What a frame's cell has that a task's has not.
struct FrameLinks {
    /// The waker of the last poll of the frame: the enclosing task's (or
    /// frame's), or whatever polls it. Unlike a tokio task's, it may change
    /// from one poll to the next.
    outer: Mutex<Option<Waker>>,
    /// The task or frame being polled where this frame was first polled,
    /// whose costs the frame's leave (`TaskHeader::hold`).
    owner: Option<Arc<TaskCell>>,
    /// What its record counts as: a frame, or `block_on`'s future.
    kind: RecordKind,
}

impl TaskCell {
    /// A cell for a task spawned now.
    pub(crate) fn new(stack: StackId) -> Arc<TaskCell> {
        TaskCell::with_header(TaskHeader::new(stack))
    }

    /// A cell for a task whose header is `header`.
    pub(crate) fn with_header(header: TaskHeader) -> Arc<TaskCell> {
        Arc::new(TaskCell {
            header,
            slot: LiveSlot::new(),
            tokio_waker: SetOnce::new(),
            frame: None,
            last_await: LastAwait::new(),
        })
    }

    /// A cell for a frame created at `created_at` and first polled now,
    /// inside the poll of the task or frame whose cell is `owner`.
    pub(crate) fn frame(
        stack: StackId,
        created_at: u64,
        owner: Option<Arc<TaskCell>>,
        kind: RecordKind,
    ) -> Arc<TaskCell> {
        Arc::new(TaskCell {
            header: TaskHeader::created_at(stack, created_at),
            slot: LiveSlot::new(),
            tokio_waker: SetOnce::new(),
            frame: Some(Box::new(FrameLinks {
                outer: Mutex::new(None),
                owner,
                kind,
            })),
            last_await: LastAwait::new(),
        })
    }

    /// What this cell's records count as.
    pub(crate) fn record_kind(&self) -> RecordKind {
        self.frame
            .as_ref()
            .map_or(RecordKind::Task, |links| links.kind)
    }

    /// The task or frame this frame was first polled inside.
    pub(crate) fn owner(&self) -> Option<&Arc<TaskCell>> {
        self.frame.as_ref()?.owner.as_ref()
    }

    /// Keeps `waker`, the waker this frame's poll was given, to pass its
    /// wakes on to. Called in the frame's poll, inside
    /// [`TaskCell::polling`]: a clone of the enclosing task's waker made
    /// there is no await point of that task (the frame's own wakers find
    /// the await points inside the frame).
    pub(crate) fn set_outer_waker(&self, waker: &Waker) {
        if let Some(links) = &self.frame {
            let mut outer = links.outer.lock().unwrap_or_else(PoisonError::into_inner);
            if !outer.as_ref().is_some_and(|kept| kept.will_wake(waker)) {
                *outer = Some(waker.clone());
            }
        }
    }

    /// A cell for a task spawned now, entered in the live-task registry.
    pub(crate) fn register(stack: StackId) -> Arc<TaskCell> {
        let cell = TaskCell::new(stack);
        cell.ensure_registered();
        cell
    }

    /// Enters the task in the live-task registry, if it is not in yet.
    ///
    /// A task enters when first polled, in the polling thread's shard,
    /// rather than at spawn in the spawner's: a short task then takes and
    /// leaves its entry on one thread, and no lock is shared between the
    /// thread that spawns and the one that runs. The price: a profile
    /// written mid-run does not show tasks still queued for their first poll.
    #[inline]
    pub(crate) fn ensure_registered(self: &Arc<TaskCell>) {
        if !self.slot.is_registered() {
            // SAFETY: the cell stays where its `Arc` put it, and its `Drop`
            // takes it out of the registry before it goes.
            unsafe { live_tasks().insert(&**self) };
        }
    }

    /// Takes the task out of the registry, if it is still in: done as its
    /// last poll returns, before its end is timed, so that a profile
    /// written meanwhile (while its future drops, say) never shows the task
    /// live for longer than its record will: each interval's share of a
    /// task is what it added since the last, and never goes below zero.
    pub(crate) fn unlist(&self) {
        live_tasks().remove(self);
    }

    /// Takes the task out of the registry and records its end: in that
    /// order, so a profile written meanwhile never counts the task both as
    /// live and as ended.
    pub(crate) fn finish(&self, outcome: Outcome, now: u64) {
        // Mostly out already (`unlist`): then not even the registry is
        // looked up.
        if self.slot.is_registered() {
            live_tasks().remove(self);
        }
        self.header.record_end(outcome, now);
    }

    /// The tokio waker of the task, once its first poll gave it.
    #[inline]
    pub(crate) fn tokio_waker(&self) -> Option<&Waker> {
        self.tokio_waker.get()
    }

    /// Keeps `waker` as the task's tokio waker. Called by the poller only,
    /// once (tokio never polls a task on two threads at once).
    pub(crate) fn set_tokio_waker(&self, waker: Waker) {
        self.tokio_waker.set(waker);
    }

    /// A wake through a waker tagged `tag` (see `waker`): passed on to
    /// tokio only when it schedules the task, so that each poll tokio makes
    /// after the first takes exactly one schedule (`TaskHeader::on_wake`).
    /// Inlined into the waker's `wake`, which most wakes go through.
    #[inline(always)]
    pub(crate) fn wake(&self, tag: u8) {
        if !self.header.on_wake(tag) {
            return;
        }
        if let Some(links) = &self.frame {
            let outer = links.outer.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(waker) = outer.as_ref() {
                waker.wake_by_ref();
            }
        } else if let Some(waker) = self.tokio_waker.get() {
            waker.wake_by_ref();
        }
    }

    /// The tag for the await point registering a waker now, in this task's
    /// poll on this thread; 0 when there is none to tell.
    ///
    /// The tag of the point kept in `last_await` is noted there: while the
    /// task registers that point again, the header's table is not looked
    /// up (the note is cleared whenever another point is found). Inlined
    /// into the waker's clone.
    #[inline(always)]
    pub(crate) fn await_tag(&self) -> u8 {
        let Some(stack) = theseus_profiler::await_point_after(&self.last_await) else {
            return 0;
        };
        match self.last_await.note() {
            0 => {
                let tag = self.header.register_await(stack);
                self.last_await.set_note(tag);
                tag
            }
            tag => {
                self.header.registered_again(tag);
                tag
            }
        }
    }

    /// Runs `poll` as this task's poll on this thread: wakers of the task
    /// used meanwhile on this thread know they are inside it
    /// ([`TaskCell::polled_here`]).
    #[inline]
    pub(crate) fn polling<R>(self: &Arc<TaskCell>, poll: impl FnOnce() -> R) -> R {
        // Restored on unwind too: the caller catches a panicking poll.
        let _restore = self.enter_polling();
        poll()
    }

    /// Marks this thread as inside this task's poll until the guard drops:
    /// [`TaskCell::polling`], for pollers that cannot wrap the poll in a
    /// call (tokio's hooks run before and after it).
    #[inline]
    pub(crate) fn enter_polling(self: &Arc<TaskCell>) -> PollingGuard {
        enter_polling(Arc::as_ptr(self) as usize)
    }

    /// The cell of the task (or frame) being polled on this thread, if any;
    /// a task whose header is still in its future moves it into one now.
    pub(crate) fn polled_now() -> Option<Arc<TaskCell>> {
        let address = POLLING.with(Cell::get);
        if address == 0 {
            return None;
        }
        if address & UNSHARED != 0 {
            // SAFETY: see `TaskState::polling`: the state is alive, and
            // pinned, for as long as `POLLING` holds its address.
            let state = unsafe { &*((address & !UNSHARED) as *const TaskState) };
            return Some(state.share().clone());
        }
        let cell = address as *const TaskCell;
        // SAFETY: `POLLING` holds the address of a cell only between
        // `enter_polling` and the drop of its guard, and the caller of
        // `enter_polling` holds an `Arc` of that cell meanwhile (it passed
        // `&Arc<TaskCell>`), so the cell is alive, and the count added here
        // belongs to the `Arc` made from it.
        unsafe {
            Arc::increment_strong_count(cell);
            Some(Arc::from_raw(cell))
        }
    }

    /// Whether this thread is inside this task's poll right now.
    #[inline]
    pub(crate) fn polled_here(&self) -> bool {
        let address = POLLING.with(Cell::get);
        let cell = self as *const TaskCell;
        if address & UNSHARED == 0 {
            return address == cell as usize;
        }
        // SAFETY: as in `polled_now`.
        let state = unsafe { &*((address & !UNSHARED) as *const TaskState) };
        state
            .shared()
            .is_some_and(|shared| Arc::as_ptr(shared) == cell)
    }
}

impl Drop for TaskCell {
    fn drop(&mut self) {
        // Ended tasks are out already; this keeps the registry's addresses
        // good whatever happens.
        if self.slot.is_registered() {
            live_tasks().remove(self);
        }
    }
}

thread_local! {
    /// The task being polled on this thread: its cell's address, or its
    /// state's with [`UNSHARED`] set; 0 if none.
    static POLLING: Cell<usize> = const { Cell::new(0) };
}

/// The bit of [`POLLING`] that says it holds a [`TaskState`].
const UNSHARED: usize = 1;
const _: () = assert!(std::mem::align_of::<TaskState>() > UNSHARED);

/// Marks this thread as inside the poll of the task at `address` (see
/// [`POLLING`]) until the guard drops.
#[inline]
fn enter_polling(address: usize) -> PollingGuard {
    let outer = POLLING.with(|p| p.replace(address));
    PollingGuard {
        outer,
        _not_send: PhantomData,
    }
}

/// Puts back the task that was being polled on this thread, when dropped.
pub(crate) struct PollingGuard {
    outer: usize,
    /// Restores this thread's state: dropped on the thread that made it.
    _not_send: PhantomData<*const ()>,
}

impl Drop for PollingGuard {
    #[inline]
    fn drop(&mut self) {
        POLLING.with(|p| p.set(self.outer));
    }
}

impl LiveEntry for TaskCell {
    fn live_slot(&self) -> &LiveSlot {
        &self.slot
    }

    fn live_record(&self, now: u64) -> TaskRecord {
        let mut record = self.header.to_record(Outcome::Unfinished, now);
        record.kind = self.record_kind();
        record
    }
}

/// The process's registry of live tasks, handed to the profiler once.
pub(crate) fn live_tasks() -> &'static LiveRegistry {
    static LIVE: OnceLock<Arc<LiveRegistry>> = OnceLock::new();
    LIVE.get_or_init(|| {
        let registry = Arc::new(LiveRegistry::new());
        let live: Arc<dyn LiveTasks> = registry.clone();
        // The static keeps the registry alive, so the weak reference the
        // profiler holds never dangles.
        theseus_profiler::register_live_tasks(Arc::downgrade(&live));
        registry
    })
}

#[cfg(all(test, theseus_loom))]
mod loom_models;

// Not under loom: the header's atomics are loom's there, usable only
// inside a loom model.
#[cfg(test)]
#[cfg(not(theseus_loom))]
mod tests {
    use super::*;
    use crate::Builder;

    /// The tests here count the process's live tasks: one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn tasks_leave_the_registry_however_they_end() {
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let (tracer, runtime) = traced_runtime();
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
        assert_eq!(live_tasks().len(), 0);
        let (polled, first_poll) = std::sync::mpsc::channel();
        drop(runtime.spawn(async move {
            polled.send(()).unwrap();
            std::future::pending::<()>().await
        }));
        first_poll.recv().unwrap();
        assert_eq!(live_tasks().len(), 1, "a waiting task is live");
        drop(runtime);
        assert_eq!(live_tasks().len(), 0, "shutdown left tasks behind");
        tracer.uninstall();
    }

    /// A tracer installed, and a two-worker runtime to profile.
    fn traced_runtime() -> (theseus_profiler::Tracer, crate::Runtime) {
        let tracer = theseus_profiler::Tracer::new();
        tracer.install();
        let runtime = Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        (tracer, runtime)
    }

    /// The live records of every task in the registry now.
    fn live_records() -> Vec<TaskRecord> {
        let mut records = Vec::new();
        live_tasks().for_each_live(&mut |record| records.push(record));
        records
    }

    /// A future that is ready at once and takes `50 ms` to drop, saying
    /// so on `dropping` when it starts.
    struct SlowToDrop(std::sync::mpsc::Sender<()>);

    impl std::future::Future for SlowToDrop {
        type Output = ();
        fn poll(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<()> {
            std::task::Poll::Ready(())
        }
    }

    impl Drop for SlowToDrop {
        fn drop(&mut self) {
            let _ = self.0.send(());
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    #[test]
    fn a_task_ending_is_never_live_past_its_end() {
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let (tracer, runtime) = traced_runtime();
        let (dropping, dropped) = std::sync::mpsc::channel();
        let task = runtime.spawn(SlowToDrop(dropping));
        dropped.recv().unwrap();
        // The task has ended and its future is being dropped: a profile
        // written now must not show it live longer than its record will.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let live = live_records();
        runtime.block_on(task).unwrap();
        drop(runtime);
        tracer.uninstall();
        let (stack, _, ended) = tracer
            .aggregate()
            .iter()
            .find(|(_, _, costs)| costs.tasks == 1)
            .expect("the task's record");
        // Out of the live tasks already, or live no longer than it lived.
        for record in live.iter().filter(|r| r.stack == stack) {
            assert!(
                record.wall_ns <= ended.wall_ns && record.busy_ns <= ended.busy_ns,
                "live {record:?}, ended {ended:?}"
            );
        }
    }

    #[test]
    fn a_task_is_live_in_its_first_poll_and_once_its_header_moved() {
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let (tracer, runtime) = traced_runtime();
        let (in_poll, first_poll) = std::sync::mpsc::channel();
        let (go_on, resume) = std::sync::mpsc::channel::<()>();
        let (wake, woken) = tokio::sync::oneshot::channel::<()>();
        let task = runtime.spawn(async move {
            // Its first poll lasts until the test has looked: the header is
            // on that poll's stack, the registry lists it there.
            in_poll.send(()).unwrap();
            resume.recv().unwrap();
            // Pending with a waker kept by the channel: the header moves.
            woken.await.unwrap();
        });
        first_poll.recv().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let during = live_records();
        assert_eq!(during.len(), 1, "{during:?}");
        assert_eq!(during[0].polls, 0, "the first poll is still running");
        assert!(during[0].busy_ns >= 20_000_000, "{during:?}");
        go_on.send(()).unwrap();
        while live_records().first().is_none_or(|r| r.polls != 1) {
            std::thread::yield_now();
        }
        // A record read as a poll ends may miss that poll for the instant
        // (`TaskHeader::to_record`): read again once it is surely over.
        std::thread::sleep(std::time::Duration::from_millis(5));
        let after = live_records();
        assert_eq!(after.len(), 1, "listed once, from its cell: {after:?}");
        assert_eq!(after[0].id, during[0].id, "the same task");
        assert!(after[0].busy_ns >= during[0].busy_ns, "{after:?}");
        wake.send(()).unwrap();
        runtime.block_on(task).unwrap();
        assert_eq!(live_tasks().len(), 0, "the ended task left");
        drop(runtime);
        tracer.uninstall();
    }
}
