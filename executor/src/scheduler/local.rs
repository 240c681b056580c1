//! [`LocalExecutor`]: an [`Executor`] for futures that are not `Send`, run
//! only on the thread that owns it.

use super::Executor;
use async_task::Task;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::rc::Rc;

/// A drop-in for `async_executor::LocalExecutor`: the same scheduler and
/// the same timing as [`Executor`], for tasks that are not `Send`. It is
/// neither `Send` nor `Sync`, so its thread is its only runner.
///
/// ```
/// # std::env::set_var("THESEUS_OUT", "/dev/null");
/// use std::rc::Rc;
/// let ex = theseus_executor::LocalExecutor::new();
/// let shared = Rc::new(40);
/// let task = ex.spawn({
///     let shared = shared.clone();
///     async move { *shared + 2 }
/// });
/// assert_eq!(futures_lite::future::block_on(ex.run(task)), 42);
/// ```
#[derive(Default)]
pub struct LocalExecutor<'a> {
    inner: Executor<'a>,
    /// Neither `Send` nor `Sync`.
    _thread_bound: PhantomData<Rc<()>>,
}

impl std::panic::UnwindSafe for LocalExecutor<'_> {}
impl std::panic::RefUnwindSafe for LocalExecutor<'_> {}

impl<'a> LocalExecutor<'a> {
    /// A new executor, with no task.
    pub const fn new() -> LocalExecutor<'a> {
        LocalExecutor {
            inner: Executor::new(),
            _thread_bound: PhantomData,
        }
    }

    /// See [`Executor::is_empty`].
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Spawns a task that need not be `Send`; see [`Executor::spawn`].
    #[track_caller]
    pub fn spawn<T: 'a>(&self, future: impl Future<Output = T> + 'a) -> Task<T> {
        // SAFETY: `self` is neither `Send` nor `Sync`: it is spawned on,
        // run, ticked and dropped on this one thread only.
        unsafe { self.inner.spawn_inner(future, Location::caller()) }
    }

    /// Spawns every future of `futures`; see [`Executor::spawn_many`].
    #[track_caller]
    pub fn spawn_many<T: 'a, F: Future<Output = T> + 'a>(
        &self,
        futures: impl IntoIterator<Item = F>,
        handles: &mut impl Extend<Task<F::Output>>,
    ) {
        let location = Location::caller();
        // SAFETY: as in `spawn`: everything happens on this thread.
        handles.extend(
            futures
                .into_iter()
                .map(|future| unsafe { self.inner.spawn_inner(future, location) }),
        );
    }

    /// See [`Executor::try_tick`].
    pub fn try_tick(&self) -> bool {
        self.inner.try_tick()
    }

    /// See [`Executor::tick`].
    pub async fn tick(&self) {
        self.inner.tick().await
    }

    /// See [`Executor::run`].
    pub async fn run<T>(&self, future: impl Future<Output = T>) -> T {
        self.inner.run(future).await
    }
}

impl std::fmt::Debug for LocalExecutor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalExecutor")
            .field("empty", &self.is_empty())
            .finish_non_exhaustive()
    }
}
