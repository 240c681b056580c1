//! theseus's own CPU sampler (`THESEUS_SAMPLE_HZ`): CPU time of the threads
//! that poll tasks, attributed to the running task's logical stack followed
//! by the machine frames below the poll boundary, written into the same
//! callgrind file as the task costs (event `CpuNs`).
//!
//! # How it samples
//!
//! - **Per-thread CPU timers.** Each thread that polls tasks gets a timer
//!   on its own CPU-time clock (`timer_create(CLOCK_THREAD_CPUTIME_ID)`,
//!   delivered to that thread only with `SIGEV_THREAD_ID`). It is created
//!   the first time the thread enters a poll while the sampler runs (the
//!   sampler asks for it through the poll context, which compares one
//!   thread-local with one atomic in [`crate::enter_poll`]), and deleted
//!   when the thread exits or the sampler stops. A thread that sleeps uses no CPU
//!   time and gets no samples: tasks that only await cost nothing here.
//! - **A real-time signal, never `SIGPROF`.** `SIGPROF` and `ITIMER_PROF`
//!   are process-wide and belong to whichever sampler set them (pprof-rs,
//!   gperftools). theseus takes the highest real-time signal whose
//!   disposition is the default, and gives the previous disposition back
//!   when it stops, after discarding samples still pending (a pending
//!   real-time signal meeting the default disposition would kill the
//!   process).
//! - **The handler allocates nothing and takes no lock.** It reads the
//!   running task's [`StackId`](crate::StackId) and poll boundary (plain thread-locals),
//!   walks the machine stack from the interrupted instruction up to the
//!   poll boundary, and writes the instruction pointers into a ring
//!   allocated for this thread beforehand. A background thread
//!   (`theseus-sampler`) drains the rings every [`DRAIN_INTERVAL`], and the
//!   profile writer drains them once more (the tracer flushes the sampler,
//!   which registered its drain with it), interning each sample's stack in
//!   the stack trie (task stack + frames) and adding its CPU time to the
//!   installed [`crate::Tracer`].
//! - **Weights, measured.** Each sample stands for the CPU time its thread
//!   used since its previous sample, read from the thread's CPU clock in
//!   the handler, not counted in timer periods: the kernel checks CPU
//!   timers only at scheduler ticks that find the thread running, and a
//!   thread sharing its CPU with others can run between ticks for many
//!   periods no signal reports. `CpuNs` adds these up, so it sums to the
//!   CPU time the sampled threads used while sampled.
//! - **Catching up.** Every [`DRAIN_INTERVAL`] the background thread looks
//!   for threads that used two periods or more since their last sample: one
//!   on a CPU gets a sample sent to it; one switched out gets its time given
//!   to the task it was switched out of, with no machine frames (in the
//!   task's own cost in the profile). When a thread leaves or the sampler
//!   stops, the time since its last sample goes to that sample's stack.
//!
//! # Unwinding safely in a signal handler
//!
//! The walk uses the system unwinder (`_Unwind_Backtrace`), which is not
//! re-entrant when the thread it interrupts is itself inside the unwinder
//! or the dynamic loader holding a lock (a panic unwinding, another
//! sampler's handler, a backtrace being captured). So:
//!
//! - theseus's own unwinding at spawn and at await points blocks this
//!   signal (and `SIGPROF`) while it walks (the sampler tells the unwinder,
//!   `capture::unwind`, which signal is its own): a sample landing then is
//!   delivered right after, and still attributed to the running task;
//! - the handler blocks `SIGPROF` while it runs, so a sampler beside it
//!   cannot interrupt its walk (and its own signal is blocked by default);
//! - when the interrupted instruction is inside the unwinder (libgcc_s,
//!   libunwind), the dynamic loader or libc's `dl_iterate_phdr`, the sample
//!   keeps the task's stack but no machine frames (the walk is skipped);
//! - the unwinder's one-time initialization, and the probe of how it
//!   reports stack pointers, run when the sampler starts, not in a handler.
//!
//! On systems whose unwinder finds frame tables with `_dl_find_object`
//! (glibc 2.35 and later, with libgcc from GCC 12 on) the walk takes no
//! lock at all. On older ones a foreign unwind interrupted in the few
//! instructions where libc's mutex functions hold the loader lock for
//! `dl_iterate_phdr` could still deadlock; pprof-rs has the same exposure.
//!
//! # Samples outside any task
//!
//! A sample taken while a profiled thread runs no poll (the scheduler
//! looking for work, a `block_on` between polls) is kept, under a single
//! root node named [`NO_TASK`]. A sample taken while the main future of
//! `block_on` runs is attributed to the main future's frames.

#[cfg(target_os = "linux")]
mod linux;
mod ring;

pub use crate::tree::NO_TASK;

use std::fmt;
use std::io;
use std::time::Duration;

/// How often the background thread moves samples from the per-thread rings
/// into the installed tracer.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(50);

/// theseus's CPU sampler, running from [`Sampler::start`] until it is
/// stopped or dropped. At most one runs at a time in a process.
///
/// `#[theseus::main]` starts one when `THESEUS_SAMPLE_HZ` is set (see
/// [`crate::Config`]); this type is for programs that run a
/// [`crate::Session`] or a [`crate::Tracer`] of their own. Samples go to
/// the tracer that is installed when they are drained, and show in its
/// profile as the `CpuNs` event.
///
/// # Example
///
/// ```
/// use theseus_profiler::{Sampler, Tracer};
///
/// let tracer = Tracer::new();
/// tracer.install();
/// # #[cfg(target_os = "linux")] {
/// let sampler = Sampler::start(997).expect("the sampler starts on Linux");
/// assert_eq!(sampler.hz(), 997);
/// // ... run tasks on theseus's executor: each thread that polls one is
/// // sampled from its first poll on ...
/// sampler.stop();
/// # }
/// tracer.uninstall();
///
/// let mut profile = Vec::new();
/// tracer.write_data(&mut profile).unwrap();
/// ```
pub struct Sampler {
    generation: u32,
    hz: u32,
}

impl Sampler {
    /// The highest sampling rate accepted, per thread and second of CPU time.
    pub const MAX_HZ: u32 = 10_000;

    /// Starts sampling the CPU time of every thread that polls tasks, `hz`
    /// times per second of each thread's CPU time (1 to [`Sampler::MAX_HZ`]).
    ///
    /// Fails when `hz` is out of range, when a sampler already runs, when
    /// no real-time signal is free, and on systems without per-thread CPU
    /// timers (only Linux has them); the error says which.
    pub fn start(hz: u32) -> io::Result<Sampler> {
        if !(1..=Sampler::MAX_HZ).contains(&hz) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "sampling rate {hz} Hz is out of range: accepted rates are 1 to {} Hz",
                    Sampler::MAX_HZ
                ),
            ));
        }
        imp::start(hz).map(|generation| Sampler { generation, hz })
    }

    /// Samples per second of CPU time, per thread.
    pub fn hz(&self) -> u32 {
        self.hz
    }

    /// The CPU time between two of a thread's timer signals. A sample stands
    /// for the CPU time its thread used since its previous sample, which is
    /// about one period when the timer fires on time.
    pub fn period(&self) -> Duration {
        Duration::from_nanos(period_ns(self.hz))
    }

    /// Stops sampling: deletes every thread's timer, moves the samples still
    /// buffered into the installed tracer, and gives the signal back its
    /// previous disposition (unless someone replaced it meanwhile).
    pub fn stop(self) {}
}

impl Drop for Sampler {
    fn drop(&mut self) {
        imp::stop(self.generation);
    }
}

impl fmt::Debug for Sampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sampler")
            .field("hz", &self.hz)
            .finish_non_exhaustive()
    }
}

/// Nanoseconds of CPU time between two samples at `hz`.
fn period_ns(hz: u32) -> u64 {
    1_000_000_000 / u64::from(hz.max(1))
}

#[cfg(target_os = "linux")]
use linux as imp;

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;

    pub(super) fn start(_hz: u32) -> io::Result<u32> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "theseus's sampler needs per-thread CPU timers, which only Linux has; \
             unset THESEUS_SAMPLE_HZ, or use a sampler of this platform beside theseus",
        ))
    }

    pub(super) fn stop(_generation: u32) {}
}
