//! Every output format, read by its real reader: callgrind_annotate and
//! gprof2dot, `go tool pprof`, the SVG as XML, the folded lines as the
//! flame graph tools split them. One run written in every format must give
//! the same numbers everywhere; `THESEUS_OUT`'s extension and
//! `THESEUS_FORMAT` pick the format; `THESEUS_INTERVAL` writes snapshots
//! that add up to the whole run; `THESEUS_REPORT` prints the top stacks.
//!
//! The tests need `go` (Debian: golang-go) besides the callgrind readers;
//! `.ci/run` installs it.

#[path = "../../tests/common/mod.rs"]
mod common;
mod svg;

use common::callgrind::{parse, Profile as Callgrind};
use common::child;
use common::readers::{check_with_real_readers_in, folded_lines, pprof_raw, pprof_top, PprofRaw};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use svg::svg_frames;
use theseus::profiler::{Event, Format, Profile};

/// The child side.
#[test]
fn child() {
    match child::program().as_deref() {
        None => {}
        Some("work") => programs::work::main(),
        Some("service") => programs::service::main(),
        Some(other) => panic!("unknown program {other}"),
    }
}

mod programs {
    use std::time::{Duration, Instant};

    pub async fn nap(ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    /// Keeps a worker busy for `ms`, in a few polls.
    pub async fn spin(ms: u64) {
        for _ in 0..3 {
            let until = Instant::now() + Duration::from_millis(ms) / 3;
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            theseus::task::yield_now().await;
        }
    }

    /// A nap long enough to run across intervals: `ms`, and then until a
    /// cut taken after it started has been written, so that it is live at a
    /// cut however late a loaded machine makes the cuts.
    pub async fn linger(ms: u64) {
        let begun = snapshots_begun();
        nap(ms).await;
        // Snapshot `begun + 1` was not yet being written when this started,
        // and the cut of `begun + 2` is taken after it is written.
        while snapshots_begun() < begun + 2 {
            nap(10).await;
        }
    }

    /// How many interval snapshots of `THESEUS_OUT` are on disk (the programs
    /// that linger run with `THESEUS_INTERVAL`).
    fn snapshots_begun() -> u64 {
        let out = std::path::PathBuf::from(std::env::var_os("THESEUS_OUT").unwrap());
        let format = theseus_profiler::Format::for_path(&out);
        (1..)
            .find(|&n| !theseus_profiler::snapshots::snapshot_path(&out, format, n).exists())
            .unwrap()
            - 1
    }

    pub async fn wait_forever() {
        std::future::pending::<()>().await;
    }

    /// Three naps, a spin, a task cancelled at exit: a profile with
    /// completed and cancelled leaves, busy, scheduling and idle time.
    pub async fn work() {
        for _ in 0..3 {
            theseus::spawn(nap(20)).await.unwrap();
        }
        theseus::spawn(spin(9)).await.unwrap();
        let aborted = theseus::spawn(wait_forever());
        nap(5).await;
        aborted.abort();
        let _ = aborted.await;
    }

    pub mod work {
        #[theseus::main(worker_threads = 2)]
        pub async fn main() {
            super::work().await;
            theseus::spawn(super::wait_forever());
            println!("work done");
        }
    }

    pub mod service {
        use std::time::{Duration, Instant};

        /// About 1.3 s of short tasks in waves, and one task that lives
        /// across several 300 ms intervals.
        #[theseus::main(worker_threads = 2)]
        pub async fn main() {
            let long = theseus::spawn(super::linger(700));
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(1300) {
                let wave: Vec<_> = (0..20).map(|_| theseus::spawn(super::nap(5))).collect();
                for task in wave {
                    task.await.unwrap();
                }
                theseus::spawn(super::spin(1)).await.unwrap();
            }
            long.await.unwrap();
            theseus::spawn(super::wait_forever());
            println!("service done");
        }
    }
}

/// Leaf name -> summed value, from folded lines.
fn by_leaf(lines: &[(String, u64)]) -> BTreeMap<String, u64> {
    let mut leaves = BTreeMap::new();
    for (stack, n) in lines {
        let leaf = stack.rsplit(';').next().unwrap().to_string();
        *leaves.entry(leaf).or_default() += n;
    }
    leaves
}

/// Folded stacks of `event` of a pprof profile: stack names joined by `;`,
/// merged, zero values left out.
fn pprof_folded(raw: &PprofRaw, event: &str) -> BTreeMap<String, u64> {
    let i = raw.index(event);
    let mut stacks = BTreeMap::new();
    for sample in &raw.samples {
        if sample.values[i] > 0 {
            *stacks.entry(sample.stack.join(";")).or_default() += sample.values[i];
        }
    }
    stacks
}

fn write(profile: &Profile, format: Format, event: Event, path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    profile.write(format, event, &mut file).unwrap();
}

#[test]
fn one_run_written_in_every_format_gives_the_same_numbers() {
    let dir = child::scratch_dir("formats-agree");
    let tracer = theseus::Tracer::new();
    tracer.install();
    let runtime = common::multi_thread(2);
    runtime.block_on(programs::work());
    drop(runtime);
    tracer.uninstall();
    let profile = tracer.to_profile();

    // Callgrind, through the strict parser and the real readers.
    let callgrind_path = dir.join("run.callgrind");
    write(&profile, Format::Callgrind, Event::WallNs, &callgrind_path);
    let callgrind: Callgrind = parse(&std::fs::read_to_string(&callgrind_path).unwrap());
    assert_eq!(
        check_with_real_readers_in(&callgrind_path, &dir),
        callgrind.totals
    );
    assert_eq!(callgrind.totals, profile.totals()[..8]);
    let nap = "[task] formats::programs::nap";
    let aborted = "[task] formats::programs::wait_forever (cancelled)";
    assert_eq!(callgrind.self_of(nap, "Tasks"), 3);
    assert_eq!(callgrind.self_of(aborted, "Tasks"), 1);

    // Folded stacks of every event: lines sum to callgrind's totals, and
    // each leaf to its self cost there.
    let mut folded_wall = Vec::new();
    for event in Event::TASK {
        let path = dir.join(format!("run.{event}.folded"));
        write(&profile, Format::Folded, event, &path);
        let lines = folded_lines(&path);
        let sum: u64 = lines.iter().map(|(_, n)| n).sum();
        assert_eq!(
            sum,
            callgrind.totals[callgrind.event(event.name())],
            "{event}"
        );
        for (leaf, n) in by_leaf(&lines) {
            assert_eq!(n, callgrind.self_of(&leaf, event.name()), "{event} {leaf}");
        }
        if event == Event::WallNs {
            folded_wall = lines;
        }
    }

    // pprof: every event a sample type with its unit, WallNs the default;
    // the same stacks and values as the folded lines; `-top` agrees with
    // callgrind's self costs.
    let pprof_path = dir.join("run.pb.gz");
    write(&profile, Format::Pprof, Event::WallNs, &pprof_path);
    let raw = pprof_raw(&pprof_path);
    assert_eq!(
        raw.types,
        [
            "WallNs/nanoseconds",
            "BusyNs/nanoseconds",
            "SchedNs/nanoseconds",
            "IdleNs/nanoseconds",
            "Polls/count",
            "Wakes/count",
            "Tasks/count",
            "Frames/count"
        ]
    );
    assert_eq!(raw.default_type, "WallNs/nanoseconds");
    for (i, event) in Event::TASK.iter().enumerate() {
        assert_eq!(raw.total(event.name()), callgrind.totals[i], "{event}");
    }
    assert_eq!(
        pprof_folded(&raw, "WallNs"),
        folded_wall.iter().cloned().collect::<BTreeMap<_, _>>()
    );
    for sample in &raw.samples {
        // The suffix is on the task's leaf, which an await point's stack
        // goes on past.
        let cancelled = sample.stack.iter().any(|f| f.ends_with(" (cancelled)"));
        let outcome = if cancelled {
            "outcome:[cancelled]"
        } else {
            "outcome:[completed]"
        };
        assert_eq!(sample.labels, [outcome], "{:?}", sample.stack);
    }
    for event in ["WallNs", "BusyNs", "Tasks"] {
        let (total, rows) = pprof_top(&pprof_path, event);
        assert_eq!(total, callgrind.totals[callgrind.event(event)], "{event}");
        for (name, cost) in &callgrind.self_cost {
            let own = cost[callgrind.event(event)];
            if own > 0 {
                assert_eq!(rows[name].0, own, "go tool pprof -top, {event}, {name}");
            }
        }
    }

    // The flame graph: well-formed XML, the whole wall time at the root,
    // and each folded line of a visible width as a frame as wide as it and
    // every line that goes on from it (a task's leaf has its await points
    // above it).
    let svg_path = dir.join("run.svg");
    write(&profile, Format::FlameGraph, Event::WallNs, &svg_path);
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(
        svg.contains("<script") && svg.contains("search"),
        "no script"
    );
    let frames = svg_frames(&svg_path);
    let total = callgrind.totals[0];
    assert!(frames.contains(&("all".to_string(), total)), "{frames:?}");
    for (stack, n) in &folded_wall {
        let leaf = stack.rsplit(';').next().unwrap();
        let above = format!("{stack};");
        let width: u64 = n + folded_wall
            .iter()
            .filter(|(s, _)| s.starts_with(&above))
            .map(|(_, v)| v)
            .sum::<u64>();
        if width * 100 >= total {
            assert!(
                frames
                    .iter()
                    .any(|(name, count)| name == leaf && *count == width),
                "no frame {leaf} of {width} in {frames:?}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn run_work(dir: &Path, out: &str, env: &[(&str, &str)]) -> (PathBuf, String) {
    let path = dir.join(out);
    let mut vars = vec![("THESEUS_OUT", path.to_str().unwrap())];
    vars.extend_from_slice(env);
    let output = child::run("work", &vars);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("work done"));
    (path, stderr)
}

#[test]
fn the_extension_picks_the_format_and_theseus_format_overrides_it() {
    let dir = child::scratch_dir("formats-by-extension");
    let nap = "[task] formats::programs::nap";

    let (pprof, _) = run_work(&dir, "app.pb.gz", &[]);
    let bytes = std::fs::read(&pprof).unwrap();
    assert_eq!(bytes[..2], [0x1f, 0x8b], "not gzip");
    let (_, rows) = pprof_top(&pprof, "Tasks");
    assert_eq!(rows[nap].0, 3);
    // THESEUS_EVENT picks the sample type pprof opens on.
    let (busy, _) = run_work(&dir, "busy.pb.gz", &[("THESEUS_EVENT", "BusyNs")]);
    assert_eq!(pprof_raw(&busy).default_type, "BusyNs/nanoseconds");

    let (folded, _) = run_work(&dir, "app.folded", &[("THESEUS_EVENT", "tasks")]);
    assert_eq!(by_leaf(&folded_lines(&folded))[nap], 3);

    let (svg, _) = run_work(&dir, "app.svg", &[("THESEUS_EVENT", "Tasks")]);
    let frames = svg_frames(&svg);
    assert!(frames.contains(&(nap.to_string(), 3)), "{frames:?}");

    // THESEUS_FORMAT wins over the extension.
    let (overridden, _) = run_work(&dir, "app.callgrind", &[("THESEUS_FORMAT", "folded")]);
    let text = std::fs::read_to_string(&overridden).unwrap();
    assert!(!text.starts_with("# callgrind"), "{text}");
    assert!(by_leaf(&folded_lines(&overridden)).contains_key(nap));
    let (callgrind, _) = run_work(&dir, "app.svg.txt", &[("THESEUS_FORMAT", "callgrind")]);
    let profile = parse(&std::fs::read_to_string(&callgrind).unwrap());
    assert_eq!(profile.self_of(nap, "Tasks"), 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_formats_events_intervals_and_reports_stop_the_program_at_start() {
    let cases: [(&str, &str, &[&str]); 5] = [
        (
            "THESEUS_FORMAT",
            "flamegraph",
            &["callgrind", "pprof", "folded", "svg"],
        ),
        ("THESEUS_EVENT", "wall", &["WallNs", "SchedNs", "Tasks"]),
        ("THESEUS_EVENT", "CpuNs", &["THESEUS_SAMPLE_HZ"]),
        ("THESEUS_INTERVAL", "60", &["ms", "60s", "5m"]),
        ("THESEUS_REPORT", "yes", &["1", "0"]),
    ];
    for (variable, value, accepted) in cases {
        let output = child::run("work", &[(variable, value)]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{variable}={value}: {stderr}"
        );
        for needle in accepted.iter().chain([&variable, &value]) {
            assert!(stderr.contains(needle), "{needle} missing from {stderr}");
        }
        assert!(!String::from_utf8_lossy(&output.stdout).contains("work done"));
    }
}

#[test]
fn theseus_report_prints_the_top_stacks_with_their_split() {
    let dir = child::scratch_dir("formats-report");
    let (path, stderr) = run_work(&dir, "app.callgrind", &[("THESEUS_REPORT", "1")]);
    let profile = parse(&std::fs::read_to_string(&path).unwrap());
    let table: Vec<&str> = stderr
        .lines()
        .skip_while(|l| !l.starts_with("theseus: top "))
        .take_while(|l| !l.starts_with("theseus: profile written"))
        .collect();
    assert!(table.len() >= 4, "{stderr}");
    assert_eq!(
        table[1], "     wall    busy   sched    idle  tasks  stack",
        "{stderr}"
    );
    let tasks = profile.totals[profile.event("Tasks")];
    assert!(
        table[0].ends_with(&format!(" over {tasks} tasks)")),
        "{}",
        table[0]
    );
    let nap = table
        .iter()
        .find(|l| l.ends_with("> [task] formats::programs::nap"))
        .unwrap_or_else(|| panic!("no nap row in {stderr}"));
    let words: Vec<&str> = nap.split_whitespace().collect();
    // wall, unit, busy, sched, idle, tasks, stack...
    assert_eq!(words[5], "3", "{nap}");
    let shares: f64 = words[2..5]
        .iter()
        .map(|w| w.trim_end_matches('%').parse::<f64>().unwrap())
        .sum();
    assert!((shares - 100.0).abs() < 0.2, "{nap}");
    // Every row is as wide as the header up to the stack; under a row, a
    // line in the stack column names where it waited most.
    let stack_at = table[1].find("stack").unwrap();
    let (awaits, rows): (Vec<&&str>, Vec<&&str>) = table[2..]
        .iter()
        .partition(|l| l.len() > stack_at && l[..stack_at].trim().is_empty());
    assert!(
        awaits
            .iter()
            .any(|l| l.ends_with("of idle at formats::programs::nap > [await] tokio::time::Sleep")),
        "{stderr}"
    );
    for row in rows {
        assert_eq!(row.chars().nth(stack_at - 2), Some(' '), "{row}");
        assert_ne!(row.chars().nth(stack_at - 3), Some(' '), "{row}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The long task runs across at least one cut (it lingers until a cut
/// taken after it started is written): reported live there, its cost
/// within each interval, and completed in a later one, its pieces adding
/// up to the whole task.
fn assert_long_task_in_pieces(snapshots: &[Callgrind], whole: &Callgrind) {
    let long_live = "[task] formats::programs::linger (unfinished)";
    let long_ended = "[task] formats::programs::linger";
    let has = |s: &Callgrind, name: &str| s.self_cost.contains_key(name);
    let live_in: Vec<usize> = (0..snapshots.len())
        .filter(|&i| has(&snapshots[i], long_live))
        .collect();
    let ended_in: Vec<usize> = (0..snapshots.len())
        .filter(|&i| has(&snapshots[i], long_ended))
        .collect();
    assert!(!live_in.is_empty(), "the long task is live at no cut");
    assert_eq!(ended_in.len(), 1, "the long task completes in one snapshot");
    assert!(
        live_in.iter().all(|&i| i < ended_in[0]),
        "{live_in:?} {ended_in:?}"
    );
    for &i in &live_in {
        assert_eq!(snapshots[i].self_of(long_live, "Tasks"), 1);
    }
    assert_eq!(snapshots[ended_in[0]].self_of(long_ended, "Tasks"), 1);
    let pieces: u64 = live_in
        .iter()
        .map(|&i| snapshots[i].inclusive_of(long_live, "WallNs"))
        .chain([snapshots[ended_in[0]].inclusive_of(long_ended, "WallNs")])
        .sum();
    let wall = whole.inclusive_of(long_ended, "WallNs");
    assert!(wall >= 700_000_000, "{wall} ns of the long task");
    assert_eq!(pieces, wall, "the long task's pieces add up to it");
}

#[test]
fn interval_snapshots_are_readable_and_add_up_to_the_whole_run() {
    let dir = child::scratch_dir("formats-intervals");
    let out = dir.join("svc.callgrind");
    let output = child::run(
        "service",
        &[
            ("THESEUS_OUT", out.to_str().unwrap()),
            ("THESEUS_INTERVAL", "300ms"),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let whole = parse(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(check_with_real_readers_in(&out, &dir), whole.totals);

    let mut snapshots = Vec::new();
    for n in 1.. {
        let path = dir.join(format!("svc.{n:04}.callgrind"));
        if !path.exists() {
            break;
        }
        let snapshot = parse(&std::fs::read_to_string(&path).unwrap());
        assert_eq!(
            check_with_real_readers_in(&path, &dir),
            snapshot.totals,
            "{}",
            path.display()
        );
        snapshots.push(snapshot);
    }
    // At least the two cuts the long task waits for, and the last part.
    // (1.3 s of work makes about five on an idle machine, but a write that
    // outlasts its interval delays the next cuts, so fewer come under load.)
    assert!(snapshots.len() >= 3, "{} snapshots", snapshots.len());
    // Nothing else is left beside them (gprof2dot's graphs aside).
    let profiles = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".dot")
        })
        .count();
    assert_eq!(profiles, snapshots.len() + 1);

    let tasks = whole.event("Tasks");
    let idle = whole.event("IdleNs");
    for event in 0..whole.events.len() {
        let sum: u64 = snapshots.iter().map(|s| s.totals[event]).sum();
        if event == tasks {
            // A task is counted in every interval it had cost in.
            assert!(sum >= whole.totals[event]);
        } else if event == idle {
            // Idle time is wall - busy - sched, three durations rounded to
            // the nanosecond on their own, so a running task's idle time can
            // read a nanosecond or two less at a later cut. A few dozen
            // tasks run across each cut here: allow 1 µs in all.
            let error = sum.abs_diff(whole.totals[event]);
            assert!(
                error <= 1_000,
                "IdleNs: {sum} in the snapshots, {} in all",
                whole.totals[event]
            );
        } else {
            assert_eq!(sum, whole.totals[event], "{}", whole.events[event]);
        }
    }
    assert_long_task_in_pieces(&snapshots, &whole);
    // The task left waiting at the end is cancelled in the last snapshot.
    let last = snapshots.last().unwrap();
    assert_eq!(
        last.self_of(
            "[task] formats::programs::wait_forever (cancelled)",
            "Tasks"
        ),
        1
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn interval_snapshots_take_the_format_of_the_output() {
    let dir = child::scratch_dir("formats-interval-pprof");
    let out = dir.join("svc.pb.gz");
    let output = child::run(
        "service",
        &[
            ("THESEUS_OUT", out.to_str().unwrap()),
            ("THESEUS_INTERVAL", "500ms"),
        ],
    );
    assert!(output.status.success(), "{output:?}");
    let whole = pprof_raw(&out);
    let mut wall = 0;
    let mut n = 0;
    while dir.join(format!("svc.{:04}.pb.gz", n + 1)).exists() {
        n += 1;
        let snapshot = pprof_raw(&dir.join(format!("svc.{n:04}.pb.gz")));
        wall += snapshot.total("WallNs");
    }
    assert!(n >= 3, "{n} snapshots");
    assert_eq!(wall, whole.total("WallNs"));
    std::fs::remove_dir_all(&dir).unwrap();
}
