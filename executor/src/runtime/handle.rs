//! [`Handle`]: a runtime reached from anywhere, to spawn onto or enter.

use crate::join::JoinHandle;
use crate::spawn::{spawn_blocking_on, spawn_on, NO_RUNTIME};
use std::future::Future;
use std::panic::Location;

/// A handle to a runtime: spawns tasks onto it from anywhere.
///
/// ```
/// let rt = theseus_executor::Runtime::new().unwrap();
/// let handle = rt.handle().clone();
/// let join = std::thread::spawn(move || handle.spawn(async { 7 }));
/// let task = join.join().unwrap();
/// assert_eq!(rt.block_on(task).unwrap(), 7);
/// ```
#[derive(Clone, Debug)]
pub struct Handle {
    pub(super) tokio: tokio::runtime::Handle,
}

impl Handle {
    /// The handle of the runtime this thread is running in.
    ///
    /// # Panics
    ///
    /// Outside a runtime, with a message that says where to call it from;
    /// see [`Handle::try_current`].
    #[track_caller]
    pub fn current() -> Handle {
        match Handle::try_current() {
            Ok(handle) => handle,
            // Here, not in a closure, so the panic names the caller's line.
            Err(error) => panic!("{error}"),
        }
    }

    /// The handle of the runtime this thread is running in, or an error
    /// saying there is none, as tokio's. Inside a plain tokio runtime this
    /// is that runtime: theseus tasks can be spawned there too.
    ///
    /// ```
    /// assert!(theseus_executor::Handle::try_current().is_err());
    /// let rt = theseus_executor::Runtime::new().unwrap();
    /// let _entered = rt.enter();
    /// assert!(theseus_executor::Handle::try_current().is_ok());
    /// ```
    pub fn try_current() -> Result<Handle, TryCurrentError> {
        tokio::runtime::Handle::try_current()
            .map(|tokio| Handle { tokio })
            .map_err(|_| TryCurrentError { _private: () })
    }

    pub(crate) fn tokio(&self) -> &tokio::runtime::Handle {
        &self.tokio
    }

    /// Spawns a task onto this runtime; see [`crate::spawn`].
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        spawn_on(&self.tokio, future, Location::caller())
    }

    /// Runs a blocking closure on the blocking pool; see [`crate::spawn_blocking`].
    #[track_caller]
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        spawn_blocking_on(&self.tokio, f, Location::caller())
    }

    /// Makes this runtime the current one on this thread until the guard is
    /// dropped, so `spawn` and tokio's I/O and timers work here.
    pub fn enter(&self) -> EnterGuard<'_> {
        EnterGuard {
            _tokio: self.tokio.enter(),
        }
    }
}

/// Restores the previous runtime context when dropped; see [`Handle::enter`].
pub struct EnterGuard<'a> {
    _tokio: tokio::runtime::EnterGuard<'a>,
}

impl std::fmt::Debug for EnterGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnterGuard")
    }
}

/// Why [`Handle::try_current`] found no runtime: this thread is not inside
/// one.
pub struct TryCurrentError {
    _private: (),
}

impl std::fmt::Display for TryCurrentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(NO_RUNTIME)
    }
}

impl std::fmt::Debug for TryCurrentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TryCurrentError({NO_RUNTIME:?})")
    }
}

impl std::error::Error for TryCurrentError {}
