//! Helpers shared by the integration tests: temporary directories, records
//! to write, and the workspace's callgrind reader and real readers.

#![allow(dead_code)]

// The workspace's tests share them; this crate's are in the same repository.
#[path = "../../../tests/common/callgrind.rs"]
pub mod callgrind;
#[path = "../../../tests/common/readers.rs"]
pub mod readers;
#[path = "../../../tests/common/scratch.rs"]
mod scratch;

// Not every test binary writes files (as with dead code, above).
#[allow(unused_imports)]
pub use scratch::Scratch;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// Serialises tests of one binary that touch process-global state.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Names in a directory, sorted.
pub fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Checks a callgrind file with the tests' reader and both real readers;
/// returns the parse.
pub fn check_with_readers(path: &Path) -> callgrind::Profile {
    readers::check_with_real_readers(path);
    callgrind::parse(&std::fs::read_to_string(path).unwrap())
}

/// A finished task at `stack`: 1 µs from spawn to end, 100 ns of it
/// polled (two polls), 10 ns waiting for a worker, one wake.
pub fn finished_task(
    stack: theseus_profiler::StackId,
    outcome: theseus_profiler::Outcome,
) -> theseus_profiler::TaskRecord {
    theseus_profiler::TaskRecord {
        id: theseus_profiler::TaskId::next(),
        stack,
        wall_ns: 1_000,
        busy_ns: 100,
        sched_ns: 10,
        polls: 2,
        wakes: 1,
        outcome,
        awaits: theseus_profiler::AwaitCosts::NONE,
        kind: theseus_profiler::RecordKind::Task,
    }
}

/// Records two finished tasks (one completed, one cancelled) at one stack,
/// for tests that need a profile with something in it.
pub fn some_records() {
    use theseus_profiler::{record, spawn_stack, Outcome};
    let stack = spawn_stack(std::panic::Location::caller(), "app::job");
    for outcome in [Outcome::Completed, Outcome::Cancelled] {
        record(&finished_task(stack, outcome));
    }
}
