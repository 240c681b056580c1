//! The whole promise, checked on an optimized build as users run it: the
//! service example (a loopback echo server, clients, timers, CPU work)
//! builds in release, writes a profile that the real readers accept, whose
//! figures match what the program does, and whose stacks (spawn stacks and
//! await points alike) hold the program's own functions and nothing of the
//! runtime or std's plumbing.
//!
//! Optimized builds matter here: inlining moves user code into runtime
//! frames, which a debug build never shows.

mod common;

use common::callgrind::parse;
use common::child::scratch_dir;
use common::readers::check_with_real_readers;
use std::process::Command;

const MS: u64 = 1_000_000;

/// The service example, built in release; its binary's path.
fn built_service() -> std::path::PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = env!("CARGO_MANIFEST_DIR");
    let build = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "--example",
            "service",
            "--manifest-path",
        ])
        .arg(format!("{root}/Cargo.toml"))
        .status()
        .unwrap();
    assert!(
        build.success(),
        "cargo build --release --example service failed"
    );
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| format!("{root}/target"));
    std::path::Path::new(&target).join("release/examples/service")
}

#[test]
fn the_service_example_profiled_in_release() {
    let binary = built_service();

    let dir = scratch_dir("release-service");
    let out = dir.join("service.callgrind");
    let began = std::time::Instant::now();
    let run = Command::new(&binary)
        .env("THESEUS_OUT", &out)
        .output()
        .unwrap();
    let lived = began.elapsed().as_nanos() as u64;
    assert!(run.status.success(), "{run:?}");
    assert!(String::from_utf8_lossy(&run.stdout)
        .contains("20 clients echoed 16300 bytes over 20 connections"));

    let profile = parse(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(check_with_real_readers(&out), profile.totals);

    // Figures: what the program does.
    let cache = "[task] service::refresh_cache";
    assert_eq!(profile.self_of(cache, "Tasks"), 8);
    let cache_wall = profile.inclusive_of(cache, "WallNs");
    // A timer fires no earlier than asked, and on a loaded machine a worker
    // may reach it late (854 ms was seen while another build shared the two
    // cores). The bound is what a wait counted twice would give at least,
    // not a guess at how late a loaded machine can be.
    assert!(
        (800 * MS..1600 * MS).contains(&cache_wall),
        "8 x 100 ms timers: {cache_wall}"
    );
    // Two polls each, of a few microseconds, each of which a preemption
    // can stretch by a timeslice: far below the 800 ms they waited.
    assert!(profile.self_of(cache, "BusyNs") < 80 * MS);
    // Each spins in one poll until it sees 20 ms pass, so its poll lasts at
    // least that. The service's other threads share the cores: a preemption
    // just before the spin's last check, or before its poll returns,
    // lengthens the poll for real, with no bound but the program's life
    // (51.6 ms was seen while four builds shared the two cores, 60.06 ms on
    // a busier machine, 107 ms with two more busy loops). What cannot
    // happen is busy time beyond the tasks' wall time, which a poll counted
    // twice gives (each task is one poll: its wall time is little more),
    // or wall time beyond the program's life; tests/ground_truth.rs holds
    // the 5% line against the time tasks measure themselves.
    let checksums = "[task] service::checksum";
    let checksum_busy = profile.self_of(checksums, "BusyNs");
    assert!(
        checksum_busy >= 40 * MS,
        "2 x 20 ms of CPU: {checksum_busy}"
    );
    assert_eq!(profile.self_of(checksums, "Polls"), 2);
    let checksum_wall = profile.inclusive_of(checksums, "WallNs");
    assert!(
        checksum_busy + profile.self_of(checksums, "SchedNs") <= checksum_wall,
        "busy {checksum_busy} and scheduling time beyond the wall time {checksum_wall}"
    );
    assert!(
        checksum_wall <= 2 * lived,
        "2 tasks lived {checksum_wall} ns in a program that ran {lived} ns"
    );
    let clients = "[task] service::client";
    assert_eq!(profile.self_of(clients, "Tasks"), 20);
    // 50 round trips each, with a 2 ms sleep after each.
    assert!(profile.inclusive_of(clients, "WallNs") >= 20 * 50 * 2 * MS);
    assert_eq!(
        profile.self_of(clients, "Polls") - profile.inclusive_of(clients, "Wakes"),
        20
    );

    // Every connection's handler ran to its end, and so did the accept
    // loop: the figures are the same on every run.
    let handlers = "[task] service::handle_connection";
    assert_eq!(profile.self_of(handlers, "Tasks"), 20);
    assert_eq!(profile.self_of("[task] service::accept_loop", "Tasks"), 1);
    let cancelled = profile.functions("(cancelled)");
    assert!(cancelled.is_empty(), "cancelled: {cancelled:?}");
    // The blocking closures, named after where they were written.
    let blocking = profile.functions("[blocking] closure in service::main (examples/service.rs:");
    assert_eq!(blocking.len(), 1, "{:#?}", profile.self_cost.keys());
    assert_eq!(profile.self_of(blocking[0], "Tasks"), 2);

    // Await points: under each task's leaf, the program's own async fn,
    // then what it awaited. Inlining folds the async fns into a few machine
    // frames; debug info still names them.
    let sleep = "[await] tokio::time::Sleep";
    let cache_sleep = profile.call_cost("service::refresh_cache", sleep, "IdleNs");
    assert!(
        (800 * MS..=cache_wall).contains(&cache_sleep),
        "8 x 100 ms timers waited at the sleep: {cache_sleep}"
    );
    assert_eq!(
        profile.call_cost("service::refresh_cache", sleep, "Wakes"),
        8
    );
    assert!(profile.self_of(cache, "IdleNs") < MS);
    assert_eq!(
        profile.call_cost("service::client", sleep, "Wakes"),
        20 * 50
    );
    assert!(profile.call_cost("service::client", sleep, "IdleNs") >= 20 * 50 * 2 * MS);
    for (caller, callee) in [
        (clients, "service::client"),
        (
            "[task] service::handle_connection",
            "service::handle_connection",
        ),
        (
            "service::handle_connection",
            "[await] tokio::io::util::Read",
        ),
        ("service::client", "[await] tokio::io::util::ReadExact"),
        (
            "service::accept_loop",
            "[await] tokio::net::tcp::listener::TcpListener::accept",
        ),
    ] {
        assert!(
            !profile.edges(caller, callee).is_empty(),
            "no {caller} -> {callee}: {:#?}",
            profile.calls.keys()
        );
    }

    // Stacks: the program's own functions, spawn sites by line.
    let accept_to_handler: Vec<_> =
        profile.edges("service::accept_loop", "[task] service::handle_connection");
    assert!(
        accept_to_handler
            .iter()
            .any(|((caller, _, line), _)| caller == "service::accept_loop" && *line > 0),
        "no accept_loop -> [task] handle_connection edge: {:#?}",
        profile.calls.keys()
    );
    assert!(!profile
        .edges("[task] service::accept_loop", "service::accept_loop")
        .is_empty());
    let names: Vec<&str> = profile.self_cost.keys().map(String::as_str).collect();
    for name in &names {
        for banned in [
            "theseus_",
            "async_task",
            "backtrace",
            "std::",
            "core::",
            "alloc::",
            "tokio::runtime",
            "{{closure}}",
        ] {
            assert!(
                !name.contains(banned),
                "plumbing frame {name:?} in the profile"
            );
        }
        assert!(
            !name.starts_with("examples/"),
            "a frame named by location: {name}"
        );
    }
}

/// Without debug info (`debug = false`, which cargo also strips), no frame
/// is filed under a file that is not its own: names come from the symbol
/// table alone, files only from `#[track_caller]` locations (spawn sites),
/// and what neither tells is in the unknown file `???`. The binary is the
/// release build with its debug info stripped, as cargo strips it.
#[test]
fn without_debug_info_no_frame_is_filed_under_another_file() {
    let dir = scratch_dir("release-nodebug");
    let binary = dir.join("service");
    let strip = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(built_service())
        .arg(&binary)
        .status()
        .unwrap();
    assert!(strip.success(), "objcopy --strip-debug failed");
    let out = dir.join("service.callgrind");
    let run = Command::new(&binary)
        .env("THESEUS_OUT", &out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("without full debug info"),
        "no word of the missing debug info: {run:?}"
    );
    let profile = parse(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(check_with_real_readers(&out), profile.totals);
    // The figures do not need debug info.
    assert_eq!(profile.self_of("[task] service::client", "Tasks"), 20);
    assert_eq!(
        profile.self_of("[task] service::handle_connection", "Tasks"),
        20
    );
    for (function, file) in &profile.file_of {
        let own = function.starts_with("service::")
            || function.starts_with("[task] service::")
            || function.starts_with("[main] service::")
            || function.starts_with("[blocking] closure in service::")
            || function.starts_with("examples/service.rs:");
        match file.as_str() {
            "???" => {}
            "examples/service.rs" => assert!(own, "{function} filed under {file}"),
            _ => panic!("{function} filed under {file}, with no debug info to say so"),
        }
        if function.starts_with("[await]") {
            assert_eq!(file, "???", "{function}");
        }
    }
}
