//! Interval snapshots for memory: 1 million short tasks per interval over
//! 30 intervals, an interval profile written after each, and the resident
//! size after every write.
//!
//! It runs a profiling [`Session`] as `#[theseus::main]` does, and cuts the
//! intervals with [`Session::write_interval`], the call the
//! `THESEUS_INTERVAL` timer makes, after each million tasks (rather than
//! every N seconds), so every interval has the same work whatever the
//! machine's speed. The files go to a temporary directory, removed at the
//! end.

use crate::child::status_kib;
use crate::runtimes::{BenchRuntime, Theseus};
use crate::workloads::{self, CHURN_SITES, CHURN_WAVE};
use std::path::{Path, PathBuf};
use std::time::Instant;
use theseus::profiler::{Config, Session};

/// Runs the benchmark and prints its table.
pub fn run(intervals: usize, tasks_per_interval: usize, workers: usize) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("theseus-bench-intervals-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let result = measure(&dir, intervals, tasks_per_interval, workers);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure(
    dir: &Path,
    intervals: usize,
    tasks_per_interval: usize,
    workers: usize,
) -> Result<(), String> {
    let waves = tasks_per_interval.div_ceil(CHURN_WAVE);
    println!(
        "interval snapshots: {intervals} intervals of {} short tasks ({waves} waves of \
         {CHURN_WAVE}) from {CHURN_SITES} spawn sites, {workers} workers, a callgrind \
         profile of each interval written after it\n",
        waves * CHURN_WAVE
    );
    let before = status_kib("VmRSS");
    let config = Config {
        out: dir.join("intervals.callgrind"),
        signals: false,
        ..Config::default()
    };
    let session = Session::start(&config)
        .map_err(|e| e.to_string())?
        .ok_or("profiling is off")?;
    let runtime = Theseus::new(workers);
    println!("RSS before the runtime started: {}\n", mib(before));
    println!(
        "| interval | tasks in its profile | run | write | RSS before the write | \
         RSS after the write | profile |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut rss = Vec::with_capacity(intervals);
    for n in 1..=intervals {
        let start = Instant::now();
        runtime.block_on(workloads::churn(runtime.spawner(), waves, |_| {}));
        let ran = start.elapsed();
        let before_write = status_kib("VmRSS");
        let start = Instant::now();
        let path = session
            .write_interval()
            .map_err(|e| format!("interval {n}: {e}"))?;
        let wrote = start.elapsed();
        let after = status_kib("VmRSS");
        rss.push(after);
        let (tasks, bytes) = tasks_and_size(&path)?;
        println!(
            "| {n} | {tasks} | {:.2} s | {:.1} ms | {} | {} | {:.1} KiB |",
            ran.as_secs_f64(),
            wrote.as_secs_f64() * 1e3,
            mib(before_write),
            mib(after),
            bytes as f64 / 1024.0
        );
    }
    runtime.0.shutdown();
    let start = Instant::now();
    let whole = session.finish();
    let wrote = start.elapsed();
    let whole = match whole {
        theseus::profiler::Destination::Out(path) => path,
        other => return Err(format!("the whole run went to {other:?}")),
    };
    let (tasks, bytes) = tasks_and_size(&whole)?;
    let after = status_kib("VmRSS");
    let first = rss[0];
    let last = *rss.last().unwrap();
    let max = *rss.iter().max().unwrap();
    println!(
        "\nwhole run: {tasks} tasks in {:.1} KiB, written in {:.1} ms; RSS after it {}, \
         peak RSS {}",
        bytes as f64 / 1024.0,
        wrote.as_secs_f64() * 1e3,
        mib(after),
        mib(status_kib("VmHWM"))
    );
    println!(
        "RSS after interval 1: {}, after interval {intervals}: {}, highest: {} \
         ({:+.1} MiB from the first to the last)",
        mib(first),
        mib(last),
        mib(max),
        (last as f64 - first as f64) / 1024.0
    );
    Ok(())
}

/// The `Tasks` total of a callgrind profile and its size in bytes.
fn tasks_and_size(path: &PathBuf) -> Result<(u64, u64), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let totals = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("totals: "))
        .ok_or_else(|| format!("no totals in {}", path.display()))?;
    // WallNs BusyNs SchedNs IdleNs Polls Wakes Tasks
    let tasks = totals
        .split(' ')
        .nth(6)
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| format!("bad totals line in {}: {totals}", path.display()))?;
    Ok((tasks, text.len() as u64))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
