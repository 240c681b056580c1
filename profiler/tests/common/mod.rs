//! Helpers shared by the integration tests: temporary directories, a strict
//! check of the callgrind rules, and the real readers.

#![allow(dead_code)]

// The workspace's tests share it; this crate's are in the same repository.
#[path = "../../../tests/common/scratch.rs"]
mod scratch;

// Not every test binary writes files (as with dead code, above).
#[allow(unused_imports)]
pub use scratch::Scratch;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

/// Serialises tests of one binary that touch process-global state.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Names in a directory, sorted.
pub fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn numbers(s: &str, what: &str) -> Vec<u64> {
    assert!(
        !s.starts_with(' ') && !s.ends_with(' ') && !s.contains("  "),
        "{what}: numbers must be separated by single spaces: {s:?}"
    );
    s.split(' ')
        .map(|n| {
            assert!(
                !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()),
                "{what}: not an integer: {n:?} in {s:?}"
            );
            n.parse().unwrap()
        })
        .collect()
}

fn add(into: &mut [u64; 8], v: &[u64]) {
    assert_eq!(v.len(), 8, "a cost line has 8 events: {v:?}");
    for (a, b) in into.iter_mut().zip(v) {
        *a += b;
    }
}

/// What [`check_rules`] learnt from a file.
#[derive(Debug, Default)]
pub struct Parsed {
    pub totals: [u64; 8],
    /// Self cost by function name.
    pub own: HashMap<String, [u64; 8]>,
    /// Sum of outgoing calls' inclusive cost, by caller name.
    pub outgoing: HashMap<String, [u64; 8]>,
    /// Sum of incoming calls' inclusive cost, by callee name.
    pub incoming: HashMap<String, [u64; 8]>,
    /// Call counts by (caller, callee).
    pub calls: HashMap<(String, String), u64>,
}

impl Parsed {
    /// Self plus outgoing calls: callgrind_annotate's inclusive cost.
    pub fn inclusive(&self, name: &str) -> [u64; 8] {
        let mut c = [0; 8];
        if let Some(v) = self.own.get(name) {
            add(&mut c, v);
        }
        if let Some(v) = self.outgoing.get(name) {
            add(&mut c, v);
        }
        c
    }
}

fn resolve_name(table: &mut HashMap<u64, String>, spec: &str, what: &str) -> String {
    assert!(
        spec.starts_with('('),
        "{what}= without name compression: {spec:?}"
    );
    let close = spec.find(')').unwrap();
    let id: u64 = spec[1..close].parse().unwrap();
    let rest = &spec[close + 1..];
    if rest.is_empty() {
        table
            .get(&id)
            .unwrap_or_else(|| panic!("{what}=({id}) used before being defined"))
            .clone()
    } else {
        assert!(
            rest.starts_with(' '),
            "{what}: `(id) name` expected: {spec:?}"
        );
        let name = rest[1..].to_string();
        assert!(
            table.insert(id, name.clone()).is_none(),
            "{what}=({id}) defined twice"
        );
        name
    }
}

/// Checks every rule of the callgrind writer (its module docs) that can be
/// checked on the text, and that summary == totals == the sum of self
/// costs, and that no function's inclusive cost (outgoing or incoming)
/// exceeds the totals.
pub fn check_rules(text: &str) -> Parsed {
    let lines: Vec<&str> = text.lines().collect();
    assert!(text.ends_with('\n'), "file ends with a newline");
    let expected_prefix = [
        "# callgrind format",
        "version: 1",
        &format!("creator: theseus {}", env!("CARGO_PKG_VERSION")),
    ];
    for (i, want) in expected_prefix.iter().enumerate() {
        assert_eq!(lines[i], *want, "header line {i}");
    }
    assert!(lines[3].starts_with("pid: "), "pid line: {:?}", lines[3]);
    numbers(&lines[3]["pid: ".len()..], "pid");
    assert!(lines[4].starts_with("cmd: "), "cmd line: {:?}", lines[4]);
    assert_eq!(lines[5], "positions: line");
    let names = [
        "WallNs", "BusyNs", "SchedNs", "IdleNs", "Polls", "Wakes", "Tasks", "Frames",
    ];
    for (i, name) in names.iter().enumerate() {
        let l = lines[6 + i];
        assert!(
            l.starts_with(&format!("event: {name} : ")),
            "event line: {l:?}"
        );
    }
    assert_eq!(
        lines[14],
        "events: WallNs BusyNs SchedNs IdleNs Polls Wakes Tasks Frames"
    );
    let summary = lines[15]
        .strip_prefix("summary: ")
        .unwrap_or_else(|| panic!("summary line expected after events: {:?}", lines[15]));
    let summary = numbers(summary, "summary");
    let last = lines.last().unwrap();
    let totals = numbers(
        last.strip_prefix("totals: ").expect("totals line last"),
        "totals",
    );
    assert_eq!(summary, totals, "summary == totals");

    let mut p = Parsed::default();
    let mut files = HashMap::new();
    let mut fns = HashMap::new();
    let mut fl: Option<String> = None;
    let mut fl_fresh = false;
    let mut current: Option<String> = None;
    let mut cfi_fresh = false;
    let mut cfn: Option<String> = None;
    let mut pending_call: Option<u64> = None;
    let mut sum_own = [0u64; 8];
    for (i, line) in lines[16..lines.len() - 1].iter().enumerate() {
        let at = format!("line {}", i + 17);
        if let Some(count) = pending_call.take() {
            let v = numbers(line, &at);
            assert_eq!(
                v.len(),
                9,
                "{at}: call cost line is `line` + 8 events: {line:?}"
            );
            let caller = current.clone().unwrap();
            let callee = cfn.take().unwrap();
            add(p.outgoing.entry(caller.clone()).or_default(), &v[1..]);
            add(p.incoming.entry(callee.clone()).or_default(), &v[1..]);
            *p.calls.entry((caller, callee)).or_default() += count;
            continue;
        }
        if line.is_empty() {
            continue;
        }
        if let Some(spec) = line.strip_prefix("fl=") {
            fl = Some(resolve_name(&mut files, spec, "fl"));
            fl_fresh = true;
        } else if let Some(spec) = line.strip_prefix("fn=") {
            assert!(fl_fresh, "{at}: fn= without fl= before it");
            fl_fresh = false;
            current = Some(resolve_name(&mut fns, spec, "fn"));
        } else if let Some(spec) = line.strip_prefix("cfi=") {
            resolve_name(&mut files, spec, "cfi");
            cfi_fresh = true;
        } else if let Some(spec) = line.strip_prefix("cfn=") {
            assert!(cfi_fresh, "{at}: cfn= without cfi= before it");
            cfi_fresh = false;
            cfn = Some(resolve_name(&mut fns, spec, "cfn"));
        } else if let Some(rest) = line.strip_prefix("calls=") {
            assert!(cfn.is_some(), "{at}: calls= without cfn=");
            let v = numbers(rest, &at);
            assert_eq!(v.len(), 2, "{at}: calls=COUNT TARGET_LINE");
            // callgrind_annotate books the next line as a call only when
            // COUNT is above zero, and as the caller's own cost otherwise.
            assert!(v[0] > 0, "{at}: calls=0 reads as self cost");
            pending_call = Some(v[0]);
        } else {
            assert!(current.is_some() && fl.is_some(), "{at}: cost before fn=");
            let v = numbers(line, &at);
            assert_eq!(v.len(), 9, "{at}: self cost line is `line` + 8 events");
            add(p.own.entry(current.clone().unwrap()).or_default(), &v[1..]);
            add(&mut sum_own, &v[1..]);
        }
    }
    assert!(
        pending_call.is_none(),
        "calls= at the end without a cost line"
    );
    assert_eq!(sum_own.to_vec(), totals, "totals == sum of self costs");
    p.totals.copy_from_slice(&totals);
    for (name, c) in p.incoming.iter().chain(p.outgoing.iter()) {
        for e in 0..8 {
            assert!(
                c[e] <= p.totals[e],
                "{name}: call cost {c:?} > totals {:?}",
                p.totals
            );
        }
    }
    for name in fns.values() {
        let inc = p.inclusive(name);
        for e in 0..8 {
            assert!(inc[e] <= p.totals[e], "{name}: inclusive {inc:?} > totals");
        }
    }
    p
}

/// What callgrind_annotate reported.
#[derive(Debug)]
pub struct Annotated {
    /// `None` when it printed no totals line, as it does for an all-zero profile.
    pub totals: Option<[u64; 8]>,
    /// `(file:function, costs)` per function line.
    pub functions: Vec<(String, [u64; 8])>,
}

fn parse_annotate_number(tok: &str) -> Option<u64> {
    if tok == "." {
        return Some(0);
    }
    let digits: String = tok.chars().filter(|c| *c != ',').collect();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Leading numbers of a callgrind_annotate line, skipping `(12.5%)` columns,
/// and the rest of the line.
fn split_annotate_line(line: &str) -> (Vec<u64>, String) {
    let mut nums = Vec::new();
    let mut rest = line.trim_start();
    loop {
        let end = rest.find(' ').unwrap_or(rest.len());
        let tok = &rest[..end];
        if tok.starts_with('(') && tok.ends_with("%)") {
        } else if let Some(n) = parse_annotate_number(tok) {
            nums.push(n);
        } else {
            break;
        }
        rest = rest[end..].trim_start();
        if rest.is_empty() {
            break;
        }
    }
    (nums, rest.to_string())
}

/// Runs callgrind_annotate on `path`: it must exit 0 and print nothing on
/// standard error.
pub fn annotate(path: &Path, inclusive: bool) -> Annotated {
    let output = Command::new("callgrind_annotate")
        .arg(format!(
            "--inclusive={}",
            if inclusive { "yes" } else { "no" }
        ))
        .arg("--threshold=100")
        .arg(path)
        .output()
        .expect("callgrind_annotate (valgrind) must be installed: apt-get install valgrind");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "callgrind_annotate failed: {stderr}\n{stdout}"
    );
    assert!(stderr.is_empty(), "callgrind_annotate stderr: {stderr}");
    let mut totals = None;
    let mut functions = Vec::new();
    // The function table follows the `... file:function` heading and a
    // rule, and ends at the first empty line.
    let mut in_table = false;
    let mut lines = stdout.lines();
    while let Some(line) = lines.next() {
        if line.ends_with(" file:function") && functions.is_empty() {
            lines.next();
            in_table = true;
            continue;
        }
        if in_table && line.trim().is_empty() {
            in_table = false;
            continue;
        }
        let (nums, rest) = split_annotate_line(line);
        if nums.len() != 8 {
            continue;
        }
        let costs: [u64; 8] = nums.try_into().unwrap();
        if rest.starts_with("PROGRAM TOTALS") {
            totals = Some(costs);
        } else if in_table {
            functions.push((rest, costs));
        }
    }
    Annotated { totals, functions }
}

/// Runs gprof2dot on `path`: it must exit 0, print nothing on standard
/// error, and produce a graph.
pub fn gprof2dot(path: &Path) -> String {
    let on_path = Command::new("gprof2dot").arg("--help").output();
    let mut cmd = match on_path {
        Ok(o) if o.status.success() => Command::new("gprof2dot"),
        _ => {
            let module = Command::new("python3")
                .args(["-m", "gprof2dot", "--help"])
                .output();
            match module {
                Ok(o) if o.status.success() => {
                    let mut c = Command::new("python3");
                    c.args(["-m", "gprof2dot"]);
                    c
                }
                _ => panic!(
                    "gprof2dot not found on PATH nor as `python3 -m gprof2dot`: \
                     install it with `pip install gprof2dot`"
                ),
            }
        }
    };
    let output = cmd
        .args(["-f", "callgrind", "-n", "0", "-e", "0"])
        .arg(path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "gprof2dot failed: {stderr}");
    assert!(stderr.is_empty(), "gprof2dot stderr: {stderr}");
    assert!(stdout.starts_with("digraph"), "gprof2dot output: {stdout}");
    stdout
}

/// Checks a profile file with the rules and both readers; returns the parse.
pub fn check_with_readers(path: &Path) -> Parsed {
    let text = std::fs::read_to_string(path).unwrap();
    let parsed = check_rules(&text);
    for inclusive in [false, true] {
        let a = annotate(path, inclusive);
        if parsed.totals == [0; 8] {
            assert!(a.totals.is_none_or(|t| t == [0; 8]), "{:?}", a.totals);
        } else {
            assert_eq!(
                a.totals,
                Some(parsed.totals),
                "callgrind_annotate totals == ours"
            );
        }
        assert!(
            parsed.totals == [0; 8] || !a.functions.is_empty(),
            "callgrind_annotate listed no function"
        );
        for (name, costs) in &a.functions {
            let (_file, function) = name.split_once(':').expect("file:function");
            let ours = if !inclusive {
                parsed.own.get(function).copied().unwrap_or([0; 8])
            } else if let Some(incoming) = parsed.incoming.get(function) {
                *incoming
            } else {
                parsed.inclusive(function)
            };
            assert_eq!(
                *costs, ours,
                "callgrind_annotate (inclusive={inclusive}) on {name}"
            );
            for e in 0..7 {
                assert!(
                    costs[e] <= parsed.totals[e],
                    "callgrind_annotate (inclusive={inclusive}): {name} {costs:?} > totals {:?}",
                    parsed.totals
                );
            }
        }
    }
    gprof2dot(path);
    parsed
}

/// A finished task at `stack`: 1 µs from spawn to end, 100 ns of it
/// polled (two polls), 10 ns waiting for a worker, one wake.
pub fn finished_task(
    stack: theseus_profiler::StackId,
    outcome: theseus_profiler::Outcome,
) -> theseus_profiler::TaskRecord {
    theseus_profiler::TaskRecord {
        id: theseus_profiler::TaskId::next(),
        stack,
        wall_ns: 1_000,
        busy_ns: 100,
        sched_ns: 10,
        polls: 2,
        wakes: 1,
        outcome,
        awaits: theseus_profiler::AwaitCosts::NONE,
        kind: theseus_profiler::RecordKind::Task,
    }
}

/// Records two finished tasks (one completed, one cancelled) at one stack,
/// for tests that need a profile with something in it.
pub fn some_records() {
    use theseus_profiler::{record, spawn_stack, Outcome};
    let stack = spawn_stack(std::panic::Location::caller(), "app::job");
    for outcome in [Outcome::Completed, Outcome::Cancelled] {
        record(&finished_task(stack, outcome));
    }
}
