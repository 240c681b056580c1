//! The folded-stacks writer: `frame;frame;leaf N`, a line per stack, as
//! inferno, flamegraph.pl and speedscope read it.
//!
//! N is the stack's value of one event (`THESEUS_EVENT`, wall time in
//! nanoseconds unless set). Frames are function names only, outermost
//! first, the task's leaf last with its outcome suffix, as in the callgrind
//! file; stacks that print alike are merged into one line and lines with
//! N = 0 are left out, since a flame graph has nothing to draw for them.
//!
//! A `;` inside a name would split the frame in two (Rust type names have
//! them: `[u8; 4]`), so it is written as `:`, the substitution
//! flamegraph.pl's own stack collapsers make. Readers take the count after
//! the last space, so names keep their spaces.

use crate::profile::{Event, Profile};
use std::collections::BTreeMap;
use std::io::{self, Write};

/// Writes `profile` as folded stacks of `event`, sorted by stack.
pub fn write<W: Write + ?Sized>(out: &mut W, profile: &Profile, event: Event) -> io::Result<()> {
    let mut out = io::BufWriter::new(out);
    for (stack, n) in lines(profile, event) {
        writeln!(out, "{stack} {n}")?;
    }
    out.flush()
}

/// The folded lines of `profile` for `event`, without the newline: stack,
/// then value, sorted by stack, none with a zero value.
pub fn lines(profile: &Profile, event: Event) -> Vec<(String, u64)> {
    let mut merged: BTreeMap<String, u64> = BTreeMap::new();
    for sample in profile.samples() {
        let n = sample.value(event);
        if n == 0 {
            continue;
        }
        let names: Vec<String> = sample
            .frames
            .iter()
            .map(|f| f.name.replace(';', ":"))
            .collect();
        let total = merged.entry(names.join(";")).or_default();
        *total = total.saturating_add(n);
    }
    merged.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Costs;
    use crate::task_record::Outcome;
    use crate::tree::ProfileStack;

    fn stack(names: &[&str], outcome: Outcome, wall_ns: u64) -> ProfileStack {
        let costs = Costs {
            wall_ns,
            tasks: 1,
            ..Costs::default()
        };
        ProfileStack::named(names, outcome, costs)
    }

    #[test]
    fn stacks_that_print_alike_merge_and_zeros_go() {
        let profile = Profile::from_stacks(
            &[
                stack(&["main", "[task] a<[u8; 4]>"], Outcome::Completed, 5),
                stack(&["main", "[task] a<[u8; 4]>"], Outcome::Completed, 7),
                stack(&["main", "[task] a<[u8; 4]>"], Outcome::Cancelled, 1),
                stack(&["main", "[task] b"], Outcome::Completed, 0),
            ],
            &[],
            false,
        );
        let mut out = Vec::new();
        write(&mut out, &profile, Event::WallNs).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "main;[task] a<[u8: 4]> 12\nmain;[task] a<[u8: 4]> (cancelled) 1\n"
        );
        assert_eq!(
            lines(&profile, Event::Tasks),
            [
                ("main;[task] a<[u8: 4]>".to_string(), 2),
                ("main;[task] a<[u8: 4]> (cancelled)".to_string(), 1),
                ("main;[task] b".to_string(), 1),
            ]
        );
    }

    #[test]
    fn tasks_spawned_by_an_unfinished_task_show_below_its_leaf() {
        let profile = Profile::from_stacks(
            &[
                stack(&["main", "[task] serve"], Outcome::Unfinished, 10),
                stack(
                    &["main", "[task] serve", "serve", "[task] conn"],
                    Outcome::Completed,
                    3,
                ),
            ],
            &[],
            false,
        );
        assert_eq!(
            lines(&profile, Event::WallNs),
            [
                ("main;[task] serve (unfinished)".to_string(), 10),
                (
                    "main;[task] serve (unfinished);serve;[task] conn".to_string(),
                    3
                ),
            ]
        );
    }
}
