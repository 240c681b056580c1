//! Spawn churn for memory: millions of short tasks, one wave after another,
//! from 30 spawn sites; what stays resident, and how big the profile is.
//!
//! Each runtime runs in a process of its own (this binary with
//! `--churn-one`), so every peak resident size is that runtime's alone.

use crate::child::status_kib;
use crate::runtimes::{run_on, BenchRuntime, Kind, OnRuntime};
use crate::workloads::{self, CHURN_SITES, CHURN_WAVE};
use std::collections::HashSet;
use std::time::Instant;
use theseus::Tracer;

/// The runtimes compared.
const KINDS: [Kind; 4] = [
    Kind::Tokio,
    Kind::AsyncExecutor,
    Kind::TheseusOff,
    Kind::TheseusOn,
];

/// Runs the churn on each runtime in a child process and prints the table.
pub fn all(tasks: usize, workers: usize) -> Result<(), String> {
    let waves = tasks.div_ceil(CHURN_WAVE);
    println!(
        "spawn churn: {} tasks ({waves} waves of {CHURN_WAVE}) from {CHURN_SITES} spawn sites, \
         {workers} workers, each runtime in its own process\n",
        waves * CHURN_WAVE
    );
    println!(
        "| runtime | time | per task | RSS before | RSS after 10% | RSS after all | \
         peak RSS, run | peak RSS, with profile written | profile | stacks | tasks recorded |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    crate::child::rows(
        "--churn-one",
        &KINDS,
        &[
            ("--tasks", tasks.to_string()),
            ("--workers", workers.to_string()),
        ],
        "the churn",
    )
}

/// One runtime's churn, in this process: prints one table row.
pub fn one(kind: Kind, tasks: usize, workers: usize) {
    let waves = tasks.div_ceil(CHURN_WAVE);
    let before = status_kib("VmRSS");
    let tracer = Tracer::new();
    let start = Instant::now();
    let after_tenth = run_on(kind, workers, &tracer, Churn { waves });
    let time = start.elapsed();
    let end = status_kib("VmRSS");
    let peak_run = status_kib("VmHWM");
    let profile = (kind.profiling() != crate::runtimes::Profiling::Off).then(|| {
        let snapshot = tracer.aggregate();
        let stacks: HashSet<_> = snapshot.iter().map(|(stack, _, _)| stack).collect();
        let mut bytes = Vec::new();
        tracer.write_data(&mut bytes).expect("writing to memory");
        (bytes.len(), stacks.len(), snapshot.total().tasks)
    });
    let peak = status_kib("VmHWM");
    let tasks = waves * CHURN_WAVE;
    let (profile, stacks, recorded) = match profile {
        Some((bytes, stacks, recorded)) => (
            format!("{:.1} KiB", bytes as f64 / 1024.0),
            stacks.to_string(),
            recorded.to_string(),
        ),
        None => ("-".into(), "-".into(), "-".into()),
    };
    println!(
        "| {} | {:.2} s | {:.0} ns | {} | {} | {} | {} | {} | {profile} | {stacks} | {recorded} |",
        kind.label(),
        time.as_secs_f64(),
        time.as_secs_f64() * 1e9 / tasks as f64,
        mib(before),
        mib(after_tenth),
        mib(end),
        mib(peak_run),
        mib(peak),
    );
}

/// The churn itself; gives back the resident size after the first tenth.
struct Churn {
    waves: usize,
}

impl OnRuntime for Churn {
    type Output = u64;
    fn run<R: BenchRuntime>(self, runtime: &R) -> u64 {
        let tenth = self.waves.div_ceil(10);
        let mut after_tenth = 0;
        runtime.block_on(workloads::churn(runtime.spawner(), self.waves, |done| {
            if done == tenth {
                after_tenth = status_kib("VmRSS");
            }
        }));
        after_tenth
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
