//! The sampler's signal handler, and what makes it safe to run there.
//!
//! The handler takes one sample of the thread it interrupts: the running
//! task's stack, the machine frames below the poll boundary, and the CPU
//! time the thread used since its previous sample (read from its own CPU
//! clock), written into the ring this thread got beforehand
//! ([`publish_ring`]). It must be async-signal-safe: it reads
//! thread-locals and its CPU clock, walks the stack with the system unwinder only where that
//! cannot deadlock (not when the interrupted code is the unwinder or the
//! dynamic loader: [`prepare`] finds their code before the first signal),
//! and stores integers.

use crate::capture::unwind;
use crate::sampler::ring::{Ring, SAMPLE_FRAMES};
use libc::c_int;
use std::cell::Cell;
use std::ffi::{c_void, CStr};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

thread_local! {
    /// This thread's ring, read by the signal handler: a const-initialized
    /// `Cell` of a pointer has no destructor and no lazy initialization, so
    /// reading it is a plain load from the thread's static TLS block
    /// (theseus is linked into the executable, never `dlopen`ed, so no
    /// allocation happens on first access either).
    static RING: Cell<*const Ring> = const { Cell::new(ptr::null()) };
}

/// Makes `ring` the one the handler writes this thread's samples into
/// (null: none). Published before the thread's timer exists, and cleared
/// before the ring is released.
pub(super) fn publish_ring(ring: *const Ring) {
    let _ = RING.try_with(|r| r.set(ring));
}

/// What a handler may not do for itself, done before the first signal:
/// the unwinder's one-time set-up and the probe of its stack pointers, and
/// the address ranges the handler must not walk from.
pub(super) fn prepare() {
    unwind::sp_is_callee_cfa();
    unwinder_ranges();
}

/// The handler's address as `sigaction` takes and reports it.
pub(super) fn address() -> libc::sighandler_t {
    on_sample as extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) as libc::sighandler_t
}

/// The signal handler: one sample of this thread.
///
/// Async-signal-safe by construction: thread-local loads, the unwinder
/// under the conditions of [`unwind::walk_poll`] (checked in
/// [`sample_frames`]), and stores into this thread's preallocated ring. No
/// allocation, no lock, and `errno` is left as the interrupted code had it.
extern "C" fn on_sample(_signal: c_int, _info: *mut libc::siginfo_t, context: *mut c_void) {
    let errno = errno_location();
    // SAFETY: `errno_location` is this thread's errno slot.
    let saved = unsafe { *errno };
    let ring = RING.with(Cell::get);
    if !ring.is_null() {
        // SAFETY: the pointer is published before the thread's timer exists
        // and cleared (on this very thread) before its `Arc` is released, so
        // it points to a live ring whenever this handler sees it.
        let ring = unsafe { &*ring };
        // Measured, not counted in timer periods: the kernel checks CPU
        // timers at scheduler ticks only, and a thread that shares its CPU
        // may run between them for many periods that no signal reports.
        let cpu_ns =
            cpu_time_ns(libc::CLOCK_THREAD_CPUTIME_ID).map_or(0, |now| ring.take_cpu_until(now));
        let stack = crate::capture::current_stack();
        let boundary = crate::capture::poll_boundary();
        let pc = interrupted_pc(context);
        // SAFETY: this handler is the ring's only writer: the ring belongs
        // to this thread, and the handler cannot interrupt itself (its
        // signal is blocked while it runs).
        unsafe {
            ring.push(cpu_ns, |slot| {
                slot.stack = stack.0;
                slot.len = sample_frames(pc, boundary, &mut slot.ips) as u32;
            })
        };
    }
    // SAFETY: as above.
    unsafe { *errno = saved };
}

/// The machine frames of the interrupted poll, innermost first, or none
/// where walking would not be safe or has nothing to find.
fn sample_frames(pc: usize, boundary: usize, out: &mut [usize; SAMPLE_FRAMES]) -> usize {
    if boundary == 0 || pc == 0 || in_unwinder(pc) {
        return 0;
    }
    let Some(callee_cfa) = unwind::sp_is_callee_cfa_if_known() else {
        return 0;
    };
    // SAFETY: `walk_poll` needs this thread not to be inside the unwinder
    // with a lock held. The interrupted instruction is not in the unwinder,
    // the loader or `dl_iterate_phdr` (checked above); theseus's own walk at
    // spawn blocks this signal; `SIGPROF` is blocked while this handler
    // runs, so no other sampler's walk starts under this one.
    let n = unsafe { unwind::walk_poll(Some(pc), boundary, callee_cfa, out) };
    // The innermost frame is the interrupted instruction itself, not a
    // return address: symbols are looked up at `ip - 1`, so store `pc + 1`.
    if n > 0 && out[0] == pc {
        out[0] = pc + 1;
    }
    n
}

/// The CPU time `clock` (a thread's CPU-time clock) reads, in
/// nanoseconds; `None` when it cannot be read (a thread that has exited).
/// `clock_gettime` is async-signal-safe, so the handler reads its own.
pub(super) fn cpu_time_ns(clock: libc::clockid_t) -> Option<u64> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to write to.
    if unsafe { libc::clock_gettime(clock, &mut now) } != 0 {
        return None;
    }
    let secs = u64::try_from(now.tv_sec).ok()?;
    let nanos = u64::try_from(now.tv_nsec).ok()?;
    Some(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
}

/// The instruction the signal interrupted.
fn interrupted_pc(context: *mut c_void) -> usize {
    if context.is_null() {
        return 0;
    }
    let context = context as *const libc::ucontext_t;
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: with SA_SIGINFO the third argument is the interrupted
        // thread's `ucontext_t`.
        unsafe { (*context).uc_mcontext.gregs[libc::REG_RIP as usize] as usize }
    }
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: as above.
        unsafe { (*context).uc_mcontext.pc as usize }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        // Unknown register layout: samples keep the task stack, no frames.
        let _ = context;
        0
    }
}

fn errno_location() -> *mut c_int {
    // SAFETY: returns the calling thread's errno slot; always valid.
    unsafe { libc::__errno_location() }
}

/// Address ranges where a walk must not start from: code of the unwinder
/// and the dynamic loader, and libc's `dl_iterate_phdr`, which may hold the
/// loader's lock. Pairs `[start, end)`, filled once before the first
/// handler can run, then only read.
static UNWINDER: [AtomicUsize; 2 * MAX_RANGES] = [const { AtomicUsize::new(0) }; 2 * MAX_RANGES];
static UNWINDER_LEN: AtomicUsize = AtomicUsize::new(0);
const MAX_RANGES: usize = 16;

fn in_unwinder(pc: usize) -> bool {
    let n = UNWINDER_LEN.load(Ordering::Acquire);
    (0..n).any(|i| {
        let start = UNWINDER[2 * i].load(Ordering::Relaxed);
        let end = UNWINDER[2 * i + 1].load(Ordering::Relaxed);
        (start..end).contains(&pc)
    })
}

/// Fills [`UNWINDER`] once.
fn unwinder_ranges() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        // SAFETY: the callback only reads the `dl_phdr_info` it is given,
        // for the duration of the call; `ranges` outlives the iteration.
        unsafe {
            libc::dl_iterate_phdr(Some(collect_object), (&mut ranges as *mut Vec<_>).cast());
        }
        if let Some(range) = symbol_range(libc::dl_iterate_phdr as *const c_void) {
            ranges.push(range);
        }
        let n = ranges.len().min(MAX_RANGES);
        for (i, (start, end)) in ranges.into_iter().take(n).enumerate() {
            UNWINDER[2 * i].store(start, Ordering::Relaxed);
            UNWINDER[2 * i + 1].store(end, Ordering::Relaxed);
        }
        UNWINDER_LEN.store(n, Ordering::Release);
    });
}

unsafe extern "C" fn collect_object(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut c_void,
) -> c_int {
    // SAFETY: `dl_iterate_phdr` passes a valid `info` and our `data`.
    let (info, ranges) = unsafe { (&*info, &mut *(data as *mut Vec<(usize, usize)>)) };
    if info.dlpi_name.is_null() {
        return 0;
    }
    // SAFETY: a non-null `dlpi_name` is a NUL-terminated string.
    let name = unsafe { CStr::from_ptr(info.dlpi_name) }.to_string_lossy();
    let file = name.rsplit('/').next().unwrap_or("");
    let unwinder = ["libgcc_s", "libunwind", "ld-linux", "ld64.so", "ld.so"]
        .iter()
        .any(|n| file.starts_with(n));
    if !unwinder {
        return 0;
    }
    for i in 0..usize::from(info.dlpi_phnum) {
        // SAFETY: `dlpi_phdr` points to `dlpi_phnum` program headers.
        let header = unsafe { &*info.dlpi_phdr.add(i) };
        if header.p_type == libc::PT_LOAD && header.p_flags & libc::PF_X != 0 {
            let start = (info.dlpi_addr as usize).wrapping_add(header.p_vaddr as usize);
            ranges.push((start, start.wrapping_add(header.p_memsz as usize)));
        }
    }
    0
}

/// The address range of the function at `address`, from its symbol entry.
#[cfg(all(target_env = "gnu", target_pointer_width = "64"))]
fn symbol_range(address: *const c_void) -> Option<(usize, usize)> {
    /// `dladdr1`'s request for the symbol table entry (glibc's value).
    const RTLD_DL_SYMENT: c_int = 1;
    // SAFETY: `dladdr1` fills `info` and `symbol` on success (non-zero);
    // `symbol` then points into the object's symbol table, which stays
    // mapped (libc is never unloaded).
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        let mut symbol: *mut c_void = ptr::null_mut();
        if libc::dladdr1(address, &mut info, &mut symbol, RTLD_DL_SYMENT) == 0 || symbol.is_null() {
            return None;
        }
        let symbol = &*(symbol as *const libc::Elf64_Sym);
        let start = info.dli_saddr as usize;
        let size = symbol.st_size as usize;
        (start != 0 && size != 0).then_some((start, start + size))
    }
}

/// Without glibc's `dladdr1` the range is unknown; the unwinder's and the
/// loader's own ranges still apply.
#[cfg(not(all(target_env = "gnu", target_pointer_width = "64")))]
fn symbol_range(_address: *const c_void) -> Option<(usize, usize)> {
    None
}
