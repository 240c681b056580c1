//! [`Builder`]: the settings of a runtime, checked, turned into tokio's.
//!
//! A theseus runtime is a tokio runtime with I/O and timers enabled, its
//! threads named, and theseus's hooks installed (`tokio_tasks`). What can
//! be wrong (a worker count out of range, in code or in `THESEUS_WORKERS`;
//! paused time where it cannot work) is refused here with the reason.

use super::{Handle, Runtime};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The environment variable that sets the default number of worker threads.
pub const WORKERS_ENV: &str = "THESEUS_WORKERS";

/// Most worker threads a runtime accepts.
pub const MAX_WORKERS: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavor {
    CurrentThread,
    MultiThread,
}

/// Configures and builds a [`Runtime`], like `tokio::runtime::Builder`.
///
/// ```
/// let rt = theseus_executor::Builder::new_multi_thread()
///     .worker_threads(2)
///     .thread_name("my-worker")
///     .enable_all()
///     .build()
///     .unwrap();
/// assert_eq!(rt.block_on(async { 1 + 1 }), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    flavor: Flavor,
    worker_threads: Option<usize>,
    thread_name: String,
    start_paused: bool,
}

impl Builder {
    /// A runtime with a pool of worker threads that steal work from each other.
    pub fn new_multi_thread() -> Builder {
        Builder {
            flavor: Flavor::MultiThread,
            worker_threads: None,
            thread_name: "theseus".to_string(),
            start_paused: false,
        }
    }

    /// A runtime that runs every task on the thread that calls
    /// [`Runtime::block_on`], while it is inside `block_on`.
    pub fn new_current_thread() -> Builder {
        Builder {
            flavor: Flavor::CurrentThread,
            ..Builder::new_multi_thread()
        }
    }

    /// Sets the number of worker threads (multi-thread runtimes). Without it,
    /// `THESEUS_WORKERS` decides, and without that, the number of cores.
    pub fn worker_threads(&mut self, count: usize) -> &mut Builder {
        self.worker_threads = Some(count);
        self
    }

    /// Names the runtime's threads `{name}-{index}` (workers first, then
    /// the threads that run `spawn_blocking` closures), so profilers and
    /// debuggers can tell them from the program's own. Linux keeps 15 bytes
    /// of a thread's name: keep `name` short. The default is `theseus`.
    pub fn thread_name(&mut self, name: impl Into<String>) -> &mut Builder {
        self.thread_name = name.into();
        self
    }

    /// Starts the clock paused, as tokio's `start_paused`: timers advance
    /// only when every task waits. Current-thread runtimes only, and it
    /// needs theseus's `test-util` feature, as tokio's needs tokio's;
    /// [`Builder::build`] says so otherwise.
    pub fn start_paused(&mut self, paused: bool) -> &mut Builder {
        self.start_paused = paused;
        self
    }

    /// Accepted for tokio compatibility: I/O and timers are always enabled.
    pub fn enable_all(&mut self) -> &mut Builder {
        self
    }

    /// Accepted for tokio compatibility: I/O is always enabled.
    pub fn enable_io(&mut self) -> &mut Builder {
        self
    }

    /// Accepted for tokio compatibility: timers are always enabled.
    pub fn enable_time(&mut self) -> &mut Builder {
        self
    }

    /// Builds the runtime and starts its threads.
    ///
    /// Fails with [`io::ErrorKind::InvalidInput`] if the worker count (from
    /// [`Builder::worker_threads`] or `THESEUS_WORKERS`) is not in
    /// `1..=1024`, and with the OS error if a thread cannot be started.
    pub fn build(&mut self) -> io::Result<Runtime> {
        let mut tokio = match self.flavor {
            Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
            Flavor::MultiThread => {
                let workers = match self.worker_threads {
                    Some(count @ 1..=MAX_WORKERS) => count,
                    Some(count) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!(
                                "worker_threads({count}) is out of range: a runtime needs 1 to {MAX_WORKERS} worker threads"
                            ),
                        ));
                    }
                    None => workers_from_env(std::env::var_os(WORKERS_ENV))?,
                };
                let mut builder = tokio::runtime::Builder::new_multi_thread();
                builder.worker_threads(workers);
                builder
            }
        };
        let name = self.thread_name.clone();
        let next = AtomicUsize::new(0);
        // tokio runs its workers on threads of its blocking pool, which may
        // later run `spawn_blocking` closures too: one name for all.
        tokio
            .enable_all()
            .thread_name_fn(move || format!("{name}-{}", next.fetch_add(1, Ordering::Relaxed)));
        if self.start_paused {
            if self.flavor == Flavor::MultiThread {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "start_paused needs a current-thread runtime (Builder::new_current_thread), \
                     as tokio's does: paused time advances only when the one thread is idle",
                ));
            }
            start_paused(&mut tokio)?;
        }
        crate::tokio_tasks::install_hooks(&mut tokio);
        crate::clock::init();
        let tokio = tokio.build()?;
        Ok(Runtime {
            handle: Handle {
                tokio: tokio.handle().clone(),
            },
            tokio: Some(tokio),
        })
    }
}

#[cfg(feature = "test-util")]
fn start_paused(tokio: &mut tokio::runtime::Builder) -> io::Result<()> {
    tokio.start_paused(true);
    Ok(())
}

#[cfg(not(feature = "test-util"))]
fn start_paused(_: &mut tokio::runtime::Builder) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "start_paused needs theseus's `test-util` feature (as tokio's needs tokio's): \
         add `features = [\"test-util\"]` to theseus in [dev-dependencies]",
    ))
}

/// Parses `THESEUS_WORKERS`; unset means one worker per core.
fn workers_from_env(value: Option<std::ffi::OsString>) -> io::Result<usize> {
    let Some(value) = value else {
        return Ok(std::thread::available_parallelism().map_or(1, |n| n.get()));
    };
    let parsed = value.to_str().and_then(|v| v.trim().parse::<usize>().ok());
    match parsed {
        Some(count @ 1..=MAX_WORKERS) => Ok(count),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{WORKERS_ENV}={value:?} is not a valid worker count: expected a whole number from 1 to {MAX_WORKERS}, or unset for one worker per core"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_env_values() {
        assert_eq!(workers_from_env(Some("3".into())).unwrap(), 3);
        assert!(workers_from_env(None).unwrap() >= 1);
        for bad in ["0", "-1", "many", "", "1025"] {
            let error = workers_from_env(Some(bad.into())).unwrap_err();
            let message = error.to_string();
            assert!(message.contains("THESEUS_WORKERS"), "{message}");
            assert!(message.contains("1 to 1024"), "{message}");
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn builder_rejects_zero_workers() {
        let error = Builder::new_multi_thread()
            .worker_threads(0)
            .build()
            .unwrap_err();
        assert!(error.to_string().contains("1 to 1024"), "{error}");
    }
}
