//! The poll context: which task runs on this thread, and where its poll
//! begins on the machine stack.
//!
//! Both values live in one const-initialized thread-local of relaxed
//! atomics: no lazy initialization and no destructor, so reading it is a
//! load from the thread's TLS block. That makes it safe to read from a
//! signal handler (a CPU sampler joining its samples to the running task),
//! and cheap enough to write on every poll: a relaxed load or store is a
//! plain `mov`, and the atomics only make the handler's reads, which
//! interrupt this very thread, well defined.
//!
//! A poll is also when a thread can be set up for per-thread work that
//! must run on the thread itself: theseus's sampler gives each thread that
//! polls a CPU timer of its own. The sampler asks for it
//! ([`request_thread_setup`]); this module only notices, with one relaxed
//! load per poll, that the request changed, and runs the set-up then.
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
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed, Ordering::Release};
use std::sync::OnceLock;

/// The running task's stack and poll boundary on this thread.
struct PollContext {
    stack: AtomicU32,
    boundary: AtomicUsize,
    /// The set-up generation this thread was last set up for (0: none):
    /// when [`SETUP_GENERATION`] differs, the next poll runs the set-up.
    set_up: Cell<u32>,
}

thread_local! {
    static POLL: PollContext = const {
        PollContext {
            stack: AtomicU32::new(0),
            boundary: AtomicUsize::new(0),
            set_up: Cell::new(0),
        }
    };
}

/// The set-up every thread that polls should have had (0: none).
static SETUP_GENERATION: AtomicU32 = AtomicU32::new(0);

/// Sets a thread up for a generation (0: undoes the last set-up) and
/// returns the generation to remember.
static SETUP: OnceLock<fn(u32) -> u32> = OnceLock::new();

/// Asks every thread that polls to run `setup(generation)` at its next
/// poll, once (0: to undo the last set-up). `setup` returns the generation
/// the thread is to remember, so that a set-up that failed is not retried
/// on every poll. theseus's sampler is the one user: `setup` creates (or
/// deletes) the thread's CPU timer, and is always the same function.
pub(crate) fn request_thread_setup(generation: u32, setup: fn(u32) -> u32) {
    SETUP.get_or_init(|| setup);
    SETUP_GENERATION.store(generation, Release);
}

/// Runs the set-up this thread was asked for: see [`request_thread_setup`].
#[cold]
#[inline(never)]
fn set_up_this_thread(generation: u32) -> u32 {
    match SETUP.get() {
        Some(setup) => setup(generation),
        // Not visible on this thread yet: ask again at the next poll.
        None => 0,
    }
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
/// and sampler, this thread's CPU timer is created or deleted: see
/// `request_thread_setup`). The returned guard puts the previous values
/// back, which makes nested polls (a `block_on` inside a task) come out
/// right.
///
/// # Safety
///
/// The profiler trusts `boundary`: it walks this thread's machine stack
/// from a spawn, a waker's registration or (theseus's sampler) any
/// instruction the thread is interrupted at, out to the boundary, and takes
/// every frame below it for the task's, including from a signal handler.
/// So `boundary` must be 0 (no poll) or an address inside a live frame of
/// the calling thread's stack that encloses the whole poll (a local of the
/// function that calls `poll`, or a little above it), and the returned
/// scope must be dropped on this thread before that frame returns.
///
/// ```
/// use theseus_profiler::{enter_poll, poll_boundary, StackId};
///
/// let marker = 0u8;
/// let boundary = std::hint::black_box(&marker) as *const u8 as usize;
/// // SAFETY: `marker` is a local of this frame, which outlives the scope.
/// let scope = unsafe { enter_poll(StackId::ROOT, boundary) };
/// assert_eq!(poll_boundary(), boundary);
/// drop(scope);
/// assert_eq!(poll_boundary(), 0);
/// ```
#[inline]
pub unsafe fn enter_poll(stack: StackId, boundary: usize) -> PollScope {
    POLL.with(|p| {
        let generation = SETUP_GENERATION.load(Relaxed);
        if p.set_up.get() != generation {
            p.set_up.set(set_up_this_thread(generation));
        }
        // Loads and stores, not swaps: only this thread writes its context,
        // and a swap would be a locked instruction on every poll.
        let scope = PollScope {
            prev_stack: p.stack.load(Relaxed),
            prev_boundary: p.boundary.load(Relaxed),
            _not_send: PhantomData,
        };
        p.stack.store(stack.0, Relaxed);
        p.boundary.store(boundary, Relaxed);
        scope
    })
}

impl Drop for PollScope {
    #[inline]
    fn drop(&mut self) {
        POLL.with(|p| {
            p.stack.store(self.prev_stack, Relaxed);
            p.boundary.store(self.prev_boundary, Relaxed);
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
    POLL.with(|p| StackId(p.stack.load(Relaxed)))
}

/// The poll boundary of the poll running on this thread, 0 when no poll
/// runs. Machine frames whose canonical frame address is at or below it
/// belong to the running task. A plain thread-local load, like
/// [`current_stack`], so a sampler's signal handler may read it to cut its
/// own stacks at the same place.
///
/// ```
/// use theseus_profiler::poll_boundary;
///
/// assert_eq!(poll_boundary(), 0, "no poll runs here");
/// ```
#[inline]
pub fn poll_boundary() -> usize {
    POLL.with(|p| p.boundary.load(Relaxed))
}

/// Where this thread keeps the running task's stack, for a sampler that
/// reads it from another thread while this one is switched out (an atomic,
/// so such a read is well defined). The address is valid until the thread
/// exits: the thread-local has no destructor, so its storage lives as long
/// as the thread does.
pub(crate) fn running_stack_cell() -> *const AtomicU32 {
    POLL.with(|p| &p.stack as *const AtomicU32)
}
