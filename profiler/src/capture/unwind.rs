//! Unwinding: walking this thread's machine stack down to the poll
//! boundary, keeping return addresses only (symbols come at write time).
//!
//! Three walkers share it, so all of them cut the machine stack at exactly
//! the same frame: the capture at spawn (`spawn`), the capture of await
//! points (`await_point`), and the signal handler of theseus's CPU sampler
//! ([`crate::sampler`]).
//!
//! Walking from normal code and from a signal handler at once is what makes
//! unwinding delicate: the system unwinder is not re-entrant. So the walks
//! in normal code block the samplers' signals while they last
//! ([`sampler_signals_blocked`]), and theseus's sampler tells this module
//! which signal is its own ([`set_sampler_signal`]); its handler checks the
//! rest before it walks (see [`crate::sampler`]).

use std::hint::black_box;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

/// Fills `out` with the instruction pointers of this thread's stack,
/// innermost first, and returns how many were written. No symbols are
/// looked up and nothing is allocated.
///
/// - `start`: `None` begins with the caller of this function; `Some(pc)`
///   skips every frame until the one whose instruction pointer is `pc` (the
///   interrupted frame, seen from a signal handler: the frames before it are
///   the handler's own, possibly on another stack, and are never tested
///   against the boundary). When no frame has `pc`, nothing is written.
/// - `boundary`: an address inside the executor's frame that calls `poll`
///   (0: no boundary, walk the whole thread). Stacks grow down, so a frame
///   belongs to the poll when its canonical frame address (CFA: the caller's
///   stack pointer at the call) is at or below `boundary`.
/// - `callee_cfa`: what `Frame::sp()` reports, from [`sp_is_callee_cfa`].
///
/// Unsafe because it walks without `backtrace`'s lock: see
/// [`trace_unlocked`] for what the caller must guarantee.
pub(crate) unsafe fn walk_poll(
    start: Option<usize>,
    boundary: usize,
    callee_cfa: bool,
    out: &mut [usize],
) -> usize {
    let look_ahead = boundary != 0 && callee_cfa;
    let mut started = start.is_none();
    let mut n = 0;
    // With look-ahead, a frame's CFA is the next frame's `sp()`: the frame
    // is kept (or dropped, when it is the boundary's) one step later.
    let mut pending: Option<usize> = None;
    let mut skipped = 0usize;
    let mut on_frame = |ip: usize, sp: usize| {
        if !started {
            if Some(ip) != start {
                skipped += 1;
                // A handler is a few frames deep; give up well before the
                // whole stack has been walked for nothing.
                return skipped < 64;
            }
            started = true;
        }
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
        n < out.len()
    };
    // SAFETY: forwarded to this function's caller (see above).
    unsafe { trace_unlocked(&mut on_frame) };
    if !started {
        return 0;
    }
    n
}

/// [`walk_poll`] from the caller of this function, keeping each frame's
/// stack pointer as `Frame::sp()` reports it beside its instruction pointer:
/// the await-point capture needs to know where on the stack each return
/// address lies, to recognize the same chain of frames later without
/// unwinding.
///
/// # Safety
///
/// As for [`walk_poll`].
pub(crate) unsafe fn walk_poll_with_sp(
    boundary: usize,
    callee_cfa: bool,
    out: &mut [(usize, usize)],
) -> usize {
    let look_ahead = boundary != 0 && callee_cfa;
    let mut n = 0;
    let mut pending: Option<(usize, usize)> = None;
    let mut on_frame = |ip: usize, sp: usize| {
        if ip == 0 || (boundary != 0 && sp > boundary) {
            return false;
        }
        let keep = if look_ahead {
            pending.replace((ip, sp))
        } else {
            Some((ip, sp))
        };
        if let Some(frame) = keep {
            out[n] = frame;
            n += 1;
        }
        n < out.len()
    };
    // SAFETY: forwarded to this function's caller (see above).
    unsafe { trace_unlocked(&mut on_frame) };
    n
}

/// Calls `on_frame(ip, sp)` for each frame of this thread, innermost first,
/// until it returns `false`.
///
/// # Safety
///
/// This skips `backtrace`'s process-wide lock, which exists for unwinders
/// that are not thread-safe (Windows' dbghelp). On unix the unwinder is the
/// system's `_Unwind_Backtrace` (libgcc or libunwind), thread-safe: every
/// panic on every thread uses it. The caller must make sure that this
/// thread is not already inside the unwinder with a lock held (which only a
/// signal handler can find itself in): the capture at spawn blocks the
/// samplers' signals while it walks, and the sampler's handler does not walk
/// when it interrupted the unwinder or the dynamic loader. `on_frame` must
/// not panic; here it only stores integers.
#[cfg(unix)]
unsafe fn trace_unlocked(on_frame: &mut dyn FnMut(usize, usize) -> bool) {
    // SAFETY: see the function's contract.
    unsafe { backtrace::trace_unsynchronized(|f| on_frame(f.ip() as usize, f.sp() as usize)) }
}

#[cfg(not(unix))]
unsafe fn trace_unlocked(on_frame: &mut dyn FnMut(usize, usize) -> bool) {
    backtrace::trace(|f| on_frame(f.ip() as usize, f.sp() as usize));
}

/// Whether `Frame::sp()` is the frame's own stack pointer (the CFA of the
/// frame it called, which is what libgcc's `_Unwind_GetCFA` reports from a
/// backtrace callback) rather than the frame's own CFA.
///
/// Found once by experiment: a probe takes the address of a local of its
/// own, unwinds, finds its own frame by instruction pointer and compares.
pub(crate) fn sp_is_callee_cfa() -> bool {
    *ANSWER.get_or_init(probe_outer)
}

/// The answer of [`sp_is_callee_cfa`] if it is known yet: a signal handler
/// may not run the probe (it initializes a `OnceLock`), only read it.
pub(crate) fn sp_is_callee_cfa_if_known() -> Option<bool> {
    ANSWER.get().copied()
}

static ANSWER: OnceLock<bool> = OnceLock::new();

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
    let mut on_frame = |ip: usize, sp: usize| {
        frames[n] = (ip, sp);
        n += 1;
        n < frames.len()
    };
    // SAFETY: called in normal context (never from a signal handler), so
    // this thread is not inside the unwinder; the callback stores integers.
    unsafe { trace_unlocked(&mut on_frame) };
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

/// The signal of theseus's CPU sampler while one runs (0: none).
static SAMPLER_SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Tells the walks in normal code to block `signal` too (`None`: no more),
/// as they block `SIGPROF`: theseus's sampler unwinds from its handler.
pub(crate) fn set_sampler_signal(signal: Option<libc::c_int>) {
    SAMPLER_SIGNAL.store(signal.unwrap_or(0), Ordering::Relaxed);
}

/// While alive, the signals of CPU samplers are blocked on this thread:
/// `SIGPROF` (pprof-rs and the like) and theseus's own sampler's signal.
///
/// A sampler unwinds from its signal handler. If that signal lands while
/// this thread is inside the unwinder, the handler re-enters it and can
/// deadlock on the unwinder's own locks (or the dynamic loader's). With the
/// signals blocked, a sample is only delayed until the guard drops: the
/// kernel keeps it pending and delivers it then, so no sample is lost and
/// it still lands in the task that was walking. theseus never installs a
/// `SIGPROF` handler itself; blocking it only protects a sampler beside it.
#[cfg(unix)]
pub(crate) struct SignalBlock {
    previous: libc::sigset_t,
}

#[cfg(unix)]
pub(crate) fn sampler_signals_blocked() -> Option<SignalBlock> {
    let mut block = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    let mut previous = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    let own = SAMPLER_SIGNAL.load(Ordering::Relaxed);
    // SAFETY: `sigemptyset` initializes `block`, which `sigaddset` and
    // `pthread_sigmask` then read; `pthread_sigmask` fills `previous`, which
    // is only read (as initialized) when it reports success. `sigaddset`
    // with a signal number the sampler got from the system cannot fail.
    unsafe {
        libc::sigemptyset(block.as_mut_ptr());
        libc::sigaddset(block.as_mut_ptr(), libc::SIGPROF);
        if own != 0 {
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
        // thread (the guard is created and dropped around one walk), so
        // setting it back restores exactly what was there. Pending samples
        // are delivered now, after the walk.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.previous, std::ptr::null_mut());
        }
    }
}

#[cfg(not(unix))]
pub(crate) fn sampler_signals_blocked() -> Option<()> {
    None
}
