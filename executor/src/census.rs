//! How many of theseus's own tasks are alive on each runtime: the count
//! that, set against tokio's count of all the tasks of that runtime, tells
//! whether `tokio::spawn` tasks ran that the profile could not see (see
//! `tokio_tasks`).
//!
//! The count is spread over rows of counters on separate cache lines: a
//! spawn adds one to its thread's row and an end takes one from its own
//! thread's, and only the sum over the rows means anything. One shared
//! counter would bounce between cores on every spawn. Each row has a
//! counter per runtime (by its tokio id, modulo [`RUNTIMES`]): two runtimes
//! alive at once share one only when their ids are congruent, and then
//! unseen tasks may go unsaid, never be said wrongly.
//!
//! Built with `--cfg tokio_unstable`, theseus sees tokio's tasks through its
//! hooks and has nothing to compare: the counters are left alone.

use crate::id_hasher::id_number;
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering::Relaxed};

const ROWS: usize = 16;

/// Counters per row: one cache line of them.
const RUNTIMES: usize = 16;

static OWN_ALIVE: [Row; ROWS] = [const { Row([const { AtomicIsize::new(0) }; RUNTIMES]) }; ROWS];

#[repr(align(128))]
struct Row([AtomicIsize; RUNTIMES]);

/// Which runtime's counter a task counts in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RuntimeSlot(u8);

impl RuntimeSlot {
    /// Tasks of no tokio runtime (`theseus::Executor`'s): counted nowhere,
    /// as tokio counts them nowhere either.
    pub(crate) const NOT_TOKIO: RuntimeSlot = RuntimeSlot(u8::MAX);
}

/// The counter of the runtime `handle` drives.
#[inline]
pub(crate) fn runtime_of(handle: &tokio::runtime::Handle) -> RuntimeSlot {
    RuntimeSlot((id_number(&handle.id()) % RUNTIMES as u64) as u8)
}

/// The counter of the runtime this thread is in; the first one outside
/// any (a task spawned there panics in tokio before it could count).
pub(crate) fn current_runtime() -> RuntimeSlot {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => runtime_of(&handle),
        Err(_) => RuntimeSlot(0),
    }
}

thread_local! {
    /// This thread's row in `OWN_ALIVE`; `usize::MAX` until chosen.
    static ROW: Cell<usize> = const { Cell::new(usize::MAX) };
}

#[inline]
fn own_counter(runtime: RuntimeSlot) -> &'static AtomicIsize {
    let mut index = ROW.get();
    if index == usize::MAX {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        index = NEXT.fetch_add(1, Relaxed) % ROWS;
        ROW.set(index);
    }
    &OWN_ALIVE[index].0[usize::from(runtime.0)]
}

/// A timed task (one that tokio counts: not a blocking closure) exists on
/// `runtime`.
#[inline]
pub(crate) fn task_started(runtime: RuntimeSlot) {
    if !cfg!(tokio_unstable) && usize::from(runtime.0) < RUNTIMES {
        own_counter(runtime).fetch_add(1, Relaxed);
    }
}

/// A timed task of `runtime` is gone.
#[inline]
pub(crate) fn task_ended(runtime: RuntimeSlot) {
    if !cfg!(tokio_unstable) && usize::from(runtime.0) < RUNTIMES {
        own_counter(runtime).fetch_sub(1, Relaxed);
    }
}

/// theseus's timed tasks alive now on `runtime`, as well as counters read
/// one after another can tell: a task that starts or ends meanwhile may be
/// missed.
pub(crate) fn tasks_alive(runtime: RuntimeSlot) -> isize {
    OWN_ALIVE
        .iter()
        .map(|row| row.0[usize::from(runtime.0)].load(Relaxed))
        .sum()
}
