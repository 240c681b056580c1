//! Programs of the smol family on async-executor and on `theseus::Executor`
//! (profiling off, then on), the same code on each: the four scheduler
//! shapes of the main table and a TCP echo over async-net, interleaved,
//! with each median's ratio to async-executor's.
//!
//! ```text
//! cargo run --release -p theseus-bench -- --smol [--rounds N] [--workers N]
//! ```
//!
//! With `--count N --runtime async-executor|theseus-off|theseus-on --workload
//! spawn|poll|hop`, one of the three runs exactly N of one shape and
//! nothing else, for counting instructions under valgrind
//! (`bench/instructions.sh --smol`).
//!
//! Each executor has `workers` threads running it under `async_io::block_on`
//! (which drives the async-io reactor while they are idle); the benchmark's
//! main future is blocked on by the calling thread, as in the main table.

use crate::count::{Count, Workload};
use crate::runtimes::{BenchRuntime, Detaching, Kind, OnRuntime, Profiling, Spawner};
use crate::{format_time, median, workloads};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use theseus::profiler::{AwaitMode, CaptureMode};
use theseus::Tracer;

/// What the pool needs of an executor: both have it under these names.
pub trait SmolExecutor: Send + Sync + 'static {
    fn new() -> Self;
    #[track_caller]
    fn spawn<F>(&self, future: F) -> async_task::Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
    /// Runs the executor on this thread, under `async_io::block_on`, until
    /// `stopped` closes.
    fn run_until(&self, stopped: async_channel::Receiver<()>);
}

impl SmolExecutor for async_executor::Executor<'static> {
    fn new() -> Self {
        async_executor::Executor::new()
    }
    #[track_caller]
    fn spawn<F>(&self, future: F) -> async_task::Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        async_executor::Executor::spawn(self, future)
    }
    fn run_until(&self, stopped: async_channel::Receiver<()>) {
        let _ = async_io::block_on(async_executor::Executor::run(self, stopped.recv()));
    }
}

impl SmolExecutor for theseus::Executor<'static> {
    fn new() -> Self {
        theseus::Executor::new()
    }
    #[track_caller]
    fn spawn<F>(&self, future: F) -> async_task::Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        theseus::Executor::spawn(self, future)
    }
    fn run_until(&self, stopped: async_channel::Receiver<()>) {
        let _ = async_io::block_on(theseus::Executor::run(self, stopped.recv()));
    }
}

/// An executor and the threads that run it.
pub struct Pool<E: SmolExecutor> {
    executor: Arc<E>,
    stop: Option<async_channel::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl<E: SmolExecutor> Pool<E> {
    pub fn new(workers: usize) -> Pool<E> {
        let executor = Arc::new(E::new());
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let threads = (0..workers)
            .map(|_| {
                let executor = executor.clone();
                let stopped = stopped.clone();
                std::thread::spawn(move || executor.run_until(stopped))
            })
            .collect();
        Pool {
            executor,
            stop: Some(stop),
            threads,
        }
    }
}

impl<E: SmolExecutor> Drop for Pool<E> {
    fn drop(&mut self) {
        drop(self.stop.take());
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

pub struct PoolSpawner<E>(Arc<E>);

impl<E> Clone for PoolSpawner<E> {
    fn clone(&self) -> Self {
        PoolSpawner(self.0.clone())
    }
}

impl<E: SmolExecutor> Spawner for PoolSpawner<E> {
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

impl<E: SmolExecutor> BenchRuntime for Pool<E> {
    type Spawner = PoolSpawner<E>;
    fn spawner(&self) -> PoolSpawner<E> {
        PoolSpawner(self.executor.clone())
    }
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        async_io::block_on(future)
    }
}

workloads::tcp_echo_over! {
    /// The TCP echo of the main table, over async-net: 50 clients, 200 round
    /// trips of 64 bytes each, one server task per connection.
    async_net, futures_lite
}

const WORKLOADS: [&str; 5] = [
    "spawn_many (10k)",
    "yield_many (200x1000)",
    "ping_pong (1000)",
    "chained_spawn (1000)",
    "tcp_echo over async-net (50 conns x 200 round trips)",
];

const COLUMNS: [&str; 3] = [
    "async-executor",
    "theseus::Executor (profiling off)",
    "theseus::Executor (profiling on)",
];

fn run_once<R: BenchRuntime>(runtime: &R, workload: usize) {
    let spawner = runtime.spawner();
    match workload {
        0 => runtime.block_on(workloads::spawn_many(spawner)),
        1 => runtime.block_on(workloads::yield_many(spawner)),
        2 => runtime.block_on(workloads::ping_pong(spawner)),
        3 => runtime.block_on(workloads::chained_spawn(spawner)),
        _ => runtime.block_on(tcp_echo(spawner)),
    }
}

/// Mean time per iteration over at least 30 ms, after one to warm up.
fn measure<R: BenchRuntime>(runtime: &R, workload: usize) -> Duration {
    run_once(runtime, workload);
    let start = Instant::now();
    let mut iterations = 0u32;
    while start.elapsed() < Duration::from_millis(30) {
        run_once(runtime, workload);
        iterations += 1;
    }
    start.elapsed() / iterations
}

/// Every workload on every column, interleaved and rotated, `rounds`
/// times; prints the medians and their ratios to async-executor.
pub fn table(rounds: usize, workers: usize) {
    // The bench installs and removes its own tracer around the profiled
    // column: the executor must not start a session of its own at first
    // use (set before any other thread exists).
    std::env::set_var("THESEUS", "0");
    let async_executor = Pool::<async_executor::Executor<'static>>::new(workers);
    let theseus = Pool::<theseus::Executor<'static>>::new(workers);
    let tracer = Tracer::new();
    let on = Profiling::On(CaptureMode::Cached, AwaitMode::Cached);
    let mut samples = vec![vec![Vec::new(); COLUMNS.len()]; WORKLOADS.len()];
    for round in 0..rounds {
        for (w, row) in samples.iter_mut().enumerate() {
            for k in 0..COLUMNS.len() {
                let column = (k + round) % COLUMNS.len();
                let time = match column {
                    0 => measure(&async_executor, w),
                    1 => measure(&theseus, w),
                    _ => {
                        let _profiling = on.start(&tracer);
                        measure(&theseus, w)
                    }
                };
                row[column].push(time);
            }
        }
    }
    println!(
        "{workers} workers, {rounds} rounds, median time per iteration (ratio to async-executor)\n"
    );
    println!("| workload | {} |", COLUMNS.join(" | "));
    println!("|---|{}", "---|".repeat(COLUMNS.len()));
    for (w, row) in samples.iter_mut().enumerate() {
        let medians: Vec<Duration> = row.iter_mut().map(|s| median(s)).collect();
        print!("| {} |", WORKLOADS[w]);
        for time in &medians {
            let ratio = time.as_secs_f64() / medians[0].as_secs_f64();
            print!(" {} ({ratio:.2}x) |", format_time(*time));
        }
        println!();
    }
    println!(
        "\nthe profiled column recorded {} tasks",
        tracer.aggregate().total().tasks
    );
}

/// `n` of `workload` on the pool of `kind` (async-executor, or
/// `theseus::Executor` with profiling off or on), and nothing else.
pub fn count(kind: Kind, workload: Workload, n: usize, workers: usize) -> Result<(), String> {
    if !matches!(workload, Workload::Spawn | Workload::Poll | Workload::Hop) {
        return Err(format!(
            "--smol --count runs the workloads spawn, poll and hop, not {workload:?}"
        ));
    }
    // The profiled run installs its own tracer (see `table`).
    std::env::set_var("THESEUS", "0");
    let bench = Count::new(workload, n);
    match kind {
        Kind::AsyncExecutor => bench.run(&Pool::<async_executor::Executor<'static>>::new(workers)),
        Kind::TheseusOff | Kind::TheseusOn => {
            let pool = Pool::<theseus::Executor<'static>>::new(workers);
            let tracer = Tracer::new();
            let _profiling = kind.profiling().start(&tracer);
            bench.run(&pool);
        }
        other => {
            return Err(format!(
                "--smol --count runs on async-executor, theseus-off or theseus-on, not {}",
                other.arg()
            ))
        }
    }
    Ok(())
}
