//! A chain of tasks each spawned by the one before it, thousands deep, from
//! spawn sites that never repeat close enough to fold into one recursive
//! stack: the profile is written in time and memory linear in the chain,
//! and the chain is kept, both in the logical stacks and in the call graph.
//! (A chain of one spawn site folds: `tests/respawn.rs` at the top level.)

mod common;

use std::future::Future;
use std::hint::black_box;
use std::panic::Location;
use std::pin::Pin;
use std::time::{Duration, Instant};
use theseus_profiler::{enter_poll, record, resolve, spawn_stack, Outcome, StackId, Tracer};

/// Deep enough that a write quadratic in it takes minutes.
const DEPTH: usize = 20_000;

type Boxed = Pin<Box<dyn Future<Output = u32> + Send>>;

/// Distinct spawn sites the chain cycles through: one more than the tasks
/// above a spawn that are looked through for one spawned alike, so that
/// no level folds into another and the chain stays as deep as it is.
const SITES: usize = 17;

/// A task body that spawns the next level, as a boxed recursive async fn
/// does: the spawn call sits in this function, below the poll boundary, at
/// one of [`SITES`] lines, by level.
#[inline(never)]
fn spawn_next_level(level: usize) -> StackId {
    let next: Boxed = Box::pin(async { 0 });
    let name = std::any::type_name_of_val(&next);
    let id = match level % SITES {
        0 => spawn_stack(Location::caller(), name),
        1 => spawn_stack(Location::caller(), name),
        2 => spawn_stack(Location::caller(), name),
        3 => spawn_stack(Location::caller(), name),
        4 => spawn_stack(Location::caller(), name),
        5 => spawn_stack(Location::caller(), name),
        6 => spawn_stack(Location::caller(), name),
        7 => spawn_stack(Location::caller(), name),
        8 => spawn_stack(Location::caller(), name),
        9 => spawn_stack(Location::caller(), name),
        10 => spawn_stack(Location::caller(), name),
        11 => spawn_stack(Location::caller(), name),
        12 => spawn_stack(Location::caller(), name),
        13 => spawn_stack(Location::caller(), name),
        14 => spawn_stack(Location::caller(), name),
        15 => spawn_stack(Location::caller(), name),
        _ => spawn_stack(Location::caller(), name),
    };
    black_box(id)
}

/// Polls a task whose logical stack is `stack`, as the executor does.
#[inline(never)]
fn poll_task(stack: StackId, level: usize) -> StackId {
    let marker = 0u8;
    let boundary = black_box(&marker) as *const u8 as usize;
    // SAFETY: `marker` is a local of this frame, which outlives the scope.
    let _scope = unsafe { enter_poll(stack, boundary) };
    black_box(spawn_next_level(level))
}

#[test]
fn a_deep_chain_is_written_in_linear_time_and_kept() {
    let tracer = Tracer::new();
    tracer.install();
    let mut stack = StackId::ROOT;
    for level in 0..DEPTH {
        stack = poll_task(stack, level);
        record(&common::finished_task(stack, Outcome::Completed));
    }
    tracer.uninstall();

    let start = Instant::now();
    let mut out = Vec::new();
    tracer.write_data(&mut out).unwrap();
    let took = start.elapsed();
    println!("{DEPTH} levels written in {took:?}, {} bytes", out.len());
    assert!(
        took < Duration::from_secs(5),
        "writing a {DEPTH}-deep chain took {took:?}"
    );

    // The deepest task's logical stack holds every level.
    let frames = resolve(stack);
    let leaves = frames
        .iter()
        .filter(|f| f.function.starts_with("[task] "))
        .count();
    assert_eq!(leaves, DEPTH, "{:#?}", &frames[..6.min(frames.len())]);

    // In the call graph, recursion folds each function onto itself once,
    // but the chain stays below its first task: the root spawn, then the
    // function that spawns every further level.
    let text = String::from_utf8(out).unwrap();
    let totals = text.lines().last().unwrap();
    assert_eq!(
        totals,
        format!(
            "totals: {} {} {} {} {} {} {DEPTH} 0",
            1_000 * DEPTH,
            100 * DEPTH,
            10 * DEPTH,
            890 * DEPTH,
            2 * DEPTH,
            DEPTH
        )
    );
    assert!(
        text.contains("deep::spawn_next_level"),
        "the spawning function is lost:\n{text}"
    );
}
