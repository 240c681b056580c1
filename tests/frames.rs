//! Ground truth for frames: marked futures that wait and work for known
//! times, inside theseus tasks, inside `tokio::spawn` tasks, inside other
//! frames, each checked under its `[frame]` leaf, with the enclosing
//! task's leaf still holding the task's whole cost.
//!
//! Waits are deadlines or sleeps of known length; a sleep's lateness only
//! adds, so the bounds below allow it above and nothing below.

mod common;

use common::callgrind::Profile;
use common::ground::{assert_between, profile};
use common::polled::Polled;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MS: u64 = 1_000_000;
const CALLS: u64 = 10;
const SLEEP: &str = "[await] tokio::time::Sleep";
const DB_QUERY: &str = "[frame] frames::db_query";

/// Keeps the thread busy for `ms` of wall time, and adds how long it
/// really took to `burned`: a spin preempted near its end ends late on a
/// loaded machine, and that lateness is busy time too.
fn burn(ms: u64, burned: &AtomicU64) {
    let start = Instant::now();
    let until = start + Duration::from_millis(ms);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
    burned.fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
}

/// The spins inside `db_query` frames, and in their tasks outside them.
static FRAME_BURN_NS: AtomicU64 = AtomicU64::new(0);
static TASK_BURN_NS: AtomicU64 = AtomicU64::new(0);

/// The polls of the futures [`Polled`] wraps here, timed from outside them.
static POLLED_NS: AtomicU64 = AtomicU64::new(0);

/// What the workload measured of itself, taken (and reset) after a run.
struct Measured {
    queried: u64,
    inside: u64,
    frame_burn: u64,
    task_burn: u64,
    polled: u64,
}

fn measured() -> Measured {
    Measured {
        queried: QUERIED_NS.swap(0, Relaxed),
        inside: INSIDE_NS.swap(0, Relaxed),
        frame_burn: FRAME_BURN_NS.swap(0, Relaxed),
        task_burn: TASK_BURN_NS.swap(0, Relaxed),
        polled: POLLED_NS.swap(0, Relaxed),
    }
}

/// Held by every test that runs the functions feeding the counters above,
/// so that one test's runs never add to another's figures.
static MEASURING: Mutex<()> = Mutex::new(());

/// The profile of the second run of `main()`, with what that run measured:
/// the first one captures each stack (an unwind, the first time a spawn
/// site, frame or await point is seen), which the figures checked here
/// should not include.
fn warm_profile<F: std::future::Future<Output = ()>>(
    name: &str,
    main: impl Fn() -> F,
) -> (Profile, Measured) {
    let _measuring = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    profile(name, 2, main());
    measured();
    let profile = profile(name, 2, main());
    (profile, measured())
}

#[theseus::profiled]
async fn db_query(id: u64) -> Result<u64, String> {
    let start = Instant::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    burn(2, &FRAME_BURN_NS);
    INSIDE_NS.fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
    if id == u64::MAX {
        return Err("no such row".to_string());
    }
    Ok(id * 2)
}

/// The wall time the callers of `db_query` saw, summed: what the frames'
/// `WallNs` must show, lateness included.
static QUERIED_NS: AtomicU64 = AtomicU64::new(0);

/// The wall time `db_query`'s body saw of itself, summed: what the frames'
/// `WallNs` must hold at least.
static INSIDE_NS: AtomicU64 = AtomicU64::new(0);

/// `db_query(id)`, timed by its caller.
async fn timed_query(id: u64) -> Result<u64, String> {
    let start = Instant::now();
    let result = db_query(id).await;
    QUERIED_NS.fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
    result
}

/// Ten queries, then 30 ms of its own waiting, then 3 ms of its own work.
async fn handler() {
    let start = Instant::now();
    for id in 0..CALLS {
        assert_eq!(timed_query(id).await, Ok(id * 2));
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    burn(3, &TASK_BURN_NS);
    HANDLED_NS.store(start.elapsed().as_nanos() as u64, Relaxed);
}

/// The wall time `handler` saw of itself, from its first poll to its end.
static HANDLED_NS: AtomicU64 = AtomicU64::new(0);

/// Every event of a task's leaf, inclusively, is the whole task's: the
/// frames inside it took their costs off the task's own. `body` is the wall
/// time the task's body saw of itself, `wall` what its spawner saw from the
/// spawn to the join (later by as much as a loaded machine delays the join).
fn assert_leaf_holds_the_task(profile: &Profile, leaf: &str, body: u64, wall: u64) {
    let inclusive = |event| profile.inclusive_of(leaf, event);
    assert_eq!(
        inclusive("WallNs"),
        inclusive("BusyNs") + inclusive("SchedNs") + inclusive("IdleNs"),
        "{leaf}: WallNs is busy + sched + idle"
    );
    // Counted once: were the frames' costs left on the task too, it would
    // show 220 ms more than it lived.
    assert_between(
        &format!("{leaf} WallNs, against its body's and its spawner's clocks"),
        inclusive("WallNs"),
        body,
        0.05,
        wall.saturating_sub(body),
    );
}

#[test]
fn a_frame_in_a_task_is_timed_below_its_leaf_and_leaves_the_task_its_own() {
    let wall = AtomicU64::new(0);
    let (profile, measured) = warm_profile("frames-in-a-task", || async {
        let start = Instant::now();
        theseus::spawn(Polled::timed(handler(), &POLLED_NS))
            .await
            .unwrap();
        wall.store(start.elapsed().as_nanos() as u64, Relaxed);
    });
    let wall = wall.load(Relaxed);
    let task = "[task] frames::common::polled::Polled<frames::handler>";
    assert_eq!(profile.self_of(task, "Tasks"), 1);
    assert_eq!(profile.self_of(task, "Frames"), 0);
    assert_eq!(profile.self_of(DB_QUERY, "Frames"), CALLS);
    assert_eq!(profile.self_of(DB_QUERY, "Tasks"), 0);
    assert_eq!(profile.totals[profile.event("Frames")], CALLS);
    assert_eq!(profile.totals[profile.event("Tasks")], 1);
    // The frame hangs below the task's leaf, through the fn that awaits it.
    let polled = "<frames::common::polled::Polled<F> as core::future::future::Future>::poll";
    assert!(
        !profile.edges(task, polled).is_empty()
            && !profile.edges(polled, "frames::handler").is_empty(),
        "{:#?}",
        profile.calls
    );
    assert!(
        !profile.edges("frames::timed_query", DB_QUERY).is_empty(),
        "{:#?}",
        profile.calls
    );
    assert_query_frames(&profile, CALLS, &measured);
    // The task keeps only its own: 30 ms asleep, its 3 ms spin, and the
    // rest of its polls, as timed from outside them, that was not the
    // frames' spins (theseus's work around each frame, and what a loaded
    // machine preempted). A frame whose costs stayed with the task would
    // add its 2 ms of work to what is left of the polls beside the frames'.
    let own_busy = profile.self_of(task, "BusyNs");
    let beside = measured
        .polled
        .saturating_sub(measured.frame_burn + measured.task_burn);
    assert_between(
        "task's own BusyNs, against its spin and its polls beside the frames' spins",
        own_busy,
        measured.task_burn,
        0.05,
        // And the edges of its polls that theseus times outside `Polled`.
        beside + 2 * SLACK,
    );
    let own_sleep = profile.call_cost("frames::handler", SLEEP, "IdleNs");
    assert_between("task's own sleep", own_sleep, 30 * MS, 0.05, 30 * MS);
    assert_leaf_holds_the_task(&profile, task, HANDLED_NS.swap(0, Relaxed), wall);
}

/// What a loaded machine may add to the polls of one call beyond the work
/// they do: a worker preempted outside the spin (lateness, as a timer's).
const SLACK: u64 = MS / 2;

/// `calls` frames of `db_query`: 2 ms busy and a 20 ms sleep each, the
/// sleep under the frame, as long in all as its callers saw.
fn assert_query_frames(profile: &Profile, calls: u64, measured: &Measured) {
    let queried = measured.queried;
    assert_eq!(profile.self_of(DB_QUERY, "Frames"), calls);
    let frame = |event| profile.inclusive_of(DB_QUERY, event);
    // Between what the body saw of itself and what its callers saw: a
    // thread preempted between a caller's clock and the frame's start or
    // end (4 ms of a single 27 ms call was seen on a loaded machine) puts
    // time outside the frame that its caller still sees.
    assert_between(
        "frame WallNs against its body's and its callers' clocks",
        frame("WallNs"),
        measured.inside,
        0.05,
        queried.saturating_sub(measured.inside),
    );
    // Between the frames' spins and the polls of their task, timed from
    // outside them (what a loaded machine preempted in those polls).
    let busy = frame("BusyNs");
    assert!(measured.frame_burn >= calls * 2 * MS);
    assert!(measured.polled > 0, "the task's polls were not timed");
    assert_between(
        "frame BusyNs, against its spins and its task's polls",
        busy,
        measured.frame_burn,
        0.05,
        measured.polled.saturating_sub(measured.frame_burn),
    );
    let slept = profile.call_cost("frames::db_query", SLEEP, "IdleNs");
    assert_between(
        "frame's sleep",
        slept,
        calls * 20 * MS,
        0.05,
        queried - calls * 20 * MS,
    );
    assert!(slept <= frame("WallNs") - busy);
}

#[theseus::profiled]
async fn outer_frame() {
    timed_query(1).await.unwrap();
    theseus::profiled(tokio::time::sleep(Duration::from_millis(10))).await;
}

async fn nests() {
    outer_frame().await;
}

#[test]
fn frames_nest_and_any_future_can_be_one() {
    let outer_ns = AtomicU64::new(0);
    let (profile, measured) = warm_profile("frames-nest", || async {
        let start = Instant::now();
        theseus::spawn(Polled::timed(nests(), &POLLED_NS))
            .await
            .unwrap();
        outer_ns.store(start.elapsed().as_nanos() as u64, Relaxed);
    });
    let outer_ns = outer_ns.load(Relaxed);
    let queried = measured.queried;
    let outer = "[frame] frames::outer_frame";
    assert_eq!(profile.self_of(outer, "Frames"), 1);
    assert!(!profile.edges("frames::timed_query", DB_QUERY).is_empty());
    let sleep_frame = profile.functions("[frame] tokio::time::sleep::Sleep");
    assert_eq!(sleep_frame.len(), 1, "{:?}", profile.functions("[frame]"));
    assert!(!profile
        .edges("frames::outer_frame", sleep_frame[0])
        .is_empty());
    assert_query_frames(&profile, 1, &measured);
    let sleep = profile.inclusive_of(sleep_frame[0], "WallNs");
    assert_between(
        "the sleep's frame",
        sleep,
        10 * MS,
        0.05,
        outer_ns - queried,
    );
    // The inner frames hold nearly all of it: at least what the query's
    // body saw of itself, and the sleep.
    let inclusive = profile.inclusive_of(outer, "WallNs");
    assert!(inclusive <= outer_ns, "{inclusive} > {outer_ns}");
    assert!(
        profile.self_of(outer, "WallNs") <= inclusive - measured.inside * 95 / 100 - sleep,
        "the inner frames hold it all"
    );
    assert_eq!(profile.totals[profile.event("Frames")], 3);
}

/// Ten queries, in whatever task runs this.
async fn queries() {
    for id in 0..CALLS {
        timed_query(id).await.unwrap();
    }
}

/// A `tokio::spawn` task with no hooks to see it: its frames are still
/// timed, with their await points.
#[test]
fn a_frame_in_a_tokio_task_has_its_await_points() {
    let (profile, measured) = warm_profile("frames-in-tokio-spawn", || async {
        tokio::spawn(Polled::timed(queries(), &POLLED_NS))
            .await
            .unwrap();
    });
    assert_query_frames(&profile, CALLS, &measured);
}

struct Repo<T> {
    scale: T,
}

impl<T: Copy + Into<u64> + Send + Sync> Repo<T> {
    #[theseus::profiled]
    async fn find(&self, id: u64) -> Result<u64, std::num::TryFromIntError> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let small = u8::try_from(id)?;
        Ok(u64::from(small) * self.scale.into())
    }

    #[theseus::profiled]
    async fn consume(self, extra: impl Into<u64>) -> u64 {
        self.scale.into() + extra.into()
    }
}

#[test]
fn methods_with_self_generics_and_results_are_frames() {
    let _measuring = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let profile = profile("frames-methods", 2, async {
        let repo = Repo { scale: 3u8 };
        assert_eq!(repo.find(4).await, Ok(12));
        assert!(repo.find(300).await.is_err());
        assert_eq!(repo.consume(1u32).await, 4);
    });
    let find = profile.functions("Repo<_>::find");
    let find: Vec<_> = find.iter().filter(|f| f.starts_with("[frame] ")).collect();
    assert_eq!(find.len(), 1, "{:?}", profile.functions("[frame]"));
    assert_eq!(profile.self_of(find[0], "Frames"), 2);
    let consume = profile.functions("[frame] frames::Repo<_>::consume");
    assert_eq!(consume.len(), 1, "{:?}", profile.functions("[frame]"));
}
