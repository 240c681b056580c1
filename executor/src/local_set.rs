//! [`LocalSet`]: tasks that need not be `Send`, run on one thread, as
//! `tokio::task::LocalSet`, each timed like any theseus task.

use crate::census::current_runtime;
use crate::join::JoinHandle;
use crate::runtime::Runtime;
use crate::spawn::timed;
use crate::tokio_tasks::spawning_theseus_task;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};
use theseus_profiler::StackId;

/// A set of tasks that run on the thread that drives the set: by
/// [`LocalSet::run_until`], [`LocalSet::block_on`], or awaiting the set,
/// which runs its tasks until all have finished. Its tasks come from
/// [`LocalSet::spawn_local`] or, while it runs,
/// [`crate::task::spawn_local`].
///
/// ```
/// use std::rc::Rc;
/// let rt = theseus_executor::Runtime::new().unwrap();
/// let local = theseus_executor::task::LocalSet::new();
/// let shared = Rc::new(String::from("not Send"));
/// let task = local.spawn_local({
///     let shared = shared.clone();
///     async move { shared.len() }
/// });
/// let len = local.block_on(&rt, async { task.await.unwrap() });
/// assert_eq!(len, 8);
/// ```
#[derive(Default)]
pub struct LocalSet {
    inner: tokio::task::LocalSet,
}

impl LocalSet {
    /// An empty set.
    pub fn new() -> LocalSet {
        LocalSet::default()
    }

    pub(crate) fn tokio(&self) -> &tokio::task::LocalSet {
        &self.inner
    }

    /// Spawns `future` into this set; it runs when the set is driven.
    #[track_caller]
    pub fn spawn_local<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let location = Location::caller();
        if !theseus_profiler::is_active() {
            return JoinHandle::new(self.inner.spawn_local(future), StackId::ROOT);
        }
        let (stack, task) = timed(future, location, current_runtime());
        JoinHandle::new(
            spawning_theseus_task(|| self.inner.spawn_local(task)),
            stack,
        )
    }

    /// Runs `future` on `runtime`, on this thread, driving the set's tasks
    /// meanwhile; see [`Runtime::block_on`].
    #[track_caller]
    pub fn block_on<F: Future>(&self, runtime: &Runtime, future: F) -> F::Output {
        runtime.block_on(self.inner.run_until(future))
    }

    /// Runs `future` to completion, driving the set's tasks meanwhile.
    pub async fn run_until<F: Future>(&self, future: F) -> F::Output {
        self.inner.run_until(future).await
    }

    /// Makes this set current on this thread until the guard drops, so
    /// [`crate::task::spawn_local`] puts tasks in it.
    pub fn enter(&self) -> LocalEnterGuard {
        LocalEnterGuard {
            _tokio: self.inner.enter(),
        }
    }
}

/// Awaiting the set runs its tasks until every one has finished.
impl Future for LocalSet {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

impl fmt::Debug for LocalSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalSet")
    }
}

/// Restores the previous `LocalSet` when dropped; see [`LocalSet::enter`].
pub struct LocalEnterGuard {
    _tokio: tokio::task::LocalEnterGuard,
}

impl fmt::Debug for LocalEnterGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalEnterGuard")
    }
}
