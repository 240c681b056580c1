//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod callgrind;
pub mod child;
pub mod ground;
pub mod http_client;
pub mod polled;
pub mod profiled;
pub mod readers;
mod scratch;

pub use scratch::Scratch;

use std::sync::mpsc;
use std::time::Duration;

/// Runs `f` on its own thread and fails the test if it has not returned
/// within `limit`: a hang is reported as a failure, never waited out.
pub fn with_deadline<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("did not finish within {limit:?}: a lost wake-up or a deadlock"),
    }
}

pub fn multi_thread(workers: usize) -> theseus::runtime::Runtime {
    theseus::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .unwrap()
}
