//! Telling a forked child from the process that started something.
//!
//! A child made by `fork()` without `exec` gets a copy of its parent's
//! memory but only the thread that forked. The threads the profiler starts
//! (the signal thread, the sampler's drain, the interval ticker), the
//! sampler's CPU timers and the pipe the signal thread reads are the
//! parent's alone: a child that wrote into that pipe would hand its signal
//! to the parent, and one that joined those threads would join threads it
//! does not have. So each of them remembers the process that started it,
//! and a child leaves what it inherited alone: its SIGINT and SIGTERM act
//! as they would without theseus, it runs no sampler and no ticker, and
//! the session it inherited writes nothing (the profile is the parent's).
//! A child that execs starts afresh, and one that starts a session of its
//! own gets a profile of its own.

/// The process that started something: see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Starter(u32);

impl Starter {
    /// This process, as the starter of what it is about to start.
    pub(crate) fn this_process() -> Starter {
        Starter(std::process::id())
    }

    /// Whether this is still the process that started it: false in a child
    /// forked since.
    pub(crate) fn is_this_process(self) -> bool {
        std::process::id() == self.0
    }
}
