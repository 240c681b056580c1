//! The executor's clock: monotonic nanoseconds since the first reading.
//!
//! Every timestamp in a task header is a `u64` from [`now`], so a header stays
//! a handful of plain atomics and differences are integer subtractions.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the process's first call. Never 0, so 0 can mean "unset".
#[inline]
pub(crate) fn now() -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    epoch.elapsed().as_nanos() as u64 + 1
}

#[cfg(test)]
mod tests {
    #[test]
    fn monotonic_and_nonzero() {
        let a = super::now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = super::now();
        assert!(a > 0);
        assert!(b - a >= 2_000_000, "{a} {b}");
    }
}
