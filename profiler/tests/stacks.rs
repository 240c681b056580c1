//! Logical stacks as the executor drives them: a poll scope entered with a
//! boundary in the polling frame, spawns from nested functions below it.

use std::hint::black_box;
use std::panic::Location;
use std::sync::{Mutex, MutexGuard, PoisonError};
use theseus_profiler::{
    enter_poll, interned_nodes, resolve, set_capture_mode, spawn_stack, CaptureMode, ResolvedFrame,
    StackId,
};

/// The capture mode is process-wide: tests that depend on it take turns.
static MODE_LOCK: Mutex<()> = Mutex::new(());

fn with_mode(mode: CaptureMode) -> MutexGuard<'static, ()> {
    let guard = MODE_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    set_capture_mode(mode);
    guard
}

fn type_name_of<T>(_: &T) -> &'static str {
    std::any::type_name::<T>()
}

/// What the executor's spawn does, written inline at the call site so the
/// location is the caller's line.
macro_rules! spawn {
    ($fut:expr) => {{
        let fut = $fut;
        spawn_stack(Location::caller(), type_name_of(&fut))
    }};
}

async fn handler() {}
async fn worker() {}

/// Polls `f` the way the executor does: the boundary is a local of this
/// frame, so this frame and everything above it are not the task's.
#[inline(never)]
fn poll_with(stack: StackId, f: fn() -> StackId) -> StackId {
    let marker = 0u8;
    let boundary = black_box(&marker) as *const u8 as usize;
    // SAFETY: `marker` is a local of this frame, which outlives the scope.
    let _scope = unsafe { enter_poll(stack, boundary) };
    black_box(f())
}

fn names(frames: &[ResolvedFrame]) -> Vec<&str> {
    frames.iter().map(|f| f.function.as_str()).collect()
}

fn assert_clean(frames: &[ResolvedFrame]) {
    for f in frames {
        for bad in [
            "backtrace",
            "theseus_profiler",
            "core::",
            "std::",
            "alloc::",
            "{{closure}}",
            "poll_with",
        ] {
            assert!(
                !f.function.contains(bad),
                "frame {:?} should have been filtered out of {:#?}",
                f.function,
                frames
            );
        }
    }
}

static SPAWN_LINE: Mutex<u32> = Mutex::new(0);

#[inline(never)]
fn level_one() -> StackId {
    black_box(level_two())
}

#[inline(never)]
fn level_two() -> StackId {
    *SPAWN_LINE.lock().unwrap() = line!() + 1;
    let id = spawn!(handler());
    black_box(id)
}

fn check_nested_functions(mode: CaptureMode) {
    let _mode = with_mode(mode);
    let id = poll_with(StackId::ROOT, level_one);
    let frames = resolve(id);
    assert_clean(&frames);
    assert_eq!(
        names(&frames),
        [
            "stacks::level_one",
            "stacks::level_two",
            "[task] stacks::handler"
        ],
        "{frames:#?}"
    );
    let spawn_line = *SPAWN_LINE.lock().unwrap();
    let inner = &frames[1];
    assert!(inner.file.ends_with("tests/stacks.rs"), "{inner:?}");
    assert_eq!(inner.line, spawn_line, "{inner:?}");
    // The outer frame's line is its call to `level_two`.
    assert!(
        frames[0].line > 0 && frames[0].line < spawn_line,
        "{frames:#?}"
    );
}

#[test]
fn nested_functions_in_order_default_mode() {
    check_nested_functions(CaptureMode::Cached);
}

#[test]
fn nested_functions_in_order_full_mode() {
    check_nested_functions(CaptureMode::Full);
}

#[inline(never)]
fn spawn_parent() -> StackId {
    black_box(spawn!(handler()))
}

#[inline(never)]
fn spawn_child() -> StackId {
    black_box(spawn!(worker()))
}

#[inline(never)]
fn spawn_grandchild() -> StackId {
    black_box(spawn!(async {}))
}

fn check_chain(mode: CaptureMode) {
    let _mode = with_mode(mode);
    let parent = poll_with(StackId::ROOT, spawn_parent);
    let child = poll_with(parent, spawn_child);
    let grandchild = poll_with(child, spawn_grandchild);
    let (p, c, g) = (resolve(parent), resolve(child), resolve(grandchild));
    assert_clean(&g);
    assert_eq!(c[..p.len()], p[..], "child extends parent: {c:#?}");
    assert_eq!(g[..c.len()], c[..], "grandchild extends child: {g:#?}");
    // An async block written in a plain function is named after where it
    // was written, relative to the workspace's root wherever the tests run;
    // without frames (location mode) the function cannot be told from an
    // async fn of that name.
    let block = format!(
        "[task] async block in stacks::spawn_grandchild (profiler/tests/stacks.rs:{})",
        g.last().unwrap().line
    );
    let tail: Vec<&str> = names(&g);
    let want_tail: &[&str] = if mode == CaptureMode::Location {
        &["[task] stacks::spawn_grandchild"]
    } else {
        &["stacks::spawn_grandchild", &block]
    };
    assert!(tail.ends_with(want_tail), "{g:#?}");
    assert_eq!(names(&c).last(), Some(&"[task] stacks::worker"), "{c:#?}");
    assert_eq!(names(&p).last(), Some(&"[task] stacks::handler"), "{p:#?}");
    if mode != CaptureMode::Location {
        assert_eq!(
            names(&g),
            [
                "stacks::spawn_parent",
                "[task] stacks::handler",
                "stacks::spawn_child",
                "[task] stacks::worker",
                "stacks::spawn_grandchild",
                &block,
            ]
        );
    }
}

#[test]
fn child_extends_parent_default_mode() {
    check_chain(CaptureMode::Cached);
}

#[test]
fn child_extends_parent_full_mode() {
    check_chain(CaptureMode::Full);
}

#[test]
fn child_extends_parent_location_mode() {
    check_chain(CaptureMode::Location);
}

#[inline(never)]
fn two_sites() -> StackId {
    let a = spawn!(handler());
    let b = spawn!(handler());
    assert_ne!(a, b, "two spawn lines are two stacks");
    let (fa, fb) = (resolve(a), resolve(b));
    assert_eq!(fa.len(), fb.len());
    assert_eq!(fa.last().unwrap().line + 1, fb.last().unwrap().line);
    a
}

#[inline(never)]
fn same_site_twice() -> StackId {
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(spawn!(handler()));
    }
    assert_eq!(ids[0], ids[1], "one spawn line, one call path: one stack");
    ids[0]
}

fn check_ids(mode: CaptureMode) {
    let _mode = with_mode(mode);
    poll_with(StackId::ROOT, two_sites);
    let first = poll_with(StackId::ROOT, same_site_twice);
    // Repeating the whole thing adds no node to the trie.
    let nodes = interned_nodes();
    for _ in 0..100 {
        assert_eq!(poll_with(StackId::ROOT, same_site_twice), first);
    }
    assert_eq!(interned_nodes(), nodes, "memory must not grow with spawns");
}

#[test]
fn ids_default_mode() {
    check_ids(CaptureMode::Cached);
}

#[test]
fn ids_full_mode() {
    check_ids(CaptureMode::Full);
}

#[test]
fn ids_location_mode() {
    check_ids(CaptureMode::Location);
}

#[test]
fn location_mode_gives_the_call_line() {
    let _mode = with_mode(CaptureMode::Location);
    let line = line!() + 1;
    let id = spawn!(handler());
    let frames = resolve(id);
    assert_eq!(frames.len(), 2, "{frames:#?}");
    assert_eq!(frames[0].file, file!());
    assert_eq!(frames[0].line, line);
    assert_eq!(frames[0].function, format!("{}:{line}", file!()));
    assert_eq!(frames[1].function, "[task] stacks::handler");
}

#[inline(never)]
fn plain_thread_body() -> StackId {
    black_box(spawn!(worker()))
}

#[test]
fn plain_thread_keeps_the_thread_but_not_its_start_up() {
    let _mode = with_mode(CaptureMode::Full);
    let id = std::thread::spawn(|| black_box(plain_thread_body()))
        .join()
        .unwrap();
    let frames = resolve(id);
    assert_clean(&frames);
    assert_eq!(
        names(&frames),
        [
            "stacks::plain_thread_keeps_the_thread_but_not_its_start_up",
            "stacks::plain_thread_body",
            "[task] stacks::worker",
        ],
        "{frames:#?}"
    );
}

#[inline(never)]
fn recurse(depth: u32) -> StackId {
    if depth == 0 {
        spawn!(handler())
    } else {
        black_box(recurse(depth - 1))
    }
}

fn deep() -> StackId {
    recurse(20)
}

#[inline(never)]
fn recurse_baseline(depth: u32) -> StackId {
    if depth == 0 {
        black_box(StackId(1))
    } else {
        black_box(recurse_baseline(depth - 1))
    }
}

fn deep_baseline() -> StackId {
    recurse_baseline(20)
}

/// `cargo test --release -p theseus-profiler --test stacks -- --ignored --nocapture`
#[test]
#[ignore = "timing: run in release with --nocapture"]
fn spawn_stack_cost() {
    for mode in [
        CaptureMode::Location,
        CaptureMode::Cached,
        CaptureMode::Full,
    ] {
        let _mode = with_mode(mode);
        let n = if mode == CaptureMode::Full {
            20_000
        } else {
            1_000_000
        };
        let marker = 0u8;
        let boundary = black_box(&marker) as *const u8 as usize;
        // SAFETY: `marker` is a local of this frame, which outlives the scope.
        let _scope = unsafe { enter_poll(StackId::ROOT, boundary) };
        black_box(deep());
        let start = std::time::Instant::now();
        for _ in 0..n {
            black_box(deep());
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(n);
        let frames = resolve(deep());
        println!(
            "spawn_stack {mode:>8}: {ns:8.1} ns/op, 21 nested calls: {:?}",
            names(&frames)
        );
        let start = std::time::Instant::now();
        for _ in 0..n {
            black_box(deep_baseline());
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(n);
        println!("  (the same 21 calls without spawn_stack: {ns:.1} ns/op)");
        let start = std::time::Instant::now();
        for _ in 0..n {
            black_box(spawn!(handler()));
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(n);
        println!("  (spawn_stack alone, in a loop: {ns:.1} ns/op)");
    }
}
