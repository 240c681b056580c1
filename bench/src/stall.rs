//! A ready task beside a busy one: on 2 workers, a task sleeps 5 ms forty
//! times while another spins for 300 ms without yielding. The sleeper should
//! barely notice (the other worker is free); the figure is its worst
//! lateness per runtime, the median over several runs.

use crate::runtimes::{run_on, BenchRuntime, Kind, OnRuntime, Spawner};
use std::time::{Duration, Instant};
use theseus::Tracer;

struct Stall;

impl OnRuntime for Stall {
    type Output = Duration;
    fn run<R: BenchRuntime>(self, runtime: &R) -> Duration {
        let spawner = runtime.spawner();
        runtime.block_on(async move {
            let sleeper = spawner.spawn(async {
                let mut worst = Duration::ZERO;
                for _ in 0..40 {
                    let asked = Instant::now();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    worst = worst.max(asked.elapsed().saturating_sub(Duration::from_millis(5)));
                }
                worst
            });
            tokio::time::sleep(Duration::from_millis(1)).await;
            let spinner = spawner.spawn(async {
                let until = Instant::now() + Duration::from_millis(300);
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
                Duration::ZERO
            });
            let worst = sleeper.await;
            spinner.await;
            worst
        })
    }
}

/// Prints the worst lateness of the sleeper on each runtime (2 workers).
pub fn run(rounds: usize) {
    let kinds = [Kind::Tokio, Kind::TheseusOff, Kind::TheseusOn];
    println!(
        "worst lateness of a 5 ms sleep beside a 300 ms spin, 2 workers, median of {rounds} runs\n"
    );
    println!("| runtime | worst lateness |\n|---|---|");
    let tracer = Tracer::new();
    for kind in kinds {
        let mut samples: Vec<Duration> = (0..rounds)
            .map(|_| run_on(kind, 2, &tracer, Stall))
            .collect();
        println!("| {} | {:.2?} |", kind.label(), crate::median(&mut samples));
    }
}
