//! Ground truth: programs with a known shape, profiled, and the figures
//! checked against what the programs did. Tolerances: 5% for times that are
//! set by a sleep or a spin; counts exact.

mod common;

use common::callgrind::parse;
use common::ground::{assert_lengthened, assert_within, profile, profile_file, SERIAL};
use common::readers::{annotate_inclusive, gprof2dot_total_percent};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MS: u64 = 1_000_000;

async fn sleeper(duration: Duration) {
    tokio::time::sleep(duration).await;
}

#[test]
fn sleeping_tasks_show_their_sleep_as_wall_time_and_no_busy_time() {
    let profile = profile("sleep", 2, async {
        let handles: Vec<_> = (0..8)
            .map(|_| theseus::spawn(sleeper(Duration::from_millis(100))))
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
    });
    let leaf = "[task] ground_truth::sleeper";
    assert_eq!(profile.self_of(leaf, "Tasks"), 8);
    // Timers fire no earlier than asked, and as late as a loaded machine
    // makes them.
    assert_lengthened(
        "WallNs of 8 tasks sleeping 100 ms",
        profile.inclusive_of(leaf, "WallNs"),
        800 * MS,
        0.01,
    );
    let busy = profile.self_of(leaf, "BusyNs");
    // 16 polls of microseconds, each of which a preemption on a loaded
    // machine can stretch by a timeslice: a tenth of the wait at most.
    assert!(busy < 80 * MS, "sleeping tasks were busy {busy} ns");
    let idle = profile.inclusive_of(leaf, "IdleNs");
    assert_lengthened("IdleNs of the sleepers", idle, 800 * MS, 0.01);
    assert_eq!(
        profile.self_of(leaf, "Polls"),
        16,
        "a sleep is polled at spawn and once when it fires"
    );
    assert_eq!(profile.inclusive_of(leaf, "Wakes"), 8);
    // All of the waiting is the sleep's: it left the leaf for its await point.
    let sleep = "[await] tokio::time::Sleep";
    let waited = profile.call_cost("ground_truth::sleeper", sleep, "IdleNs");
    assert_lengthened("IdleNs at the sleep", waited, 800 * MS, 0.01);
    assert!(
        waited <= idle,
        "more waiting at the sleep ({waited}) than in all ({idle})"
    );
    assert_eq!(
        profile.call_cost("ground_truth::sleeper", sleep, "Wakes"),
        8
    );
    assert!(profile.self_of(leaf, "IdleNs") < MS);
}

/// Spins for `duration`; returns how long it actually spun, which is longer
/// when the thread was preempted just before it looked at the clock.
async fn spinner(duration: Duration) -> Duration {
    let start = Instant::now();
    let mut x = 1u64;
    while start.elapsed() < duration {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
    std::hint::black_box(x);
    start.elapsed()
}

#[test]
fn spinning_tasks_show_their_spin_as_busy_time() {
    let spun = std::sync::Arc::new(Mutex::new(Duration::ZERO));
    let total = spun.clone();
    let profile = profile("spin", 2, async move {
        let handles: Vec<_> = (0..4)
            .map(|_| theseus::spawn(spinner(Duration::from_millis(50))))
            .collect();
        for handle in handles {
            let spun = handle.await.unwrap();
            *total.lock().unwrap() += spun;
        }
    });
    let leaf = "[task] ground_truth::spinner";
    assert_eq!(profile.self_of(leaf, "Tasks"), 4);
    assert_eq!(profile.self_of(leaf, "Polls"), 4);
    let busy = profile.self_of(leaf, "BusyNs");
    let spun = spun.lock().unwrap().as_nanos() as u64;
    // Against what the tasks measured themselves (5%), which catches a poll
    // counted twice, and at least the nominal 4 x 50 ms: a spin preempted
    // before it sees its 50 ms pass runs on for real, as long as a loaded
    // machine (CI shares its cores) keeps it off the CPU.
    assert!(
        busy >= spun,
        "BusyNs {busy} below the {spun} ns the tasks spun"
    );
    assert_within("BusyNs against the tasks' own spin time", busy, spun, 0.05);
    assert!(busy >= 200 * MS, "BusyNs of 4 tasks spinning 50 ms: {busy}");
}

/// Says it holds the only worker, then holds it without yielding.
async fn blocker(blocking: std::sync::mpsc::Sender<()>) {
    blocking.send(()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
}

/// Says when it begins, then waits for `wake`.
async fn late_riser(
    begun: tokio::sync::oneshot::Sender<Instant>,
    woken_at: std::sync::Arc<Mutex<Option<Instant>>>,
    wake: tokio::sync::oneshot::Receiver<()>,
) {
    begun.send(Instant::now()).unwrap();
    wake.await.unwrap();
    *woken_at.lock().unwrap() = Some(Instant::now());
}

#[test]
fn a_wake_while_every_worker_is_blocked_shows_as_scheduling_delay() {
    let polled_at = std::sync::Arc::new(Mutex::new(None));
    let sent_at = std::sync::Arc::new(Mutex::new(None));
    let first_poll = std::sync::Arc::new(Mutex::new(Duration::ZERO));
    let started = Instant::now();
    let polled = polled_at.clone();
    let sent = sent_at.clone();
    let to_first_poll = first_poll.clone();
    let profile = profile("sched", 1, async move {
        // The wake comes from a plain thread, ~8 ms after the only worker
        // is blocked. (A tokio timer would not do: its expiry is noticed by
        // a worker turning the timer wheel, so with every worker blocked
        // the wake itself comes late, and the wait is idle time, as
        // tokio-metrics counts it too.)
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (begun, begins) = tokio::sync::oneshot::channel();
        let spawned = Instant::now();
        let late = theseus::spawn(late_riser(begun, polled, rx));
        // `late_riser` is in its first poll, which ends at the channel
        // before the only worker can run `blocker`: a loaded machine may
        // start the worker late, so this is waited for, as the blocking is.
        *to_first_poll.lock().unwrap() = begins.await.unwrap() - spawned;
        let (blocking, blocks) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            blocks.recv().unwrap();
            std::thread::sleep(Duration::from_millis(8));
            let before = Instant::now();
            tx.send(()).unwrap();
            *sent.lock().unwrap() = Some((before, Instant::now()));
        });
        let block = theseus::spawn(blocker(blocking));
        late.await.unwrap();
        block.await.unwrap();
    });
    let leaf = "[task] ground_truth::late_riser";
    // The wake comes ~8 ms into the block; the worker is free again at
    // ~100 ms.
    let polled_after = polled_at.lock().unwrap().unwrap() - started;
    assert!(
        polled_after >= Duration::from_millis(100),
        "{polled_after:?}"
    );
    let sched = profile.self_of(leaf, "SchedNs");
    println!(
        "SchedNs of the task woken while the worker was blocked: {:.3} ms",
        sched as f64 / 1e6
    );
    // The wake was noted while the send ran, and the poll it caused began
    // before the task read the clock: the delay between is the scheduling
    // delay, whenever a loaded machine let the thread send (about 92 ms
    // when it sends 8 ms into the block), give or take the difference between
    // theseus's clock and `Instant` (5%, and a millisecond). The spawn is
    // a schedule too: its delay, at most from before the spawn to the
    // task's first reading of the clock, is added (a loaded machine may
    // start the worker's thread late). Waiting counted as idle would leave
    // ~0.
    let (before_send, after_send) = sent_at.lock().unwrap().unwrap();
    let polled = polled_at.lock().unwrap().unwrap();
    let to_first_poll = *first_poll.lock().unwrap();
    let longest = (polled - before_send + to_first_poll).as_nanos() as u64 * 21 / 20 + MS;
    let shortest = polled.saturating_duration_since(after_send).as_nanos() as u64;
    assert!(
        shortest >= 20 * MS,
        "the wake came {shortest} ns before the worker was free: too late to test anything"
    );
    assert!(
        (shortest / 2..=longest).contains(&sched),
        "SchedNs {:.1} ms, expected {:.1} to {:.1} ms",
        sched as f64 / 1e6,
        shortest as f64 / 1e6,
        longest as f64 / 1e6
    );
    assert_eq!(profile.inclusive_of(leaf, "Wakes"), 1);
    // One poll that sleeps 100 ms: a loaded machine wakes it late, a poll
    // counted twice would read at least 200 ms.
    let blocked = profile.self_of("[task] ground_truth::blocker", "BusyNs");
    assert!(
        (100 * MS..200 * MS).contains(&blocked),
        "BusyNs of the blocker: {blocked}"
    );
}

async fn parent() {
    theseus::spawn(child()).await.unwrap();
}

async fn child() {
    theseus::spawn(grandchild()).await.unwrap();
}

async fn grandchild() {
    tokio::time::sleep(Duration::from_millis(5)).await;
}

#[test]
fn a_spawn_chain_shows_as_one_logical_stack() {
    let profile = profile("chain", 2, async {
        theseus::spawn(parent()).await.unwrap();
    });
    // main -> [task] parent -> parent -> [task] child -> child -> [task] grandchild
    let chain = [
        (
            "ground_truth::a_spawn_chain_shows_as_one_logical_stack",
            "[task] ground_truth::parent",
        ),
        ("[task] ground_truth::parent", "ground_truth::parent"),
        ("ground_truth::parent", "[task] ground_truth::child"),
        ("[task] ground_truth::child", "ground_truth::child"),
        ("ground_truth::child", "[task] ground_truth::grandchild"),
    ];
    for (caller, callee) in chain {
        let edges: Vec<_> = profile
            .calls
            .iter()
            .filter(|((a, b, _), _)| a == caller && b == callee)
            .collect();
        assert_eq!(
            edges.len(),
            1,
            "edge {caller} -> {callee}: {:#?}",
            profile.calls.keys()
        );
        let (_, (calls, inclusive)) = edges[0];
        assert!(*calls >= 1);
        // The grandchild's 5 ms sleep is inside every edge above it.
        assert!(
            inclusive[profile.event("WallNs")] >= 5 * MS,
            "{caller} -> {callee}"
        );
    }
    assert_eq!(
        profile.self_of("[task] ground_truth::grandchild", "Tasks"),
        1
    );
    // Each task's own cost sits at its leaf; inclusive costs never exceed the total.
    let wall = profile.event("WallNs");
    for ((a, b, _), (_, inclusive)) in &profile.calls {
        assert!(
            inclusive[wall] <= profile.totals[wall],
            "{a} -> {b} exceeds the total"
        );
    }
}

async fn work() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

async fn serve() {
    let a = theseus::spawn(async { work().await });
    let b = theseus::spawn(work());
    a.await.unwrap();
    b.await.unwrap();
}

/// A task spawned as an async block runs frames named after the function
/// that spawned it (`serve`), which is on its parent's stack too: its waits
/// still sit below its own leaf, never folded into the parent's frames.
#[test]
fn a_task_spawned_as_an_async_block_holds_its_waits() {
    let (profile, dir) = profile_file("async-block", 2, serve());
    // (`main` awaits the task too: `[await] [task] ..` is its wait.)
    let block: Vec<&str> = profile
        .functions("[task] async block in ground_truth::serve (tests/ground_truth.rs:")
        .into_iter()
        .filter(|f| f.starts_with("[task]"))
        .collect();
    assert_eq!(block.len(), 1, "{:#?}", profile.self_cost.keys());
    let leaves = [
        block[0].to_string(),
        "[task] ground_truth::work".to_string(),
    ];
    let path = dir.join("profile.callgrind");
    let annotated = annotate_inclusive(&path);
    let dot = gprof2dot_total_percent(&path);
    let total = profile.totals[profile.event("WallNs")] as f64;
    // A 50 ms sleep never ends early; how late it ends depends on the
    // machine's load, so the bounds are from below, and the readers must
    // agree with each other.
    for leaf in &leaves {
        assert_eq!(profile.self_of(leaf, "Tasks"), 1);
        let wall = profile.inclusive_of(leaf, "WallNs");
        let waited = profile.inclusive_of(leaf, "IdleNs") - profile.self_of(leaf, "IdleNs");
        println!(
            "{leaf}: {:.3} ms inclusive, {:.3} ms of it waiting below the leaf",
            wall as f64 / 1e6,
            waited as f64 / 1e6
        );
        assert!(wall >= 49 * MS, "{leaf}: {wall} ns inclusive");
        assert!(
            waited >= 49 * MS,
            "{leaf}: {waited} ns waited below its leaf"
        );
        assert_eq!(
            annotated.get(leaf),
            Some(&wall),
            "callgrind_annotate of {leaf}"
        );
        let read = (dot.get(leaf).copied().unwrap_or_default() * total / 100.0) as u64;
        assert_within(&format!("gprof2dot of {leaf}"), read, wall, 0.01);
    }
    // Both sleeps are below `work`, which only the tasks' leaves call.
    let sleep = "[await] tokio::time::Sleep";
    let waited = profile.call_cost("ground_truth::work", sleep, "IdleNs");
    assert!(waited >= 98 * MS, "{waited} ns at the two sleeps");
    let callers: Vec<&String> = profile
        .calls
        .keys()
        .filter(|(_, callee, _)| callee == "ground_truth::work")
        .map(|(caller, _, _)| caller)
        .collect();
    assert_eq!(callers.len(), 2, "{callers:?}");
    assert!(callers.iter().all(|c| leaves.contains(c)), "{callers:?}");
}

async fn twin() {}

#[test]
fn two_spawn_sites_in_one_function_stay_separate() {
    let profile = profile("sites", 2, async {
        let first = theseus::spawn(twin());
        let second = theseus::spawn(twin());
        let third = theseus::spawn(twin());
        first.await.unwrap();
        second.await.unwrap();
        third.await.unwrap();
    });
    // The spawns, not `main`'s waits for the tasks (`[await] [task] ..`).
    let mut edges = profile.edges(
        "two_spawn_sites_in_one_function_stay_separate",
        "[task] ground_truth::twin",
    );
    edges.retain(|((_, callee, _), _)| callee.starts_with("[task]"));
    let lines: std::collections::BTreeSet<u64> =
        edges.iter().map(|((_, _, line), _)| *line).collect();
    assert_eq!(
        lines.len(),
        3,
        "three spawn lines, three call sites: {edges:#?}"
    );
    assert!(
        edges.iter().all(|(_, (calls, _))| *calls == 1),
        "{edges:#?}"
    );
    assert_eq!(profile.self_of("[task] ground_truth::twin", "Tasks"), 3);
}

async fn yields_five_times() {
    for _ in 0..5 {
        theseus::task::yield_now().await;
    }
}

async fn receives_three(mut rx: tokio::sync::mpsc::Receiver<u32>) -> u32 {
    let mut sum = 0;
    for _ in 0..3 {
        sum += rx.recv().await.unwrap();
    }
    sum
}

#[test]
fn polls_and_wakes_are_counted_exactly() {
    let profile = profile("counts", 2, async {
        theseus::spawn(yields_five_times()).await.unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let receiver = theseus::spawn(receives_three(rx));
        for value in [1, 2, 3] {
            tokio::time::sleep(Duration::from_millis(5)).await;
            tx.send(value).await.unwrap();
        }
        assert_eq!(receiver.await.unwrap(), 6);
    });
    let yields = "[task] ground_truth::yields_five_times";
    assert_eq!(profile.self_of(yields, "Polls"), 6);
    assert_eq!(profile.inclusive_of(yields, "Wakes"), 5);
    let receives = "[task] ground_truth::receives_three";
    assert_eq!(profile.self_of(receives, "Polls"), 4);
    assert_eq!(profile.inclusive_of(receives, "Wakes"), 3);
}

#[test]
fn cancelled_panicked_and_unfinished_tasks_are_shown_apart() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tracer = theseus::Tracer::new();
    tracer.install();
    let runtime = common::multi_thread(2);
    // Declared after the runtime, so it is dropped before it: if an assertion
    // fails, the unwind stops the spinner before the runtime waits for it.
    let stop = StopOnDrop::default();
    let (shortest, longest, started) = runtime.block_on(async {
        let spawned_before = Instant::now();
        let aborted = theseus::spawn(sleeper(Duration::from_secs(60)));
        let spawned_after = Instant::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let aborting = Instant::now();
        aborted.abort();
        assert!(aborted.await.unwrap_err().is_cancelled());
        let joined = Instant::now();
        assert!(theseus::spawn(async { panic!("on purpose") })
            .await
            .unwrap_err()
            .is_panic());
        // A loaded machine may start the spinner late: its 30 ms are
        // counted from the moment it says it spins.
        let (spinning, started) = tokio::sync::oneshot::channel();
        drop(theseus::spawn(spin_until(stop.0.clone(), spinning)));
        let started: Instant = started.await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        (aborting - spawned_after, joined - spawned_before, started)
    });
    // The spinner is mid-poll: a profile written now shows it unfinished,
    // busy at least since it read its clock in that poll.
    let spun = started.elapsed().as_nanos() as u64;
    let mut text = Vec::new();
    tracer.write_data(&mut text).unwrap();
    let profile = parse(&String::from_utf8(text).unwrap());
    let aborted = profile.inclusive_of("[task] ground_truth::sleeper (cancelled)", "WallNs");
    assert!(
        (shortest.as_nanos() as u64..=longest.as_nanos() as u64).contains(&aborted),
        "the aborted sleeper lived {aborted} ns; it was aborted between {shortest:?} and {longest:?} after its spawn"
    );
    let panicked = profile.functions("(panicked)");
    assert_eq!(panicked.len(), 1, "{panicked:?}");
    assert_eq!(profile.self_of(panicked[0], "Tasks"), 1);
    let unfinished = profile.self_of("[task] ground_truth::spin_until (unfinished)", "BusyNs");
    // 5% for the profiler's clock (the time-stamp counter, calibrated
    // against the system's) drifting from `Instant`'s.
    assert!(
        unfinished >= spun * 95 / 100,
        "the running spinner's busy time so far: {unfinished} ns; it had spun {spun} ns"
    );
    assert_eq!(
        profile.self_of("[task] ground_truth::spin_until (unfinished)", "Tasks"),
        1
    );
    drop(stop);
    drop(runtime);
    tracer.uninstall();
}

/// Tells [`spin_until`] to stop when dropped.
#[derive(Default)]
struct StopOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Says when it starts, then spins in a single poll until told to stop.
async fn spin_until(
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    spinning: tokio::sync::oneshot::Sender<Instant>,
) {
    let _ = spinning.send(Instant::now());
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::hint::spin_loop();
    }
}

/// Bug fixed: tasks cancelled at shutdown showed the cancellation as a wake.
#[test]
fn a_task_never_woken_shows_no_wakes() {
    let profile = profile("never-woken", 2, async {
        for _ in 0..1_000 {
            drop(theseus::spawn(waits_forever()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    });
    let leaf = "[task] ground_truth::waits_forever (cancelled)";
    assert_eq!(profile.self_of(leaf, "Tasks"), 1_000);
    assert_eq!(profile.self_of(leaf, "Polls"), 1_000);
    assert_eq!(profile.self_of(leaf, "Wakes"), 0);
}

async fn waits_forever() {
    std::future::pending::<()>().await
}

/// Bug fixed: a ready task waited behind a busy worker while another worker
/// idled (297 ms late where tokio is at most ~1 ms late). The sleeper is
/// spawned first, as in the report: spawning the spinner first hid it.
#[test]
fn a_ready_task_is_not_held_up_by_a_busy_worker() {
    let lateness = std::sync::Arc::new(Mutex::new(Duration::ZERO));
    let worst = lateness.clone();
    let profile = profile("stall", 2, async move {
        let sleeper = theseus::spawn(late_sleeper(worst));
        tokio::time::sleep(Duration::from_millis(1)).await;
        let spinner = theseus::spawn(spinner(Duration::from_millis(300)));
        sleeper.await.unwrap();
        spinner.await.unwrap();
    });
    let worst = *lateness.lock().unwrap();
    println!("worst lateness of a 5 ms sleep beside a 300 ms spin: {worst:?}");
    // Held up behind the spin, it would be most of 300 ms late; a loaded
    // machine alone made it 66 ms late (other builds sharing the 2 cores).
    assert!(
        worst < Duration::from_millis(150),
        "a 5 ms sleep was {worst:?} late"
    );
    let sched = profile.self_of("[task] ground_truth::late_sleeper", "SchedNs");
    assert!(
        sched < 150 * MS,
        "the sleeper waited {sched} ns for a worker"
    );
}

/// Sleeps 5 ms forty times and records the worst lateness.
async fn late_sleeper(worst: std::sync::Arc<Mutex<Duration>>) {
    for _ in 0..40 {
        let asked = Instant::now();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let late = asked.elapsed().saturating_sub(Duration::from_millis(5));
        let mut worst = worst.lock().unwrap();
        *worst = (*worst).max(late);
    }
}
