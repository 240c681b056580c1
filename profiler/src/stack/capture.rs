//! Capture at spawn: unwinding the current poll, and the caches that let the
//! default mode skip it.

use super::context::{current_stack, poll_boundary};
use super::intern::{intern, FastMap, FrameKey};
use super::{capture_mode, CaptureMode, StackId};
use std::cell::RefCell;
use std::hint::black_box;
use std::panic::Location;
use std::sync::{LazyLock, Mutex, OnceLock, PoisonError};

/// Most machine frames kept for one spawn. A deeper stack loses its
/// outermost frames: the unwinder walks from the spawn call outwards.
const MAX_FRAMES: usize = 128;

/// See [`crate::spawn_stack`].
pub(crate) fn spawn_stack(
    location: &'static Location<'static>,
    future_type: &'static str,
) -> StackId {
    let parent = current_stack();
    match capture_mode() {
        CaptureMode::Full => capture(parent, location, future_type),
        // The location mode needs no unwinding, but its stack is as fixed by
        // the key as the default mode's: the same cache spares it hashing
        // the file and type names into the trie on every spawn.
        mode => cached(mode, parent, location, future_type),
    }
}

/// What the default and location modes key their reuse on: mode, parent,
/// location, future type. Pointers, not contents: this is a cache, and a
/// second copy of a string only costs a second entry.
type CacheKey = (StackId, usize, usize, usize, bool);

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
    future_type: &'static str,
) -> StackId {
    let key: CacheKey = (
        parent,
        location as *const Location<'static> as usize,
        future_type.as_ptr() as usize,
        future_type.len(),
        mode == CaptureMode::Location,
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
                    &[FrameKey::Location(location), FrameKey::Leaf(future_type)],
                ),
                _ => capture(parent, location, future_type),
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
fn capture(
    parent: StackId,
    location: &'static Location<'static>,
    future_type: &'static str,
) -> StackId {
    let mut ips = [0usize; MAX_FRAMES];
    let n = unwind(poll_boundary(), &mut ips);
    let mut keys = [FrameKey::Ip(0); MAX_FRAMES + 2];
    // `unwind` gives innermost first; the trie wants outermost first.
    for (slot, ip) in keys.iter_mut().zip(ips[..n].iter().rev()) {
        *slot = FrameKey::Ip(*ip);
    }
    keys[n] = FrameKey::Location(location);
    keys[n + 1] = FrameKey::Leaf(future_type);
    intern(parent, &keys[..n + 2])
}

/// Fills `out` with the return addresses of this thread's stack, innermost
/// first, stopping at the frame that holds `boundary` (0: no boundary).
/// Returns how many were written. No symbols are looked up.
///
/// `boundary` is an address inside the executor's frame that calls `poll`.
/// Stacks grow down, so a frame belongs to the poll when its canonical frame
/// address (CFA: the caller's stack pointer at the call) is at or below
/// `boundary`. Unwinders disagree on what `Frame::sp()` reports (see
/// [`sp_is_callee_cfa`]), which decides how that test reads.
#[inline(never)]
fn unwind(boundary: usize, out: &mut [usize; MAX_FRAMES]) -> usize {
    let look_ahead = boundary != 0 && sp_is_callee_cfa();
    let _blocked = sampler_signal_blocked();
    let mut n = 0;
    // With look-ahead, a frame's CFA is the next frame's `sp()`: the frame
    // is kept (or dropped, when it is the boundary's) one step later.
    let mut pending: Option<usize> = None;
    let mut on_frame = |frame: &backtrace::Frame| {
        let sp = frame.sp() as usize;
        let ip = frame.ip() as usize;
        if ip == 0 || (boundary != 0 && sp > boundary) {
            // Under look-ahead, `pending` is the frame holding the boundary.
            return false;
        }
        let keep = if look_ahead {
            pending.replace(ip)
        } else {
            Some(ip)
        };
        if let Some(ip) = keep {
            out[n] = ip;
            n += 1;
        }
        n < MAX_FRAMES
    };
    walk(&mut on_frame);
    n
}

/// Whether `Frame::sp()` is the frame's own stack pointer (the CFA of the
/// frame it called, which is what libgcc's `_Unwind_GetCFA` reports from a
/// backtrace callback) rather than the frame's own CFA.
///
/// Found once by experiment: a probe takes the address of a local of its
/// own, unwinds, finds its own frame by instruction pointer and compares.
fn sp_is_callee_cfa() -> bool {
    static ANSWER: OnceLock<bool> = OnceLock::new();
    *ANSWER.get_or_init(probe_outer)
}

#[inline(never)]
fn probe_outer() -> bool {
    let marker = 0u8;
    let here = black_box(&marker) as *const u8 as usize;
    black_box(probe_inner(here, probe_outer as fn() -> bool as usize))
}

#[inline(never)]
fn probe_inner(here: usize, outer_start: usize) -> bool {
    let mut frames = [(0usize, 0usize); 32];
    let mut n = 0;
    walk(&mut |frame| {
        frames[n] = (frame.ip() as usize, frame.sp() as usize);
        n += 1;
        n < frames.len()
    });
    // `probe_outer`'s frame is the one whose return address lies closest
    // after its entry point.
    let outer = frames[..n]
        .iter()
        .filter(|(ip, _)| *ip > outer_start && *ip - outer_start < 64 * 1024)
        .min_by_key(|(ip, _)| *ip - outer_start);
    match outer {
        Some(&(_, sp)) => sp <= here,
        // Not found: assume libgcc's behaviour, the common one.
        None => true,
    }
}

#[cfg(unix)]
fn walk(on_frame: &mut dyn FnMut(&backtrace::Frame) -> bool) {
    // SAFETY: `trace_unsynchronized` is unsafe only because it does not take
    // `backtrace`'s process-wide lock, which exists for unwinders that are
    // not thread-safe (Windows' dbghelp). On unix the unwinder is the
    // system's `_Unwind_Backtrace` (libgcc or libunwind), which is
    // thread-safe: it is what every panic on every thread uses. Skipping the
    // lock keeps workers from serializing on it in the full mode, and from
    // waiting behind a profile write that symbolizes under that lock. The
    // callback does not panic (it only stores integers).
    unsafe { backtrace::trace_unsynchronized(|f| on_frame(f)) }
}

#[cfg(not(unix))]
fn walk(on_frame: &mut dyn FnMut(&backtrace::Frame) -> bool) {
    backtrace::trace(|f| on_frame(f));
}

/// While alive, `SIGPROF` is blocked on this thread.
///
/// A CPU sampler (pprof-rs and the like) unwinds from its `SIGPROF` handler.
/// If that signal lands while this thread is inside the unwinder, the
/// handler re-enters it and can deadlock on the unwinder's own locks. With
/// the signal blocked, the sample is only delayed until the guard drops: the
/// kernel keeps it pending and delivers it then. theseus never installs a
/// `SIGPROF` handler itself; this only protects a sampler beside it.
#[cfg(unix)]
struct SignalBlock {
    previous: libc::sigset_t,
}

#[cfg(unix)]
fn sampler_signal_blocked() -> Option<SignalBlock> {
    let mut block = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    let mut previous = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `sigemptyset` initializes `block`, which `sigaddset` and
    // `pthread_sigmask` then read; `pthread_sigmask` fills `previous`, which
    // is only read (as initialized) when it reports success.
    unsafe {
        libc::sigemptyset(block.as_mut_ptr());
        libc::sigaddset(block.as_mut_ptr(), libc::SIGPROF);
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
        // setting it back restores exactly what was there.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.previous, std::ptr::null_mut());
        }
    }
}

#[cfg(not(unix))]
fn sampler_signal_blocked() -> Option<()> {
    None
}
