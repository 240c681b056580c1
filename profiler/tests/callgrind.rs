//! The callgrind writer on synthetic resolved stacks, checked by rule and by
//! the real readers (callgrind_annotate, gprof2dot).

mod common;

use common::callgrind::{parse, Profile};
use common::{check_with_readers, Scratch};
use theseus_profiler::{
    callgrind, Costs, Outcome, Profile as Written, ProfileHeader, ProfileStack, ResolvedFrame,
};

fn frame(function: &str, file: &str, line: u32) -> ResolvedFrame {
    ResolvedFrame {
        function: function.to_string(),
        file: file.to_string(),
        line,
    }
}

fn costs(wall: u64, tasks: u64) -> Costs {
    Costs {
        wall_ns: wall,
        busy_ns: wall / 10,
        sched_ns: wall / 20,
        idle_ns: wall - wall / 10 - wall / 20,
        polls: 3 * tasks,
        wakes: 2 * tasks,
        waits: 0,
        tasks,
        frames: 0,
    }
}

fn stack(frames: &[(&str, &str, u32)], outcome: Outcome, c: Costs) -> ProfileStack {
    ProfileStack {
        frames: frames.iter().map(|&(f, l, n)| frame(f, l, n)).collect(),
        task_leaf: frames.len().saturating_sub(1),
        outcome,
        costs: c,
    }
}

fn header() -> ProfileHeader {
    ProfileHeader {
        pid: 4242,
        cmd: "app --serve".to_string(),
    }
}

fn render(stacks: &[ProfileStack]) -> String {
    let mut out = Vec::new();
    let profile = Written {
        header: header(),
        ..Written::from_stacks(stacks, &[], false)
    };
    callgrind::write(&mut out, &profile).unwrap();
    String::from_utf8(out).unwrap()
}

/// Writes `stacks`, checks the rules and both readers, returns the parse.
fn check_file(tag: &str, stacks: &[ProfileStack]) -> Profile {
    let dir = Scratch::new(tag);
    let path = dir.join("profile.callgrind");
    std::fs::write(&path, render(stacks)).unwrap();
    let parsed = check_with_readers(&path);
    std::fs::remove_dir_all(&dir).unwrap();
    parsed
}

fn chain() -> Vec<ProfileStack> {
    vec![
        stack(
            &[
                ("app::main", "src/main.rs", 10),
                ("app::accept_loop", "src/server.rs", 40),
                ("[task] app::accept_loop", "src/server.rs", 40),
                ("app::handle_conn", "src/server.rs", 77),
                ("[task] app::handle_conn", "src/server.rs", 77),
            ],
            Outcome::Completed,
            costs(1_000_000, 100),
        ),
        stack(
            &[
                ("app::main", "src/main.rs", 10),
                ("app::accept_loop", "src/server.rs", 40),
                ("[task] app::accept_loop", "src/server.rs", 40),
            ],
            Outcome::Unfinished,
            costs(5_000_000, 1),
        ),
        stack(
            &[
                ("app::main", "src/main.rs", 12),
                ("[task] app::ticker", "src/main.rs", 12),
            ],
            Outcome::Completed,
            costs(300, 1),
        ),
    ]
}

#[test]
fn chain_costs_are_self_at_the_leaf_and_inclusive_along_the_stack() {
    let p = check_file("chain", &chain());
    let total = costs(1_000_000, 100).to_array();
    let mut all = [0u64; 8];
    for s in chain() {
        for (a, b) in all.iter_mut().zip(s.costs.to_array()) {
            *a += b;
        }
    }
    assert_eq!(p.totals, all);
    assert_eq!(p.own("[task] app::handle_conn"), total);
    assert_eq!(
        p.own("[task] app::accept_loop (unfinished)"),
        costs(5_000_000, 1).to_array()
    );
    assert_eq!(
        p.own("app::accept_loop"),
        [0; 8],
        "no self cost above a leaf"
    );
    // Every edge along the first stack counts its 100 tasks; the unfinished
    // accept loop adds its one task to the edges they share: its handlers
    // hang below its leaf as its costs show it, `(unfinished)`.
    for (caller, callee) in [
        ("app::main", "app::accept_loop"),
        ("app::accept_loop", "[task] app::accept_loop (unfinished)"),
    ] {
        assert_eq!(p.call_count(caller, callee), 101, "{caller} -> {callee}");
    }
    for (caller, callee) in [
        ("[task] app::accept_loop (unfinished)", "app::handle_conn"),
        ("app::handle_conn", "[task] app::handle_conn"),
    ] {
        assert_eq!(p.call_count(caller, callee), 100, "{caller} -> {callee}");
    }
    assert_eq!(p.call_count("app::main", "[task] app::ticker"), 1);
    // main's inclusive cost is everything under it: the total.
    assert_eq!(p.inclusive("app::main"), p.totals);
    assert_eq!(p.inclusive("app::handle_conn"), total);
}

/// Tasks that spawn each other's kind, `x` spawning `y` spawning `x`, from
/// one function `f` that every task runs: each task's own cost stays on its
/// leaf, each wait below its task's leaf, and nothing counts twice.
#[test]
fn recursion_through_tasks_keeps_each_task_with_its_waits() {
    let f = |line| ("app::f", "src/f.rs", line);
    let x = ("[task] app::x", "src/f.rs", 3);
    let y = ("[task] app::y", "src/f.rs", 4);
    let sleep = (
        "[await] tokio::time::Sleep",
        "tokio-1.54.1/src/time/sleep.rs",
        1,
    );
    let waits = |frames: &[(&str, &str, u32)], leaf| ProfileStack {
        task_leaf: leaf,
        ..stack(
            frames,
            Outcome::Completed,
            Costs {
                wall_ns: 50,
                idle_ns: 50,
                wakes: 1,
                ..Costs::default()
            },
        )
    };
    let stacks = vec![
        stack(&[f(1), x], Outcome::Completed, costs(100, 1)),
        waits(&[f(1), x, f(5), sleep], 1),
        stack(&[f(1), x, f(3), y], Outcome::Completed, costs(70, 1)),
        waits(&[f(1), x, f(3), y, f(5), sleep], 3),
        stack(
            &[f(1), x, f(3), y, f(4), x],
            Outcome::Completed,
            costs(100, 1),
        ),
        waits(&[f(1), x, f(3), y, f(4), x, f(5), sleep], 5),
    ];
    let p = check_file("task-recursion", &stacks);
    assert_eq!(p.own("app::f")[6], 0);
    assert_eq!(p.own("[task] app::x")[6], 2);
    assert_eq!(p.own("[task] app::y")[6], 1);
    // Every wait is below a task's leaf: the sleep's callers are leaves.
    for (caller, callee, _) in p.calls.keys() {
        if callee.starts_with("[await]") {
            assert!(caller.starts_with("[task]"), "{caller} -> {callee}");
        }
    }
    for name in p.self_cost.keys() {
        assert!(p.inclusive(name)[0] <= p.totals[0], "{name}");
        assert!(p.incoming(name)[0] <= p.totals[0], "{name}");
    }
}

#[test]
fn recursion_never_makes_inclusive_exceed_the_total() {
    let c = costs(1_000, 1);
    let stacks = vec![
        // Direct recursion.
        stack(
            &[
                ("app::main", "src/main.rs", 1),
                ("app::fib", "src/fib.rs", 5),
                ("app::fib", "src/fib.rs", 6),
                ("app::fib", "src/fib.rs", 6),
                ("[task] app::fib", "src/fib.rs", 6),
            ],
            Outcome::Completed,
            c,
        ),
        // Mutual recursion.
        stack(
            &[
                ("app::main", "src/main.rs", 2),
                ("app::a", "src/ab.rs", 1),
                ("app::b", "src/ab.rs", 11),
                ("app::a", "src/ab.rs", 2),
                ("app::b", "src/ab.rs", 12),
                ("[task] app::leaf", "src/ab.rs", 12),
            ],
            Outcome::Completed,
            c,
        ),
        // Recursion through tasks: a task spawning its own kind.
        stack(
            &[
                ("app::main", "src/main.rs", 3),
                ("app::walk", "src/walk.rs", 9),
                ("[task] app::walk", "src/walk.rs", 9),
                ("app::walk", "src/walk.rs", 9),
                ("[task] app::walk", "src/walk.rs", 9),
            ],
            Outcome::Completed,
            c,
        ),
        // The opposite order of `a` and `b` in another stack: a cycle
        // across stacks, which readers must also accept.
        stack(
            &[
                ("app::main", "src/main.rs", 4),
                ("app::b", "src/ab.rs", 13),
                ("app::a", "src/ab.rs", 3),
                ("[task] app::other", "src/ab.rs", 3),
            ],
            Outcome::Completed,
            c,
        ),
    ];
    // Alone, each stack's functions have at most its cost: the rule checks
    // and both readers see no function above the total.
    for s in &stacks {
        let p = check_file("recursion-one", std::slice::from_ref(s));
        for name in p.self_cost.keys() {
            assert!(p.inclusive(name)[0] <= c.wall_ns, "{name}");
        }
    }
    let p = check_file("recursion", &stacks);
    let one = c.to_array();
    assert_eq!(p.totals[6], 4);
    // fib's recursion collapses: fib calls its task once, never itself.
    assert_eq!(p.inclusive("app::fib"), one);
    assert_eq!(p.call_count("app::fib", "app::fib"), 0);
    assert_eq!(p.call_count("app::fib", "[task] app::fib"), 1);
    // The innermost `b` (line 12) calls the leaf; `b` counts the task once.
    assert_eq!(p.call_count("app::b", "[task] app::leaf"), 1);
    assert!(p.incoming("app::b")[6] <= 2);
    // The recursive walk task is attributed to `[task] app::walk` once.
    assert_eq!(p.own("[task] app::walk"), one);
    assert_eq!(p.incoming("[task] app::walk"), one);
    for name in [
        "app::a",
        "app::b",
        "app::fib",
        "app::walk",
        "[task] app::walk",
    ] {
        let inc = p.inclusive(name);
        assert!(inc[0] <= p.totals[0], "{name}");
    }
}

#[test]
fn outcomes_are_separate_suffixed_leaves() {
    let frames = [
        ("app::main", "src/main.rs", 1),
        ("[task] app::job", "src/job.rs", 7),
    ];
    let stacks = vec![
        stack(&frames, Outcome::Completed, costs(100, 1)),
        stack(&frames, Outcome::Cancelled, costs(200, 2)),
        stack(&frames, Outcome::Panicked, costs(400, 4)),
        stack(&frames, Outcome::Unfinished, costs(800, 8)),
    ];
    let p = check_file("outcomes", &stacks);
    assert_eq!(p.own("[task] app::job")[6], 1);
    assert_eq!(p.own("[task] app::job (cancelled)")[6], 2);
    assert_eq!(p.own("[task] app::job (panicked)")[6], 4);
    assert_eq!(p.own("[task] app::job (unfinished)")[6], 8);
    assert_eq!(p.totals[6], 15);
    assert_eq!(p.inclusive("app::main")[6], 15);
}

/// A server still running when the profile is written: what it spawned
/// hangs below its `(unfinished)` leaf, which holds its costs, not below a
/// leaf of the same name with none.
#[test]
fn tasks_spawned_by_an_unfinished_task_hang_below_its_leaf() {
    let server = [
        ("app::main", "src/main.rs", 1),
        ("[task] app::serve", "src/main.rs", 4),
    ];
    let conn = [
        ("app::main", "src/main.rs", 1),
        ("[task] app::serve", "src/main.rs", 4),
        ("app::serve", "src/main.rs", 9),
        ("[task] app::conn", "src/main.rs", 20),
    ];
    let stacks = vec![
        stack(&server, Outcome::Unfinished, costs(1000, 1)),
        stack(&conn, Outcome::Completed, costs(300, 3)),
    ];
    let p = check_file("unfinished-parent", &stacks);
    assert!(
        !p.self_cost.contains_key("[task] app::serve"),
        "{:?}",
        p.self_cost.keys()
    );
    assert_eq!(
        p.call_count("[task] app::serve (unfinished)", "app::serve"),
        3
    );
    assert_eq!(p.inclusive("[task] app::serve (unfinished)")[0], 1300);
}

#[test]
fn odd_names_and_empty_stacks_stay_readable() {
    let long = format!("app::{}", "x".repeat(5000));
    let stacks = vec![
        stack(
            &[
                ("app::main", "src/main.rs", 1),
                ("app::weird\nname", "src/a b.rs", 2),
                (long.as_str(), "", 3),
                ("(starts with a paren)", "???", 0),
            ],
            Outcome::Completed,
            costs(50, 1),
        ),
        ProfileStack {
            frames: Vec::new(),
            task_leaf: 0,
            outcome: Outcome::Cancelled,
            costs: costs(70, 1),
        },
        // The same function seen with and without a file: one function.
        stack(
            &[("app::main", "???", 0), ("[task] app::t", "src/t.rs", 4)],
            Outcome::Completed,
            costs(30, 1),
        ),
    ];
    let text = render(&stacks);
    assert!(!text.contains("weird\nname"));
    assert!(
        text.lines().all(|l| l.len() < 4096),
        "no line as long as 4096"
    );
    assert_eq!(
        text.lines().filter(|l| l.ends_with(") app::main")).count(),
        1
    );
    let p = check_file("odd", &stacks);
    assert_eq!(p.own("[task] (unknown spawn site) (cancelled)")[0], 70);
    assert_eq!(p.inclusive("app::main")[0], 80);
}

#[test]
fn output_is_deterministic_and_uses_compression() {
    let mut stacks = chain();
    let a = render(&stacks);
    stacks.reverse();
    let b = render(&stacks);
    assert_eq!(a, b);
    // Each name is spelled out once, then referred to by id.
    assert_eq!(a.matches(") app::accept_loop\n").count(), 1, "{a}");
    assert!(a.contains("fl=(1) "));
    assert!(a.contains("cfn=("));
    parse(&a);
}

#[test]
fn empty_profile_is_valid() {
    let p = check_file("empty", &[]);
    assert_eq!(p.totals, [0; 8]);
}

#[test]
fn header_carries_pid_and_command() {
    let text = render(&chain());
    assert!(text.contains("\npid: 4242\n"));
    assert!(text.contains("\ncmd: app --serve\n"));
    let summary_at = text.find("\nsummary: ").unwrap();
    let events_at = text
        .find("\nevents: WallNs BusyNs SchedNs IdleNs Polls Wakes Tasks Frames\n")
        .unwrap();
    assert!(events_at < summary_at);
    assert!(!text[..events_at].contains("\nfn="));
}

/// A function whose frames are in its own file and in a dependency's macro
/// (tokio's `select!` expands into `mini_redis::server::run`, and debug info
/// puts those lines in tokio's `select.rs`) is written with its own file.
#[test]
fn a_function_is_written_with_the_programs_own_file() {
    let select = "/home/u/.cargo/registry/src/index.crates.io-x/tokio-1.54.1/src/macros/select.rs";
    let stacks = [
        stack(
            &[
                ("app::run", select, 620),
                ("[task] app::serve", "src/server.rs", 40),
            ],
            Outcome::Completed,
            costs(1_000, 1),
        ),
        stack(
            &[
                ("app::run", "src/server.rs", 12),
                ("[task] app::tick", "src/server.rs", 12),
            ],
            Outcome::Completed,
            costs(1_000, 1),
        ),
    ];
    let text = render(&stacks);
    assert!(text.contains("fl=(1) src/server.rs\n"), "{text}");
    assert!(!text.contains("select.rs"), "{text}");
}
