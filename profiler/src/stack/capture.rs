//! Capture at spawn: unwinding the current poll, and the caches that let the
//! default mode skip it.

use super::context::{current_stack, poll_boundary};
use super::intern::{intern, FastMap, FrameKey, Leaf};
use super::{capture_mode, CaptureMode, StackId};
use crate::sampler::walk::{poll_frames, sp_is_callee_cfa};
use std::cell::RefCell;
use std::panic::Location;
use std::sync::{LazyLock, Mutex, PoisonError};

/// Most machine frames kept for one spawn. A deeper stack loses its
/// outermost frames: the unwinder walks from the spawn call outwards.
const MAX_FRAMES: usize = 128;

/// See [`crate::spawn_stack`].
pub(crate) fn spawn_stack(location: &'static Location<'static>, leaf: Leaf) -> StackId {
    let parent = current_stack();
    match capture_mode() {
        CaptureMode::Full => capture(parent, location, leaf),
        // The location mode needs no unwinding, but its stack is as fixed by
        // the key as the default mode's: the same cache spares it hashing
        // the file and type names into the trie on every spawn.
        mode => cached(mode, parent, location, leaf),
    }
}

/// What the default and location modes key their reuse on: parent,
/// location, spawned type, and the mode and leaf kind as bits. Pointers,
/// not contents: this is a cache, and a second copy of a string only costs
/// a second entry.
type CacheKey = (StackId, usize, usize, usize, u8);

thread_local! {
    /// This thread's view of [`GLOBAL_CACHE`]: hits need no lock at all.
    static LOCAL_CACHE: RefCell<FastMap<CacheKey, StackId>> =
        RefCell::new(FastMap::default());
}

/// Every stack captured in the default mode, shared so that a spawn site
/// seen on one worker is not unwound again on each of the others.
static GLOBAL_CACHE: LazyLock<Mutex<FastMap<CacheKey, StackId>>> =
    LazyLock::new(|| Mutex::new(FastMap::default()));

/// The default mode: unwind once per (parent stack, spawn location, future
/// type), then reuse. See [`CaptureMode::Default`] for what this merges.
/// The location mode goes through here too, without the unwinding.
fn cached(
    mode: CaptureMode,
    parent: StackId,
    location: &'static Location<'static>,
    leaf: Leaf,
) -> StackId {
    let key: CacheKey = (
        parent,
        location as *const Location<'static> as usize,
        leaf.type_name.as_ptr() as usize,
        leaf.type_name.len(),
        u8::from(mode == CaptureMode::Location) | (u8::from(leaf.blocking) << 1),
    );
    // `try_with`: during thread teardown the local cache may be gone; the
    // global one still works.
    let local = LOCAL_CACHE
        .try_with(|c| c.borrow().get(&key).copied())
        .ok()
        .flatten();
    if let Some(id) = local {
        return id;
    }
    let global = GLOBAL_CACHE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
        .copied();
    let id = match global {
        Some(id) => id,
        None => {
            // Unwind without holding the lock; if two threads race on the
            // same key, both stacks are valid and the first one is kept.
            let captured = match mode {
                CaptureMode::Location => intern(
                    parent,
                    &[FrameKey::Location(location), FrameKey::Leaf(leaf)],
                ),
                _ => capture(parent, location, leaf),
            };
            *GLOBAL_CACHE
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key)
                .or_insert(captured)
        }
    };
    let _ = LOCAL_CACHE.try_with(|c| c.borrow_mut().insert(key, id));
    id
}

/// Unwinds the current poll and interns parent + frames + location + leaf.
fn capture(parent: StackId, location: &'static Location<'static>, leaf: Leaf) -> StackId {
    let mut ips = [0usize; MAX_FRAMES];
    let n = unwind(poll_boundary(), &mut ips);
    let mut keys = [FrameKey::Ip(0); MAX_FRAMES + 2];
    // `unwind` gives innermost first; the trie wants outermost first.
    for (slot, ip) in keys.iter_mut().zip(ips[..n].iter().rev()) {
        *slot = FrameKey::Ip(*ip);
    }
    keys[n] = FrameKey::Location(location);
    keys[n + 1] = FrameKey::Leaf(leaf);
    intern(parent, &keys[..n + 2])
}

/// Fills `out` with the return addresses of this thread's stack, innermost
/// first, stopping at the frame that holds `boundary` (0: no boundary).
/// Returns how many were written. No symbols are looked up.
///
/// The samplers' signals are blocked while it walks: see
/// [`SignalBlock`].
#[inline(never)]
fn unwind(boundary: usize, out: &mut [usize; MAX_FRAMES]) -> usize {
    let callee_cfa = sp_is_callee_cfa();
    let _blocked = sampler_signals_blocked();
    // SAFETY: `poll_frames` needs this thread not to be inside the unwinder
    // already. This is normal context (a spawn call), not a signal handler,
    // and the handlers that unwind (a CPU sampler's `SIGPROF`, theseus's own
    // sampler's signal) are blocked for as long as the walk lasts.
    unsafe { poll_frames(None, boundary, callee_cfa, out) }
}

impl StackId {
    /// The stack of a CPU sample: this (the running task's stack, or the
    /// root when no task ran) followed by the machine frames `ips` the
    /// sampler found below the poll boundary, innermost first. Interned in
    /// the same trie as spawn stacks, so [`crate::resolve`] reads both.
    pub(crate) fn with_sampled_frames(self, ips: &[usize]) -> StackId {
        if ips.is_empty() {
            return self;
        }
        let mut keys = [FrameKey::Ip(0); MAX_FRAMES];
        let n = ips.len().min(MAX_FRAMES);
        for (slot, ip) in keys.iter_mut().zip(ips[..n].iter().rev()) {
            *slot = FrameKey::Ip(*ip);
        }
        intern(self, &keys[..n])
    }
}

/// While alive, the signals of CPU samplers are blocked on this thread:
/// `SIGPROF` (pprof-rs and the like) and theseus's own sampler's signal.
///
/// A sampler unwinds from its signal handler. If that signal lands while
/// this thread is inside the unwinder, the handler re-enters it and can
/// deadlock on the unwinder's own locks (or the dynamic loader's). With the
/// signals blocked, a sample is only delayed until the guard drops: the
/// kernel keeps it pending and delivers it then, so no sample is lost and
/// it still lands in the spawning task. theseus never installs a `SIGPROF`
/// handler itself; blocking it only protects a sampler beside it.
#[cfg(unix)]
pub(super) struct SignalBlock {
    previous: libc::sigset_t,
}

#[cfg(unix)]
pub(super) fn sampler_signals_blocked() -> Option<SignalBlock> {
    let mut block = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    let mut previous = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `sigemptyset` initializes `block`, which `sigaddset` and
    // `pthread_sigmask` then read; `pthread_sigmask` fills `previous`, which
    // is only read (as initialized) when it reports success. `sigaddset`
    // with a signal number the sampler got from the system cannot fail.
    unsafe {
        libc::sigemptyset(block.as_mut_ptr());
        libc::sigaddset(block.as_mut_ptr(), libc::SIGPROF);
        if let Some(own) = crate::sampler::signal_number() {
            libc::sigaddset(block.as_mut_ptr(), own);
        }
        if libc::pthread_sigmask(libc::SIG_BLOCK, block.as_ptr(), previous.as_mut_ptr()) != 0 {
            return None;
        }
        Some(SignalBlock {
            previous: previous.assume_init(),
        })
    }
}

#[cfg(unix)]
impl Drop for SignalBlock {
    fn drop(&mut self) {
        // SAFETY: `previous` is the mask `pthread_sigmask` returned on this
        // thread (the guard is created and dropped within `unwind`), so
        // setting it back restores exactly what was there. Pending samples
        // are delivered now, after the walk.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.previous, std::ptr::null_mut());
        }
    }
}

#[cfg(not(unix))]
pub(super) fn sampler_signals_blocked() -> Option<()> {
    None
}
