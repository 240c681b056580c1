//! Tasks as users see them: [`JoinHandle`], [`JoinError`], [`yield_now`], and
//! the wrapper that times every poll.
//!
//! Every spawned future is wrapped in a `TaskFuture`, which borrows the task's
//! [`Header`] (its `async-task` metadata). The wrapper is where a task's life
//! is observed: it checks for `abort` before each poll, times the poll, catches
//! a panic so that no worker dies, and when the task ends, by completing,
//! panicking or being dropped unfinished, hands one record to the profiler and
//! leaves the registry.

use crate::header::Header;
use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;
use std::task::{Context, Poll};
use theseus_profiler::Outcome;

/// What a task's future resolves to inside `async-task`.
pub(crate) type TaskOutput<T> = Result<T, JoinError>;

pub(crate) struct TaskFuture<'h, F> {
    header: &'h Header,
    /// `None` once the inner future has been dropped.
    inner: Option<F>,
}

impl<'h, F> TaskFuture<'h, F> {
    pub(crate) fn new(header: &'h Header, inner: F) -> Self {
        TaskFuture {
            header,
            inner: Some(inner),
        }
    }

    /// Drops the inner future in place. Pinned futures (tokio's `Sleep` sits
    /// in a timer list by address) must never be moved out to be dropped.
    fn drop_inner(&mut self) {
        // A destructor that panics must not take the worker with it.
        let _ = catch_unwind(AssertUnwindSafe(|| self.inner = None));
    }

    /// Drops the inner future (if still there) and reports the task's end.
    fn finish(&mut self, outcome: Outcome, now: u64) {
        self.drop_inner();
        if self.header.timed {
            let now = if now == 0 { crate::clock::now() } else { now };
            theseus_profiler::record(&self.header.record(outcome, now));
        }
        drop(self.header.registry.remove(self.header));
    }
}

impl<F: Future> Future for TaskFuture<'_, F> {
    type Output = TaskOutput<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `inner` is structurally pinned: it is never moved, only
        // dropped in place (`drop_inner` assigns `None` over it). The other
        // fields are not pinned and nothing else projects `self`.
        let this = unsafe { self.get_unchecked_mut() };
        if this.header.aborted.load(Relaxed) {
            this.finish(Outcome::Cancelled, 0);
            return Poll::Ready(Err(JoinError::cancelled()));
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Pending;
        };
        let start = this.header.on_poll_start();
        let polled = {
            // The poll boundary: frames deeper than this local belong to the task.
            let marker = 0u8;
            let boundary = std::hint::black_box(&marker) as *const u8 as usize;
            let _scope = this
                .header
                .timed
                .then(|| theseus_profiler::enter_poll(this.header.stack, boundary));
            // SAFETY: see above; `inner` stays in place until dropped.
            let inner = unsafe { Pin::new_unchecked(inner) };
            catch_unwind(AssertUnwindSafe(|| poll_below_boundary(inner, cx)))
        };
        let end = this.header.on_poll_end(start);
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => {
                this.finish(Outcome::Completed, end);
                Poll::Ready(Ok(value))
            }
            Err(payload) => {
                this.finish(Outcome::Panicked, end);
                Poll::Ready(Err(JoinError::panic(payload)))
            }
        }
    }
}

/// Polls `future` in a machine frame of its own.
///
/// The profiler keeps the machine frames below the poll boundary (a local in
/// the caller's frame). Were the task's `poll` inlined into the caller, its
/// frames would share the caller's machine frame and be cut with it; in this
/// never-inlined frame, everything inlined into it is below the boundary.
#[inline(never)]
pub(crate) fn poll_below_boundary<F: Future + ?Sized>(
    future: Pin<&mut F>,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    future.poll(cx)
}

impl<F> Drop for TaskFuture<'_, F> {
    fn drop(&mut self) {
        // Dropped before it ended: the runtime shut down, or the last waker
        // of a detached task went away. (After `finish`, `inner` is `None`.)
        if self.inner.is_some() {
            self.finish(Outcome::Cancelled, 0);
        }
    }
}

/// An owned permission to await a spawned task's output.
///
/// Awaiting it gives `Ok(value)`, or a [`JoinError`] if the task panicked or
/// was cancelled. Dropping it *detaches* the task, which keeps running (as
/// with tokio, unlike plain `async-task`).
///
/// ```
/// let rt = theseus_executor::Runtime::new().unwrap();
/// rt.block_on(async {
///     let handle = theseus_executor::spawn(async { 6 * 7 });
///     assert_eq!(handle.await.unwrap(), 42);
/// });
/// ```
pub struct JoinHandle<T> {
    task: Option<async_task::FallibleTask<TaskOutput<T>, Header>>,
    /// The task's header. Valid while `task` is `Some`: the task handle holds
    /// a reference on the allocation the header lives in.
    header: *const Header,
}

// SAFETY: `header` is only read through `&Header`, and `Header` is `Sync`;
// the rest are `Send`/`Sync` when `T: Send`, as for `async_task::Task`.
unsafe impl<T: Send> Send for JoinHandle<T> {}
// SAFETY: as above; `&JoinHandle` only offers `abort` and `is_finished`.
unsafe impl<T: Send> Sync for JoinHandle<T> {}

impl<T> Unpin for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    pub(crate) fn new(task: async_task::Task<TaskOutput<T>, Header>) -> Self {
        let header: *const Header = task.metadata();
        JoinHandle {
            task: Some(task.fallible()),
            header,
        }
    }

    fn header(&self) -> Option<&Header> {
        // SAFETY: while `task` is `Some`, the task allocation (and the header
        // in it) is kept alive by the task handle.
        self.task.as_ref().map(|_| unsafe { &*self.header })
    }

    /// Cancels the task: it will not be polled again, and its future is
    /// dropped on a worker. Awaiting the handle then gives a cancelled
    /// [`JoinError`] (unless the task had already completed).
    ///
    /// A task inside `spawn_blocking` cannot be interrupted once it runs.
    ///
    /// ```
    /// let rt = theseus_executor::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let handle = theseus_executor::spawn(std::future::pending::<()>());
    ///     handle.abort();
    ///     assert!(handle.await.unwrap_err().is_cancelled());
    /// });
    /// ```
    pub fn abort(&self) {
        if let Some(header) = self.header() {
            header.aborted.store(true, Relaxed);
            header.registry.wake(header);
        }
    }

    /// Whether the task has finished (completed, panicked or been cancelled).
    ///
    /// ```
    /// let rt = theseus_executor::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let handle = theseus_executor::spawn(async {});
    ///     while !handle.is_finished() {
    ///         theseus_executor::task::yield_now().await;
    ///     }
    /// });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|task| task.is_finished())
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let task = self
            .task
            .as_mut()
            .expect("JoinHandle polled after it returned Ready");
        match Pin::new(task).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(output) => {
                self.task = None;
                // `None`: the runtime dropped the task before it could run,
                // which is cancellation too.
                Poll::Ready(output.unwrap_or_else(|| Err(JoinError::cancelled())))
            }
        }
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Why awaiting a [`JoinHandle`] did not give the task's output.
///
/// ```
/// let rt = theseus_executor::Runtime::new().unwrap();
/// rt.block_on(async {
///     let err = theseus_executor::spawn(async { panic!("boom") }).await.unwrap_err();
///     assert!(err.is_panic());
///     let payload = err.into_panic();
///     assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
/// });
/// ```
pub struct JoinError {
    repr: Repr,
}

enum Repr {
    Cancelled,
    // A `Mutex` makes the payload `Sync`, so `JoinError` is `Send + Sync`
    // like tokio's and can cross into `anyhow`/`Box<dyn Error + Send + Sync>`.
    Panic(Mutex<Box<dyn Any + Send + 'static>>),
}

impl JoinError {
    pub(crate) fn cancelled() -> JoinError {
        JoinError {
            repr: Repr::Cancelled,
        }
    }

    pub(crate) fn panic(payload: Box<dyn Any + Send + 'static>) -> JoinError {
        JoinError {
            repr: Repr::Panic(Mutex::new(payload)),
        }
    }

    /// Whether the task was cancelled (aborted, or dropped at shutdown).
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// The panic payload, to be passed on with
    /// [`std::panic::resume_unwind`].
    ///
    /// # Panics
    ///
    /// If the task did not panic; see [`JoinError::try_into_panic`].
    #[track_caller]
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic().expect(
            "`JoinError::into_panic` called on a task that was cancelled, not one that panicked",
        )
    }

    /// The panic payload, or the error itself if the task was cancelled.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panic(payload) => Ok(payload.into_inner().unwrap_or_else(|e| e.into_inner())),
            Repr::Cancelled => Err(self),
        }
    }

    fn panic_message(&self) -> Option<String> {
        let Repr::Panic(payload) = &self.repr else {
            return None;
        };
        let payload = payload.lock().unwrap_or_else(|e| e.into_inner());
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.repr, self.panic_message()) {
            (Repr::Cancelled, _) => f.write_str("task was cancelled"),
            (Repr::Panic(_), Some(message)) => write!(f, "task panicked with message {message:?}"),
            (Repr::Panic(_), None) => f.write_str("task panicked"),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.repr, self.panic_message()) {
            (Repr::Cancelled, _) => f.write_str("JoinError::Cancelled"),
            (Repr::Panic(_), Some(message)) => write!(f, "JoinError::Panic({message:?})"),
            (Repr::Panic(_), None) => f.write_str("JoinError::Panic(..)"),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(error: JoinError) -> std::io::Error {
        std::io::Error::other(error.to_string())
    }
}

/// Yields to the scheduler once: the task goes to the back of its worker's
/// queue, so every other ready task there runs first.
///
/// ```
/// let rt = theseus_executor::Runtime::new().unwrap();
/// rt.block_on(async {
///     theseus_executor::task::yield_now().await;
/// });
/// ```
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}
