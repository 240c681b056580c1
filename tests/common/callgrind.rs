//! The tests' one callgrind reader: enough of the format to get each
//! function's self cost and each call edge's count and inclusive cost, and
//! strict about what theseus promises to write (header order, an `event:`
//! line per event, `fl=` just before `fn=`, `cfi=` just before `cfn=`, one
//! cost line after `calls=`, integers separated by single spaces, `totals:`
//! last), with any number of events (`CpuNs` included).

use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Profile {
    pub events: Vec<String>,
    pub summary: Vec<u64>,
    pub totals: Vec<u64>,
    /// Function name -> self cost per event.
    pub self_cost: BTreeMap<String, Vec<u64>>,
    pub calls: BTreeMap<CallSite, CallCost>,
    /// Function name -> the file its `fn=` is written with.
    pub file_of: BTreeMap<String, String>,
}

/// (caller, callee, call line).
pub type CallSite = (String, String, u64);
/// (calls, inclusive cost per event).
pub type CallCost = (u64, Vec<u64>);

impl Profile {
    pub fn event(&self, name: &str) -> usize {
        self.events
            .iter()
            .position(|e| e == name)
            .unwrap_or_else(|| panic!("no event {name} in {:?}", self.events))
    }

    /// The self cost of `event` of the function named `function`.
    pub fn self_of(&self, function: &str, event: &str) -> u64 {
        let index = self.event(event);
        let cost = self.self_cost.get(function).unwrap_or_else(|| {
            panic!(
                "no function {function:?}; functions: {:#?}",
                self.self_cost.keys()
            )
        });
        cost[index]
    }

    /// The inclusive cost of `event` of the function named `function`: its
    /// self cost and that of every call it makes, as callgrind_annotate
    /// counts it. A task's leaf has its await points as callees, so this is
    /// the task's whole cost (and its child tasks', if it spawned any).
    pub fn inclusive_of(&self, function: &str, event: &str) -> u64 {
        let index = self.event(event);
        let calls: u64 = self
            .calls
            .iter()
            .filter(|((caller, _, _), _)| caller == function)
            .map(|(_, (_, inclusive))| inclusive[index])
            .sum();
        self.self_of(function, event) + calls
    }

    /// The inclusive cost of `event` over every call from a function named
    /// `caller` to one named `callee`: e.g. the idle time of an await point
    /// under the async fn that awaited it.
    pub fn call_cost(&self, caller: &str, callee: &str, event: &str) -> u64 {
        let index = self.event(event);
        self.calls
            .iter()
            .filter(|((a, b, _), _)| a == caller && b == callee)
            .map(|(_, (_, inclusive))| inclusive[index])
            .sum()
    }

    /// The self cost of every event of `function`: zeros when it has none.
    pub fn own(&self, function: &str) -> Vec<u64> {
        self.self_cost
            .get(function)
            .cloned()
            .unwrap_or_else(|| vec![0; self.events.len()])
    }

    /// The sum of `function`'s calls' inclusive costs, every event.
    pub fn outgoing(&self, function: &str) -> Vec<u64> {
        self.sum_calls(|caller, _| caller == function)
    }

    /// The sum of the inclusive costs of the calls to `function`, every
    /// event: gprof2dot's inclusive cost.
    pub fn incoming(&self, function: &str) -> Vec<u64> {
        self.sum_calls(|_, callee| callee == function)
    }

    /// `function`'s self cost and that of the calls it makes, every event:
    /// callgrind_annotate's inclusive cost (zeros for a function not seen).
    pub fn inclusive(&self, function: &str) -> Vec<u64> {
        let mut sum = self.own(function);
        for (a, b) in sum.iter_mut().zip(self.outgoing(function)) {
            *a += b;
        }
        sum
    }

    /// How many calls from `caller` to `callee`, over every call line.
    pub fn call_count(&self, caller: &str, callee: &str) -> u64 {
        self.calls
            .iter()
            .filter(|((a, b, _), _)| a == caller && b == callee)
            .map(|(_, (count, _))| count)
            .sum()
    }

    fn sum_calls(&self, keep: impl Fn(&str, &str) -> bool) -> Vec<u64> {
        let mut sum = vec![0; self.events.len()];
        for ((caller, callee, _), (_, cost)) in &self.calls {
            if keep(caller, callee) {
                sum.iter_mut().zip(cost).for_each(|(a, b)| *a += b);
            }
        }
        sum
    }

    /// Names of functions that contain `needle`.
    pub fn functions(&self, needle: &str) -> Vec<&str> {
        self.self_cost
            .keys()
            .chain(self.calls.keys().flat_map(|(a, b, _)| [a, b]))
            .filter(|name| name.contains(needle))
            .map(String::as_str)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// Call edges whose caller contains `from` and callee contains `to`.
    pub fn edges(&self, from: &str, to: &str) -> Vec<(&CallSite, &CallCost)> {
        self.calls
            .iter()
            .filter(|((a, b, _), _)| a.contains(from) && b.contains(to))
            .collect()
    }
}

fn numbers(text: &str, what: &str) -> Vec<u64> {
    text.split(' ')
        .map(|n| {
            assert!(
                !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()),
                "{what}: {n:?} is not a non-negative integer, or not one space from the next, in {text:?}"
            );
            n.parse()
                .unwrap_or_else(|_| panic!("{what}: {n:?} does not fit in 64 bits"))
        })
        .collect()
}

/// Splits `(id) name` / `(id)`, remembering names by id.
fn name(value: &str, table: &mut BTreeMap<String, String>) -> String {
    let value = value.trim();
    assert!(
        value.starts_with('('),
        "name without compression: {value:?}"
    );
    let close = value.find(')').unwrap();
    let id = &value[..=close];
    let rest = value[close + 1..].trim();
    if rest.is_empty() {
        table
            .get(id)
            .unwrap_or_else(|| panic!("compressed name {id} used before it was defined"))
            .clone()
    } else {
        assert!(
            table.insert(id.to_string(), rest.to_string()).is_none(),
            "{id} defined twice"
        );
        rest.to_string()
    }
}

/// The header's lines up to `events:`, checked; the events they name.
fn read_header<'a>(lines: &mut impl Iterator<Item = &'a str>) -> Vec<String> {
    let creator = format!("creator: theseus {}", env!("CARGO_PKG_VERSION"));
    let header = [
        "# callgrind format",
        "version: 1",
        &creator,
        "pid: ",
        "cmd: ",
        "positions: line",
    ];
    for expected in header {
        let line = lines.next().expect("truncated header");
        assert!(
            line.starts_with(expected),
            "header line {line:?}, expected {expected:?}"
        );
        if let Some(pid) = line.strip_prefix("pid: ") {
            numbers(pid, "pid");
        }
    }
    let mut described = Vec::new();
    for line in lines.by_ref() {
        if let Some(event) = line.strip_prefix("event: ") {
            let (name, _) = event
                .split_once(" : ")
                .unwrap_or_else(|| panic!("not `event: NAME : description`: {line:?}"));
            described.push(name.to_string());
            continue;
        }
        if let Some(events) = line.strip_prefix("events: ") {
            let events: Vec<String> = events.split(' ').map(str::to_string).collect();
            assert_eq!(described, events, "one `event:` line per event, in order");
            assert_eq!(
                events.first().map(String::as_str),
                Some("WallNs"),
                "WallNs must come first"
            );
            return events;
        }
        panic!("unexpected line in header: {line:?}");
    }
    panic!("no events: line")
}

pub fn parse(text: &str) -> Profile {
    assert!(text.ends_with('\n'), "the file ends with a newline");
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("totals: "),
        "totals: is the last line: {last:?}"
    );
    let mut profile = Profile::default();
    let mut lines = text.lines();
    profile.events = read_header(&mut lines);
    let summary = lines.next().expect("no summary");
    profile.summary = numbers(
        summary
            .strip_prefix("summary: ")
            .expect("summary: after events:"),
        "summary",
    );
    let mut files = BTreeMap::new();
    let mut functions = BTreeMap::new();
    let (mut fl, mut function, mut cfi, mut cfn) = (
        None::<String>,
        None::<String>,
        None::<String>,
        None::<String>,
    );
    let mut pending_call: Option<(u64, u64)> = None;
    for line in lines {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(value) = line.strip_prefix("fl=") {
            fl = Some(name(value, &mut files));
            function = None;
        } else if let Some(value) = line.strip_prefix("fn=") {
            let file = fl
                .take()
                .unwrap_or_else(|| panic!("fn= without fl= just before it: {line}"));
            function = Some(name(value, &mut functions));
            profile.file_of.insert(function.clone().unwrap(), file);
            profile
                .self_cost
                .entry(function.clone().unwrap())
                .or_insert_with(|| vec![0; profile.events.len()]);
        } else if let Some(value) = line
            .strip_prefix("cfi=")
            .or_else(|| line.strip_prefix("cfl="))
        {
            cfi = Some(name(value, &mut files));
        } else if let Some(value) = line.strip_prefix("cfn=") {
            assert!(
                cfi.take().is_some(),
                "cfn= without cfi= just before it: {line}"
            );
            cfn = Some(name(value, &mut functions));
        } else if let Some(value) = line.strip_prefix("calls=") {
            assert!(cfn.is_some(), "calls= without cfn=: {line}");
            let parts = numbers(value, "calls");
            assert_eq!(parts.len(), 2, "calls=COUNT LINE: {line}");
            // callgrind_annotate books the next line as a call only when
            // COUNT is above zero, and as the caller's own cost otherwise.
            assert!(parts[0] > 0, "calls=0 reads as self cost: {line}");
            pending_call = Some((parts[0], parts[1]));
        } else if let Some(value) = line.strip_prefix("totals: ") {
            profile.totals = numbers(value, "totals");
        } else {
            let mut parts = numbers(line, "cost line");
            assert_eq!(
                parts.len(),
                profile.events.len() + 1,
                "cost line width: {line}"
            );
            let source_line = parts.remove(0);
            let caller = function
                .clone()
                .unwrap_or_else(|| panic!("cost line outside a function: {line}"));
            match pending_call.take() {
                Some((count, _target)) => {
                    let callee = cfn.take().unwrap();
                    let edge = profile
                        .calls
                        .entry((caller, callee, source_line))
                        .or_insert((0, vec![0; parts.len()]));
                    edge.0 += count;
                    edge.1.iter_mut().zip(&parts).for_each(|(a, b)| *a += b);
                    cfi = None;
                }
                None => {
                    let cost = profile.self_cost.get_mut(&caller).unwrap();
                    cost.iter_mut().zip(&parts).for_each(|(a, b)| *a += b);
                }
            }
        }
    }
    assert!(
        pending_call.is_none(),
        "calls= at the end of the file without its cost line"
    );
    assert!(!profile.totals.is_empty(), "no totals: line");
    let sum: Vec<u64> = (0..profile.events.len())
        .map(|i| profile.self_cost.values().map(|c| c[i]).sum())
        .collect();
    assert_eq!(
        profile.totals, sum,
        "totals must equal the sum of self costs"
    );
    assert_eq!(profile.summary, profile.totals, "summary must equal totals");
    assert_waits_below_task_leaves(&profile);
    assert_no_inclusive_exceeds_the_totals(&profile);
    profile
}

/// Whether `function` names a task: its leaf, where its own costs are.
pub fn is_task_leaf(function: &str) -> bool {
    function.starts_with("[task] ") || function.starts_with("[blocking] ")
}

/// Whether `function` is the leaf of a unit whose waits are its own: a
/// task's, a frame's (a marked future, a request), which is timed as a
/// task is wherever it is polled, or `main`'s (the future `block_on` ran).
fn is_unit_leaf(function: &str) -> bool {
    is_task_leaf(function)
        || ["[frame] ", "[request] ", "[main] "]
            .iter()
            .any(|kind| function.starts_with(kind))
}

/// Every wait at an await point sits below the leaf of a task or of a
/// frame: no path of calls from a function nobody calls reaches an
/// `[await]` leaf without going through such a leaf.
fn assert_waits_below_task_leaves(profile: &Profile) {
    let mut callees: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut called = std::collections::BTreeSet::new();
    for (caller, callee, _) in profile.calls.keys() {
        callees.entry(caller).or_default().push(callee);
        called.insert(callee.as_str());
    }
    let roots = profile
        .self_cost
        .keys()
        .map(String::as_str)
        .filter(|f| !called.contains(f) && !is_unit_leaf(f));
    let mut seen = std::collections::BTreeSet::new();
    let mut todo: Vec<(&str, Vec<&str>)> = roots.map(|r| (r, vec![r])).collect();
    while let Some((function, path)) = todo.pop() {
        assert!(
            !function.starts_with("[await] "),
            "a wait outside every task's and frame's leaf: {}",
            path.join(" -> ")
        );
        if !seen.insert(function) {
            continue;
        }
        for &callee in callees.get(function).into_iter().flatten() {
            if !is_unit_leaf(callee) {
                let mut longer = path.clone();
                longer.push(callee);
                todo.push((callee, longer));
            }
        }
    }
}

/// Recursion never counts a cost twice: no function's inclusive cost, as
/// callgrind_annotate sums it (its own and its calls') or as gprof2dot does
/// (its callers' calls to it), exceeds the program's total.
fn assert_no_inclusive_exceeds_the_totals(profile: &Profile) {
    let mut incoming: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut outgoing: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for ((caller, callee, _), (_, cost)) in &profile.calls {
        for (map, name) in [(&mut incoming, callee), (&mut outgoing, caller)] {
            let sum = map.entry(name).or_insert_with(|| vec![0; cost.len()]);
            sum.iter_mut().zip(cost).for_each(|(a, b)| *a += b);
        }
    }
    for (function, own) in &profile.self_cost {
        let zero = vec![0; own.len()];
        let calls = outgoing.get(function.as_str()).unwrap_or(&zero);
        let callers = incoming.get(function.as_str()).unwrap_or(&zero);
        for (i, total) in profile.totals.iter().enumerate() {
            let event = &profile.events[i];
            assert!(
                own[i] + calls[i] <= *total && callers[i] <= *total,
                "{function}: inclusive {event} {} (own and calls) or {} (callers) over the total {total}",
                own[i] + calls[i],
                callers[i]
            );
        }
    }
}
