//! The tracer and aggregation: install/uninstall order, per-thread
//! aggregates that survive their threads, memory by stack not by task, live
//! tasks in the written profile only.

mod common;

use common::callgrind::parse;
use common::{check_with_readers, serial, Scratch};
use std::sync::Arc;
use theseus_profiler::{
    is_active, record, register_live_tasks, spawn_stack, LiveTasks, Outcome, StackId, TaskId,
    TaskRecord, Tracer,
};

fn rec(stack: u32, outcome: Outcome, wall: u64) -> TaskRecord {
    TaskRecord {
        id: TaskId::next(),
        stack: StackId(stack),
        wall_ns: wall,
        busy_ns: wall / 4,
        sched_ns: wall / 4,
        polls: 2,
        wakes: 1,
        outcome,
        awaits: theseus_profiler::AwaitCosts::NONE,
        kind: theseus_profiler::RecordKind::Task,
    }
}

fn tasks(t: &Tracer) -> u64 {
    t.aggregate().total().tasks
}

#[test]
fn uninstall_restores_the_previous_tracer() {
    let _g = serial();
    assert!(!is_active());
    let a = Tracer::new();
    let b = Tracer::new();
    a.install();
    assert!(is_active() && a.is_active());
    record(&rec(1, Outcome::Completed, 10));
    b.install();
    assert!(b.is_active() && !a.is_active() && a.is_installed());
    record(&rec(1, Outcome::Completed, 10));
    record(&rec(1, Outcome::Completed, 10));
    b.uninstall();
    assert!(a.is_active() && !b.is_installed());
    record(&rec(1, Outcome::Completed, 10));
    assert_eq!((tasks(&a), tasks(&b)), (2, 2));

    // Uninstalling one that is not on top leaves the top one active.
    b.install();
    a.uninstall();
    assert!(b.is_active());
    record(&rec(1, Outcome::Completed, 10));
    b.uninstall();
    assert!(!is_active());
    record(&rec(1, Outcome::Completed, 10));
    assert_eq!((tasks(&a), tasks(&b)), (2, 3));

    // Uninstalling twice, or something never installed, changes nothing.
    a.install();
    Tracer::new().uninstall();
    b.uninstall();
    assert!(a.is_active());
    a.uninstall();
    assert!(!is_active());
}

#[test]
fn dropping_a_tracer_uninstalls_it() {
    let _g = serial();
    let a = Tracer::new();
    a.install();
    {
        let b = Tracer::new();
        b.install();
        assert!(b.is_active());
    }
    assert!(a.is_active());
    drop(a);
    assert!(!is_active());
}

#[test]
fn a_million_records_of_a_few_stacks_take_the_room_of_a_thousand() {
    let _g = serial();
    let outcomes = [Outcome::Completed, Outcome::Cancelled];
    let run = |n: u64| {
        let t = Tracer::new();
        t.install();
        for i in 0..n {
            record(&rec(
                (i % 5) as u32 + 1,
                outcomes[(i % 3 == 0) as usize],
                100,
            ));
        }
        t.uninstall();
        t
    };
    let small = run(1_000).aggregate();
    let big = run(1_000_000).aggregate();
    assert_eq!(small.len(), 10);
    assert_eq!(big.len(), small.len());
    assert_eq!(big.total().tasks, 1_000_000);
    assert_eq!(big.total().wall_ns, 100_000_000);
    assert_eq!(big.total().idle_ns, 50_000_000);
    let c = big.get(StackId(1), Outcome::Cancelled).unwrap();
    assert_eq!(
        c.tasks,
        (0..1_000_000u64)
            .filter(|i| i % 5 == 0 && i % 3 == 0)
            .count() as u64
    );
}

#[test]
fn records_of_exited_threads_survive_and_merge() {
    let _g = serial();
    let t = Tracer::new();
    t.install();
    let handles: Vec<_> = (0..8)
        .map(|k| {
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    record(&rec(k % 3 + 1, Outcome::Completed, 7));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // A thread still alive keeps its own aggregate: merged at snapshot too.
    let (tx, rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let live = std::thread::spawn(move || {
        record(&rec(9, Outcome::Panicked, 7));
        tx.send(()).unwrap();
        done_rx.recv().unwrap();
    });
    rx.recv().unwrap();
    let snap = t.aggregate();
    assert_eq!(snap.total().tasks, 8001);
    assert_eq!(snap.len(), 4);
    assert_eq!(
        snap.get(StackId(1), Outcome::Completed).unwrap().tasks,
        3000
    );
    done_tx.send(()).unwrap();
    live.join().unwrap();
    assert_eq!(t.aggregate().total().tasks, 8001);
    t.uninstall();
}

#[test]
fn a_thread_follows_the_active_tracer() {
    let _g = serial();
    let a = Tracer::new();
    let b = Tracer::new();
    a.install();
    record(&rec(1, Outcome::Completed, 1));
    b.install();
    record(&rec(1, Outcome::Completed, 1));
    b.uninstall();
    record(&rec(1, Outcome::Completed, 1));
    a.uninstall();
    assert_eq!((tasks(&a), tasks(&b)), (2, 1));
}

struct Live(Vec<TaskRecord>);

impl LiveTasks for Live {
    fn for_each_live(&self, f: &mut dyn FnMut(TaskRecord)) {
        for r in &self.0 {
            f(*r);
        }
    }
}

#[track_caller]
fn stack_here(name: &'static str) -> StackId {
    spawn_stack(std::panic::Location::caller(), name)
}

#[test]
fn live_tasks_are_written_as_unfinished_but_not_kept() {
    let _g = serial();
    let t = Tracer::new();
    t.install();
    let finished = stack_here("app::finished_future");
    let running = stack_here("app::running_future");
    record(&TaskRecord {
        stack: finished,
        ..rec(0, Outcome::Completed, 1_000)
    });
    let source: Arc<dyn LiveTasks> = Arc::new(Live(vec![
        TaskRecord {
            stack: running,
            ..rec(0, Outcome::Completed, 5_000)
        },
        TaskRecord {
            stack: running,
            ..rec(0, Outcome::Completed, 3_000)
        },
    ]));
    register_live_tasks(Arc::downgrade(&source));

    let mut out = Vec::new();
    t.write_data(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let p = parse(&text);
    assert_eq!(p.totals[0], 9_000);
    assert_eq!(p.totals[6], 3);
    let unfinished: u64 = p
        .self_cost
        .iter()
        .filter(|(name, _)| name.ends_with(" (unfinished)"))
        .map(|(_, c)| c[6])
        .sum();
    assert_eq!(unfinished, 2);
    // Not added to the aggregate: the tasks may still finish and be recorded.
    assert_eq!(t.aggregate().total().tasks, 1);
    let stacks = t.stacks();
    assert!(stacks
        .iter()
        .any(|s| s.outcome == Outcome::Unfinished && s.costs.tasks == 2));

    // A dropped source is forgotten.
    drop(source);
    let mut out = Vec::new();
    t.write_data(&mut out).unwrap();
    let p = parse(&String::from_utf8(out).unwrap());
    assert_eq!(p.totals[6], 1);
    t.uninstall();
}

#[test]
fn a_tracer_profile_passes_the_readers() {
    let _g = serial();
    let t = Tracer::new();
    t.install();
    let ids = [
        stack_here("app::alpha"),
        stack_here("app::beta"),
        StackId::ROOT,
    ];
    let threads: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            std::thread::spawn(move || {
                for k in 0..100u64 {
                    record(&TaskRecord {
                        stack: id,
                        ..rec(
                            0,
                            [Outcome::Completed, Outcome::Cancelled][(k % 2) as usize],
                            10 + i as u64,
                        )
                    });
                }
            })
        })
        .collect();
    for h in threads {
        h.join().unwrap();
    }
    t.uninstall();
    let dir = Scratch::new("tracer");
    let path = dir.join("out.callgrind");
    let mut file = std::fs::File::create(&path).unwrap();
    t.write_data(&mut file).unwrap();
    drop(file);
    let p = check_with_readers(&path);
    assert_eq!(p.totals[6], 300);
    assert_eq!(p.totals[0], 100 * (10 + 11 + 12));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nothing_is_recorded_without_a_tracer() {
    let _g = serial();
    let t = Tracer::new();
    t.install();
    record(&rec(1, Outcome::Completed, 1));
    t.uninstall();
    assert!(!is_active());
    // Made with no tracer active, this record goes to none: not to the one
    // this thread recorded into last, nor to the next one installed.
    record(&rec(1, Outcome::Completed, 1));
    assert_eq!(tasks(&t), 1);
    t.install();
    assert_eq!(tasks(&t), 1);
    t.uninstall();
}

/// A live-task source whose tasks can be changed between cuts.
struct Changing(std::sync::Mutex<Vec<TaskRecord>>);

impl LiveTasks for Changing {
    fn for_each_live(&self, f: &mut dyn FnMut(TaskRecord)) {
        for r in self.0.lock().unwrap().iter() {
            f(*r);
        }
    }
}

#[test]
fn intervals_report_a_long_task_in_pieces_that_add_up() {
    let _g = serial();
    let t = Tracer::new();
    t.install();
    let stack = stack_here("app::long_future");
    let long = TaskRecord {
        stack,
        ..rec(0, Outcome::Unfinished, 1_000)
    };
    let source = Arc::new(Changing(std::sync::Mutex::new(vec![long])));
    let weak: std::sync::Weak<dyn LiveTasks> = Arc::downgrade(&source) as _;
    register_live_tasks(weak);
    record(&rec(1, Outcome::Completed, 10));
    let first = t.take_interval();
    assert_eq!(first.totals()[0], 1_010);

    // The long task runs on; another finishes, from another thread.
    source.0.lock().unwrap()[0].wall_ns = 4_000;
    std::thread::spawn(|| record(&rec(1, Outcome::Completed, 20)))
        .join()
        .unwrap();
    let second = t.take_interval();
    assert_eq!(second.totals()[0], 3_000 + 20);
    let stacks = second.stacks();
    let live = stacks
        .iter()
        .find(|s| s.outcome == Outcome::Unfinished)
        .unwrap();
    assert_eq!((live.costs.wall_ns, live.costs.tasks), (3_000, 1));

    // It ends: its record is kept whole and only the rest is reported.
    source.0.lock().unwrap().clear();
    record(&TaskRecord {
        outcome: Outcome::Cancelled,
        wall_ns: 4_500,
        ..long
    });
    let third = t.take_interval();
    assert_eq!(third.totals()[0], 500);
    assert!(third
        .stacks()
        .iter()
        .all(|s| s.outcome == Outcome::Cancelled));
    t.uninstall();

    // The whole run holds every task once, at full cost.
    let whole = t.to_profile();
    assert_eq!(whole.totals()[0], 10 + 20 + 4_500);
    let sum: u64 = [first, second, third].iter().map(|p| p.totals()[0]).sum();
    assert_eq!(sum, whole.totals()[0]);
    drop(source);
}

#[test]
fn overlapping_windows_and_intervals_each_get_their_own_time() {
    let _g = serial();
    let t = Tracer::new();
    t.install();
    let stack = stack_here("app::long_future");
    let long = TaskRecord {
        stack,
        ..rec(0, Outcome::Unfinished, 1_000)
    };
    let source = Arc::new(Changing(std::sync::Mutex::new(vec![long])));
    let weak: std::sync::Weak<dyn LiveTasks> = Arc::downgrade(&source) as _;
    register_live_tasks(weak);
    record(&rec(1, Outcome::Completed, 10));
    let first = t.take_interval();
    assert_eq!(first.totals()[0], 1_010);

    let outer = t.open_window();
    source.0.lock().unwrap()[0].wall_ns = 4_000;
    std::thread::spawn(|| record(&rec(1, Outcome::Completed, 20)))
        .join()
        .unwrap();
    let inner = t.open_window();
    let second = t.take_interval();
    assert_eq!(second.totals()[0], 3_000 + 20);

    // The long task ends inside both windows; one more task ends.
    source.0.lock().unwrap().clear();
    record(&TaskRecord {
        outcome: Outcome::Cancelled,
        wall_ns: 4_500,
        ..long
    });
    record(&rec(1, Outcome::Completed, 5));
    let never_read = t.open_window();
    let inner = inner.close();
    assert_eq!(inner.totals()[0], 500 + 5);
    let outer = outer.close();
    assert_eq!(outer.totals()[0], 3_500 + 20 + 5);
    assert_eq!(outer.totals()[6], 3, "each task once: {:?}", outer.totals());
    assert!(outer
        .stacks()
        .iter()
        .all(|s| s.outcome != Outcome::Unfinished));
    drop(never_read);
    let third = t.take_interval();
    assert_eq!(third.totals()[0], 500 + 5);
    t.uninstall();

    let whole = t.to_profile();
    let sum: u64 = [first, second, third].iter().map(|p| p.totals()[0]).sum();
    assert_eq!(sum, whole.totals()[0]);
    drop(source);
}
