//! The runtimes under comparison, behind one small interface: block on a
//! future, and spawn from inside it.
//!
//! Every `Spawner::spawn` is `#[track_caller]`, so theseus (and tokio) see
//! the workload's own spawn line, as they would if it called them directly.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use theseus::profiler::{set_await_mode, set_capture_mode, AwaitMode, CaptureMode};
use theseus::Tracer;

/// Spawns tasks onto one runtime; the join future yields the output.
pub trait Spawner: Clone + Send + Sync + 'static {
    type Join<T: Send + 'static>: Future<Output = T> + Send + 'static;
    #[track_caller]
    fn spawn<F>(&self, future: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
}

/// A runtime that runs a benchmark's top-level future.
pub trait BenchRuntime {
    type Spawner: Spawner;
    fn spawner(&self) -> Self::Spawner;
    fn block_on<F: Future>(&self, future: F) -> F::Output;
}

/// A join handle whose `Result` is unwrapped: a failed task fails the run.
pub struct Unwrapped<H>(H);

impl<H, T, E> Future for Unwrapped<H>
where
    H: Future<Output = Result<T, E>> + Unpin,
    E: std::fmt::Debug,
{
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|result| result.expect("benchmark task failed"))
    }
}

pub struct Tokio(pub tokio::runtime::Runtime);

impl Tokio {
    pub fn new(workers: usize) -> Tokio {
        Tokio(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
                .unwrap(),
        )
    }
}

#[derive(Clone)]
pub struct TokioSpawner;

impl Spawner for TokioSpawner {
    type Join<T: Send + 'static> = Unwrapped<tokio::task::JoinHandle<T>>;
    #[track_caller]
    fn spawn<F>(&self, future: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Unwrapped(tokio::spawn(future))
    }
}

impl BenchRuntime for Tokio {
    type Spawner = TokioSpawner;
    fn spawner(&self) -> TokioSpawner {
        TokioSpawner
    }
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
}

pub struct Theseus(pub theseus::runtime::Runtime);

impl Theseus {
    pub fn new(workers: usize) -> Theseus {
        Theseus(
            theseus::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .build()
                .unwrap(),
        )
    }
}

#[derive(Clone)]
pub struct TheseusSpawner;

impl Spawner for TheseusSpawner {
    type Join<T: Send + 'static> = Unwrapped<theseus::JoinHandle<T>>;
    #[track_caller]
    fn spawn<F>(&self, future: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Unwrapped(theseus::spawn(future))
    }
}

impl BenchRuntime for Theseus {
    type Spawner = TheseusSpawner;
    fn spawner(&self) -> TheseusSpawner {
        TheseusSpawner
    }
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
}

/// async-executor with `workers` threads running it; the benchmark's main
/// future is driven by the calling thread, as in the other runtimes.
///
/// `tokio::net` needs tokio's reactor: a background tokio runtime with one
/// worker drives the reactor and timers, and its handle is entered on every
/// executor thread and in `block_on`; the tasks themselves run on
/// async-executor. (Each readiness event thus crosses from that thread to an
/// executor thread: the model theseus used before it ran on tokio's
/// scheduler, kept here for comparison.)
pub struct AsyncExecutor {
    executor: Arc<async_executor::Executor<'static>>,
    stop: tokio::sync::watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    io: tokio::runtime::Runtime,
}

impl AsyncExecutor {
    pub fn new(workers: usize) -> AsyncExecutor {
        let io = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("async-executor-io")
            .enable_all()
            .build()
            .unwrap();
        let executor = Arc::new(async_executor::Executor::new());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let threads = (0..workers)
            .map(|_| {
                let executor = executor.clone();
                let mut stopped = stopped.clone();
                let io = io.handle().clone();
                std::thread::spawn(move || {
                    let _io = io.enter();
                    futures_lite::future::block_on(executor.run(async move {
                        let _ = stopped.wait_for(|&stop| stop).await;
                    }))
                })
            })
            .collect();
        AsyncExecutor {
            executor,
            stop,
            threads,
            io,
        }
    }
}

impl Drop for AsyncExecutor {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[derive(Clone)]
pub struct AsyncExecutorSpawner(Arc<async_executor::Executor<'static>>);

impl Spawner for AsyncExecutorSpawner {
    type Join<T: Send + 'static> = Detaching<T>;
    #[track_caller]
    fn spawn<F>(&self, future: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Detaching(Some(self.0.spawn(future)))
    }
}

/// An async-executor task that detaches when dropped, like tokio's and
/// theseus's join handles (async-executor would cancel it).
pub struct Detaching<T>(pub Option<async_executor::Task<T>>);

impl<T> Future for Detaching<T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let task = self.0.as_mut().expect("polled after completion");
        let output = std::task::ready!(Pin::new(task).poll(cx));
        self.0 = None;
        Poll::Ready(output)
    }
}

impl<T> Drop for Detaching<T> {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.detach();
        }
    }
}

impl BenchRuntime for AsyncExecutor {
    type Spawner = AsyncExecutorSpawner;
    fn spawner(&self) -> AsyncExecutorSpawner {
        AsyncExecutorSpawner(self.executor.clone())
    }
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _io = self.io.enter();
        futures_lite::future::block_on(future)
    }
}

/// Which profiling a theseus measurement runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profiling {
    /// No tracer installed: what `THESEUS=0` gives.
    Off,
    /// A tracer installed, stacks captured and await points found in these
    /// modes.
    On(CaptureMode, AwaitMode),
}

/// Keeps a tracer installed, and the capture and await modes set, until
/// dropped; then uninstalls it and puts the modes back to the defaults, so
/// other runtimes' measurements run with nothing installed.
pub struct ProfilingGuard<'a> {
    tracer: Option<&'a Tracer>,
}

impl Profiling {
    pub fn start(self, tracer: &Tracer) -> ProfilingGuard<'_> {
        match self {
            Profiling::Off => ProfilingGuard { tracer: None },
            Profiling::On(stacks, awaits) => {
                set_capture_mode(stacks);
                set_await_mode(awaits);
                tracer.install();
                ProfilingGuard {
                    tracer: Some(tracer),
                }
            }
        }
    }
}

impl Drop for ProfilingGuard<'_> {
    fn drop(&mut self) {
        if let Some(tracer) = self.tracer.take() {
            tracer.uninstall();
            set_capture_mode(CaptureMode::Cached);
            set_await_mode(AwaitMode::Cached);
        }
    }
}

/// Every runtime the bench knows, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Tokio,
    AsyncExecutor,
    TheseusOff,
    TheseusOn,
    TheseusFull,
    TheseusAwaitsOff,
    TheseusAwaitsFull,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Tokio,
        Kind::AsyncExecutor,
        Kind::TheseusOff,
        Kind::TheseusOn,
        Kind::TheseusFull,
        Kind::TheseusAwaitsOff,
        Kind::TheseusAwaitsFull,
    ];

    /// The name on the command line.
    pub fn arg(self) -> &'static str {
        match self {
            Kind::Tokio => "tokio",
            Kind::AsyncExecutor => "async-executor",
            Kind::TheseusOff => "theseus-off",
            Kind::TheseusOn => "theseus-on",
            Kind::TheseusFull => "theseus-full",
            Kind::TheseusAwaitsOff => "theseus-awaits-off",
            Kind::TheseusAwaitsFull => "theseus-awaits-full",
        }
    }

    /// The name in tables.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Tokio => "tokio",
            Kind::AsyncExecutor => "async-executor",
            Kind::TheseusOff => "theseus (profiling off)",
            Kind::TheseusOn => "theseus (profiling on)",
            Kind::TheseusFull => "theseus (stacks=full)",
            Kind::TheseusAwaitsOff => "theseus (awaits=off)",
            Kind::TheseusAwaitsFull => "theseus (awaits=full)",
        }
    }

    pub fn parse(arg: &str) -> Result<Kind, String> {
        Kind::ALL
            .into_iter()
            .find(|kind| kind.arg() == arg)
            .ok_or_else(|| {
                let names: Vec<&str> = Kind::ALL.iter().map(|k| k.arg()).collect();
                format!("unknown runtime {arg}: accepted are {}", names.join(", "))
            })
    }

    /// The profiling a theseus kind runs under; `Off` for the others.
    pub fn profiling(self) -> Profiling {
        match self {
            Kind::TheseusOn => Profiling::On(CaptureMode::Cached, AwaitMode::Cached),
            Kind::TheseusFull => Profiling::On(CaptureMode::Full, AwaitMode::Cached),
            Kind::TheseusAwaitsOff => Profiling::On(CaptureMode::Cached, AwaitMode::Off),
            Kind::TheseusAwaitsFull => Profiling::On(CaptureMode::Cached, AwaitMode::Full),
            Kind::Tokio | Kind::AsyncExecutor | Kind::TheseusOff => Profiling::Off,
        }
    }
}

/// Runs the benchmark code `B` on one freshly built runtime of `kind`.
pub trait OnRuntime {
    type Output;
    fn run<R: BenchRuntime>(self, runtime: &R) -> Self::Output;
}

/// Builds a runtime of `kind` with `workers` workers and runs `bench` on it,
/// with profiling started for the theseus kinds (the tracer is handed back
/// so its profile can be written).
pub fn run_on<B: OnRuntime>(kind: Kind, workers: usize, tracer: &Tracer, bench: B) -> B::Output {
    match kind {
        Kind::Tokio => bench.run(&Tokio::new(workers)),
        Kind::AsyncExecutor => bench.run(&AsyncExecutor::new(workers)),
        Kind::TheseusOff
        | Kind::TheseusOn
        | Kind::TheseusFull
        | Kind::TheseusAwaitsOff
        | Kind::TheseusAwaitsFull => {
            let runtime = Theseus::new(workers);
            let output = {
                let _profiling = kind.profiling().start(tracer);
                bench.run(&runtime)
            };
            runtime.0.shutdown();
            output
        }
    }
}
