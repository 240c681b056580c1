//! Ground truth: running a program of known shape under a tracer, and
//! checking the profile's figures against what the program did.

use super::callgrind::{parse, Profile};
use super::readers::check_with_real_readers;
use std::future::Future;
use std::sync::Mutex;
use theseus::profiler::{set_await_mode, AwaitMode};

/// One profile at a time: the tracer is process-wide.
pub static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `main` on a fresh runtime with `workers` workers under a tracer,
/// writes the profile to a file, checks the real readers accept it and
/// agree on the totals, and returns it parsed.
pub fn profile(name: &str, workers: usize, main: impl Future<Output = ()>) -> Profile {
    profile_with_awaits(name, AwaitMode::Cached, workers, main)
}

/// [`profile`], with await points found in `awaits` mode (a process-wide
/// setting, so it is set here, one profile at a time, and put back).
pub fn profile_with_awaits(
    name: &str,
    awaits: AwaitMode,
    workers: usize,
    main: impl Future<Output = ()>,
) -> Profile {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    set_await_mode(awaits);
    let profile = profile_serially(name, workers, main);
    set_await_mode(AwaitMode::Cached);
    profile
}

fn profile_serially(name: &str, workers: usize, main: impl Future<Output = ()>) -> Profile {
    profile_file_serially(name, workers, main).0
}

/// [`profile`], also returning the directory that holds the file it read,
/// `profile.callgrind`, for the real readers to read again.
pub fn profile_file(
    name: &str,
    workers: usize,
    main: impl Future<Output = ()>,
) -> (Profile, super::Scratch) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    profile_file_serially(name, workers, main)
}

fn profile_file_serially(
    name: &str,
    workers: usize,
    main: impl Future<Output = ()>,
) -> (Profile, super::Scratch) {
    let tracer = theseus::Tracer::new();
    tracer.install();
    let runtime = super::multi_thread(workers);
    runtime.block_on(main);
    drop(runtime);
    tracer.uninstall();
    let dir = super::Scratch::new(&format!("ground-truth-{name}"));
    let path = dir.join("profile.callgrind");
    let mut file = std::fs::File::create(&path).unwrap();
    tracer.write_data(&mut file).unwrap();
    drop(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let profile = parse(&text);
    assert_eq!(
        check_with_real_readers(&path),
        profile.totals,
        "callgrind_annotate disagrees on totals"
    );
    (profile, dir)
}

/// Checks `measured` against `expected` and prints both, so that
/// `cargo test --test ground_truth -- --nocapture` reports the figures.
pub fn assert_within(what: &str, measured: u64, expected: u64, tolerance: f64) {
    let error = (measured as f64 - expected as f64).abs() / expected as f64;
    let report = format!(
        "{what}: measured {:.3} ms, expected {:.3} ms (off by {:.2}%, tolerance {:.0}%)",
        measured as f64 / 1e6,
        expected as f64 / 1e6,
        error * 100.0,
        tolerance * 100.0
    );
    assert!(error <= tolerance, "{report}");
    println!("{report}");
}

/// Checks `value` is no lower than `expected` less `tolerance`, no higher
/// than it plus `tolerance` and `late` (what a loaded machine may add), and
/// prints it.
pub fn assert_between(what: &str, value: u64, expected: u64, tolerance: f64, late: u64) {
    let low = (expected as f64 * (1.0 - tolerance)) as u64;
    let high = (expected as f64 * (1.0 + tolerance)) as u64 + late;
    assert!(
        (low..=high).contains(&value),
        "{what}: {:.3} ms, expected {:.3} ms (-{:.0}% .. +{:.0}% and {:.1} ms late)",
        value as f64 / 1e6,
        expected as f64 / 1e6,
        tolerance * 100.0,
        tolerance * 100.0,
        late as f64 / 1e6
    );
    println!("{what}: {:.3} ms", value as f64 / 1e6);
}

/// Checks a time that a loaded machine can only lengthen (a timer fires
/// late, a preempted poll runs on): at least `expected` less `tolerance`
/// (clock granularity, a poll's own microseconds), and below twice
/// `expected`, which a wait or a poll counted twice reaches whatever the
/// load. Prints both, as [`assert_within`].
pub fn assert_lengthened(what: &str, measured: u64, expected: u64, tolerance: f64) {
    let floor = (expected as f64 * (1.0 - tolerance)) as u64;
    let report = format!(
        "{what}: measured {:.3} ms, expected {:.3} ms or more, less than twice that",
        measured as f64 / 1e6,
        expected as f64 / 1e6,
    );
    assert!((floor..2 * expected).contains(&measured), "{report}");
    println!("{report}");
}
