//! The poll context: which task runs on this thread, and where its poll
//! begins on the machine stack.
//!
//! Both values live in one const-initialized thread-local of plain `Cell`s:
//! no lazy initialization and no destructor, so reading it is a load from
//! the thread's TLS block. That makes it safe to read from a signal handler
//! (a CPU sampler joining its samples to the running task) and cheap enough
//! to write on every poll.
//!
//! # Joining a sampler's samples to tasks
//!
//! A CPU sampler running beside theseus (pprof-rs, a `perf`-style handler of
//! one's own) can call [`current_stack`] inside its signal handler, or in
//! whatever code post-processes a sample on the sampled thread, and keep the
//! returned [`StackId`] with the sample. After the run, [`crate::resolve`]
//! turns each id into the logical stack of the task that was running: its
//! spawn site and every parent task's. [`poll_boundary`] tells the same
//! handler where the task's own machine frames end, so it can cut its
//! stacks where theseus does.
//!
//! ```
//! use theseus_profiler::{current_stack, resolve, StackId};
//! use std::sync::atomic::{AtomicU32, Ordering};
//!
//! // What a sampler keeps per sample: plain integers, written from its
//! // signal handler (no allocation, no lock).
//! static LAST_SAMPLE_TASK: AtomicU32 = AtomicU32::new(0);
//!
//! extern "C" fn on_sample(_signal: libc::c_int) {
//!     LAST_SAMPLE_TASK.store(current_stack().0, Ordering::Relaxed);
//! }
//! # on_sample(0);
//!
//! // Later, outside the handler: the sample's task and its spawn stack.
//! let id = StackId(LAST_SAMPLE_TASK.load(Ordering::Relaxed));
//! for frame in resolve(id) {
//!     println!("{} {}:{}", frame.function, frame.file, frame.line);
//! }
//! ```

use super::StackId;
use std::cell::Cell;
use std::marker::PhantomData;

/// The running task's stack and poll boundary on this thread.
struct PollContext {
    stack: Cell<u32>,
    boundary: Cell<usize>,
    /// The generation of theseus's sampler this thread was last set up for
    /// (0: none): when the sampler's generation differs, the next poll
    /// creates (or deletes) this thread's CPU timer.
    sampler: Cell<u32>,
}

thread_local! {
    static POLL: PollContext = const {
        PollContext { stack: Cell::new(0), boundary: Cell::new(0), sampler: Cell::new(0) }
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
/// writes, plus one relaxed atomic load and one more thread-local read to
/// notice that theseus's sampler started or stopped (then, once per thread
/// and sampler, this thread's CPU timer is created or deleted). The
/// returned guard puts the previous values back, which makes nested polls
/// (a `block_on` inside a task) come out right.
#[inline]
pub fn enter_poll(stack: StackId, boundary: usize) -> PollScope {
    POLL.with(|p| {
        let generation = crate::sampler::generation();
        if p.sampler.get() != generation {
            p.sampler.set(crate::sampler::join_this_thread(generation));
        }
        PollScope {
            prev_stack: p.stack.replace(stack.0),
            prev_boundary: p.boundary.replace(boundary),
            _not_send: PhantomData,
        }
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
/// A plain thread-local load: it may be called from a signal handler. This
/// is the join point for a CPU sampler: keep the id with each sample and
/// turn it into frames with [`crate::resolve`] afterwards (see the module
/// docs for a whole example).
///
/// ```
/// use theseus_profiler::{current_stack, StackId};
///
/// // Outside any task there is no task stack.
/// assert_eq!(current_stack(), StackId::ROOT);
/// ```
#[inline]
pub fn current_stack() -> StackId {
    POLL.with(|p| StackId(p.stack.get()))
}

/// The poll boundary of the poll running on this thread, 0 when no poll
/// runs. Machine frames whose canonical frame address is at or below it
/// belong to the running task. A plain thread-local load, like
/// [`current_stack`], so a sampler's signal handler may read it to cut its
/// own stacks at the same place.
///
/// ```
/// use theseus_profiler::{enter_poll, poll_boundary, StackId};
///
/// assert_eq!(poll_boundary(), 0);
/// let scope = enter_poll(StackId::ROOT, 0x7fff_0000);
/// assert_eq!(poll_boundary(), 0x7fff_0000);
/// drop(scope);
/// assert_eq!(poll_boundary(), 0);
/// ```
#[inline]
pub fn poll_boundary() -> usize {
    POLL.with(|p| p.boundary.get())
}
