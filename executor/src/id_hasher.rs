//! Hashing tokio's ids (of tasks, of runtimes) as the integers they are.
//!
//! tokio shows its ids only through `Hash` and `Display`; they are unique
//! integers already, so a hasher that keeps the integer it is given is both
//! the cheapest map key and the way to read the number back.

use std::hash::{Hash, Hasher};

/// Keeps the last integer written to it (bytes are folded in for any other
/// key, which tokio's ids never write).
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The integer behind one of tokio's ids.
pub(crate) fn id_number(id: &impl Hash) -> u64 {
    let mut hasher = IdHasher::default();
    id.hash(&mut hasher);
    hasher.finish()
}
