//! [`SetOnce`]: a value a task's poller writes once and any thread reads.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};

/// A value written once, by one writer, and read by any thread after that.
///
/// `OnceLock` would do, but its first write takes the slow path of a
/// `Once` (a compare-and-swap loop and a futex check), once per task; here
/// the single writer (the task's poller) makes a release store enough.
pub(crate) struct SetOnce<T> {
    set: AtomicBool,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: the value is written once, before `set` is released, and only
// read (as `&T`) after `set` is acquired; `T: Send + Sync` makes sharing
// that reference and dropping the value on any thread sound.
unsafe impl<T: Send + Sync> Sync for SetOnce<T> {}

impl<T> SetOnce<T> {
    pub(crate) fn new() -> SetOnce<T> {
        SetOnce {
            set: AtomicBool::new(false),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    pub(crate) fn get(&self) -> Option<&T> {
        if self.set.load(Ordering::Acquire) {
            // SAFETY: `set` is true only after the value was written, and
            // it is never written again.
            Some(unsafe { (*self.value.get()).assume_init_ref() })
        } else {
            None
        }
    }

    /// Sets the value. The caller must be the only writer, and call this at
    /// most once: a task's poller (tokio never polls one task on two threads
    /// at once), as `Timed::poll` on the first poll, or the header when the
    /// task first registers an await point.
    pub(crate) fn set(&self, value: T) {
        debug_assert!(!self.set.load(Ordering::Relaxed), "set twice");
        // SAFETY: no reader looks at the value before `set` is true, and
        // there is one writer (see above), so nothing aliases this write.
        unsafe { (*self.value.get()).write(value) };
        self.set.store(true, Ordering::Release);
    }
}

impl<T> Drop for SetOnce<T> {
    fn drop(&mut self) {
        if *self.set.get_mut() {
            // SAFETY: set means initialized; `&mut self` means no reader.
            unsafe { self.value.get_mut().assume_init_drop() };
        }
    }
}
