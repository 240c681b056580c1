//! Signatures: recognizing a chain of machine frames, seen once by
//! unwinding, by the return addresses it left on the stack.
//!
//! Each frame of a chain keeps its return address in a stack slot. Measured
//! from a local of a never-inlined function at the bottom of the chain (the
//! *base*), the slots lie at fixed offsets for as long as the chain is the
//! same one, frame for frame; a later walk with the base at the same depth
//! below the poll boundary reads those few slots, and when each holds the
//! recorded address, the chain is the recorded one. That costs one load a
//! frame, where unwinding costs a microsecond or more.

use super::unwind::{sampler_signals_blocked, sp_is_callee_cfa, walk_poll_with_sp};

/// Most machine frames kept for one chain; a deeper poll loses its
/// outermost frames (the walk goes from the capture outwards).
const MAX_FRAMES: usize = 128;

/// Where each frame of a chain keeps its return address, as offsets from
/// the base, with the address.
pub(super) struct Signature {
    slots: Box<[(usize, usize)]>,
}

impl Signature {
    /// Whether the stack above `base` holds the chain now.
    ///
    /// # Safety
    ///
    /// `base` must be the address of a local of the caller's frame (or a
    /// frame the caller is running in), and the signature must have been
    /// made by [`read_chain`] with a base at the same distance below the
    /// same kind of boundary as now: every slot then lies between `base`
    /// and the boundary, in live frames of this thread's stack.
    ///
    /// Two frames a step, their differences or-ed together and tested once:
    /// a chain is checked on every pending poll (and spawn), and the loop's
    /// own bookkeeping was as much as the loads.
    #[inline]
    pub(super) unsafe fn matches(&self, base: usize) -> bool {
        // What the slot `offset` holds, xor the address it should hold.
        let differs = |&(offset, ip): &(usize, usize)| {
            // SAFETY: by this function's contract, `base + offset` lies in
            // live frames of this thread's stack, aligned for a `usize`
            // (checked when the signature was made). The read is volatile,
            // only compared, and no Rust reference to the word is made: it
            // is how an unwinder reads a return address.
            unsafe { std::ptr::read_volatile((base + offset) as *const usize) ^ ip }
        };
        let mut rest = &self.slots[..];
        while let [first, second, tail @ ..] = rest {
            if differs(first) | differs(second) != 0 {
                return false;
            }
            rest = tail;
        }
        rest.iter().all(|slot| differs(slot) == 0)
    }
}

/// Unwinds the current poll from here to `boundary` and reads the chain of
/// frames above `base` with its signature (see [`read_chain`]). Frames at
/// or below `base`, this walk's own and its caller's, are left out.
pub(super) fn walk_chain(base: usize, boundary: usize) -> (Vec<usize>, Option<Signature>) {
    let mut frames = [(0usize, 0usize); MAX_FRAMES];
    let callee_cfa = sp_is_callee_cfa();
    let n = {
        let _blocked = sampler_signals_blocked();
        // SAFETY: `walk_poll_with_sp` needs this thread not to be inside
        // the unwinder already. Its callers run in normal context (a spawn
        // call, a waker clone inside a poll), not in a signal handler, and
        // the handlers that unwind (a CPU sampler's `SIGPROF`, theseus's
        // own sampler's signal) are blocked for as long as the walk lasts.
        unsafe { walk_poll_with_sp(boundary, callee_cfa, &mut frames) }
    };
    read_chain(&frames[..n], base, boundary)
}

/// The frames of a walk that lie above `base`, outermost first, and their
/// signature: `frames` are `(ip, sp)` pairs, innermost first, as
/// `walk_poll_with_sp` gives them, down to `boundary`. Frames at or below
/// `base` are the walk's own and left out. The signature is `None` when some
/// frame's return address could not be found on the stack (the frames are
/// still exact, only not recognizable later) or when there are none.
fn read_chain(
    frames: &[(usize, usize)],
    base: usize,
    boundary: usize,
) -> (Vec<usize>, Option<Signature>) {
    let word = std::mem::size_of::<usize>();
    let mut kept: Vec<(usize, Option<usize>)> = Vec::with_capacity(frames.len());
    let mut lowest = base;
    for (i, &(ip, sp)) in frames.iter().enumerate() {
        // Where a frame's return address lies depends on what `sp` means
        // (see `sp_is_callee_cfa`): just below this frame's own stack
        // pointer, or below the next inner frame's.
        let inner_sp = if i > 0 { frames[i - 1].1 } else { 0 };
        let candidates = [sp.wrapping_sub(word), inner_sp.wrapping_sub(word)];
        let slot = candidates.into_iter().find(|&slot| {
            slot > lowest
                && slot.checked_add(word).is_some_and(|end| end <= boundary)
                && slot % word == 0
                // SAFETY: `slot` lies between `base`, a local of a frame
                // that is running the walk, and the boundary: in live frames
                // of this thread's stack; aligned, read only to compare, as
                // the unwinder itself just read it.
                && unsafe { std::ptr::read_volatile(slot as *const usize) } == ip
        });
        match slot {
            Some(slot) => {
                lowest = slot;
                kept.push((ip, Some(slot)));
            }
            None if sp <= base => {}
            None => kept.push((ip, None)),
        }
    }
    let ips = kept.iter().rev().map(|&(ip, _)| ip).collect();
    let slots: Option<Box<[(usize, usize)]>> = kept
        .iter()
        .map(|&(ip, slot)| slot.map(|slot| (slot - base, ip)))
        .collect();
    let signature = slots
        .filter(|slots| !slots.is_empty())
        .map(|slots| Signature { slots });
    (ips, signature)
}
