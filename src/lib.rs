//! theseus: an async-aware profiler for Rust, built as a drop-in instrumented
//! executor.
//!
//! CPU profilers show where threads burn CPU; in async programs most latency
//! is waiting. theseus runs your tasks on tokio's scheduler, times every
//! task from spawn to completion, and writes, for every spawn
//! site's logical call stack, how long its tasks lived, polled, waited for a
//! worker and waited for a wake, as a callgrind file that KCachegrind,
//! `callgrind_annotate` and gprof2dot open.
//!
//! Moving a tokio program over is two substitutions:
//!
//! ```text
//! #[tokio::main]   ->  #[theseus::main]
//! tokio::spawn     ->  theseus::spawn
//! ```
//!
//! tokio's I/O, timers and sync types keep working inside theseus tasks, and
//! `tokio::spawn` runs on the same workers. Built with
//! `--cfg tokio_unstable`, tasks spawned with `tokio::spawn` (by axum,
//! hyper, tonic...) are profiled too.
//!
//! ```
//! # mod program {
//! #[theseus::main(worker_threads = 2)]
//! async fn main() {
//!     let handle = theseus::spawn(async { 40 + 2 });
//!     assert_eq!(handle.await.unwrap(), 42);
//! }
//! # pub fn run() { main() }
//! # }
//! # fn main() {
//! #     // Run, profiled, with the profile written nowhere: a doctest runs in
//! #     // the package's directory, where `callgrind.theseus` would land.
//! #     std::env::set_var("THESEUS_OUT", "/dev/null");
//! #     program::run();
//! # }
//! ```

pub use theseus_executor::{
    profiled, spawn, spawn_blocking, Executor, FallibleTask, JoinError, JoinHandle, LocalExecutor,
    Profiled, Task,
};
pub use theseus_macros::{main, profiled, test};
pub use theseus_profiler::Tracer;

/// The profiler: tracers, capture modes, and the join point for samplers.
///
/// `#[theseus::main]` starts a profiling session from the environment
/// (`THESEUS`, `THESEUS_OUT`, `THESEUS_FORMAT`, `THESEUS_EVENT`,
/// `THESEUS_INTERVAL`, `THESEUS_REPORT`, `THESEUS_STACKS`, `THESEUS_AWAITS`,
/// `THESEUS_SAMPLE_HZ`) and writes the profile when `main` returns or
/// panics, or the program gets SIGINT or SIGTERM. Programs that build their
/// own runtime can do the same with [`profiler::Session`], or install a
/// [`Tracer`] around the part they want to see and write its
/// [`profiler::Profile`] in any [`profiler::Format`].
pub mod profiler {
    pub use theseus_profiler::{
        await_mode, capture_mode, current_stack, poll_boundary, report, resolve, set_await_mode,
        set_capture_mode, AwaitMode, CaptureMode, Config, ConfigError, Destination, Event, Format,
        FrameKind, Profile, ResolvedFrame, Sample, Sampler, Session, StackId, Tracer,
    };
}

#[cfg(feature = "tower")]
pub mod tower;

#[cfg(feature = "hyper")]
pub mod hyper;

/// Tasks: spawning, joining, yielding, as in `tokio::task`.
pub mod task {
    pub use theseus_executor::task::*;
}

/// The runtime, as in `tokio::runtime`.
pub mod runtime {
    pub use theseus_executor::{Builder, EnterGuard, Handle, Runtime, TryCurrentError};
}

#[doc(hidden)]
pub mod __private {
    use std::future::Future;
    use std::panic::Location;
    use theseus_executor::Profiled;
    use theseus_profiler::FrameKind;

    /// What `#[theseus::profiled]` wraps a function's body in: a frame of
    /// kind [`FrameKind::Function`], named by `name` (the type name of an
    /// item inside the function), marked where the macro put the call.
    #[track_caller]
    pub fn profiled_fn<T, F: Future<Output = T>>(name: &'static str, body: F) -> Profiled<F> {
        Profiled::marked(body, FrameKind::Function, name, Location::caller())
    }

    use theseus_profiler::Session;

    /// What `#[theseus::main]` expands to: build the runtime and start the
    /// profiling session (a bad setting or an unwritable output path stops
    /// the program here, before it runs, and before a session exists that
    /// would write a profile at that exit), run `main`, cancel what is
    /// left, write the profile, and only then pass on `main`'s result or
    /// panic.
    #[track_caller]
    pub fn run_main<T>(mut builder: crate::runtime::Builder, future: impl Future<Output = T>) -> T {
        // `main`'s leaf is placed at the attribute, in the program's file.
        let at = Location::caller();
        let runtime = builder.build().unwrap_or_else(|error| {
            eprintln!("theseus: cannot start the runtime: {error}");
            std::process::exit(2)
        });
        let session = Session::from_env().unwrap_or_else(|error| {
            eprintln!("theseus: {error}");
            std::process::exit(2)
        });
        let output = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.block_on_at(future, at)
        }));
        // Cancelled tasks are recorded as they drop, so shut down first.
        runtime.shutdown();
        if let Some(session) = session {
            // Says where the profile went, and how to read it (and whether
            // tasks ran that it could not see).
            session.finish();
        }
        output.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// What `#[theseus::test]` expands to.
    #[track_caller]
    pub fn run_test<T>(mut builder: crate::runtime::Builder, future: impl Future<Output = T>) -> T {
        let runtime = builder
            .build()
            .expect("theseus: cannot start the test runtime");
        runtime.block_on_at(future, Location::caller())
    }
}
