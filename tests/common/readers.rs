//! Runs the real readers on a profile and reads what they print: the one
//! harness every test checks a callgrind file with (and pprof's and the
//! folded format's readers beside it).

use super::callgrind::{self, Profile};
use std::path::Path;
use std::process::Command;

/// `callgrind_annotate` and `gprof2dot` must read `path` with exit status 0
/// and nothing on stderr; returns the totals `callgrind_annotate` reports.
/// For a profile written by a program that ran in this test's directory.
pub fn check_with_real_readers(path: &Path) -> Vec<u64> {
    check_with_real_readers_in(path, Path::new(env!("CARGO_MANIFEST_DIR")))
}

/// As [`check_with_real_readers`], for a program that ran in `ran_in`: the
/// readers run there too, as a user runs them where the program ran.
///
/// The file is read by [`callgrind::parse`] (every rule of the writer), and
/// every function callgrind_annotate lists, its own cost and its inclusive
/// cost, must be the one the parse gives it: a cost line it books to the
/// wrong function (the one after a `calls=0` counts as the caller's own)
/// would count twice.
pub fn check_with_real_readers_in(path: &Path, ran_in: &Path) -> Vec<u64> {
    let profile = callgrind::parse(&std::fs::read_to_string(path).unwrap());
    let width = profile.events.len();
    let own = annotate(path, ran_in, false, width);
    let totals = match own.totals {
        Some(totals) => totals,
        // It prints no totals line for a profile of zeros.
        None => {
            assert!(profile.totals.iter().all(|t| *t == 0), "no PROGRAM TOTALS");
            profile.totals.clone()
        }
    };
    assert_eq!(
        totals, profile.totals,
        "callgrind_annotate's totals are ours"
    );
    let mut own_sum = vec![0u64; width];
    for (name, costs) in &own.functions {
        let (_file, function) = name.split_once(':').expect("file:function");
        assert_eq!(
            *costs,
            profile.own(function),
            "callgrind_annotate's own cost of {name}"
        );
        own_sum.iter_mut().zip(costs).for_each(|(a, b)| *a += b);
    }
    assert_eq!(
        own_sum, totals,
        "callgrind_annotate's own costs add up to the totals"
    );
    assert!(
        totals.iter().all(|t| *t == 0) || !own.functions.is_empty(),
        "callgrind_annotate listed no function"
    );
    check_inclusive(&profile, &annotate(path, ran_in, true, width));
    gprof2dot(path);
    totals
}

/// Every function appears once in the inclusive view (callgrind_annotate
/// names functions by file and name, so a file spelled two ways splits one
/// into two), with the inclusive cost the parse gives it: its callers'
/// calls to it, or for a root its own cost and its calls'.
fn check_inclusive(profile: &Profile, inclusive: &Annotated) {
    let mut seen = std::collections::BTreeMap::new();
    for (name, costs) in &inclusive.functions {
        let (file, function) = name.split_once(':').expect("file:function");
        if let Some(other) = seen.insert(function.to_string(), file.to_string()) {
            panic!("callgrind_annotate shows {function:?} twice, in {other:?} and {file:?}");
        }
        let called = profile
            .calls
            .keys()
            .any(|(_, callee, _)| callee == function);
        let ours = if called {
            profile.incoming(function)
        } else {
            profile.inclusive(function)
        };
        assert_eq!(
            *costs, ours,
            "callgrind_annotate's inclusive cost of {name}"
        );
        for (cost, total) in costs.iter().zip(&profile.totals) {
            assert!(cost <= total, "{name}: inclusive {costs:?} over the totals");
        }
    }
    assert!(
        profile.totals.iter().all(|t| *t == 0) || !seen.is_empty(),
        "no functions in the inclusive view"
    );
}

/// What callgrind_annotate printed.
struct Annotated {
    /// `None` when it printed no totals line, as it does for a profile of zeros.
    totals: Option<Vec<u64>>,
    /// `(file:function, costs)` per function line.
    functions: Vec<(String, Vec<u64>)>,
}

/// Runs callgrind_annotate on `path` in `ran_in`, every function listed:
/// it must exit 0 and print nothing on standard error.
fn annotate(path: &Path, ran_in: &Path, inclusive: bool, width: usize) -> Annotated {
    let output = Command::new("callgrind_annotate")
        .arg(format!(
            "--inclusive={}",
            if inclusive { "yes" } else { "no" }
        ))
        .args(["--threshold=100", "--auto=no"])
        .arg(path)
        .current_dir(ran_in)
        .output()
        .expect("callgrind_annotate (from valgrind) must be installed: apt-get install valgrind");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.is_empty(),
        "callgrind_annotate --inclusive={inclusive}: {stderr}\n{stdout}"
    );
    let mut annotated = Annotated {
        totals: None,
        functions: Vec::new(),
    };
    // The function table follows the `... file:function` heading and a
    // rule, and ends at the first empty line.
    let mut in_table = false;
    let mut lines = stdout.lines();
    while let Some(line) = lines.next() {
        if line.ends_with(" file:function") && annotated.functions.is_empty() {
            lines.next();
            in_table = true;
            continue;
        }
        if in_table && line.trim().is_empty() {
            in_table = false;
            continue;
        }
        let (costs, rest) = split_annotate_line(line);
        if rest.starts_with("PROGRAM TOTALS") && costs.len() == width {
            annotated.totals = Some(costs);
        } else if in_table {
            assert_eq!(costs.len(), width, "{width} costs in {line:?}");
            annotated.functions.push((rest, costs));
        }
    }
    annotated
}

/// A number as callgrind_annotate prints it: `1,234`, or `.` for zero.
fn annotate_number(word: &str) -> Option<u64> {
    if word == "." {
        return Some(0);
    }
    let digits: String = word.chars().filter(|c| *c != ',').collect();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The leading numbers of a callgrind_annotate line, its `(12.5%)` shares
/// skipped, and the rest of the line.
fn split_annotate_line(line: &str) -> (Vec<u64>, String) {
    let mut numbers = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        // A share is padded to its width: `( 0.98%)` is two words.
        if let Some(share) = rest.strip_prefix('(') {
            if let Some(close) = share.find("%)") {
                if share[..close].trim().parse::<f64>().is_ok() {
                    rest = share[close + 2..].trim_start();
                    continue;
                }
            }
        }
        let end = rest.find(' ').unwrap_or(rest.len());
        match annotate_number(&rest[..end]) {
            Some(n) => numbers.push(n),
            None => break,
        }
        rest = rest[end..].trim_start();
    }
    (numbers, rest.to_string())
}

/// Runs gprof2dot on `path`, no node or edge left out: it must exit 0,
/// print nothing on standard error, and print a graph (written nowhere: the
/// test's directory keeps only what the program wrote).
fn gprof2dot(path: &Path) {
    let output = gprof2dot_command()
        .args(["-f", "callgrind", "-n", "0", "-e", "0"])
        .arg(path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.is_empty(),
        "gprof2dot: {stderr}"
    );
    assert!(
        output.stdout.starts_with(b"digraph"),
        "gprof2dot printed no graph"
    );
}

/// gprof2dot on the path, or as a Python module.
fn gprof2dot_command() -> Command {
    let works = |command: &mut Command| {
        command
            .arg("--help")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works(&mut Command::new("gprof2dot")) {
        return Command::new("gprof2dot");
    }
    let mut module = Command::new("python3");
    module.args(["-m", "gprof2dot"]);
    assert!(
        works(Command::new("python3").args(["-m", "gprof2dot"])),
        "gprof2dot not found on PATH nor as `python3 -m gprof2dot`: pip install gprof2dot"
    );
    module
}

/// What `go tool pprof -raw` prints of a profile.
#[derive(Debug, Default)]
pub struct PprofRaw {
    /// Sample types as `name/unit`, in order.
    pub types: Vec<String>,
    /// The type marked `[dflt]`.
    pub default_type: String,
    pub samples: Vec<PprofSample>,
}

#[derive(Debug, Default, Clone)]
pub struct PprofSample {
    /// One value per sample type.
    pub values: Vec<u64>,
    /// Function names, outermost first.
    pub stack: Vec<String>,
    /// Labels as pprof prints them: `key:[value]`.
    pub labels: Vec<String>,
}

impl PprofRaw {
    /// The index of the sample type named `name`.
    pub fn index(&self, name: &str) -> usize {
        self.types
            .iter()
            .position(|t| t.split('/').next() == Some(name))
            .unwrap_or_else(|| panic!("no sample type {name} in {:?}", self.types))
    }

    /// The sum over samples of the values of type `name`.
    pub fn total(&self, name: &str) -> u64 {
        let i = self.index(name);
        self.samples.iter().map(|s| s.values[i]).sum()
    }
}

fn go_pprof(args: &[&str], path: &Path) -> String {
    let output = Command::new("go")
        .args(["tool", "pprof"])
        .args(args)
        .arg(path)
        .output()
        .expect("go tool pprof must be installed: apt-get install golang-go");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "go tool pprof {args:?} {}: {stderr}",
        path.display()
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs `go tool pprof -raw` on `path`, which must succeed with nothing on
/// stderr, and reads what it prints.
pub fn pprof_raw(path: &Path) -> PprofRaw {
    read_pprof_raw(&go_pprof(&["-raw"], path))
}

/// Reads what `go tool pprof -raw` printed.
pub fn read_pprof_raw(text: &str) -> PprofRaw {
    let mut raw = PprofRaw::default();
    let mut lines = text.lines().skip_while(|l| *l != "Samples:").skip(1);
    let types = lines.next().expect("no sample types line");
    for t in types.split_whitespace() {
        match t.strip_suffix("[dflt]") {
            Some(t) => {
                raw.default_type = t.to_string();
                raw.types.push(t.to_string());
            }
            None => raw.types.push(t.to_string()),
        }
    }
    let mut locations_of: Vec<Vec<u64>> = Vec::new();
    for line in lines.by_ref() {
        if line == "Locations" {
            break;
        }
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if trimmed.starts_with(|c: char| c.is_ascii_digit()) {
            let (values, locations) = trimmed.split_once(':').expect("values: locations");
            raw.samples.push(PprofSample {
                values: values
                    .split_whitespace()
                    .map(|v| v.parse().unwrap())
                    .collect(),
                ..PprofSample::default()
            });
            locations_of.push(
                locations
                    .split_whitespace()
                    .map(|v| v.parse().unwrap())
                    .collect(),
            );
        } else {
            let sample = raw.samples.last_mut().expect("a label before any sample");
            sample.labels.push(trimmed.to_string());
        }
    }
    // "     1: 0x0 M=1 [task] app::f (cancelled) /src/app.rs:27 s=0()"
    let mut names = std::collections::HashMap::new();
    for line in lines {
        if line == "Mappings" {
            break;
        }
        let (id, rest) = line.trim().split_once(": ").expect("id: location");
        let rest = rest.split_once(" M=").map_or(rest, |(_, r)| r);
        let rest = rest.split_once(' ').expect("mapping, then function").1;
        let rest = &rest[..rest.rfind(" s=").expect("s=start line")];
        let (name, _file_line) = rest.rsplit_once(' ').expect("name file:line");
        names.insert(id.parse::<u64>().unwrap(), name.to_string());
    }
    for (sample, locations) in raw.samples.iter_mut().zip(locations_of) {
        // pprof lists the leaf first.
        sample.stack = locations.iter().rev().map(|id| names[id].clone()).collect();
    }
    raw
}

/// Runs `go tool pprof -top` on `path` for the sample type `index`, every
/// node shown, and returns the total and each function's flat and
/// cumulative value, in the type's base unit.
pub fn pprof_top(
    path: &Path,
    index: &str,
) -> (u64, std::collections::BTreeMap<String, (u64, u64)>) {
    let sample_index = format!("-sample_index={index}");
    let text = go_pprof(
        &[
            "-top",
            "-unit=ns",
            "-nodefraction=0",
            "-nodecount=100000",
            &sample_index,
        ],
        path,
    );
    let number = |s: &str| -> u64 {
        s.trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {s:?} in\n{text}"))
    };
    let total = text
        .lines()
        .find_map(|l| l.split_once("Total samples = "))
        .map(|(_, rest)| number(rest.split_whitespace().next().unwrap()))
        .unwrap_or_else(|| panic!("no total in\n{text}"));
    let mut rows = std::collections::BTreeMap::new();
    for line in text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flat  flat%"))
        .skip(1)
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        let name = words[5..].join(" ");
        rows.insert(name, (number(words[0]), number(words[3])));
    }
    (total, rows)
}

/// Folded lines as (stack, value), checking each is `frames N`.
pub fn folded_lines(path: &Path) -> Vec<(String, u64)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let (stack, n) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("not `stack N`: {line:?}"));
            let n = n
                .parse()
                .unwrap_or_else(|_| panic!("not an integer count: {line:?}"));
            (stack.to_string(), n)
        })
        .collect()
}

/// Each function's inclusive cost of the first event (`WallNs`), as
/// `callgrind_annotate --inclusive=yes` prints it.
pub fn annotate_inclusive(path: &Path) -> std::collections::BTreeMap<String, u64> {
    let output = Command::new("callgrind_annotate")
        .args(["--inclusive=yes", "--threshold=100", "--auto=no"])
        .arg(path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut rows = std::collections::BTreeMap::new();
    for line in stdout
        .lines()
        .skip_while(|l| !l.ends_with("file:function"))
        .skip(2)
    {
        if line.trim().is_empty() || line.starts_with("--") {
            break;
        }
        // "52,077,412 (49.9%)  0 ...  file:function"
        let first = line.split_whitespace().next().unwrap_or_default();
        let Ok(wall) = first.replace(',', "").parse::<u64>() else {
            continue;
        };
        let file_function = line.split("  ").last().unwrap_or_default().trim();
        let function = file_function
            .split_once(':')
            .map_or(file_function, |(_, f)| f);
        rows.insert(function.to_string(), wall);
    }
    rows
}

/// Each node's total (inclusive) share of the first event (`WallNs`), in
/// percent, as gprof2dot computes it, with no node or edge left out.
pub fn gprof2dot_total_percent(path: &Path) -> std::collections::BTreeMap<String, f64> {
    let output = Command::new("gprof2dot")
        .args(["-f", "callgrind", "-n", "0", "-e", "0"])
        .args(["--node-label=total-time-percentage"])
        .arg(path)
        .output()
        .expect("gprof2dot must be installed: pip install gprof2dot");
    assert!(output.status.success(), "gprof2dot failed");
    let dot = String::from_utf8_lossy(&output.stdout);
    let mut nodes = std::collections::BTreeMap::new();
    for line in dot.lines().filter(|line| !line.contains("->")) {
        // `"name" [color=..., label="name\n49.94%\n1×"];`
        let Some(start) = line.find("label=\"") else {
            continue;
        };
        let label = &line[start + 7..];
        let label = &label[..label.find("\"]").unwrap_or(label.len())];
        let mut parts = label.split("\\n");
        let name = parts.next().unwrap_or_default().replace("\\\"", "\"");
        let percent = parts.find_map(|p| p.strip_suffix('%')?.parse::<f64>().ok());
        if let Some(percent) = percent {
            nodes.insert(name, percent);
        }
    }
    nodes
}
