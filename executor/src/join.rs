//! Tasks as users see them: [`JoinHandle`], [`AbortHandle`], [`JoinError`]
//! and [`yield_now`].
//!
//! A theseus task is a tokio task, so its handle is tokio's, with tokio's
//! rules (dropping it detaches the task; `abort` cancels it at its next
//! await); its error is theseus's own type so that code written against
//! `theseus::JoinError` does not depend on which runtime ran the task.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use theseus_profiler::StackId;

/// An owned permission to await a spawned task's output.
///
/// Awaiting it gives `Ok(value)`, or a [`JoinError`] if the task panicked or
/// was cancelled. Dropping it *detaches* the task, which keeps running, as
/// with tokio.
///
/// ```
/// let rt = theseus_executor::Runtime::new().unwrap();
/// rt.block_on(async {
///     let handle = theseus_executor::spawn(async { 6 * 7 });
///     assert_eq!(handle.await.unwrap(), 42);
/// });
/// ```
pub struct JoinHandle<T> {
    inner: tokio::task::JoinHandle<T>,
    /// The task's logical stack when it is profiled (else the root): a task
    /// awaiting this handle waits at an await point named after it.
    stack: StackId,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(inner: tokio::task::JoinHandle<T>, stack: StackId) -> Self {
        JoinHandle { inner, stack }
    }

    /// Cancels the task: it will not be polled again, and its future is
    /// dropped. Awaiting the handle then gives a cancelled [`JoinError`]
    /// (unless the task had already completed).
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
        self.inner.abort();
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
        self.inner.is_finished()
    }

    /// A handle that can abort the task without owning its output; it can
    /// be cloned and sent elsewhere.
    ///
    /// ```
    /// let rt = theseus_executor::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let handle = theseus_executor::spawn(std::future::pending::<()>());
    ///     let abort = handle.abort_handle();
    ///     abort.abort();
    ///     assert!(handle.await.unwrap_err().is_cancelled());
    ///     assert!(abort.is_finished());
    /// });
    /// ```
    pub fn abort_handle(&self) -> AbortHandle {
        AbortHandle::new(self.inner.abort_handle())
    }
}

/// A permission to abort a task, without its output: from
/// [`JoinHandle::abort_handle`] or a [`JoinSet`](crate::task::JoinSet)'s
/// `spawn`, as tokio's `AbortHandle`. Dropping it does nothing to the task.
///
/// ```
/// let rt = theseus_executor::Runtime::new().unwrap();
/// rt.block_on(async {
///     let mut set = theseus_executor::task::JoinSet::new();
///     let abort = set.spawn(std::future::pending::<()>());
///     abort.abort();
///     assert!(set.join_next().await.unwrap().unwrap_err().is_cancelled());
/// });
/// ```
#[derive(Clone)]
pub struct AbortHandle {
    inner: tokio::task::AbortHandle,
}

impl AbortHandle {
    pub(crate) fn new(inner: tokio::task::AbortHandle) -> AbortHandle {
        AbortHandle { inner }
    }

    /// Cancels the task, as [`JoinHandle::abort`].
    pub fn abort(&self) {
        self.inner.abort();
    }

    /// Whether the task has finished (completed, panicked or been cancelled).
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl<T> Unpin for JoinHandle<T> {}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The frames of tokio's join handle cannot say which task it joins.
        let _awaiting =
            (self.stack != StackId::ROOT).then(|| theseus_profiler::awaiting_task(self.stack));
        Pin::new(&mut self.inner)
            .poll(cx)
            .map(|output| output.map_err(JoinError::from_tokio))
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

    /// tokio's error for a theseus task: the same cause, with its payload.
    pub(crate) fn from_tokio(error: tokio::task::JoinError) -> JoinError {
        match error.try_into_panic() {
            Ok(payload) => JoinError::panic(payload),
            Err(_) => JoinError::cancelled(),
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
        // Its frames are theseus's, which profiles leave out: name it.
        let _awaiting = theseus_profiler::awaiting("theseus::task::yield_now");
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}
