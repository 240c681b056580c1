//! Suites that run with profiling on, as a profiled program does: a tracer
//! installed for the whole test process, so that every `theseus::spawn`
//! task runs in the timed wrapper with theseus's waker. With
//! `THESEUS_TEST_PROFILING=off` the same suites run with profiling off
//! (`.ci/run` runs them both ways).

use std::sync::OnceLock;

/// The environment variable that turns the suites' tracer off.
pub const ENV: &str = "THESEUS_TEST_PROFILING";

/// Installs the suites' tracer, once per process, unless [`ENV`] is `off`.
/// Call it before the test spawns anything: spawns made while no tracer is
/// installed are not timed.
pub fn on() {
    static TRACER: OnceLock<Option<theseus::Tracer>> = OnceLock::new();
    let tracer = TRACER.get_or_init(|| {
        let off = std::env::var(ENV).is_ok_and(|v| v == "off");
        (!off).then(|| {
            let tracer = theseus::Tracer::new();
            tracer.install();
            tracer
        })
    });
    if tracer.is_some() {
        assert!(
            theseus_profiler::is_active(),
            "the suites' tracer is not installed"
        );
    }
}

/// A multi-thread runtime with `workers` workers, profiled (see [`on`]).
pub fn multi_thread(workers: usize) -> theseus::runtime::Runtime {
    on();
    super::multi_thread(workers)
}
