//! Writing the profile on SIGINT and SIGTERM, without breaking programs that
//! handle those signals themselves. (The signal that drives the CPU sampler
//! is the sampler's own business: see [`crate::sampler`].)
//!
//! The signal handler only writes the signal's number to a pipe (and calls
//! the handler that was installed before it, if any): that is all that is
//! async-signal-safe. A dedicated thread reads the pipe, writes the profile
//! completely, and then decides what the signal should do:
//!
//! - If the disposition is still ours and there was no handler before us,
//!   nobody else handles the signal: the previous disposition (the default)
//!   is restored and the signal raised again, so the process dies as it would
//!   have without theseus (same signal, same exit status).
//! - Otherwise the program handles the signal itself (for example with
//!   `tokio::signal`, which installs its own handler over ours and chains to
//!   it, or with a handler installed before ours, which ours chains to): the
//!   snapshot is written and the program goes on. When its main returns, the
//!   final profile replaces the snapshot.
//!
//! A signal that arrives while the final profile is being written (the
//! program's `main` returned) writes nothing more: it waits for that write
//! to be done or given up, and then takes its course as above, even though
//! the session gives the signals back right after its write.
//!
//! A child forked without exec has the handler but not the signal thread:
//! its signals never go into the parent's pipe, and take their course at
//! once, as they would without theseus (see `crate::forked`).
//!
//! A signal that was ignored (`SIG_IGN`) when the handling was set up stays
//! ignored. `SIGPROF` and `ITIMER_PROF` are never touched: they belong to
//! whichever CPU sampler runs in the process.

use std::io;
use std::sync::Arc;

/// The snapshot writer called by the signal thread.
pub type WriteFn = Arc<dyn Fn() + Send + Sync>;

/// Keeps the signal handling of [`write_on_termination`] in place; dropping
/// it gives the signals back (where nobody installed a handler over ours
/// meanwhile) and stops calling the writer.
#[derive(Debug)]
pub struct SignalGuard {
    id: u64,
}

/// Calls `write` on SIGINT and SIGTERM, from a dedicated thread, then lets
/// the signal take its course (see the module docs). Only one writer is
/// registered at a time: a later call replaces the earlier one's writer.
pub fn write_on_termination(write: WriteFn) -> io::Result<SignalGuard> {
    imp::install(write).map(|id| SignalGuard { id })
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        imp::uninstall(self.id);
    }
}

#[cfg(unix)]
mod imp {
    use super::WriteFn;
    use libc::c_int;
    use std::io;
    use std::ptr;
    use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};
    use std::sync::{Mutex, PoisonError};

    /// The signals handled, in the order of `PREVIOUS`.
    const SIGNALS: [c_int; 2] = [libc::SIGINT, libc::SIGTERM];

    /// The write end of the pipe, or -1 before it exists. Non-blocking, so
    /// the handler never waits on a full pipe (a full pipe already holds a
    /// pending wake-up).
    static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

    /// The last signal the handler passed on to the signal thread, not yet
    /// taken by it (0: none): what [`uninstall`] must not leave behind.
    static RECEIVED: AtomicI32 = AtomicI32::new(0);

    /// The process whose signal thread reads the pipe (0: none yet). A
    /// forked child has the parent's pipe but not its thread: its signals
    /// are its own (see `crate::forked`), and never go into the pipe.
    static PIPE_OWNER: AtomicI32 = AtomicI32::new(0);

    /// The disposition each signal had before ours, read by the handler to
    /// chain to it. Each points to a leaked, never-freed `sigaction` that is
    /// not modified after being published, so the handler may read it at
    /// any time.
    static PREVIOUS: [AtomicPtr<libc::sigaction>; 2] = [
        AtomicPtr::new(ptr::null_mut()),
        AtomicPtr::new(ptr::null_mut()),
    ];

    struct State {
        next_id: u64,
        /// The registered writer and the id of the guard that owns it.
        writer: Option<(u64, WriteFn)>,
        /// Whether the reading thread runs.
        thread: bool,
    }

    static STATE: Mutex<State> = Mutex::new(State {
        next_id: 1,
        writer: None,
        thread: false,
    });

    fn last_error() -> io::Error {
        io::Error::last_os_error()
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn errno_location() -> *mut c_int {
        // SAFETY: returns the calling thread's errno slot; always valid.
        unsafe { libc::__errno_location() }
    }

    #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
    fn errno_location() -> *mut c_int {
        // SAFETY: returns the calling thread's errno slot; always valid.
        unsafe { libc::__error() }
    }

    fn index_of(sig: c_int) -> Option<usize> {
        SIGNALS.iter().position(|&s| s == sig)
    }

    /// The handler's address as the kernel stores it in `sa_sigaction`.
    fn our_handler() -> libc::sighandler_t {
        on_signal as extern "C" fn(c_int, *mut libc::siginfo_t, *mut libc::c_void)
            as libc::sighandler_t
    }

    extern "C" fn on_signal(sig: c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
        let errno = errno_location();
        // SAFETY: errno_location points to this thread's errno. It is saved
        // and restored so the interrupted code does not see it change.
        let saved = unsafe { *errno };
        let fd = PIPE_WRITE.load(Ordering::Relaxed);
        // SAFETY: getpid(2) is async-signal-safe and cannot fail.
        let owner = PIPE_OWNER.load(Ordering::Relaxed) == unsafe { libc::getpid() };
        if fd >= 0 && owner {
            RECEIVED.store(sig, Ordering::Relaxed);
            loop {
                let byte = sig as u8;
                // SAFETY: write(2) is async-signal-safe; `byte` lives across
                // the call and the length is 1.
                let n = unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
                // SAFETY: as above, reading this thread's errno.
                if n >= 0 || unsafe { *errno } != libc::EINTR {
                    break;
                }
            }
        } else if fd >= 0 {
            as_if_never_installed(sig);
        }
        if let Some(i) = index_of(sig) {
            let previous = PREVIOUS[i].load(Ordering::Acquire);
            if !previous.is_null() {
                // SAFETY: published pointers are leaked and never modified.
                let previous = unsafe { &*previous };
                let handler = previous.sa_sigaction;
                if handler != libc::SIG_DFL && handler != libc::SIG_IGN {
                    if previous.sa_flags & libc::SA_SIGINFO != 0 {
                        // SAFETY: with SA_SIGINFO the installed value is a
                        // three-argument handler; we pass on our arguments.
                        let f: extern "C" fn(c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                            unsafe { std::mem::transmute(handler) };
                        f(sig, info, context);
                    } else {
                        // SAFETY: without SA_SIGINFO the installed value is a
                        // one-argument handler.
                        let f: extern "C" fn(c_int) = unsafe { std::mem::transmute(handler) };
                        f(sig);
                    }
                }
            }
        }
        // SAFETY: as above.
        unsafe { *errno = saved };
    }

    /// In a forked child: no signal thread will write a profile and then
    /// let the signal take its course, so the signal takes it now, as it
    /// would have without theseus. Where nobody else handles it (the
    /// disposition is still ours, and was the default before), the default
    /// is put back and the signal raised again: it is blocked while this
    /// handler runs, and ends the process as soon as the handler returns.
    /// Otherwise the handler before ours is chained to, as in any process.
    /// Only async-signal-safe calls: sigaction(2) and raise(3).
    fn as_if_never_installed(sig: c_int) {
        let Some(i) = index_of(sig) else { return };
        let previous = PREVIOUS[i].load(Ordering::Acquire);
        if previous.is_null() {
            return;
        }
        // SAFETY: published pointers are leaked and never modified.
        let previous = unsafe { &*previous };
        let ours = current(sig).is_ok_and(|now| now.sa_sigaction == our_handler());
        if ours && previous.sa_sigaction == libc::SIG_DFL && set(sig, previous).is_ok() {
            // SAFETY: raise(3) is async-signal-safe.
            unsafe { libc::raise(sig) };
        }
    }

    /// The current disposition of `sig`.
    fn current(sig: c_int) -> io::Result<libc::sigaction> {
        // SAFETY: an all-zero sigaction is a valid value to be overwritten;
        // a null `act` only queries.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, ptr::null(), &mut old) != 0 {
                return Err(last_error());
            }
            Ok(old)
        }
    }

    fn set(sig: c_int, action: &libc::sigaction) -> io::Result<()> {
        // SAFETY: `action` is a fully initialised sigaction.
        if unsafe { libc::sigaction(sig, action, ptr::null_mut()) } != 0 {
            return Err(last_error());
        }
        Ok(())
    }

    /// Creates the pipe and the thread reading it, once per process.
    fn start_thread(state: &mut State) -> io::Result<()> {
        // SAFETY: getpid(2) cannot fail.
        let pid = unsafe { libc::getpid() };
        if state.thread && PIPE_OWNER.load(Ordering::Relaxed) == pid {
            return Ok(());
        }
        // Not yet, or in a forked child that starts a session of its own:
        // a pipe and a thread of its own, not the parent's.
        let mut fds = [0 as c_int; 2];
        // SAFETY: `fds` has room for the two descriptors pipe(2) returns.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(last_error());
        }
        let [read_fd, write_fd] = fds;
        for fd in fds {
            // SAFETY: fcntl on descriptors we just created.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        // SAFETY: as above.
        unsafe {
            let flags = libc::fcntl(write_fd, libc::F_GETFL);
            libc::fcntl(write_fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        let spawned = std::thread::Builder::new()
            .name("theseus-signals".to_string())
            .spawn(move || read_loop(read_fd));
        if let Err(e) = spawned {
            // SAFETY: closing descriptors nobody else has seen.
            unsafe {
                libc::close(read_fd);
                libc::close(write_fd);
            }
            return Err(e);
        }
        PIPE_OWNER.store(pid, Ordering::Relaxed);
        let inherited = PIPE_WRITE.swap(write_fd, Ordering::Relaxed);
        if inherited >= 0 {
            // SAFETY: the child's copy of the parent's pipe, which only the
            // handler wrote, and no longer does.
            unsafe { libc::close(inherited) };
        }
        state.thread = true;
        Ok(())
    }

    fn read_loop(fd: c_int) {
        loop {
            let mut byte = 0u8;
            // SAFETY: reading one byte into a local buffer of one byte.
            let n = unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
            if n < 0 {
                if last_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return;
            }
            if n == 0 {
                return;
            }
            handle(c_int::from(byte));
        }
    }

    /// Runs on the signal thread after `sig` arrived. Holds `STATE` until
    /// the signal has taken its course, so that the handling cannot be
    /// given back ([`uninstall`], after a final write) in between: a signal
    /// that arrives while the final profile is written waits for that
    /// write, then still ends the process.
    fn handle(sig: c_int) {
        let state = STATE.lock().unwrap_or_else(PoisonError::into_inner);
        RECEIVED.store(0, Ordering::Relaxed);
        if let Some((_, write)) = state.writer.as_ref() {
            // A failing writer must not keep the signal from taking effect.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write()));
        }
        if nobody_else_handles(sig) {
            die_of(sig);
        }
        drop(state);
    }

    /// Whether `sig`'s disposition is still ours, with the default before
    /// it: nobody but theseus handles it.
    fn nobody_else_handles(sig: c_int) -> bool {
        let Some(i) = index_of(sig) else { return false };
        let Ok(now) = current(sig) else { return false };
        if now.sa_sigaction != our_handler() {
            // Someone installed a handler over ours: the program handles it.
            return false;
        }
        let previous = PREVIOUS[i].load(Ordering::Acquire);
        // SAFETY: published pointers are leaked and never modified.
        // (A handler from before ours was chained to: the program handles it.)
        !previous.is_null() && unsafe { &*previous }.sa_sigaction == libc::SIG_DFL
    }

    /// Ends the process by `sig`, as without theseus: the default action
    /// back in place, the signal raised again.
    fn die_of(sig: c_int) {
        let Some(i) = index_of(sig) else { return };
        let previous = PREVIOUS[i].load(Ordering::Acquire);
        if previous.is_null() {
            return;
        }
        // SAFETY: published pointers are leaked and never modified.
        if set(sig, unsafe { &*previous }).is_ok() {
            // SAFETY: plain system calls; the default action now applies.
            unsafe {
                libc::kill(libc::getpid(), sig);
            }
        }
    }

    pub(super) fn install(write: WriteFn) -> io::Result<u64> {
        let mut state = STATE.lock().unwrap_or_else(PoisonError::into_inner);
        start_thread(&mut state)?;
        for (i, &sig) in SIGNALS.iter().enumerate() {
            let old = current(sig)?;
            if old.sa_sigaction == our_handler() || old.sa_sigaction == libc::SIG_IGN {
                // Already ours (a previous session), or deliberately ignored.
                continue;
            }
            PREVIOUS[i].store(Box::into_raw(Box::new(old)), Ordering::Release);
            // SAFETY: a zeroed sigaction with the fields below set is valid;
            // sigemptyset initialises the mask.
            let action = unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = our_handler();
                action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK;
                libc::sigemptyset(&mut action.sa_mask);
                action
            };
            set(sig, &action)?;
        }
        let id = state.next_id;
        state.next_id += 1;
        state.writer = Some((id, write));
        Ok(id)
    }

    pub(super) fn uninstall(id: u64) {
        let mut state = STATE.lock().unwrap_or_else(PoisonError::into_inner);
        if state.writer.as_ref().map(|(owner, _)| *owner) != Some(id) {
            return;
        }
        state.writer = None;
        // A signal that came and was not taken yet by the signal thread
        // (which waits for `STATE`): nobody writes for it any more, but it
        // still takes its course, once the handling is given back.
        let received = RECEIVED.swap(0, Ordering::Relaxed);
        let dies = received != 0 && nobody_else_handles(received);
        for (i, &sig) in SIGNALS.iter().enumerate() {
            let Ok(now) = current(sig) else { continue };
            let previous = PREVIOUS[i].load(Ordering::Acquire);
            if now.sa_sigaction == our_handler() && !previous.is_null() {
                // SAFETY: published pointers are leaked and never modified.
                let _ = set(sig, unsafe { &*previous });
            }
        }
        if dies {
            die_of(received);
        }
    }
}

#[cfg(not(unix))]
mod imp {
    use super::WriteFn;
    use std::io;

    pub(super) fn install(_write: WriteFn) -> io::Result<u64> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "writing the profile on signals is only supported on Unix",
        ))
    }

    pub(super) fn uninstall(_id: u64) {}
}
