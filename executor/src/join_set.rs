//! [`JoinSet`]: a set of theseus tasks awaited in the order they finish, as
//! `tokio::task::JoinSet`.
//!
//! tokio's set spawns with `tokio::spawn`, whose tasks theseus sees only
//! through tokio's hooks; this one holds tokio's set and puts each task in
//! it with its timer and logical stack, as [`crate::spawn`] does, so the
//! set's tasks are in the profile on any build.

use crate::census::{current_runtime, runtime_of};
use crate::join::{AbortHandle, JoinError};
use crate::local_set::LocalSet;
use crate::runtime::Handle;
use crate::spawn::{timed, timed_blocking};
use crate::tokio_tasks::spawning_theseus_task;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::task::{Context, Poll};

/// A collection of tasks spawned on the runtime, awaited in the order they
/// finish. Dropping the set aborts every task still in it.
///
/// ```
/// let rt = theseus_executor::Runtime::new().unwrap();
/// rt.block_on(async {
///     let mut set = theseus_executor::task::JoinSet::new();
///     for i in 0..10u64 {
///         set.spawn(async move { i * i });
///     }
///     let mut total = 0;
///     while let Some(done) = set.join_next().await {
///         total += done.unwrap();
///     }
///     assert_eq!(total, 285);
/// });
/// ```
pub struct JoinSet<T> {
    inner: tokio::task::JoinSet<T>,
}

impl<T> JoinSet<T> {
    /// An empty set.
    pub fn new() -> JoinSet<T> {
        JoinSet {
            inner: tokio::task::JoinSet::new(),
        }
    }

    /// How many tasks are in the set, finished but not yet joined included.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the set holds no task.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

impl<T: 'static> JoinSet<T> {
    /// Spawns `task` on the current runtime into the set, timed under its
    /// spawn site as with [`crate::spawn`].
    ///
    /// # Panics
    ///
    /// Outside a runtime, as tokio's does.
    #[track_caller]
    pub fn spawn<F>(&mut self, task: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send,
    {
        let location = Location::caller();
        if !theseus_profiler::is_active() {
            return AbortHandle::new(self.inner.spawn(task));
        }
        let (_, task) = timed(task, location, current_runtime());
        AbortHandle::new(spawning_theseus_task(|| self.inner.spawn(task)))
    }

    /// Spawns `task` on the runtime of `handle` into the set.
    #[track_caller]
    pub fn spawn_on<F>(&mut self, task: F, handle: &Handle) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send,
    {
        let location = Location::caller();
        if !theseus_profiler::is_active() {
            return AbortHandle::new(self.inner.spawn_on(task, handle.tokio()));
        }
        let (_, task) = timed(task, location, runtime_of(handle.tokio()));
        AbortHandle::new(spawning_theseus_task(|| {
            self.inner.spawn_on(task, handle.tokio())
        }))
    }

    /// Spawns a future that need not be `Send` on the current
    /// [`LocalSet`] into the set; see [`crate::task::spawn_local`].
    ///
    /// # Panics
    ///
    /// Outside a `LocalSet`, as tokio's does.
    #[track_caller]
    pub fn spawn_local<F>(&mut self, task: F) -> AbortHandle
    where
        F: Future<Output = T> + 'static,
    {
        let location = Location::caller();
        if !theseus_profiler::is_active() {
            return AbortHandle::new(self.inner.spawn_local(task));
        }
        let (_, task) = timed(task, location, current_runtime());
        AbortHandle::new(spawning_theseus_task(|| self.inner.spawn_local(task)))
    }

    /// Spawns a future that need not be `Send` on `local_set` into the set.
    #[track_caller]
    pub fn spawn_local_on<F>(&mut self, task: F, local_set: &LocalSet) -> AbortHandle
    where
        F: Future<Output = T> + 'static,
    {
        let location = Location::caller();
        let local = local_set.tokio();
        if !theseus_profiler::is_active() {
            return AbortHandle::new(self.inner.spawn_local_on(task, local));
        }
        let (_, task) = timed(task, location, current_runtime());
        AbortHandle::new(spawning_theseus_task(|| {
            self.inner.spawn_local_on(task, local)
        }))
    }

    /// Runs a blocking closure on the blocking pool, into the set, timed as
    /// with [`crate::spawn_blocking`].
    ///
    /// # Panics
    ///
    /// Outside a runtime, as tokio's does.
    #[track_caller]
    pub fn spawn_blocking<F>(&mut self, f: F) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send,
    {
        let location = Location::caller();
        if !theseus_profiler::is_active() {
            return AbortHandle::new(self.inner.spawn_blocking(f));
        }
        let (_, task) = timed_blocking(f, location);
        AbortHandle::new(spawning_theseus_task(|| {
            self.inner.spawn_blocking(move || task.run())
        }))
    }

    /// Runs a blocking closure on the blocking pool of `handle`'s runtime,
    /// into the set.
    #[track_caller]
    pub fn spawn_blocking_on<F>(&mut self, f: F, handle: &Handle) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send,
    {
        let location = Location::caller();
        if !theseus_profiler::is_active() {
            return AbortHandle::new(self.inner.spawn_blocking_on(f, handle.tokio()));
        }
        let (_, task) = timed_blocking(f, location);
        AbortHandle::new(spawning_theseus_task(|| {
            self.inner
                .spawn_blocking_on(move || task.run(), handle.tokio())
        }))
    }

    /// Waits for the next task to finish and gives its output, or `None`
    /// when the set is empty. Cancel-safe, as tokio's.
    pub async fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        std::future::poll_fn(|cx| self.poll_join_next(cx)).await
    }

    /// The output of a task that has finished, if any, without waiting.
    pub fn try_join_next(&mut self) -> Option<Result<T, JoinError>> {
        self.inner
            .try_join_next()
            .map(|done| done.map_err(JoinError::from_tokio))
    }

    /// Polls for the next task to finish; see [`JoinSet::join_next`].
    pub fn poll_join_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, JoinError>>> {
        // tokio's frames say nothing about what the task waits for: name it.
        let _awaiting = theseus_profiler::awaiting("theseus::task::JoinSet::join_next");
        self.inner
            .poll_join_next(cx)
            .map(|next| next.map(|done| done.map_err(JoinError::from_tokio)))
    }

    /// Waits for every task and gives their outputs, in the order they
    /// finished.
    ///
    /// # Panics
    ///
    /// If a task panicked (with its payload) or was cancelled, as tokio's
    /// does; the other tasks are then aborted when the set drops.
    pub async fn join_all(mut self) -> Vec<T> {
        let mut outputs = Vec::with_capacity(self.len());
        while let Some(done) = self.join_next().await {
            match done {
                Ok(output) => outputs.push(output),
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                Err(error) => panic!("{error}"),
            }
        }
        outputs
    }

    /// Aborts every task and waits for them all to stop; the set is then
    /// empty.
    pub async fn shutdown(&mut self) {
        self.abort_all();
        while self.join_next().await.is_some() {}
    }

    /// Aborts every task in the set; they stay in it until joined.
    pub fn abort_all(&mut self) {
        self.inner.abort_all();
    }

    /// Removes every task from the set without aborting them: they run on.
    pub fn detach_all(&mut self) {
        self.inner.detach_all();
    }
}

impl<T> Default for JoinSet<T> {
    fn default() -> JoinSet<T> {
        JoinSet::new()
    }
}

impl<T> fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinSet").field("len", &self.len()).finish()
    }
}

impl<T, F> Extend<F> for JoinSet<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    /// Spawns every future of `futures` into the set.
    #[track_caller]
    fn extend<I: IntoIterator<Item = F>>(&mut self, futures: I) {
        for future in futures {
            self.spawn(future);
        }
    }
}

impl<T, F> FromIterator<F> for JoinSet<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    /// A set with every future of `futures` spawned into it.
    #[track_caller]
    fn from_iter<I: IntoIterator<Item = F>>(futures: I) -> JoinSet<T> {
        let mut set = JoinSet::new();
        set.extend(futures);
        set
    }
}
