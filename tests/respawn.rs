//! A task that spawns its successor and ends, generation after generation,
//! as a service's respawning worker does: memory stays bounded by the
//! distinct logical stacks, never by the number of generations.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use theseus::profiler::{current_stack, StackId};

const GENERATIONS: u32 = 200_000;
const MEASURED_FROM: u32 = 50_000;

/// What a generation reports: the stack it runs in, and the process's
/// resident memory then.
type Report = (u32, StackId, u64);

/// One generation: spawns the next and ends (boxed: the future names
/// itself).
fn generation(
    number: u32,
    reports: mpsc::Sender<Report>,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        if number == MEASURED_FROM || number == GENERATIONS {
            reports
                .send((number, current_stack(), resident_bytes()))
                .unwrap();
        }
        if number < GENERATIONS {
            drop(theseus::spawn(generation(number + 1, reports)));
        }
    })
}

/// The process's resident set, from `/proc/self/statm`.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: `sysconf` has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page as u64
}

#[test]
fn a_task_that_respawns_itself_keeps_memory_flat() {
    let tracer = theseus::Tracer::new();
    tracer.install();
    let (reports, received) = mpsc::channel();
    let runtime = common::multi_thread(2);
    runtime.spawn(generation(1, reports));
    let (first, last): (Report, Report) =
        common::with_deadline(std::time::Duration::from_secs(300), move || {
            (received.recv().unwrap(), received.recv().unwrap())
        });
    drop(runtime);
    tracer.uninstall();
    let growth = last.2.saturating_sub(first.2);
    println!(
        "resident memory: {} KB at generation {}, {} KB at generation {}: {} KB more",
        first.2 / 1024,
        first.0,
        last.2 / 1024,
        last.0,
        growth / 1024
    );
    assert_eq!((first.0, last.0), (MEASURED_FROM, GENERATIONS));
    // Every generation after the first runs in one recursive stack.
    assert_eq!(first.1, last.1, "generations keep getting new stacks");
    assert!(
        growth < 16 << 20,
        "{} MB more from generation {MEASURED_FROM} to {GENERATIONS}",
        growth >> 20
    );
    let mut out = Vec::new();
    tracer.write_data(&mut out).unwrap();
    let profile = common::callgrind::parse(&String::from_utf8(out).unwrap());
    let tasks = profile.event("Tasks");
    assert_eq!(profile.totals[tasks], u64::from(GENERATIONS));
}
