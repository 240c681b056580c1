//! The executor's clock: raw ticks on the hot path, nanoseconds in records.
//!
//! A profiled task reads the clock at its spawn, at every schedule, and at
//! the start and end of every poll, so the clock is most of what profiling
//! costs per poll. `Instant::now` goes through `clock_gettime` (about 20 to
//! 60 ns here); reading the CPU's time-stamp counter takes a third of that.
//! `quanta` reads the TSC where it is invariant (same rate on every core, in
//! every power state), calibrates it against the OS clock once, and falls
//! back to the OS's monotonic clock elsewhere. Timestamps are kept as raw
//! ticks; only durations are converted, when they are added up.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();

/// Nanoseconds per tick, as a fraction over 2^32: quanta's own conversion
/// of 2^32 ticks, so that a duration is one multiply and one shift, where
/// `quanta::Clock::delta_as_nanos` matches on its source and checks its
/// calibration at every call (three or more times per poll). 0 until the
/// clock is set up.
static NANOS_PER_TICK_X32: AtomicU64 = AtomicU64::new(0);

/// Whether quanta reads the TSC, so this module may read it directly:
/// `quanta::Clock::raw` is not inlined and matches on its source on every
/// call, which showed as 5% of a spawn's time.
static RAW_IS_TSC: AtomicBool = AtomicBool::new(false);

fn clock() -> &'static quanta::Clock {
    CLOCK.get_or_init(|| {
        let clock = quanta::Clock::new();
        RAW_IS_TSC.store(raw_is_tsc(&clock), Relaxed);
        // quanta's conversion is linear in the ticks: its value for 2^32
        // ticks is the scale, to a part in 2^32 at least (a tick is never
        // below a tenth of a nanosecond).
        let scale = clock.delta_as_nanos(0, 1 << 32).max(1);
        NANOS_PER_TICK_X32.store(scale, Relaxed);
        clock
    })
}

/// quanta's raw reading is the TSC exactly when it lies between two TSC
/// readings taken around it (its fallback counts nanoseconds since boot,
/// far below the TSC).
#[cfg(target_arch = "x86_64")]
fn raw_is_tsc(clock: &quanta::Clock) -> bool {
    // SAFETY: `rdtsc` exists on every x86_64 processor and has no
    // preconditions.
    let before = unsafe { std::arch::x86_64::_rdtsc() };
    let raw = clock.raw();
    // SAFETY: as above.
    let after = unsafe { std::arch::x86_64::_rdtsc() };
    (before..=after).contains(&raw)
}

#[cfg(not(target_arch = "x86_64"))]
fn raw_is_tsc(_: &quanta::Clock) -> bool {
    false
}

/// Calibrates the clock now (well under a millisecond), so that the first
/// spawn does not pay for it.
pub(crate) fn init() {
    clock();
}

/// A timestamp in raw ticks. Never 0, so 0 can mean "unset".
#[cfg(not(theseus_loom))]
#[inline]
pub(crate) fn now() -> u64 {
    #[cfg(target_arch = "x86_64")]
    if RAW_IS_TSC.load(Relaxed) {
        // SAFETY: see `raw_is_tsc`.
        return unsafe { std::arch::x86_64::_rdtsc() }.max(1);
    }
    clock().raw().max(1)
}

/// Nanoseconds from `start` to `end` (two [`now`] readings); 0 if `end` is
/// not after `start`, as across cores whose counters differ by a few ticks.
#[cfg(not(theseus_loom))]
#[inline]
pub(crate) fn nanos_between(start: u64, end: u64) -> u64 {
    if end <= start {
        return 0;
    }
    let mut scale = NANOS_PER_TICK_X32.load(Relaxed);
    if scale == 0 {
        clock();
        scale = NANOS_PER_TICK_X32.load(Relaxed);
    }
    ((u128::from(end - start) * u128::from(scale)) >> 32) as u64
}

#[cfg(theseus_loom)]
pub(crate) use loom_clock::{nanos_between, now};

/// The clock of the loom models (`header::loom_models`): a counter that
/// every reading advances by one tick, and a tick is a nanosecond. It is
/// new in each execution loom explores, so timestamps are deterministic;
/// they are increasing, and ordered as the readings are, as a real clock's
/// are; and each reading is a step at which loom may switch threads, as a
/// real thread may be preempted between reading the clock and using it.
#[cfg(theseus_loom)]
mod loom_clock {
    use loom::sync::atomic::{AtomicU64, Ordering::Relaxed};

    loom::lazy_static! {
        static ref TICKS: AtomicU64 = AtomicU64::new(0);
    }

    pub(crate) fn now() -> u64 {
        TICKS.fetch_add(1, Relaxed) + 1
    }

    pub(crate) fn nanos_between(start: u64, end: u64) -> u64 {
        end.saturating_sub(start)
    }
}

#[cfg(all(test, not(theseus_loom)))]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn ticks_convert_to_the_os_clocks_nanoseconds() {
        let (start, os_start) = (now(), Instant::now());
        std::thread::sleep(Duration::from_millis(50));
        let (end, os_elapsed) = (now(), os_start.elapsed());
        let measured = nanos_between(start, end);
        let os = os_elapsed.as_nanos() as u64;
        assert!(start > 0 && end > start);
        // Both intervals hold the same sleep; the readings are a few
        // instructions apart, so they agree to far better than 1%.
        let error = (measured as f64 - os as f64).abs() / os as f64;
        assert!(error < 0.01, "clock says {measured} ns, the OS {os} ns");
        assert_eq!(nanos_between(end, start), 0);
    }
}
