//! A chain of tasks, each spawned and awaited by the one before it, N deep:
//! how long it runs, how long its profile takes to write, and the peak
//! resident memory, with profiling off and on. Each mode runs in a process
//! of its own (this binary with `--deep-one`), so each peak is its own.

use crate::child::status_kib;
use crate::runtimes::{run_on, BenchRuntime, Kind, OnRuntime, Profiling};
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;
use theseus::Tracer;

/// The modes compared: only theseus runs theseus tasks.
pub const KINDS: [Kind; 3] = [Kind::TheseusOff, Kind::TheseusOn, Kind::TheseusFull];

/// Runs the chain in each mode in a child process and prints the table.
pub fn all(depth: u32, workers: usize) -> Result<(), String> {
    println!("a chain of {depth} tasks, each spawning and awaiting the next, {workers} workers\n");
    println!("| mode | run | peak RSS, run | profile written in | peak RSS, written | profile |");
    println!("|---|---|---|---|---|---|");
    crate::child::rows(
        "--deep-one",
        &KINDS,
        &[
            ("--depth", depth.to_string()),
            ("--workers", workers.to_string()),
        ],
        "the chain",
    )
}

/// One mode's chain, in this process: prints one table row.
pub fn one(kind: Kind, depth: u32, workers: usize) -> Result<(), String> {
    if !KINDS.contains(&kind) {
        return Err(format!(
            "--deep-one runs theseus only: theseus-off, theseus-on or theseus-full, not {}",
            kind.arg()
        ));
    }
    let tracer = Tracer::new();
    let start = Instant::now();
    let reached = run_on(kind, workers, &tracer, Chain { depth });
    let run = start.elapsed();
    assert_eq!(reached, depth, "the chain ended early");
    let peak_run = status_kib("VmHWM");
    let (written, bytes) = if kind.profiling() == Profiling::Off {
        ("-".to_string(), "-".to_string())
    } else {
        let start = Instant::now();
        let mut bytes = Vec::new();
        tracer.write_data(&mut bytes).expect("writing to memory");
        (
            format!("{:.3} s", start.elapsed().as_secs_f64()),
            format!("{:.1} KiB", bytes.len() as f64 / 1024.0),
        )
    };
    println!(
        "| {} | {:.3} s | {:.1} MiB | {written} | {:.1} MiB | {bytes} |",
        kind.label(),
        run.as_secs_f64(),
        peak_run as f64 / 1024.0,
        status_kib("VmHWM") as f64 / 1024.0,
    );
    Ok(())
}

struct Chain {
    depth: u32,
}

impl OnRuntime for Chain {
    type Output = u32;
    fn run<R: BenchRuntime>(self, runtime: &R) -> u32 {
        runtime.block_on(async move { theseus::spawn(chain(self.depth)).await.unwrap() })
    }
}

/// Boxed, so each level's future holds a pointer and not the next level.
fn chain(levels: u32) -> Pin<Box<dyn Future<Output = u32> + Send>> {
    Box::pin(async move {
        if levels == 0 {
            0
        } else {
            theseus::spawn(chain(levels - 1)).await.unwrap() + 1
        }
    })
}
