//! Logical stacks: capture at spawn and at await points, interning, and
//! resolution to frames.
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
//! The pieces, each in its own module. On the executor's hot path, never
//! looking up a symbol:
//!
//! - **Poll context** (`context`): a const-initialized thread-local holding
//!   the running task's [`StackId`] and the poll boundary. [`enter_poll`]
//!   writes it on every poll; [`current_stack`] reads it, also from a signal
//!   handler.
//! - **Capture at spawn** (`capture`): at [`spawn_stack`], unwind the
//!   machine stack from the spawn call out to the poll boundary. How often
//!   that happens is the [`CaptureMode`].
//! - **Await points** (`awaits`): where inside its poll a task is
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
//! At write time only, [`resolve`] (`resolve`), a segment at a time:
//!
//! - **Symbolization** (`symbolize`): each distinct return address looked up
//!   once in the debug info, inlined calls included.
//! - **Frame cleaning** (`filters`): which frames are theseus's, the
//!   runtimes', std's glue or thread start-up, and so are not shown.
//! - **Naming** (`names`): closures and async bodies read as their
//!   function, bare names of line-tables-only builds qualified.
//! - **Spawns and awaits** (`spawned`, `awaited`): a spawning poll's frames
//!   cut to the program's own, with the spawn call's line, and the task's
//!   leaf (`[task] app::serve`); an await point's chain and its leaf
//!   (`[await] tokio::time::Sleep`).

mod awaited;
mod awaits;
mod capture;
mod context;
mod filters;
mod frame;
mod intern;
mod names;
mod resolve;
mod signature;
mod spawned;
mod symbolize;
pub(crate) mod unwind;

pub use awaits::{
    await_mode, await_point, awaiting, awaiting_task, set_await_mode, AwaitMode, AwaitScope,
};
pub use capture::{capture_mode, set_capture_mode, CaptureMode};
pub use context::{current_stack, enter_poll, poll_boundary, PollScope};
pub use frame::{frame_stack, intern_name, FrameKind};

pub(crate) use context::request_thread_setup;
pub(crate) use intern::{intern, segment, task_of_await, FastMap, FrameKey};
#[cfg(test)]
pub(crate) use names::mark_names_degraded;
pub(crate) use names::names_degraded;
pub(crate) use resolve::resolve_segment;

use std::panic::Location;

/// Identifies one interned logical stack. `StackId::ROOT` is the empty stack
/// (a task spawned from outside any task, e.g. by the main future).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct StackId(pub u32);

impl StackId {
    /// The empty stack: no parent task.
    pub const ROOT: StackId = StackId(0);
}

/// One frame of a resolved logical stack.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResolvedFrame {
    /// Demangled function name without hash, async-fn closures shown as the function.
    pub function: String,
    /// Source file, or `"???"` when unknown.
    pub file: String,
    /// Source line, 0 when unknown.
    pub line: u32,
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
    capture::spawn_stack(location, intern::Leaf::task(future_type, false))
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
    capture::spawn_stack(location, intern::Leaf::task(spawned::TOKIO_SPAWN, false))
}

/// [`spawn_stack`] for a `spawn_blocking` closure of type `closure_type`
/// (`std::any::type_name` of the closure): the same stack, with a leaf that
/// reads `[blocking]` and names the closure after where it was written.
pub fn spawn_blocking_stack(
    location: &'static Location<'static>,
    closure_type: &'static str,
) -> StackId {
    capture::spawn_stack(location, intern::Leaf::task(closure_type, true))
}

/// The frames of `id`, outermost first, the task's leaf last.
///
/// Meant for write time: the first call for each distinct return address
/// looks up its symbols (inlined calls included, outermost first); later
/// calls reuse them. Frames of theseus itself, `async-task`, `backtrace`,
/// thread start-up and std's future, closure and panic plumbing are removed,
/// async-fn bodies are named after their function, and consecutive repeats
/// are merged. The innermost frame of each poll carries the spawn call's
/// exact line. The leaf is `[task] <future type>`, at the spawn location.
/// An unknown id resolves to no frames.
pub fn resolve(id: StackId) -> Vec<ResolvedFrame> {
    resolve::resolve(id)
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

    #[test]
    fn unknown_and_root_ids_resolve_to_nothing() {
        assert!(resolve(StackId::ROOT).is_empty());
        assert!(resolve(StackId(u32::MAX)).is_empty());
    }
}
