//! A shard's place for a task in its first poll ([`BriefPlace`]): taken
//! and left by its owner with one atomic each, no lock, and read by the
//! registry's readers with a flag the owner waits on before it leaves.
//!
//! The protocol is Dekker's: the owner leaves by emptying the place and
//! then checking the flag; a reader raises the flag and then looks in the
//! place, each with a sequentially consistent fence between its store and
//! its load. Whichever fence comes first in their one total order, either
//! the reader finds the place empty, or the owner sees the flag (or its
//! release by the reader, which it acquires) and waits until the reader
//! has done. (Fences rather than sequentially consistent accesses: they
//! cost the same, one locked instruction, and loom models fences.) So once `leave`
//! returns, no reader looks at what the place held, and its owner may let
//! it go. Readers take turns (the registry holds the shard's lock while
//! it reads), so one flag is enough.

use crate::sync::{fence, AtomicBool, AtomicPtr};
use std::ptr;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};

/// A place for one `T`, by address. See the module docs.
pub(crate) struct BriefPlace<T> {
    /// What the place holds; null while it is free.
    held: AtomicPtr<T>,
    /// A reader is looking at what the place holds.
    reading: AtomicBool,
}

impl<T> BriefPlace<T> {
    pub(crate) fn new() -> BriefPlace<T> {
        BriefPlace {
            held: AtomicPtr::new(ptr::null_mut()),
            reading: AtomicBool::new(false),
        }
    }

    /// Puts `item` in the place if it is free; false if another holds it.
    /// What the caller wrote to `item` before is seen by the readers that
    /// find it there.
    ///
    /// # Safety
    ///
    /// When this returns true, `item` must stay alive where it is until
    /// the caller empties the place again ([`BriefPlace::leave`], or
    /// [`BriefPlace::leave_unread`] with readers kept out): readers use it
    /// meanwhile.
    #[inline]
    pub(crate) unsafe fn take(&self, item: &T) -> bool {
        let item = item as *const T as *mut T;
        self.held
            .compare_exchange(ptr::null_mut(), item, Release, Relaxed)
            .is_ok()
    }

    /// Empties the place, which holds what this caller put there: once
    /// this returns, no reader looks at it any more.
    #[inline]
    pub(crate) fn leave(&self) {
        self.held.store(ptr::null_mut(), Relaxed);
        fence(SeqCst);
        if self.reading.load(Acquire) {
            self.wait_for_reader();
        }
    }

    #[cold]
    #[inline(never)]
    fn wait_for_reader(&self) {
        while self.reading.load(Acquire) {
            yield_now();
        }
    }

    /// Empties the place while the caller keeps readers out (it holds
    /// the lock they read under), so none is to be waited for.
    #[inline]
    pub(crate) fn leave_unread(&self) {
        self.held.store(ptr::null_mut(), Release);
    }

    /// What `read` makes of the item in the place, if it holds one: `read`
    /// may use it, its owner's `leave` waits meanwhile. One reader at a
    /// time: the callers take turns (a lock).
    #[inline]
    pub(crate) fn read<R>(&self, read: impl FnOnce(&T) -> R) -> Option<R> {
        self.reading.store(true, Relaxed);
        fence(SeqCst);
        let held = self.held.load(Acquire);
        // SAFETY: an item in the place stays alive and in place until its
        // owner's `leave` returns (`BriefPlace::take`'s callers promise
        // it), which waits while `reading` is up; if the owner empties the
        // place after the load above, its fence comes after this one, and
        // its check of `reading` sees it up (see the module docs).
        let result = (!held.is_null()).then(|| read(unsafe { &*held }));
        self.reading.store(false, Release);
        result
    }
}

#[cfg(theseus_loom)]
fn yield_now() {
    loom::thread::yield_now();
}

#[cfg(not(theseus_loom))]
fn yield_now() {
    std::thread::yield_now();
}
