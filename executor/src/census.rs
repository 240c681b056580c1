//! How many of theseus's own tasks are alive: the count that, set against
//! tokio's count of all its tasks, tells whether `tokio::spawn` tasks ran
//! that the profile could not see (see `tokio_tasks`).
//!
//! The count is spread over counters on separate cache lines: a spawn adds
//! one to its thread's counter and an end takes one from its own thread's,
//! and only the sum means anything. One shared counter would bounce between
//! cores on every spawn.
//!
//! Built with `--cfg tokio_unstable`, theseus sees tokio's tasks through its
//! hooks and has nothing to compare: the counters are left alone.

use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering::Relaxed};

const COUNTERS: usize = 16;

static OWN_ALIVE: [PaddedCount; COUNTERS] = [const { PaddedCount(AtomicIsize::new(0)) }; COUNTERS];

#[repr(align(128))]
struct PaddedCount(AtomicIsize);

thread_local! {
    /// This thread's counter in `OWN_ALIVE`; `usize::MAX` until chosen.
    static COUNTER: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn own_counter() -> &'static AtomicIsize {
    let mut index = COUNTER.get();
    if index == usize::MAX {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        index = NEXT.fetch_add(1, Relaxed) % COUNTERS;
        COUNTER.set(index);
    }
    &OWN_ALIVE[index].0
}

/// A timed task (one that tokio counts: not a blocking closure) exists.
#[inline]
pub(crate) fn task_started() {
    if !cfg!(tokio_unstable) {
        own_counter().fetch_add(1, Relaxed);
    }
}

/// A timed task is gone.
#[inline]
pub(crate) fn task_ended() {
    if !cfg!(tokio_unstable) {
        own_counter().fetch_sub(1, Relaxed);
    }
}

/// theseus's timed tasks alive now, as well as counters read one after
/// another can tell: a task that starts or ends meanwhile may be missed.
pub(crate) fn tasks_alive() -> isize {
    OWN_ALIVE.iter().map(|count| count.0.load(Relaxed)).sum()
}
