//! What the request layer costs a service: http_fast on theseus with
//! `theseus::tower::RequestLayer` on its route, beside the same with no
//! layer and with a layer that adds nothing (what axum's `route_layer`
//! costs whatever the layer), with profiling on (each of its 5,000 requests
//! a frame) and off.
//!
//! Each measurement runs http_fast for two seconds; the six runs of a
//! round are interleaved, their order rotated each round, and the table
//! gives the medians and the ratios of layered to bare: of the wall time per
//! iteration, and of the process's CPU time (user and system, all threads)
//! per iteration, which other programs on a shared machine move less.

use crate::runtimes::{BenchRuntime, Theseus};
use crate::workloads::{self, RouteLayer};
use std::time::{Duration, Instant};
use theseus::Tracer;

/// How long one measurement of http_fast runs.
const MEASURE_FOR: Duration = Duration::from_secs(2);

/// The six runs of a round: (profiling, layer).
const RUNS: [(bool, RouteLayer); 6] = [
    (true, RouteLayer::None),
    (true, RouteLayer::Identity),
    (true, RouteLayer::Request),
    (false, RouteLayer::None),
    (false, RouteLayer::Identity),
    (false, RouteLayer::Request),
];

/// Measures and prints the table.
pub fn run(rounds: usize, workers: usize) {
    let runtime = Theseus::new(workers);
    let tracer = Tracer::new();
    let mut wall = vec![Vec::new(); RUNS.len()];
    let mut cpu = vec![Vec::new(); RUNS.len()];
    for round in 0..rounds {
        for k in 0..RUNS.len() {
            let r = (k + round) % RUNS.len();
            let (profiling, layer) = RUNS[r];
            if profiling {
                tracer.install();
            }
            let (w, c) = measure(&runtime, layer);
            wall[r].push(w);
            cpu[r].push(c);
            if profiling {
                tracer.uninstall();
            }
        }
    }
    let wall: Vec<Duration> = wall.iter_mut().map(|s| crate::median(s)).collect();
    let cpu: Vec<Duration> = cpu.iter_mut().map(|s| crate::median(s)).collect();
    println!(
        "http_fast (axum, 20 conns x 250 requests) on theseus, {workers} workers, {rounds} \
         rounds of {} s per run, medians per iteration:\n",
        MEASURE_FOR.as_secs()
    );
    println!(
        "| profiling | time | no layer | Identity | RequestLayer | RequestLayer / no layer \
         | RequestLayer / Identity |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (row, first) in [("on", 0), ("off", 3)] {
        for (what, medians) in [("wall", &wall), ("CPU", &cpu)] {
            let [bare, identity, request] = [0, 1, 2].map(|i| medians[first + i].as_secs_f64());
            println!(
                "| {row} | {what} | {:.2} ms | {:.2} ms | {:.2} ms | {:.3}x | {:.3}x |",
                bare * 1e3,
                identity * 1e3,
                request * 1e3,
                request / bare,
                request / identity
            );
        }
    }
    let frames = tracer.to_profile().totals()[theseus::profiler::Event::Frames.index()];
    println!("\n({frames} requests recorded as frames while profiling)");
}

/// Mean wall and CPU time per iteration of http_fast over
/// [`MEASURE_FOR`], after one iteration to warm up.
fn measure(runtime: &Theseus, layer: RouteLayer) -> (Duration, Duration) {
    let once = || runtime.block_on(workloads::http_fast_layered(runtime.spawner(), layer));
    once();
    let (start, cpu_start) = (Instant::now(), cpu_time());
    let mut iterations = 0u32;
    while start.elapsed() < MEASURE_FOR {
        once();
        iterations += 1;
    }
    (
        start.elapsed() / iterations,
        cpu_time().saturating_sub(cpu_start) / iterations,
    )
}

/// The CPU time this process has used, all threads, user and system:
/// `/proc/self/stat`'s `utime` and `stime`, in clock ticks of 10 ms
/// (`USER_HZ` is 100 on Linux); zero where it cannot be read.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command's closing parenthesis, from `state`
    // (field 3): `utime` and `stime` are fields 14 and 15.
    let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let ticks: u64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}
