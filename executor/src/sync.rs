//! The atomics of the per-task protocol (`header`), of the registry's
//! first-poll places (`registry::brief`), and the lock and
//! atomics of the scheduler's parking (`scheduler::park`): std's, or loom's when
//! the executor's loom models are built (`--cfg theseus_loom`, see
//! `header::loom_models`), so that loom sees, and permutes, every access.
//!
//! The cfg is `theseus_loom` rather than loom's usual `loom`: tokio reacts
//! to `--cfg loom` (it swaps its own primitives for loom's, which it only
//! has as a dev-dependency), so a `RUSTFLAGS="--cfg loom"` build of this
//! crate does not compile. Nothing else in the dependency tree knows
//! `theseus_loom`.

#[cfg(theseus_loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, AtomicU8};
#[cfg(not(theseus_loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8};

#[cfg(theseus_loom)]
pub(crate) use loom::sync::{
    atomic::{fence, AtomicBool, AtomicPtr, AtomicUsize},
    Mutex,
};
#[cfg(not(theseus_loom))]
pub(crate) use std::sync::{
    atomic::{fence, AtomicBool, AtomicPtr, AtomicUsize},
    Mutex,
};
