//! The terminal summary (`THESEUS_REPORT=1`): the stacks that took the most
//! wall time, and how that time split into busy (polling), waiting for a
//! worker (`SchedNs`) and idle (waiting for a wake), as a short aligned
//! table on standard error, for the answer without opening a tool:
//!
//! ```text
//! theseus: top 3 of 3 stacks by wall time (9.458 s over 53 tasks)
//!      wall    busy   sched    idle  tasks  stack
//!   4.380 s    0.6%   19.5%   79.9%     20  service::main > [task] service::client
//!   3.355 s    0.5%    8.6%   90.9%     17  ... > service::accept_loop > [task] service::handle_connection
//!  806.3 ms    0.0%    0.0%  100.0%      8  service::main > [task] service::refresh_cache
//! ```
//!
//! Rows are the task stacks of the [`Profile`] merged where they print
//! alike (the same names, as in the other formats), outcome suffix
//! included, so cancelled tasks stand apart. CPU samples are not tasks and
//! are left out. A row is whole tasks: the waits at their await points,
//! which the other formats show as stacks of their own under the task's
//! leaf, are counted in it, and a line under the row names the await point
//! that holds most of its idle time:
//!
//! ```text
//!   3.290 s    0.2%    6.5%   93.3%     20  service::main > [task] service::client
//!                                           93.1% of idle at service::client > [await] tokio::time::Sleep
//! ```
//!
//! A frame's row (`[frame] ..`, `[request] ..`) is whole frames, as a
//! task's is whole tasks, and counts its frames; with frames in the
//! profile, the column is headed `count` and the first line gives both.
//!
//! Percentages are of the row's wall time; a long stack is cut on the
//! left, keeping its leaf.

use crate::profile::{Event, Profile};
use std::collections::HashMap;
use std::io::{self, Write};

/// How many rows the report shows.
pub const ROWS: usize = 10;

/// How many characters of a stack a row shows.
const STACK_WIDTH: usize = 100;

/// One row: a stack and its summed values.
struct Row {
    stack: String,
    values: [u64; 5],
    /// Idle time by await point (its chain below the task's leaf).
    awaits: HashMap<String, u64>,
}

/// Where a row's await point line starts: under the stack column.
const AWAIT_INDENT: usize = 42;

/// Writes the report of `profile`: at most [`ROWS`] stacks, by wall time.
///
/// ```
/// use theseus_profiler::{report, Costs, Outcome, Profile, ProfileStack, ResolvedFrame};
///
/// let mut profile = Profile::empty();
/// profile.push_stack(ProfileStack {
///     frames: vec![ResolvedFrame { function: "[task] app::serve".into(), file: "src/main.rs".into(), line: 9 }],
///     task_leaf: 0,
///     outcome: Outcome::Completed,
///     costs: Costs { wall_ns: 2_000_000, busy_ns: 500_000, sched_ns: 500_000, idle_ns: 1_000_000, polls: 4, wakes: 3, waits: 0, tasks: 2, frames: 0 },
/// });
/// let mut out = Vec::new();
/// report::write(&mut out, &profile).unwrap();
/// let text = String::from_utf8(out).unwrap();
/// assert!(text.contains("2.000 ms   25.0%   25.0%   50.0%      2  [task] app::serve"), "{text}");
/// ```
pub fn write<W: Write + ?Sized>(out: &mut W, profile: &Profile) -> io::Result<()> {
    let rows = rows(profile);
    let totals = profile.totals();
    let frames = totals[Event::Frames.index()];
    let mut text = String::new();
    text.push_str(&format!(
        "theseus: top {} of {} stacks by wall time ({} over {} tasks{})\n",
        rows.len().min(ROWS),
        rows.len(),
        duration(totals[Event::WallNs.index()]),
        totals[Event::Tasks.index()],
        if frames > 0 {
            format!(" and {frames} frames")
        } else {
            String::new()
        },
    ));
    // A frame's row counts frames, a task's tasks: with frames about, the
    // column is a count of either.
    let count = if frames > 0 { "count" } else { "tasks" };
    text.push_str(&format!(
        "{:>9} {:>7} {:>7} {:>7} {:>6}  stack\n",
        "wall", "busy", "sched", "idle", count
    ));
    for row in rows.iter().take(ROWS) {
        let [wall, busy, sched, idle, tasks] = row.values;
        text.push_str(&format!(
            "{:>9} {:>7} {:>7} {:>7} {:>6}  {}\n",
            duration(wall),
            percent(busy, wall),
            percent(sched, wall),
            percent(idle, wall),
            tasks,
            cut_left(&row.stack, STACK_WIDTH),
        ));
        let idle = row.values[3];
        let most = row
            .awaits
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)));
        if let Some((chain, &waited)) = most.filter(|&(_, &waited)| waited > 0) {
            text.push_str(&format!(
                "{:AWAIT_INDENT$}{} of idle at {}\n",
                "",
                percent(waited, idle),
                cut_left(chain, STACK_WIDTH),
            ));
        }
    }
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// The task stacks, merged by printed names, most wall time first (ties by
/// name, so the order is stable).
fn rows(profile: &Profile) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for sample in profile.samples() {
        if sample.outcome.is_none() {
            continue;
        }
        let names: Vec<&str> = sample.frames.iter().map(|f| f.name.as_str()).collect();
        // An await point's sample counts in its task's row.
        let leaf = sample.task_leaf.unwrap_or(names.len() - 1);
        let stack = names[..=leaf].join(" > ");
        let chain = (leaf + 1 < names.len()).then(|| names[leaf + 1..].join(" > "));
        // A row's leaf is a task's or a frame's, and counts the one it is.
        let count = sample.value(Event::Tasks) + sample.value(Event::Frames);
        let values = [
            sample.value(Event::WallNs),
            sample.value(Event::BusyNs),
            sample.value(Event::SchedNs),
            sample.value(Event::IdleNs),
            count,
        ];
        let i = *index.entry(stack.clone()).or_insert_with(|| {
            rows.push(Row {
                stack,
                values: [0; 5],
                awaits: HashMap::new(),
            });
            rows.len() - 1
        });
        let row = &mut rows[i];
        for (total, v) in row.values.iter_mut().zip(values) {
            *total = total.saturating_add(v);
        }
        if let Some(chain) = chain {
            let waited = row.awaits.entry(chain).or_default();
            *waited = waited.saturating_add(sample.value(Event::IdleNs));
        }
    }
    rows.sort_by(|a, b| {
        b.values[0]
            .cmp(&a.values[0])
            .then_with(|| a.stack.cmp(&b.stack))
    });
    rows
}

/// A duration in nanoseconds with four significant digits and a unit.
fn duration(ns: u64) -> String {
    let (value, unit) = match ns {
        0..=999 => return format!("{ns} ns"),
        1_000..=999_999 => (ns as f64 / 1e3, "µs"),
        1_000_000..=999_999_999 => (ns as f64 / 1e6, "ms"),
        _ => (ns as f64 / 1e9, "s"),
    };
    let decimals = match value {
        v if v >= 100.0 => 1,
        v if v >= 10.0 => 2,
        _ => 3,
    };
    format!("{value:.decimals$} {unit}")
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".to_string();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

/// `text` in at most `width` characters, cut on the left at a frame
/// boundary, so the leaf stays; never inside a frame's name: a leaf longer
/// than `width` is shown whole, after `... > `.
fn cut_left(text: &str, width: usize) -> String {
    let chars = text.chars().count();
    if chars <= width {
        return text.to_string();
    }
    let keep: String = text.chars().skip(chars - (width - 4)).collect();
    let keep = match keep.find(" > ") {
        Some(at) => &keep[at + 3..],
        None => text.rsplit(" > ").next().unwrap_or(text),
    };
    format!("... > {keep}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Costs;
    use crate::task_record::Outcome;
    use crate::tree::ProfileStack;

    fn stack(names: &[&str], outcome: Outcome, wall_ns: u64, busy_ns: u64) -> ProfileStack {
        let costs = Costs {
            wall_ns,
            busy_ns,
            idle_ns: wall_ns - busy_ns,
            tasks: 1,
            ..Costs::default()
        };
        ProfileStack::named(names, outcome, costs)
    }

    #[test]
    fn rows_are_merged_sorted_and_aligned() {
        let profile = Profile::from_stacks(
            &[
                stack(&["main", "[task] small"], Outcome::Completed, 1_500, 0),
                stack(
                    &["main", "[task] big"],
                    Outcome::Completed,
                    2_000_000_000,
                    1,
                ),
                stack(
                    &["main", "[task] big"],
                    Outcome::Completed,
                    1_000_000_000,
                    0,
                ),
                stack(&["main", "[task] big"], Outcome::Cancelled, 7, 7),
            ],
            &[],
            false,
        );
        let mut out = Vec::new();
        write(&mut out, &profile).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "theseus: top 3 of 3 stacks by wall time (3.000 s over 4 tasks)"
        );
        assert_eq!(lines[1], "     wall    busy   sched    idle  tasks  stack");
        assert_eq!(
            lines[2],
            "  3.000 s    0.0%    0.0%  100.0%      2  main > [task] big"
        );
        assert_eq!(
            lines[3],
            " 1.500 µs    0.0%    0.0%  100.0%      1  main > [task] small"
        );
        assert_eq!(
            lines[4],
            "     7 ns  100.0%    0.0%    0.0%      1  main > [task] big (cancelled)"
        );
    }

    #[test]
    fn a_row_holds_its_await_points_and_names_the_one_it_waited_at_most() {
        let waited = |names: &[&str], idle_ns| {
            let mut s = stack(names, Outcome::Completed, idle_ns, 0);
            s.task_leaf = 1;
            s.costs.tasks = 0;
            s
        };
        let stacks = [
            stack(&["main", "[task] t"], Outcome::Completed, 1_000, 1_000),
            waited(&["main", "[task] t", "t", "[await] a"], 6_000),
            waited(&["main", "[task] t", "t", "[await] b"], 3_000),
        ];
        let profile = Profile::from_stacks(&stacks, &[], false);
        let mut out = Vec::new();
        write(&mut out, &profile).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "one row and its await line: {text}");
        assert_eq!(
            lines[2],
            " 10.00 µs   10.0%    0.0%   90.0%      1  main > [task] t"
        );
        assert_eq!(lines[3], format!("{:42}66.7% of idle at t > [await] a", ""));
    }

    /// A frame's row counts its frames: requests are not tasks, and a
    /// column of zeros would say none ran.
    #[test]
    fn a_frame_row_counts_its_frames() {
        let mut request = stack(
            &["main", "[task] conn", "[request] GET /users/{id}"],
            Outcome::Completed,
            30_000_000,
            3_000_000,
        );
        request.costs.tasks = 0;
        request.costs.frames = 30;
        let stacks = [
            stack(&["main", "[task] conn"], Outcome::Completed, 40_000_000, 0),
            request,
        ];
        let profile = Profile::from_stacks(&stacks, &[], false);
        let mut out = Vec::new();
        write(&mut out, &profile).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "theseus: top 2 of 2 stacks by wall time (70.00 ms over 1 tasks and 30 frames)"
        );
        assert_eq!(lines[1], "     wall    busy   sched    idle  count  stack");
        assert_eq!(
            lines[3],
            " 30.00 ms   10.0%    0.0%   90.0%     30  main > [task] conn > [request] GET /users/{id}"
        );
    }

    #[test]
    fn long_stacks_keep_their_leaf() {
        let long = ["frame"; 40].join(" > ") + " > [task] leaf";
        let cut = cut_left(&long, 60);
        assert!(cut.chars().count() <= 60, "{cut}");
        assert!(
            cut.starts_with("... > frame") && cut.ends_with("[task] leaf"),
            "{cut}"
        );
    }

    #[test]
    fn a_leaf_longer_than_the_column_is_never_cut_inside_its_name() {
        let leaf = "[task] async block in bore_cli::server::Server::listen::handle_connection_with_a_long_name (src/server.rs:141)";
        let stack = format!("bore_cli::main > bore_cli::server::Server::listen > {leaf}");
        assert_eq!(cut_left(&stack, 60), format!("... > {leaf}"));
    }
}
