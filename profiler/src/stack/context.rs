//! The poll context: which task runs on this thread, and where its poll
//! begins on the machine stack.
//!
//! Both values live in one const-initialized thread-local of plain `Cell`s:
//! no lazy initialization and no destructor, so reading it is a load from
//! the thread's TLS block. That makes it safe to read from a signal handler
//! (a CPU sampler joining its samples to the running task) and cheap enough
//! to write on every poll.

use super::StackId;
use std::cell::Cell;
use std::marker::PhantomData;

/// The running task's stack and poll boundary on this thread.
struct PollContext {
    stack: Cell<u32>,
    boundary: Cell<usize>,
}

thread_local! {
    static POLL: PollContext = const {
        PollContext { stack: Cell::new(0), boundary: Cell::new(0) }
    };
}

/// Restores the previous poll context when dropped.
///
/// Not `Send`: it restores *this* thread's context, so it must be dropped on
/// the thread that created it (polls nest, they never migrate mid-poll).
#[must_use = "the poll context is restored as soon as the scope is dropped"]
pub struct PollScope {
    prev_stack: u32,
    prev_boundary: usize,
    _not_send: PhantomData<*const ()>,
}

/// Marks the start of a poll of the task whose logical stack is `stack`.
/// `boundary` is an address inside the executor's frame that calls `poll`:
/// frames of the machine stack deeper than it belong to the task.
///
/// Called around every poll, so it is two thread-local reads and two
/// writes; the returned guard puts the previous values back, which makes
/// nested polls (a `block_on` inside a task) come out right.
#[inline]
pub fn enter_poll(stack: StackId, boundary: usize) -> PollScope {
    POLL.with(|p| PollScope {
        prev_stack: p.stack.replace(stack.0),
        prev_boundary: p.boundary.replace(boundary),
        _not_send: PhantomData,
    })
}

impl Drop for PollScope {
    #[inline]
    fn drop(&mut self) {
        POLL.with(|p| {
            p.stack.set(self.prev_stack);
            p.boundary.set(self.prev_boundary);
        });
    }
}

/// The logical stack of the task running on this thread (`ROOT` if none).
///
/// A plain thread-local load: it may be called from a signal handler.
#[inline]
pub fn current_stack() -> StackId {
    POLL.with(|p| StackId(p.stack.get()))
}

/// The poll boundary of the poll running on this thread, 0 when no poll
/// runs. Machine frames whose canonical frame address is at or below it
/// belong to the running task. A plain thread-local load, like
/// [`current_stack`], so a sampler's signal handler may read it to cut its
/// own stacks at the same place.
#[inline]
pub fn poll_boundary() -> usize {
    POLL.with(|p| p.boundary.get())
}
