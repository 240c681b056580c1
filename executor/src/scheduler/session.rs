//! The profiling session of a program that runs on [`Executor`](super::Executor)
//! without `#[theseus::main]`: started from the environment when the first
//! executor is first used, and never finished by anyone, so the profile is
//! written the way a session writes it when no `main` finishes it: by the
//! session's `atexit` handler when the process exits (returning from
//! `main` or calling `exit`), or on SIGINT/SIGTERM by its signal handling.

use std::sync::OnceLock;
use theseus_profiler::Session;

/// Starts the process's session, once, unless a tracer is installed
/// already (`#[theseus::main]`'s session, or a program's own tracer):
/// that one sees the executor's tasks. `THESEUS=0` starts none, and the
/// executor runs its tasks untimed.
pub(crate) fn start_once() {
    static SESSION: OnceLock<Option<Session>> = OnceLock::new();
    SESSION.get_or_init(|| {
        if theseus_profiler::is_active() {
            return None;
        }
        match Session::from_env() {
            Ok(session) => session,
            Err(error) => {
                // A bad setting must not take down a program that only
                // changed its executor: it runs, unprofiled, and says why.
                eprintln!("theseus: {error}; the program runs without profiling");
                None
            }
        }
    });
}
