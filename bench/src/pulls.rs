//! Profiles pulled over HTTP (`THESEUS_HTTP`) from a busy program: what a
//! pull every second costs the program, and the memory over 1,000 pulls.
//!
//! Both run a profiling [`Session`] serving on `127.0.0.1:0`, as
//! `#[theseus::main]` does with `THESEUS_HTTP` set.
//!
//! - Cost: http_fast on theseus with profiling on, measured for two seconds
//!   at a time with no pull, then with a window of one second pulled back
//!   to back (a pull every second, as a scraper with `seconds=1` does),
//!   interleaved over the rounds, order swapped each round; medians.
//! - Memory: short tasks from 30 spawn sites run without a break while
//!   1,000 pulls are made, in batches of 40: 8 windows of one second at
//!   once and, meanwhile, 32 pulls of the run so far, in each format in
//!   turn; the resident size after every 200.

use crate::child::status_kib;
use crate::runtimes::{BenchRuntime, Theseus};
use crate::workloads;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use theseus::profiler::{Config, Session};

/// How long one measurement of http_fast runs.
const MEASURE_FOR: Duration = Duration::from_secs(2);

/// Pulls in the memory run.
const PULLS: usize = 1_000;

/// Runs both and prints their tables.
pub fn run(rounds: usize, workers: usize) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("theseus-bench-pulls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let config = Config {
        out: dir.join("pulls.callgrind"),
        signals: false,
        http: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..Config::default()
    };
    let result = Session::start(&config)
        .map_err(|e| e.to_string())
        .and_then(|session| session.ok_or_else(|| "profiling is off".to_string()))
        .and_then(|session| {
            let address = session.http_address().ok_or("not serving")?;
            let runtime = Theseus::new(workers);
            cost(&runtime, address, rounds, workers)?;
            memory(&runtime, address)?;
            runtime.0.shutdown();
            drop(session);
            Ok(())
        });
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// http_fast with and without a pull every second.
fn cost(
    runtime: &Theseus,
    address: SocketAddr,
    rounds: usize,
    workers: usize,
) -> Result<(), String> {
    let mut quiet = Vec::new();
    let mut pulled = Vec::new();
    let mut windows = 0;
    for round in 0..rounds {
        for pulling in [round % 2 == 1, round % 2 == 0] {
            if pulling {
                let (time, pulls) = with_pulls(address, || measure(runtime))?;
                pulled.push(time);
                windows += pulls;
            } else {
                quiet.push(measure(runtime));
            }
        }
    }
    let (quiet, pulled) = (crate::median(&mut quiet), crate::median(&mut pulled));
    println!(
        "http_fast (axum, 20 conns x 250 requests), theseus with profiling on, {workers} \
         workers, {rounds} rounds of {} s each way, median time per iteration:\n",
        MEASURE_FOR.as_secs()
    );
    println!("| no pull | a 1 s window pulled every second | ratio |");
    println!("|---|---|---|");
    println!(
        "| {:.2} ms | {:.2} ms | {:.3}x |\n",
        quiet.as_secs_f64() * 1e3,
        pulled.as_secs_f64() * 1e3,
        pulled.as_secs_f64() / quiet.as_secs_f64()
    );
    println!("({windows} windows pulled while measuring)\n");
    Ok(())
}

/// Mean time per iteration of http_fast over [`MEASURE_FOR`].
fn measure(runtime: &Theseus) -> Duration {
    runtime.block_on(workloads::http_fast(runtime.spawner()));
    let start = Instant::now();
    let mut iterations = 0u32;
    while start.elapsed() < MEASURE_FOR {
        runtime.block_on(workloads::http_fast(runtime.spawner()));
        iterations += 1;
    }
    start.elapsed() / iterations
}

/// Runs `work` while another thread pulls windows of one second back to
/// back; returns what `work` returned and how many windows were pulled.
fn with_pulls<T>(address: SocketAddr, work: impl FnOnce() -> T) -> Result<(T, usize), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let puller = {
        let stop = stop.clone();
        std::thread::spawn(move || -> Result<usize, String> {
            let mut pulls = 0;
            while !stop.load(Ordering::Relaxed) {
                pull(address, "/debug/pprof/theseus?seconds=1")?;
                pulls += 1;
            }
            Ok(pulls)
        })
    };
    let result = work();
    stop.store(true, Ordering::Relaxed);
    let pulls = puller.join().map_err(|_| "the puller panicked")??;
    Ok((result, pulls))
}

/// The resident size over [`PULLS`] pulls of a program that never stops
/// spawning.
fn memory(runtime: &Theseus, address: SocketAddr) -> Result<(), String> {
    let done = Arc::new(AtomicBool::new(false));
    let pulls = {
        let done = done.clone();
        std::thread::spawn(move || {
            let result = pull_a_thousand(address);
            done.store(true, Ordering::Relaxed);
            result
        })
    };
    let mut tasks = 0usize;
    while !done.load(Ordering::Relaxed) {
        runtime.block_on(workloads::churn(runtime.spawner(), 10, |_| {}));
        tasks += 10 * workloads::CHURN_WAVE;
    }
    let rss = pulls.join().map_err(|_| "the puller panicked")??;
    println!(
        "{PULLS} pulls (in batches of 40: 8 windows of 1 s at once, and 32 pulls of the run \
         so far, callgrind, pprof, folded and svg in turn) while {tasks} short tasks ran:\n"
    );
    println!("| pulls | RSS |");
    println!("|---|---|");
    for (pulls, kib) in &rss {
        println!("| {pulls} | {:.1} MiB |", *kib as f64 / 1024.0);
    }
    let first = rss[1].1 as f64;
    let last = rss.last().map_or(0, |r| r.1) as f64;
    println!(
        "\n{:+.1} MiB from 200 pulls to {PULLS}; peak RSS {:.1} MiB",
        (last - first) / 1024.0,
        status_kib("VmHWM") as f64 / 1024.0
    );
    Ok(())
}

/// Makes the [`PULLS`] pulls; the resident size before and after every 200.
fn pull_a_thousand(address: SocketAddr) -> Result<Vec<(usize, u64)>, String> {
    const FORMATS: [&str; 4] = ["callgrind", "pprof", "folded", "svg"];
    let mut rss = vec![(0, status_kib("VmRSS"))];
    let mut made = 0;
    while made < PULLS {
        let windows: Vec<_> = (0..8)
            .map(|_| std::thread::spawn(move || pull(address, "/debug/pprof/theseus?seconds=1")))
            .collect();
        for i in 0..32 {
            let format = FORMATS[i % FORMATS.len()];
            pull(address, &format!("/debug/pprof/theseus?format={format}"))?;
        }
        for window in windows {
            window.join().map_err(|_| "a puller panicked")??;
        }
        made += 40;
        if made % 200 == 0 {
            rss.push((made, status_kib("VmRSS")));
        }
    }
    Ok(rss)
}

/// One pull of `path`; its body's size, or why it failed.
fn pull(address: SocketAddr, path: &str) -> Result<usize, String> {
    let failed = |e: std::io::Error| format!("pulling {path}: {e}");
    let mut stream = TcpStream::connect(address).map_err(failed)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .map_err(failed)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(failed)?;
    if !answer.starts_with(b"HTTP/1.1 200") {
        let head = String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned();
        return Err(format!("pulling {path}: {head}"));
    }
    Ok(answer.len())
}
