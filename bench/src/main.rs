//! theseus side by side with tokio and async-executor.
//!
//! Every workload runs on every runtime, interleaved, for several rounds in
//! one process; the table gives each runtime's median time per iteration and
//! its ratio to tokio's median. Run it with:
//!
//! ```text
//! cargo run --release -p theseus-bench -- [--rounds N] [--workers N] [--only NAME]
//! ```
//!
//! More modes:
//!
//! ```text
//! cargo run --release -p theseus-bench -- --churn [--tasks N] [--workers N]
//! cargo run --release -p theseus-bench -- --intervals [--count-intervals N] [--tasks N] [--workers N]
//! cargo run --release -p theseus-bench -- --deep N [--workers N]
//! cargo run --release -p theseus-bench -- --pulls [--rounds N] [--workers N]
//! cargo run --release -p theseus-bench -- --layer [--rounds N] [--workers N]
//! cargo run --release -p theseus-bench -- --count N --runtime R --workload spawn|poll|frame|http|http-identity|http-layered
//! ```
//!
//! `--smol [--rounds N] [--workers N]` runs the scheduler shapes and a TCP
//! echo over async-net on async-executor and on `theseus::Executor`,
//! profiling off and on (see `smol.rs`).
//!
//! `--stall` times how late a sleeping task wakes while another task holds a
//! worker busy (see `stall.rs`).
//!
//! `--churn` runs 10 million short tasks from 30 spawn sites on each runtime,
//! each in a process of its own, and reports time, resident memory and, with
//! profiling on, the profile's size. `--intervals` runs 1 million short
//! tasks per interval (`--tasks`) over 30 intervals (`--count-intervals`)
//! under a profiling session, writes each interval's profile as
//! `THESEUS_INTERVAL` does, and reports the resident size after each.
//! `--deep` runs a chain of N tasks, each spawning and awaiting the next,
//! and reports how long the profile takes to write and the peak memory.
//! `--pulls` measures profiles pulled over HTTP (`THESEUS_HTTP`): http_fast
//! with a pull every second and without, and the memory over 1,000 pulls
//! (see `pulls.rs`).
//! `--layer` measures http_fast with and without the request layer on its
//! route, with profiling on and off (see `layer.rs`).
//! `--count` does exactly N spawns (or N polls) and nothing else, for counting instructions under valgrind; see
//! `bench/instructions.sh`.

mod child;
mod churn;
mod count;
mod deep;
mod intervals;
mod layer;
mod pulls;
mod runtimes;
mod smol;
mod stall;
mod workloads;

use runtimes::{AsyncExecutor, BenchRuntime, Kind, Theseus, Tokio};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use theseus::Tracer;

/// How long one measurement runs a workload, at least.
const MEASURE_FOR: Duration = Duration::from_millis(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    SpawnMany,
    YieldMany,
    PingPong,
    ChainedSpawn,
    SpawnJoin100k,
    TcpEcho,
    HttpFast,
}

impl Workload {
    const ALL: [Workload; 7] = [
        Workload::SpawnMany,
        Workload::YieldMany,
        Workload::PingPong,
        Workload::ChainedSpawn,
        Workload::SpawnJoin100k,
        Workload::TcpEcho,
        Workload::HttpFast,
    ];

    fn name(self) -> &'static str {
        match self {
            Workload::SpawnMany => "spawn_many (10k)",
            Workload::YieldMany => "yield_many (200x1000)",
            Workload::PingPong => "ping_pong (1000)",
            Workload::ChainedSpawn => "chained_spawn (1000)",
            Workload::SpawnJoin100k => "spawn_join (100k from main)",
            Workload::TcpEcho => "tcp_echo (50 conns x 200 round trips)",
            Workload::HttpFast => "http_fast (axum, 20 conns x 250 requests)",
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
        Workload::TcpEcho => runtime.block_on(workloads::tcp_echo(spawner)),
        Workload::HttpFast => runtime.block_on(workloads::http_fast(spawner)),
    }
}

/// Mean time per iteration over at least [`MEASURE_FOR`], after one
/// iteration to warm up.
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

enum Mode {
    Table {
        rounds: usize,
        only: Option<String>,
    },
    Churn {
        tasks: usize,
    },
    ChurnOne {
        kind: Kind,
        tasks: usize,
    },
    Intervals {
        intervals: usize,
        tasks: usize,
    },
    Deep {
        depth: u32,
    },
    DeepOne {
        kind: Kind,
        depth: u32,
    },
    Count {
        n: usize,
        kind: Kind,
        workload: count::Workload,
    },
    Stall {
        rounds: usize,
    },
    Smol {
        rounds: usize,
    },
    SmolCount {
        n: usize,
        kind: Kind,
        workload: count::Workload,
    },
    Pulls {
        rounds: usize,
    },
    Layer {
        rounds: usize,
    },
}

const USAGE: &str = "usage:
  theseus-bench [--rounds N] [--workers N] [--only NAME]
  theseus-bench --churn [--tasks N] [--workers N]
  theseus-bench --churn-one RUNTIME [--tasks N] [--workers N]
  theseus-bench --intervals [--count-intervals N] [--tasks N per interval] [--workers N]
  theseus-bench --deep N [--workers N]
  theseus-bench --deep-one RUNTIME --depth N [--workers N]
  theseus-bench --count N --runtime RUNTIME --workload spawn|poll|frame|http|http-identity|http-layered [--workers N]
  theseus-bench --stall [--rounds N]
  theseus-bench --smol [--rounds N] [--workers N]
  theseus-bench --smol --count N --runtime async-executor|theseus-off|theseus-on --workload spawn|poll|hop [--workers N]
  theseus-bench --pulls [--rounds N] [--workers N]
  theseus-bench --layer [--rounds N] [--workers N]
RUNTIME is one of tokio, async-executor, theseus-off, theseus-on, theseus-full,
theseus-awaits-off, theseus-awaits-full";

fn parse_options() -> Result<(Mode, usize), String> {
    let mut rounds = 7;
    let mut workers = None;
    let mut only = None;
    let mut churn = false;
    let mut churn_one = None;
    let mut tasks = None;
    let mut intervals = false;
    let mut count_intervals = 30;
    let mut count = None;
    let mut deep = None;
    let mut deep_one = None;
    let mut runtime = None;
    let mut workload = None;
    let mut stall = false;
    let mut pulls = false;
    let mut layer = false;
    let mut smol = false;
    let mut args = std::env::args().skip(1);
    fn number(flag: &str, value: String) -> Result<usize, String> {
        value.parse().map_err(|e| format!("{flag}: {e}"))
    }
    while let Some(flag) = args.next() {
        let mut value = |what: &str| args.next().ok_or(format!("{flag} needs {what}"));
        match flag.as_str() {
            "--rounds" => rounds = number(&flag, value("a number")?)?,
            "--workers" => workers = Some(number(&flag, value("a number")?)?),
            "--only" => only = Some(value("a workload name")?),
            "--churn" => churn = true,
            "--churn-one" => churn_one = Some(Kind::parse(&value("a runtime")?)?),
            "--tasks" => tasks = Some(number(&flag, value("a number")?)?),
            "--intervals" => intervals = true,
            "--count-intervals" => count_intervals = number(&flag, value("a number")?)?,
            "--deep" | "--depth" => {
                let depth = number(&flag, value("a number")?)?;
                deep = Some(u32::try_from(depth).map_err(|_| format!("{flag}: too deep"))?);
            }
            "--deep-one" => deep_one = Some(Kind::parse(&value("a runtime")?)?),
            "--count" => count = Some(number(&flag, value("a number")?)?),
            "--runtime" => runtime = Some(Kind::parse(&value("a runtime")?)?),
            "--workload" => {
                workload = Some(count::Workload::parse(&value(
                    "spawn, poll, frame, hop, http or http-layered",
                )?)?)
            }
            "--stall" => stall = true,
            "--pulls" => pulls = true,
            "--layer" => layer = true,
            "--smol" => smol = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    let mode = if layer {
        Mode::Layer { rounds }
    } else if let (true, Some(n)) = (smol, count) {
        Mode::SmolCount {
            n,
            kind: runtime.ok_or("--count needs --runtime")?,
            workload: workload.ok_or("--count needs --workload")?,
        }
    } else if smol {
        Mode::Smol { rounds }
    } else if pulls {
        Mode::Pulls { rounds }
    } else if stall {
        Mode::Stall { rounds }
    } else if let Some(n) = count {
        Mode::Count {
            n,
            kind: runtime.ok_or("--count needs --runtime")?,
            workload: workload.ok_or("--count needs --workload")?,
        }
    } else if intervals {
        Mode::Intervals {
            intervals: count_intervals,
            tasks: tasks.unwrap_or(1_000_000),
        }
    } else if let Some(kind) = deep_one {
        Mode::DeepOne {
            kind,
            depth: deep.ok_or("--deep-one needs --depth")?,
        }
    } else if let Some(depth) = deep {
        Mode::Deep { depth }
    } else if let Some(kind) = churn_one {
        Mode::ChurnOne {
            kind,
            tasks: tasks.unwrap_or(10_000_000),
        }
    } else if churn {
        Mode::Churn {
            tasks: tasks.unwrap_or(10_000_000),
        }
    } else {
        Mode::Table { rounds, only }
    };
    // Counting instructions wants one worker: no stealing, no spinning
    // sibling, the same schedule on every run.
    let workers = match (&mode, workers) {
        (_, Some(workers)) => workers,
        (Mode::Count { .. } | Mode::SmolCount { .. }, None) => 1,
        _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    if rounds == 0 || workers == 0 || count_intervals == 0 || tasks == Some(0) {
        return Err("--rounds, --workers, --count-intervals and --tasks must be at least 1".into());
    }
    Ok((mode, workers))
}

pub(crate) fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let (mode, workers) = parse_options().unwrap_or_else(|error| {
        eprintln!("theseus-bench: {error}");
        std::process::exit(2)
    });
    let result = match mode {
        Mode::Table { rounds, only } => {
            table(rounds, workers, only.as_deref());
            Ok(())
        }
        Mode::Churn { tasks } => churn::all(tasks, workers),
        Mode::Deep { depth } => deep::all(depth, workers),
        Mode::DeepOne { kind, depth } => deep::one(kind, depth, workers),
        Mode::ChurnOne { kind, tasks } => {
            churn::one(kind, tasks, workers);
            Ok(())
        }
        Mode::Intervals { intervals, tasks } => intervals::run(intervals, tasks, workers),
        Mode::Count { n, kind, workload } => {
            count::run(kind, workload, n, workers);
            Ok(())
        }
        Mode::Stall { rounds } => {
            stall::run(rounds);
            Ok(())
        }
        Mode::Pulls { rounds } => pulls::run(rounds, workers),
        Mode::Layer { rounds } => {
            layer::run(rounds, workers);
            Ok(())
        }
        Mode::Smol { rounds } => {
            smol::table(rounds, workers);
            Ok(())
        }
        Mode::SmolCount { n, kind, workload } => smol::count(kind, workload, n, workers),
    };
    if let Err(error) = result {
        eprintln!("theseus-bench: {error}");
        std::process::exit(1)
    }
}

/// Every workload on every runtime, interleaved, `rounds` times; prints
/// the medians and their ratios to tokio.
fn table(rounds: usize, workers: usize, only: Option<&str>) {
    let workloads: Vec<Workload> = Workload::ALL
        .into_iter()
        .filter(|w| only.is_none_or(|only| w.name().starts_with(only)))
        .collect();
    let kinds = Kind::ALL;
    let tokio = Tokio::new(workers);
    let async_executor = AsyncExecutor::new(workers);
    // One theseus runtime for its three columns: they differ only in the
    // tracer installed, and the capture mode, while each one measures.
    let theseus = Theseus::new(workers);
    let tracer = Tracer::new();
    // samples[workload][runtime]
    let mut samples = vec![vec![Vec::new(); kinds.len()]; workloads.len()];
    for round in 0..rounds {
        for (w, &workload) in workloads.iter().enumerate() {
            // Rotate the order each round so no runtime always goes first.
            for k in 0..kinds.len() {
                let r = (k + round) % kinds.len();
                let time = match kinds[r] {
                    Kind::Tokio => measure(&tokio, workload),
                    Kind::AsyncExecutor => measure(&async_executor, workload),
                    kind => {
                        let _profiling = kind.profiling().start(&tracer);
                        measure(&theseus, workload)
                    }
                };
                samples[w][r].push(time);
            }
        }
    }
    println!("{workers} workers, {rounds} rounds, median time per iteration (ratio to tokio)\n");
    print!("| workload |");
    for kind in kinds {
        print!(" {} |", kind.label());
    }
    println!();
    println!("|---|{}", "---|".repeat(kinds.len()));
    for (w, workload) in workloads.iter().enumerate() {
        let medians: Vec<Duration> = samples[w].iter_mut().map(|s| median(s)).collect();
        print!("| {} |", workload.name());
        for median in &medians {
            let ratio = median.as_secs_f64() / medians[0].as_secs_f64();
            print!(" {} ({ratio:.2}x) |", format_time(*median));
        }
        println!();
    }
    let theseus_medians = |w: usize, kind: Kind| {
        let r = kinds.iter().position(|&k| k == kind).unwrap();
        samples[w][r][samples[w][r].len() / 2].as_secs_f64()
    };
    println!("\nprofiling on / off, per workload:");
    for (w, workload) in workloads.iter().enumerate() {
        let off = theseus_medians(w, Kind::TheseusOff);
        println!(
            "  {}: on {:.2}x, stacks=full {:.2}x, awaits=off {:.2}x, awaits=full {:.2}x",
            workload.name(),
            theseus_medians(w, Kind::TheseusOn) / off,
            theseus_medians(w, Kind::TheseusFull) / off,
            theseus_medians(w, Kind::TheseusAwaitsOff) / off,
            theseus_medians(w, Kind::TheseusAwaitsFull) / off,
        );
    }
    let snapshot = tracer.aggregate();
    let stacks: HashSet<_> = snapshot.iter().map(|(stack, _, _)| stack).collect();
    let mut profile = Vec::new();
    tracer.write_data(&mut profile).expect("writing to memory");
    println!(
        "\nthe profiled columns recorded {} tasks over {} stacks ({} bytes as callgrind)",
        snapshot.total().tasks,
        stacks.len(),
        profile.len()
    );
}

/// A duration with a unit that keeps three significant digits or so.
pub(crate) fn format_time(time: Duration) -> String {
    let s = time.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}
