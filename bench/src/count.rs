//! Exactly N spawns, or N polls, and nothing else, so that an instruction
//! counter run at two values of N gives the cost of one spawn or one poll
//! from the difference, start-up and shutdown cancelling out.

use crate::runtimes::{run_on, BenchRuntime, Kind, OnRuntime};
use crate::workloads::{self, RouteLayer};
use theseus::Tracer;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// From inside one task, spawn N empty tasks (each polled once).
    Spawn,
    /// One task that yields N times (N + 1 polls).
    Poll,
    /// From inside one task, await N `#[theseus::profiled]` fns that are
    /// done at once (N frames, each polled once).
    Frame,
    /// Two tasks passing a message back and forth N times: each hop a
    /// pending poll that registers a waker, a wake, and a poll.
    Hop,
    /// N runs of http_fast (5,000 requests each).
    Http,
    /// N runs of http_fast with a layer that adds nothing on its route.
    HttpIdentity,
    /// N runs of http_fast with the request layer on its route.
    HttpLayered,
}

impl Workload {
    pub fn parse(arg: &str) -> Result<Workload, String> {
        match arg {
            "spawn" => Ok(Workload::Spawn),
            "poll" => Ok(Workload::Poll),
            "frame" => Ok(Workload::Frame),
            "hop" => Ok(Workload::Hop),
            "http" => Ok(Workload::Http),
            "http-identity" => Ok(Workload::HttpIdentity),
            "http-layered" => Ok(Workload::HttpLayered),
            other => Err(format!(
                "unknown workload {other}: accepted are spawn, poll, frame, hop, http, \
                 http-identity, http-layered"
            )),
        }
    }
}

pub struct Count {
    workload: Workload,
    n: usize,
}

impl Count {
    /// `n` of `workload`.
    pub fn new(workload: Workload, n: usize) -> Count {
        Count { workload, n }
    }
}

impl OnRuntime for Count {
    type Output = ();
    fn run<R: BenchRuntime>(self, runtime: &R) {
        let spawner = runtime.spawner();
        match self.workload {
            Workload::Spawn => runtime.block_on(workloads::spawn_tasks(spawner, self.n)),
            Workload::Poll => runtime.block_on(workloads::yield_tasks(spawner, 1, self.n)),
            Workload::Frame => runtime.block_on(workloads::frame_calls(spawner, self.n)),
            Workload::Hop => runtime.block_on(workloads::hops(spawner, self.n)),
            Workload::Http | Workload::HttpIdentity | Workload::HttpLayered => {
                let layer = match self.workload {
                    Workload::HttpIdentity => RouteLayer::Identity,
                    Workload::HttpLayered => RouteLayer::Request,
                    _ => RouteLayer::None,
                };
                for _ in 0..self.n {
                    runtime.block_on(workloads::http_fast_layered(spawner.clone(), layer));
                }
            }
        }
    }
}

pub fn run(kind: Kind, workload: Workload, n: usize, workers: usize) {
    let tracer = Tracer::new();
    run_on(kind, workers, &tracer, Count { workload, n });
    if kind.profiling() != crate::runtimes::Profiling::Off {
        let tasks = tracer.aggregate().total().tasks;
        eprintln!("theseus-bench: {tasks} tasks recorded");
    }
}
