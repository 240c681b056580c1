//! theseus side by side with tokio and async-executor.
//!
//! Every workload runs on every runtime, interleaved, for several rounds in
//! one process; the table gives each runtime's median time per iteration and
//! its ratio to tokio's median. Run it with:
//!
//! ```text
//! cargo run --release -p theseus-bench -- [--rounds N] [--workers N] [--only NAME]
//! ```

mod runtimes;
mod workloads;

use runtimes::{AsyncExecutor, BenchRuntime, Theseus, Tokio};
use std::time::{Duration, Instant};

/// How long one measurement runs a workload, at least.
const MEASURE_FOR: Duration = Duration::from_millis(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    SpawnMany,
    YieldMany,
    PingPong,
    ChainedSpawn,
    SpawnJoin100k,
}

impl Workload {
    const ALL: [Workload; 5] = [
        Workload::SpawnMany,
        Workload::YieldMany,
        Workload::PingPong,
        Workload::ChainedSpawn,
        Workload::SpawnJoin100k,
    ];

    fn name(self) -> &'static str {
        match self {
            Workload::SpawnMany => "spawn_many (10k)",
            Workload::YieldMany => "yield_many (200x1000)",
            Workload::PingPong => "ping_pong (1000)",
            Workload::ChainedSpawn => "chained_spawn (1000)",
            Workload::SpawnJoin100k => "spawn_join (100k from main)",
        }
    }
}

/// Runs `workload` once on `runtime`.
fn run_once<R: BenchRuntime>(runtime: &R, workload: Workload) {
    let spawner = runtime.spawner();
    match workload {
        Workload::SpawnMany => runtime.block_on(workloads::spawn_many(spawner)),
        Workload::YieldMany => runtime.block_on(workloads::yield_many(spawner)),
        Workload::PingPong => runtime.block_on(workloads::ping_pong(spawner)),
        Workload::ChainedSpawn => runtime.block_on(workloads::chained_spawn(spawner)),
        Workload::SpawnJoin100k => runtime.block_on(workloads::spawn_join_100k(spawner)),
    }
}

/// Mean time per iteration over at least [`MEASURE_FOR`].
fn measure<R: BenchRuntime>(runtime: &R, workload: Workload) -> Duration {
    run_once(runtime, workload);
    let start = Instant::now();
    let mut iterations = 0u32;
    while start.elapsed() < MEASURE_FOR {
        run_once(runtime, workload);
        iterations += 1;
    }
    start.elapsed() / iterations
}

struct Options {
    rounds: usize,
    workers: usize,
    only: Option<String>,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        rounds: 7,
        workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = |what: &str| args.next().ok_or(format!("{flag} needs {what}"));
        match flag.as_str() {
            "--rounds" => {
                options.rounds = value("a number")?
                    .parse()
                    .map_err(|e| format!("--rounds: {e}"))?
            }
            "--workers" => {
                options.workers = value("a number")?
                    .parse()
                    .map_err(|e| format!("--workers: {e}"))?
            }
            "--only" => options.only = Some(value("a workload name")?),
            other => {
                return Err(format!(
                    "unknown option {other}: accepted are --rounds N, --workers N, --only NAME"
                ))
            }
        }
    }
    if options.rounds == 0 || options.workers == 0 {
        return Err("--rounds and --workers must be at least 1".into());
    }
    Ok(options)
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let options = parse_options().unwrap_or_else(|error| {
        eprintln!("theseus-bench: {error}");
        std::process::exit(2)
    });
    let workloads: Vec<Workload> = Workload::ALL
        .into_iter()
        .filter(|w| {
            options
                .only
                .as_ref()
                .is_none_or(|only| w.name().starts_with(only.as_str()))
        })
        .collect();
    let names = ["tokio", "async-executor", "theseus (profiling off)"];
    let tokio = Tokio::new(options.workers);
    let async_executor = AsyncExecutor::new(options.workers);
    let theseus = Theseus::new(options.workers);
    // samples[workload][runtime]
    let mut samples = vec![vec![Vec::new(); names.len()]; workloads.len()];
    for round in 0..options.rounds {
        for (w, &workload) in workloads.iter().enumerate() {
            // Rotate the order each round so no runtime always goes first.
            for k in 0..names.len() {
                let r = (k + round) % names.len();
                let time = match r {
                    0 => measure(&tokio, workload),
                    1 => measure(&async_executor, workload),
                    _ => measure(&theseus, workload),
                };
                samples[w][r].push(time);
            }
        }
    }
    println!(
        "{} workers, {} rounds, median time per iteration (ratio to tokio)\n",
        options.workers, options.rounds
    );
    print!("| workload |");
    for name in names {
        print!(" {name} |");
    }
    println!();
    println!("|---|{}", "---|".repeat(names.len()));
    for (w, workload) in workloads.iter().enumerate() {
        let medians: Vec<Duration> = samples[w].iter_mut().map(|s| median(s)).collect();
        print!("| {} |", workload.name());
        for median in &medians {
            let ratio = median.as_secs_f64() / medians[0].as_secs_f64();
            print!(" {:.2} ms ({ratio:.2}x) |", median.as_secs_f64() * 1e3);
        }
        println!();
    }
}
