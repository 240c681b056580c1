//! The key of a CPU sample's innermost frame: the exact instruction it
//! interrupted, for the first [`EXACT_LIMIT`] distinct ones a run sees, and
//! the start of that instruction's function after that.
//!
//! A sample's stack is interned (and its CPU time kept) per distinct path,
//! and its innermost frame is the interrupted instruction itself: keyed
//! exactly, a long run would add a path for every instruction of every hot
//! function, under every task stack that runs it, and the trie and the CPU
//! map would grow with them. Exact keys give the sampled line; past the
//! limit, new instructions are keyed by their function, so what grows is
//! bounded by the functions that run, and their time still goes to them
//! (shown at the function's first line).

use std::collections::HashSet;
use std::ffi::c_void;

/// How many distinct interrupted instructions are keyed exactly.
pub(super) const EXACT_LIMIT: usize = 16_384;

extern "C" {
    /// libgcc's unwinder (std's on Linux): the start of the function whose
    /// unwind information covers `pc`, or null.
    fn _Unwind_FindEnclosingFunction(pc: *mut c_void) -> *mut c_void;
}

/// The interrupted instructions keyed exactly so far.
#[derive(Default)]
pub(super) struct Innermost {
    exact: HashSet<usize>,
}

impl Innermost {
    /// The key of an innermost frame stored as `stored` (the interrupted
    /// instruction plus one, as samples store it): `stored` itself while
    /// fewer than `limit` distinct ones were seen, or it is one of them;
    /// else its function's start plus one (looked up where it is unknown,
    /// `stored` is kept).
    pub(super) fn key(&mut self, stored: usize, limit: usize) -> usize {
        if self.exact.contains(&stored) {
            return stored;
        }
        if self.exact.len() < limit {
            self.exact.insert(stored);
            return stored;
        }
        // SAFETY: a lookup in the loaded objects' unwind tables, from the
        // drain thread, which no sampler interrupts (it polls no task); any
        // address is accepted, an unknown one gives null.
        let start = unsafe { _Unwind_FindEnclosingFunction((stored - 1) as *mut c_void) };
        match start as usize {
            0 => stored,
            start => start + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn some_function(x: u64) -> u64 {
        std::hint::black_box(x).wrapping_mul(3)
    }

    #[test]
    fn past_the_limit_instructions_are_keyed_by_their_function() {
        let start = some_function as fn(u64) -> u64 as usize;
        let (first, second) = (start + 5, start + 9);
        let mut innermost = Innermost::default();
        assert_eq!(innermost.key(first, 1), first, "exact below the limit");
        assert_eq!(innermost.key(first, 1), first, "still exact once seen");
        // The second distinct instruction is past a limit of one.
        assert_eq!(innermost.key(second, 1), start + 1);
        assert_eq!(some_function(2), 6);
    }
}
