//! A chain of tasks, each spawned and awaited by the one before it, 100,000
//! deep: it runs, its profile is written in time linear in its depth, and
//! the chain is in the call graph below the task that started it.

mod common;

use common::callgrind::parse;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

const DEPTH: u32 = 100_000;

/// A boxed recursive async fn: the future of each level holds only a box,
/// so the chain's depth costs heap, not the stack of whoever polls it.
fn chain(levels: u32) -> Pin<Box<dyn Future<Output = u32> + Send>> {
    Box::pin(async move {
        if levels == 0 {
            0
        } else {
            theseus::spawn(chain(levels - 1)).await.unwrap() + 1
        }
    })
}

#[test]
fn a_chain_100_000_tasks_deep_is_profiled_in_linear_time() {
    let tracer = theseus::Tracer::new();
    tracer.install();
    let runtime = common::multi_thread(2);
    let root_line = line!() + 1;
    let depth = runtime.block_on(async { theseus::spawn(chain(DEPTH)).await.unwrap() });
    assert_eq!(depth, DEPTH);
    runtime.shutdown();
    tracer.uninstall();

    let start = Instant::now();
    let mut out = Vec::new();
    tracer.write_data(&mut out).unwrap();
    let took = start.elapsed();
    println!("{DEPTH} levels: profile written in {took:?}");
    // Quadratic, this took minutes at a tenth of the depth.
    assert!(took < Duration::from_secs(20), "took {took:?}");

    let text = String::from_utf8(out).unwrap();
    let profile = parse(&text);
    let tasks = profile.event("Tasks");
    assert_eq!(profile.totals[tasks], u64::from(DEPTH) + 1);
    let root = format!(
        "[task] boxed future spawned in deep_chain::a_chain_100_000_tasks_deep_is_profiled_in_linear_time (tests/deep_chain.rs:{root_line})"
    );
    // (Each level also awaits the next: `[await] [task] boxed future ...`.)
    let level: Vec<&str> = profile
        .functions("[task] boxed future spawned in deep_chain::chain (tests/deep_chain.rs:")
        .into_iter()
        .filter(|f| f.starts_with("[task]"))
        .collect();
    assert_eq!(level.len(), 1, "{text}");
    let level = level[0].to_string();
    assert_eq!(profile.self_of(&root, "Tasks"), 1, "{text}");
    assert_eq!(profile.self_of(&level, "Tasks"), u64::from(DEPTH), "{text}");
    // The chain hangs below the first task, through the function that
    // spawns every further level: not flattened under the test.
    let below_root = profile.edges(&root, "deep_chain::chain");
    assert_eq!(below_root.len(), 1, "{text}");
    assert_eq!(below_root[0].1 .0, u64::from(DEPTH), "{text}");
    let levels: Vec<_> = profile
        .edges("deep_chain::chain", &level)
        .into_iter()
        .filter(|((_, callee, _), _)| *callee == level)
        .collect();
    assert_eq!(levels.len(), 1, "{text}");
    assert_eq!(levels[0].1 .0, u64::from(DEPTH), "{text}");
}
