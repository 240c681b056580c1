//! The per-thread buffer between the sampler's signal handler (the only
//! writer, on the sampled thread) and the drain (the only reader, under the
//! sampler's registry lock).
//!
//! A fixed array of slots allocated before the thread's timer exists, and
//! two counters: the handler fills the slot at `head` and then publishes it
//! by bumping `head` (release); the drain reads the slots from `tail` to
//! `head` (acquire) and then frees them by bumping `tail` (release). No
//! lock, no allocation, nothing but loads and stores on the handler's side,
//! so it is async-signal-safe. When the drain falls behind and the buffer is
//! full, the sample is counted as lost instead of waiting.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Most machine frames kept below the poll boundary for one sample. A
/// deeper poll loses its outermost frames (the walk starts innermost), which
/// keeps the function that was running and those right above it.
pub(crate) const SAMPLE_FRAMES: usize = 64;

/// Samples a thread can hold between two drains. The drain runs every
/// [`super::DRAIN_INTERVAL`]; CPU timers fire at most once per kernel tick
/// (the CPU time of periods missed in between is in the next sample), so a
/// thread produces at most about one sample per millisecond.
pub(crate) const SLOTS: usize = 256;

/// One sample as the handler wrote it.
pub(crate) struct RawSample {
    /// The running task's logical stack ([`crate::StackId`]'s number).
    pub(crate) stack: u32,
    /// The thread's CPU time this sample stands for, in nanoseconds: all of
    /// it since the thread's previous sample.
    pub(crate) cpu_ns: u64,
    /// How many entries of `ips` are used.
    pub(crate) len: u32,
    /// Instruction pointers below the poll boundary, innermost first.
    pub(crate) ips: [usize; SAMPLE_FRAMES],
}

pub(crate) struct Ring {
    slots: Box<[UnsafeCell<RawSample>]>,
    /// Samples written so far (the next slot is `head % SLOTS`).
    head: AtomicUsize,
    /// Samples read so far.
    tail: AtomicUsize,
    /// CPU time of samples dropped because the ring was full, nanoseconds.
    lost: AtomicU64,
    /// The thread's CPU clock up to which its CPU time has been taken by a
    /// sample or a tail ([`Ring::take_cpu_until`]).
    taken_until: AtomicU64,
}

// SAFETY: a slot is written only by the owning thread's handler while it is
// outside `[tail, head)`, and read only by the single drain while it is
// inside; the release/acquire pairs on `head` and `tail` order those
// accesses, so no slot is ever read and written at once.
unsafe impl Sync for Ring {}
// SAFETY: as above; the slots hold plain integers.
unsafe impl Send for Ring {}

impl Ring {
    /// A ring with [`SLOTS`] empty slots, allocated here (never in the
    /// handler), for a thread whose CPU clock reads `cpu_now_ns`: CPU time
    /// the thread used before that is not the sampler's.
    pub(crate) fn new(cpu_now_ns: u64) -> Ring {
        let slots = (0..SLOTS)
            .map(|_| {
                UnsafeCell::new(RawSample {
                    stack: 0,
                    cpu_ns: 0,
                    len: 0,
                    ips: [0; SAMPLE_FRAMES],
                })
            })
            .collect();
        Ring {
            slots,
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            lost: AtomicU64::new(0),
            taken_until: AtomicU64::new(cpu_now_ns),
        }
    }

    /// Takes the thread's CPU time from where the last taker stopped up to
    /// `cpu_now_ns` (the thread's CPU clock, read by the taker) and returns
    /// it: 0 when another taker already went as far. The handler takes it
    /// for each sample, the sampler for the tail when the thread leaves or
    /// the sampler stops; a maximum, not a store, so each nanosecond is
    /// taken once whichever of them reads the clock first and stores last.
    /// Lock-free: the handler may call it.
    pub(crate) fn take_cpu_until(&self, cpu_now_ns: u64) -> u64 {
        let before = self.taken_until.fetch_max(cpu_now_ns, Ordering::Relaxed);
        cpu_now_ns.saturating_sub(before)
    }

    /// The thread's CPU clock as of its last sample (or tail).
    pub(crate) fn taken_until(&self) -> u64 {
        self.taken_until.load(Ordering::Relaxed)
    }

    /// Writes one sample of `cpu_ns` with `fill`, or counts its CPU time as
    /// lost when the ring is full.
    ///
    /// # Safety
    ///
    /// Only one writer at a time, ever: the sampled thread's signal handler
    /// (which its own signal cannot interrupt: it is blocked while the
    /// handler runs).
    pub(crate) unsafe fn push(&self, cpu_ns: u64, fill: impl FnOnce(&mut RawSample)) {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Acquire);
        if head.wrapping_sub(tail) >= self.slots.len() {
            self.lost.fetch_add(cpu_ns, Ordering::Relaxed);
            return;
        }
        // SAFETY: `head` is outside `[tail, head)`, so the drain does not
        // read this slot until the store below publishes it, and there is no
        // other writer (the caller's contract).
        let slot = unsafe { &mut *self.slots[head % self.slots.len()].get() };
        slot.cpu_ns = cpu_ns;
        fill(slot);
        self.head.store(head.wrapping_add(1), Ordering::Release);
    }

    /// Calls `f` with every sample written since the last drain, oldest
    /// first, and frees their slots.
    ///
    /// # Safety
    ///
    /// Only one reader at a time: the sampler calls it under its registry
    /// lock.
    pub(crate) unsafe fn drain(&self, mut f: impl FnMut(&RawSample)) {
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Acquire);
        let mut at = tail;
        while at != head {
            // SAFETY: slots in `[tail, head)` were published by the writer's
            // release store of `head`, and it does not touch them until
            // `tail` moves past them below.
            let slot = unsafe { &*self.slots[at % self.slots.len()].get() };
            f(slot);
            at = at.wrapping_add(1);
        }
        self.tail.store(head, Ordering::Release);
    }

    /// Takes the CPU time, in nanoseconds, of samples lost to a full ring.
    pub(crate) fn take_lost(&self) -> u64 {
        self.lost.swap(0, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_come_out_in_order_and_a_full_ring_counts_losses() {
        let ring = Ring::new(0);
        for i in 0..SLOTS + 3 {
            // SAFETY: this test is the only writer and the only reader.
            unsafe {
                ring.push(2, |s| {
                    s.stack = i as u32;
                    s.len = 1;
                    s.ips[0] = i;
                })
            };
        }
        assert_eq!(ring.take_lost(), 6, "3 samples of 2 ns did not fit");
        let mut seen = Vec::new();
        // SAFETY: as above.
        unsafe { ring.drain(|s| seen.push((s.stack, s.cpu_ns, s.ips[0]))) };
        assert_eq!(seen.len(), SLOTS);
        assert!(seen
            .iter()
            .enumerate()
            .all(|(i, &(stack, cpu_ns, ip))| stack as usize == i && cpu_ns == 2 && ip == i));
        // Freed: it takes samples again, and a second drain sees only those.
        // SAFETY: as above.
        unsafe { ring.push(1, |s| s.stack = 99) };
        let mut again = Vec::new();
        // SAFETY: as above.
        unsafe { ring.drain(|s| again.push(s.stack)) };
        assert_eq!(again, [99]);
        assert_eq!(ring.take_lost(), 0);
    }

    #[test]
    fn cpu_time_is_taken_once_whoever_reads_the_clock_first() {
        let ring = Ring::new(1_000);
        assert_eq!(ring.take_cpu_until(4_000), 3_000);
        // A taker that read the clock earlier but comes later takes nothing,
        // and does not move the mark back.
        assert_eq!(ring.take_cpu_until(3_500), 0);
        assert_eq!(ring.taken_until(), 4_000);
        assert_eq!(ring.take_cpu_until(4_250), 250);
        // Before the thread joined: none of it.
        assert_eq!(Ring::new(10).take_cpu_until(5), 0);
    }
}
