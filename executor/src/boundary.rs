//! The poll boundary: where a task's frames begin on the machine stack.
//!
//! The profiler names a task's spawns and await points by the frames of its
//! poll: the machine frames deeper than the boundary, a local of the frame
//! that starts the poll. Everything the task's poll inlines must land below
//! it, so the poll itself runs in a frame of its own that is never inlined
//! into its caller ([`call_below`]): had the task's `poll` been inlined into
//! the caller, its frames would share the caller's machine frame and be cut
//! with it (optimized builds do this; `tests/release_profile.rs` checks).
//!
//! `tokio_tasks` marks `tokio::spawn` tasks differently: tokio's hook runs
//! beside the frames that will poll the task, not above them, so it sets
//! the boundary a margin above its own frame instead.

use theseus_profiler::StackId;

/// Runs `poll`, a poll of the task whose logical stack is `stack`, with the
/// profiler told that this thread runs that task, and that the machine
/// frames `poll` adds are the task's.
#[inline]
pub(crate) fn poll_as_task<R>(stack: StackId, poll: impl FnOnce() -> R) -> R {
    // The boundary: frames deeper than this local belong to the task.
    let marker = 0u8;
    let boundary = std::hint::black_box(&marker) as *const u8 as usize;
    // SAFETY: `marker` is a local of this frame, which encloses the whole
    // poll (`call_below`) and outlives the scope, dropped on this thread.
    let _scope = unsafe { theseus_profiler::enter_poll(stack, boundary) };
    call_below(poll)
}

/// Calls `f` in a machine frame of its own, below the caller's.
#[inline(never)]
fn call_below<R>(f: impl FnOnce() -> R) -> R {
    f()
}
