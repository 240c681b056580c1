//! The sampler on Linux: its start and stop, the per-thread CPU timers,
//! the list of sampled threads and the drain. What runs in the signal
//! handler, and what makes it safe there, is in `handler`.

mod handler;
mod innermost;

use super::ring::{Ring, SAMPLE_FRAMES};
use super::{period_ns, DRAIN_INTERVAL};
use crate::capture::StackId;
use crate::capture::{self, unwind, FrameKey};
use crate::forked::Starter;
use innermost::{Innermost, EXACT_LIMIT};
use libc::c_int;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::ptr;
use std::sync::atomic::{compiler_fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The last generation handed out; generations are never 0.
static LAST_GENERATION: AtomicU32 = AtomicU32::new(0);
/// Sampled CPU time dropped because a ring was full, since the sampler started.
static LOST_NS: AtomicU64 = AtomicU64::new(0);

/// What a running sampler owns.
struct Running {
    generation: u32,
    signal: c_int,
    period_ns: u64,
    /// The disposition the signal had before ours.
    previous: libc::sigaction,
    /// Tells the drain thread to end.
    stop: Arc<(Mutex<bool>, Condvar)>,
    drainer: Option<JoinHandle<()>>,
    /// The drain thread and the timers are this process's only: a forked
    /// child inherits this state without them (see `forked`).
    started: Starter,
}

// SAFETY: `libc::sigaction` holds a handler address and plain integers; it
// is only read back to be handed to `sigaction(2)`.
unsafe impl Send for Running {}

static STATE: Mutex<Option<Running>> = Mutex::new(None);

/// A POSIX timer id. Timers are process-wide objects: any thread may delete
/// one, which is how the sampler stops every thread's timer at once.
struct Timer(libc::timer_t);

// SAFETY: a `timer_t` is an id for the kernel, valid from any thread.
unsafe impl Send for Timer {}

// SAFETY: `running_stack` points to an atomic, read only while the thread
// that owns it lives (`alive`, under the `MEMBERS` lock); the rest is owned
// data and ids.
unsafe impl Send for Member {}

impl Timer {
    fn delete(self) {
        // SAFETY: the id came from `timer_create` and is deleted once: the
        // only `Timer` holding it is consumed here.
        unsafe { libc::timer_delete(self.0) };
    }
}

/// One sampled thread.
struct Member {
    ring: Arc<Ring>,
    /// Taken (and deleted) by whoever gets here first: the thread leaving,
    /// or the sampler stopping. Deleting twice could delete someone else's
    /// timer that reused the id.
    timer: Option<Timer>,
    /// The thread's CPU-time clock, readable from any thread while it lives
    /// (`alive`, under the `MEMBERS` lock it takes to leave).
    clock: libc::clockid_t,
    /// The thread's id, to send it a sample ([`catch_up`]).
    tid: libc::pid_t,
    /// The thread's running-task stack (`capture::running_stack_cell`),
    /// read while the thread is switched out ([`catch_up`]).
    running_stack: *const AtomicU32,
    /// The stack of the thread's last sample drained: where its CPU time
    /// after that sample goes when no later sample comes.
    last_stack: Option<StackId>,
    /// CPU time since the last sample, taken when the thread left or the
    /// sampler stopped, for the next drain to give to `last_stack`.
    tail_ns: u64,
    /// Cleared when the thread leaves; the member is forgotten once drained.
    alive: bool,
}

/// Every sampled thread. Lock order: `STATE`, then `MEMBERS`.
static MEMBERS: Mutex<Vec<Member>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    /// Keeps this thread's ring alive and removes the thread from the
    /// sampler when dropped, at thread exit at the latest.
    static MEMBERSHIP: RefCell<Option<Membership>> = const { RefCell::new(None) };
}

struct Membership {
    ring: Arc<Ring>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        // The handler runs on this thread only: once the pointer is null in
        // program order, no handler can reach the ring through it. The
        // fence keeps the compiler from moving the store after the release
        // of the ring.
        handler::publish_ring(ptr::null());
        compiler_fence(Ordering::SeqCst);
        let mut members = lock(&MEMBERS);
        if let Some(m) = members
            .iter_mut()
            .find(|m| Arc::ptr_eq(&m.ring, &self.ring))
        {
            if let Some(timer) = m.timer.take() {
                timer.delete();
            }
            take_tail(m);
            m.alive = false;
        }
    }
}

/// An error if a sampler runs already; one a forked child inherited from
/// its parent does not count, and is let go of.
fn none_running(state: &mut Option<Running>) -> io::Result<()> {
    if let Some(inherited) = state.take_if(|r| !r.started.is_this_process()) {
        abandon_inherited(inherited);
    }
    match state.as_ref() {
        None => Ok(()),
        Some(running) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "theseus's sampler is already running (every {} ns of CPU time); stop it first",
                running.period_ns
            ),
        )),
    }
}

pub(super) fn start(hz: u32) -> io::Result<u32> {
    let mut state = lock(&STATE);
    none_running(&mut state)?;
    // What a handler may not do for itself: the unwinder's one-time set-up
    // and the probe of its stack pointers, the address ranges to stay out of.
    handler::prepare();

    let signal = free_signal()?;
    let previous = current_action(signal)?;
    // SAFETY: a zeroed sigaction with the fields below set is valid;
    // `sigemptyset` initializes the mask, `sigaddset` adds valid signals.
    let action = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler::address();
        // No SA_ONSTACK: the walk needs more room than a thread's small
        // alternate signal stack has. SA_RESTART: interrupted system calls
        // of the program resume instead of failing with EINTR.
        action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        // Another sampler's handler must not interrupt this one's walk.
        libc::sigaddset(&mut action.sa_mask, libc::SIGPROF);
        action
    };
    // SAFETY: `action` is fully initialized.
    if unsafe { libc::sigaction(signal, &action, ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }

    let mut generation = LAST_GENERATION
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_add(1);
    if generation == 0 {
        generation = LAST_GENERATION
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1);
    }
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let drainer = {
        let stop = stop.clone();
        let period_ns = period_ns(hz);
        std::thread::Builder::new()
            .name("theseus-sampler".to_string())
            .spawn(move || drain_until_stopped(&stop, signal, period_ns))
    };
    let drainer = match drainer {
        Ok(handle) => handle,
        Err(e) => {
            // SAFETY: `previous` is what `sigaction` reported for `signal`.
            unsafe { libc::sigaction(signal, &previous, ptr::null_mut()) };
            return Err(e);
        }
    };
    *state = Some(Running {
        generation,
        signal,
        period_ns: period_ns(hz),
        previous,
        stop,
        drainer: Some(drainer),
        started: Starter::this_process(),
    });
    unwind::set_sampler_signal(Some(signal));
    crate::tracer::connect_cpu_source(drain);
    capture::request_thread_setup(generation, join_this_thread);
    Ok(generation)
}

pub(super) fn stop(generation: u32) {
    let mut state = lock(&STATE);
    if state.as_ref().map(|r| r.generation) != Some(generation) {
        return;
    }
    let Some(mut running) = state.take() else {
        return;
    };
    if !running.started.is_this_process() {
        abandon_inherited(running);
        return;
    }
    // No thread joins from now on (they check `STATE`, now empty), and the
    // ones that did lose their timers: no new signal is generated after this.
    capture::request_thread_setup(0, join_this_thread);
    for member in lock(&MEMBERS).iter_mut() {
        if let Some(timer) = member.timer.take() {
            timer.delete();
        }
    }
    {
        let (flag, wake) = &*running.stop;
        *lock(flag) = true;
        wake.notify_all();
    }
    if let Some(drainer) = running.drainer.take() {
        let _ = drainer.join();
    }
    // The CPU time each thread used since its last sample: without it, a
    // thread whose timer last fired long before the end loses the rest.
    for member in lock(&MEMBERS).iter_mut().filter(|m| m.alive) {
        take_tail(member);
    }
    drain();
    lock(&MEMBERS).clear();
    let lost = LOST_NS.swap(0, Ordering::Relaxed);
    if lost > 0 {
        eprintln!(
            "theseus: the sampler's buffers overflowed; {} ms of sampled CPU time were dropped",
            lost / 1_000_000
        );
    }
    restore_signal(running.signal, &running.previous);
    unwind::set_sampler_signal(None);
}

/// In a forked child: lets go of the sampler it inherited from its parent,
/// whose drain thread and timers it does not have (joining the one, or
/// deleting the other's ids, which may name timers of its own by now, would
/// be wrong), and gives the signal back.
fn abandon_inherited(mut running: Running) {
    std::mem::forget(running.drainer.take());
    for member in lock(&MEMBERS).iter_mut() {
        member.timer = None;
    }
    lock(&MEMBERS).clear();
    restore_signal(running.signal, &running.previous);
    unwind::set_sampler_signal(None);
}

/// Gives `signal` back its previous disposition, if it is still ours.
///
/// Samples still pending (generated before the timers were deleted, not yet
/// delivered) are discarded first by ignoring the signal: the default
/// disposition of a real-time signal ends the process, and restoring it
/// while one is pending would let it.
fn restore_signal(signal: c_int, previous: &libc::sigaction) {
    let Ok(now) = current_action(signal) else {
        return;
    };
    if now.sa_sigaction != handler::address() {
        // Someone installed a handler over ours: it is theirs now.
        return;
    }
    // SAFETY: zeroed sigaction with SIG_IGN and an empty mask is valid;
    // `previous` is what `sigaction` reported before ours was installed.
    unsafe {
        let mut ignore: libc::sigaction = std::mem::zeroed();
        ignore.sa_sigaction = libc::SIG_IGN;
        libc::sigemptyset(&mut ignore.sa_mask);
        libc::sigaction(signal, &ignore, ptr::null_mut());
        libc::sigaction(signal, previous, ptr::null_mut());
    }
}

fn current_action(signal: c_int) -> io::Result<libc::sigaction> {
    // SAFETY: an all-zero sigaction is a valid value to be overwritten; a
    // null `act` only queries.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(signal, ptr::null(), &mut old) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(old)
    }
}

/// The highest real-time signal nobody handles or ignores: libraries that
/// pick real-time signals for themselves usually start from the lowest.
fn free_signal() -> io::Result<c_int> {
    let (low, high) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    for signal in (low..=high).rev() {
        if current_action(signal)?.sa_sigaction == libc::SIG_DFL {
            return Ok(signal);
        }
    }
    Err(io::Error::other(format!(
        "every real-time signal ({low} to {high}) already has a handler; none is left for \
         theseus's sampler"
    )))
}

/// Sets this thread up for sampler `generation` (0: none): leaves the
/// previous one (deleting its timer), then creates this thread's timer and
/// ring. Returns the generation to remember, so a failure is not retried on
/// every poll. Run by [`crate::enter_poll`], at the first poll after the
/// generation changed (see `start`).
fn join_this_thread(generation: u32) -> u32 {
    // Leave the previous sampler first: its timer is deleted, its ring
    // released once drained.
    let left = MEMBERSHIP.try_with(|m| m.borrow_mut().take());
    drop(left);
    if generation == 0 {
        return 0;
    }
    let state = lock(&STATE);
    let Some(running) = state
        .as_ref()
        .filter(|r| r.generation == generation && r.started.is_this_process())
    else {
        // Stopped or restarted meanwhile: the next poll sees the new value.
        return generation;
    };
    match create_membership(running) {
        Ok(membership) => {
            let _ = MEMBERSHIP.try_with(|m| *m.borrow_mut() = Some(membership));
        }
        Err(e) => {
            static REPORTED: AtomicBool = AtomicBool::new(false);
            if !REPORTED.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "theseus: cannot create the sampler's CPU timer for thread {:?} ({e}); \
                     its CPU time is not sampled",
                    std::thread::current().name().unwrap_or("unnamed")
                );
            }
        }
    }
    generation
}

/// Creates this thread's ring and CPU timer and registers them. The ring is
/// published to the handler before the timer can fire.
fn create_membership(running: &Running) -> io::Result<Membership> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: `pthread_self` is this live thread; `clock` is written on success.
    let found = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) };
    if found != 0 {
        return Err(io::Error::from_raw_os_error(found));
    }
    let cpu_now = handler::cpu_time_ns(clock).ok_or_else(io::Error::last_os_error)?;
    let ring = Arc::new(Ring::new(cpu_now));
    handler::publish_ring(Arc::as_ptr(&ring));
    let timer = match thread_cpu_timer(running.signal, running.period_ns) {
        Ok(timer) => timer,
        Err(e) => {
            handler::publish_ring(ptr::null());
            return Err(e);
        }
    };
    lock(&MEMBERS).push(Member {
        ring: ring.clone(),
        timer: Some(timer),
        clock,
        // SAFETY: `gettid` has no preconditions.
        tid: unsafe { libc::gettid() },
        running_stack: capture::running_stack_cell(),
        last_stack: None,
        tail_ns: 0,
        alive: true,
    });
    Ok(Membership { ring })
}

/// A timer on this thread's CPU-time clock that sends `signal` to this
/// thread every `period_ns` of its CPU time.
fn thread_cpu_timer(signal: c_int, period_ns: u64) -> io::Result<Timer> {
    let mut id: libc::timer_t = ptr::null_mut();
    // SAFETY: a zeroed sigevent is valid; the fields set are those
    // SIGEV_THREAD_ID reads. `timer_create` writes the id on success only.
    unsafe {
        let mut event: libc::sigevent = std::mem::zeroed();
        event.sigev_notify = libc::SIGEV_THREAD_ID;
        event.sigev_signo = signal;
        event.sigev_notify_thread_id = libc::gettid();
        if libc::timer_create(libc::CLOCK_THREAD_CPUTIME_ID, &mut event, &mut id) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let timer = Timer(id);
    let period = libc::timespec {
        tv_sec: (period_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (period_ns % 1_000_000_000) as libc::c_long,
    };
    let spec = libc::itimerspec {
        it_interval: period,
        it_value: period,
    };
    // SAFETY: `timer.0` is the timer just created; `spec` is initialized.
    if unsafe { libc::timer_settime(timer.0, 0, &spec, ptr::null_mut()) } != 0 {
        let e = io::Error::last_os_error();
        timer.delete();
        return Err(e);
    }
    Ok(timer)
}

fn drain_until_stopped(stop: &(Mutex<bool>, Condvar), signal: c_int, period_ns: u64) {
    let (flag, wake) = stop;
    let mut stopped = lock(flag);
    while !*stopped {
        // `Condvar` waits retry on EINTR themselves.
        stopped = wake
            .wait_timeout(stopped, DRAIN_INTERVAL)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
        drop(stopped);
        drain();
        catch_up(signal, period_ns);
        stopped = lock(flag);
    }
}

/// Catches up with every sampled thread that has used two periods or more
/// of CPU time since its last sample.
///
/// The kernel checks a CPU timer only at a scheduler tick that finds its
/// thread running. A thread that shares its CPU with others can be switched
/// out between ticks for much of its CPU time (a 300 ms spin reading its
/// CPU clock in its loop, at 997 Hz beside three busy threads on its CPU,
/// got 3 to 9 signals, and none in its last 150 ms), which would leave that
/// time to whatever it runs at its next sample. So, every
/// [`DRAIN_INTERVAL`]: a thread on a CPU now gets a sample now (its
/// signal, sent to it); a thread switched out gets its CPU time given to
/// the task it was switched out of, with no machine frames (a signal would
/// only be handled when it runs again, at wherever it was switched out, a
/// spot that says nothing of where its time went).
fn catch_up(signal: c_int, period_ns: u64) {
    let mut switched_out = Vec::new();
    {
        let members = lock(&MEMBERS);
        for member in members.iter().filter(|m| m.alive && m.timer.is_some()) {
            let Some(before) = handler::cpu_time_ns(member.clock) else {
                continue;
            };
            if before.saturating_sub(member.ring.taken_until()) < 2 * period_ns {
                continue;
            }
            // A thread's CPU clock read from another thread includes the
            // slice it is running now: it moves only while it runs.
            let settle = Instant::now();
            while settle.elapsed() < Duration::from_micros(20) {
                std::hint::spin_loop();
            }
            let Some(after) = handler::cpu_time_ns(member.clock) else {
                continue;
            };
            if after > before {
                // SAFETY: `tgkill` sends `signal`, whose handler is ours, to
                // a thread of this process that lives (`alive`, under the
                // lock).
                unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), member.tid, signal) };
            } else {
                // SAFETY: the thread lives (as above), so its poll context
                // does too.
                let stack = unsafe { (*member.running_stack).load(Ordering::Relaxed) };
                let cpu_ns = member.ring.take_cpu_until(after);
                if cpu_ns > 0 {
                    switched_out.push((StackId(stack), cpu_ns));
                }
            }
        }
    }
    for (stack, cpu_ns) in switched_out {
        crate::tracer::record_cpu(stack, cpu_ns);
    }
}

/// Takes the CPU time `member` used since its last sample, for the next
/// drain to give to the stack of that sample. The caller holds the
/// `MEMBERS` lock, so a thread still `alive` has not exited.
fn take_tail(member: &mut Member) {
    if let Some(cpu_now) = handler::cpu_time_ns(member.clock) {
        member.tail_ns = member
            .tail_ns
            .saturating_add(member.ring.take_cpu_until(cpu_now));
    }
}

/// Moves every buffered sample into the installed tracer.
fn drain() {
    // CPU nanoseconds by sample stack, interned outside the handler.
    let mut by_stack: HashMap<StackId, u64> = HashMap::new();
    {
        let mut members = lock(&MEMBERS);
        // Under `MEMBERS`, as every drain runs.
        static INNERMOST: Mutex<Option<Innermost>> = Mutex::new(None);
        let mut innermost = lock(&INNERMOST);
        let innermost = innermost.get_or_insert_with(Innermost::default);
        for member in members.iter_mut() {
            let mut last_stack = member.last_stack;
            // SAFETY: the only reader: drains run under the `MEMBERS` lock.
            unsafe {
                member.ring.drain(|sample| {
                    let len = (sample.len as usize).min(SAMPLE_FRAMES);
                    let mut ips = [0usize; SAMPLE_FRAMES];
                    ips[..len].copy_from_slice(&sample.ips[..len]);
                    if len > 0 {
                        ips[0] = innermost.key(ips[0], EXACT_LIMIT);
                    }
                    let id = sample_stack(StackId(sample.stack), &ips[..len]);
                    let total = by_stack.entry(id).or_default();
                    *total = total.saturating_add(sample.cpu_ns);
                    last_stack = Some(id);
                })
            };
            member.last_stack = last_stack;
            if member.tail_ns > 0 {
                // A thread never sampled used its CPU time outside any
                // sample's view: under the root, as time outside a task.
                let stack = last_stack.unwrap_or(StackId::ROOT);
                let total = by_stack.entry(stack).or_default();
                *total = total.saturating_add(std::mem::take(&mut member.tail_ns));
            }
            LOST_NS.fetch_add(member.ring.take_lost(), Ordering::Relaxed);
        }
        // Threads that left have nothing more to say.
        members.retain(|m| m.alive);
    }
    for (stack, ns) in by_stack {
        crate::tracer::record_cpu(stack, ns);
    }
}

/// The stack of a CPU sample: `task` (the running task's stack, or the
/// root when no task ran) followed by the machine frames `ips` found below
/// the poll boundary, innermost first. Interned in the same trie as spawn
/// stacks, so [`crate::resolve`] reads both.
fn sample_stack(task: StackId, ips: &[usize]) -> StackId {
    if ips.is_empty() {
        return task;
    }
    let mut keys = [FrameKey::Ip(0); SAMPLE_FRAMES];
    let n = ips.len().min(SAMPLE_FRAMES);
    for (slot, ip) in keys.iter_mut().zip(ips[..n].iter().rev()) {
        *slot = FrameKey::Ip(*ip);
    }
    capture::intern(task, &keys[..n])
}
