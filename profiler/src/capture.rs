//! Capture of logical stacks on the executor's hot path: the poll context,
//! capture at spawn and at await points, unwinding, interning, and the key
//! type [`StackId`]. Nothing here looks up a symbol.
//!
//! A task's logical stack is its parent task's logical stack, then the frames
//! of the parent's current poll from the poll boundary down to the `spawn`
//! call, then a leaf naming the spawned future:
//!
//! ```text
//! main                               (frames above main: gone)
//! accept_loop        src/server.rs:40   <- parent's spawn site
//! [task] accept_loop                     <- the parent task
//! handle_conn        src/server.rs:77   <- frames inside the parent's poll
//! [task] handle_conn                     <- this task
//! ```
//!
//! The pieces, each in its own module, all on the executor's hot path:
//!
//! - **Poll context** (`context`): a const-initialized thread-local holding
//!   the running task's [`StackId`] and the poll boundary. [`enter_poll`]
//!   writes it on every poll; [`current_stack`] reads it, also from a signal
//!   handler.
//! - **Capture at spawn** (`spawn`): at [`spawn_stack`], unwind the
//!   machine stack from the spawn call out to the poll boundary. How often
//!   that happens is the [`CaptureMode`].
//! - **Await points** (`await_point`): where inside its poll a task is
//!   suspended, captured from its waker's `clone` as a stack that extends
//!   the task's own: the task's stack, the frames of the poll down to the
//!   awaited future, and what was awaited.
//! - **Unwinding** (`unwind`): the walk down to the poll boundary that both
//!   captures (and theseus's CPU sampler) use, keeping return addresses
//!   only, and the signal blocking that makes it safe beside a sampler.
//! - **Frames** (`frame`): the stack of a marked future, captured at its
//!   first poll as a spawn's is at the spawn call, with a `[frame]` or
//!   `[request]` leaf.
//! - **Interning** (`intern`): a global trie of `(parent, frame key)` nodes.
//!   A frame key is a return address, a spawn location, a leaf or an await,
//!   so identical stacks share one id and memory grows with the number of
//!   distinct stacks, not of spawns.
//!
//! Turning the keys into frames happens at write time only, in
//! [`crate::resolution`].

mod await_point;
mod context;
mod frame;
pub(crate) mod intern;
mod signature;
mod spawn;
pub(crate) mod unwind;

pub use await_point::{
    await_mode, await_point, await_point_after, awaiting, awaiting_task, set_await_mode, AwaitMode,
    AwaitScope, LastAwait,
};
pub use context::{current_stack, enter_poll, poll_boundary, PollScope};
pub use frame::{frame_stack, intern_name, FrameKind};
pub use spawn::{capture_mode, set_capture_mode, CaptureMode};

pub(crate) use context::{request_thread_setup, running_stack_cell};
pub(crate) use intern::{intern, segment, task_of_await, FastMap, FrameKey};
pub(crate) use spawn::TOKIO_SPAWN;

use std::panic::Location;

/// Identifies one interned logical stack. `StackId::ROOT` is the empty stack
/// (a task spawned from outside any task, e.g. by the main future).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct StackId(pub u32);

impl StackId {
    /// The empty stack: no parent task.
    pub const ROOT: StackId = StackId(0);
}

/// Returns the logical stack of a task being spawned here, from `location`
/// (the `#[track_caller]` location of the spawn call), with a leaf named
/// after `future_type` (`std::any::type_name` of the spawned future).
///
/// The parent is [`current_stack`]; the frames are those of the current
/// poll, below the boundary given to [`enter_poll`] (or the whole thread
/// when no poll runs here). Never looks up a symbol; what it costs depends
/// on the [`CaptureMode`].
pub fn spawn_stack(location: &'static Location<'static>, future_type: &'static str) -> StackId {
    spawn::spawn_stack(location, intern::Leaf::task(future_type, false))
}

/// [`spawn_stack`] for a task spawned with `tokio::spawn` and seen through
/// tokio's hooks, which tell where it was spawned but not what it runs:
/// its leaf names the spawn site, the function and line that called
/// `tokio::spawn` (`[task] tokio::spawn in app::serve (src/server.rs:40)`),
/// so distinct spawn sites never share a leaf.
///
/// ```
/// let stack = theseus_profiler::tokio_spawn_stack(std::panic::Location::caller());
/// assert_ne!(stack, theseus_profiler::StackId::ROOT);
/// ```
pub fn tokio_spawn_stack(location: &'static Location<'static>) -> StackId {
    spawn::spawn_stack(location, intern::Leaf::task(TOKIO_SPAWN, false))
}

/// [`spawn_stack`] for a `spawn_blocking` closure of type `closure_type`
/// (`std::any::type_name` of the closure): the same stack, with a leaf that
/// reads `[blocking]` and names the closure after where it was written.
pub fn spawn_blocking_stack(
    location: &'static Location<'static>,
    closure_type: &'static str,
) -> StackId {
    spawn::spawn_stack(location, intern::Leaf::task(closure_type, true))
}

/// How many distinct stack nodes have been interned: grows with distinct
/// stacks, never with the number of spawns.
pub fn interned_nodes() -> usize {
    intern::node_count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_scopes_nest_and_restore() {
        assert_eq!(current_stack(), StackId::ROOT);
        assert_eq!(poll_boundary(), 0);
        let (outer, inner) = (0u8, 0u8);
        let outer = std::hint::black_box(&outer) as *const u8 as usize;
        let inner = std::hint::black_box(&inner) as *const u8 as usize;
        {
            // SAFETY: both boundaries are locals of this frame, which
            // outlives the scopes.
            let _outer = unsafe { enter_poll(StackId(7), outer) };
            assert_eq!((current_stack(), poll_boundary()), (StackId(7), outer));
            {
                // SAFETY: as above.
                let _inner = unsafe { enter_poll(StackId(9), inner) };
                assert_eq!((current_stack(), poll_boundary()), (StackId(9), inner));
            }
            assert_eq!((current_stack(), poll_boundary()), (StackId(7), outer));
        }
        assert_eq!((current_stack(), poll_boundary()), (StackId::ROOT, 0));
    }
}
