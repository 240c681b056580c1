//! Ground truth for await points: programs that wait in known places for
//! known times, profiled, and each wait checked under the await point it
//! belongs to. Times are checked against what the tasks saw of their own
//! waits (a loaded machine fires timers late and polls tasks late), within
//! 10%; counts exact.
//!
//! Every task here is a named async fn, so that each test names its leaves
//! and chains plainly.

mod common;

use common::callgrind::Profile;
use common::ground::{
    assert_between, assert_lengthened, assert_within, profile, profile_file, profile_with_awaits,
};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use theseus::profiler::AwaitMode;
use tokio::sync::{mpsc, oneshot, Mutex, Semaphore};
use tokio::time::Instant;

const MS: u64 = 1_000_000;
const TASKS: u64 = 5;
const SLEEP: &str = "[await] tokio::time::Sleep";
const ONESHOT: &str = "[await] tokio::sync::oneshot::Receiver";
const RECV: &str = "[await] tokio::sync::mpsc::bounded::Receiver::recv";

/// The waits of one kind the tasks saw by their own clock: each from just
/// before its await to just after it, and when known, the moment what it
/// awaited could first end it.
#[derive(Default)]
struct Waits(std::sync::Mutex<Vec<(Instant, Instant, Option<Instant>)>>);

impl Waits {
    /// Records a wait that began at `before` and has just ended.
    fn ended(&self, before: Instant) {
        self.0.lock().unwrap().push((before, Instant::now(), None));
    }

    /// [`Waits::ended`], for a wait that could end no earlier than `ready`.
    fn ended_after(&self, before: Instant, ready: Instant) {
        let wait = (before, Instant::now(), Some(ready));
        self.0.lock().unwrap().push(wait);
    }

    /// Checks `idle`, the profile's waiting at their await point, against
    /// what the tasks saw: each wait lasted at least from its start until
    /// `ready(start)` (or the moment recorded with it), when what it
    /// awaited could first end it (a timer's deadline, a message sent, a
    /// lock released), and at most until the task saw it end.
    ///
    /// A loaded machine fires timers late, starts tasks late and polls
    /// woken tasks late, which moves every figure here; the tasks' own
    /// clock moves with them. 10%: the profile's clock (the time-stamp
    /// counter) against `Instant`'s, and the moment from the start to the
    /// poll's end that began the wait.
    fn check(&self, what: &str, idle: u64, ready: impl Fn(Instant) -> Instant) {
        check_waited(what, idle, self.bounds(ready));
    }

    /// The least and the most the waits lasted, summed, in nanoseconds.
    fn bounds(&self, ready: impl Fn(Instant) -> Instant) -> (u64, u64) {
        let waits = self.0.lock().unwrap();
        let nanos = |d: Duration| d.as_nanos() as u64;
        let least = waits
            .iter()
            .map(|(before, _, known)| {
                let ready = known.unwrap_or_else(|| ready(*before));
                nanos(ready.saturating_duration_since(*before))
            })
            .sum();
        let most = waits
            .iter()
            .map(|(before, after, _)| nanos(*after - *before))
            .sum();
        (least, most)
    }
}

/// [`Waits::check`] for waits whose bounds are summed already.
fn check_waited(what: &str, idle: u64, (least, most): (u64, u64)) {
    assert_between(what, idle, least, 0.10, most.saturating_sub(least));
}

/// Each task's own cost plus its await points' is the whole task: the
/// waits moved, nothing was lost or made up.
fn assert_leaf_keeps_the_rest(profile: &Profile, leaf: &str, tasks: u64) {
    assert_eq!(profile.self_of(leaf, "Tasks"), tasks);
    for event in ["WallNs", "IdleNs", "Wakes"] {
        assert!(profile.inclusive_of(leaf, event) >= profile.self_of(leaf, event));
    }
    let wall = profile.inclusive_of(leaf, "WallNs");
    let parts = profile.inclusive_of(leaf, "BusyNs")
        + profile.inclusive_of(leaf, "SchedNs")
        + profile.inclusive_of(leaf, "IdleNs");
    assert_eq!(wall, parts, "{leaf}: WallNs is busy + sched + idle");
}

/// What the tasks of [`a_then_b`] saw: when they began, their waits in `a`
/// and `b`, and when the channels were filled.
#[derive(Default)]
struct SeenAB {
    start: OnceLock<Instant>,
    in_a: Waits,
    in_b: Waits,
    filled: OnceLock<Instant>,
}

impl SeenAB {
    /// The moment a wait that began at `before` could end: `a`'s deadline
    /// or the filling of the channels.
    fn a_ready(&self, _before: Instant) -> Instant {
        self.start.get().copied().unwrap() + Duration::from_millis(100)
    }

    fn b_ready(&self, _before: Instant) -> Instant {
        self.filled.get().copied().unwrap()
    }
}

async fn waits_in_a_then_b(start: Instant, rx: oneshot::Receiver<()>, seen: Arc<SeenAB>) {
    let before = Instant::now();
    a(start).await;
    seen.in_a.ended(before);
    let before = Instant::now();
    b(rx).await;
    seen.in_b.ended(before);
}

/// Waits until 100 ms after `start`: deadlines, not durations, so that a
/// task polled late on a busy machine still waits until the same moment.
async fn a(start: Instant) {
    tokio::time::sleep_until(start + Duration::from_millis(100)).await;
}

async fn b(rx: oneshot::Receiver<()>) {
    rx.await.unwrap();
}

/// Fills every channel 160 ms after `start`: 60 ms after `a` is done.
async fn fills_later(start: Instant, senders: Vec<oneshot::Sender<()>>, seen: Arc<SeenAB>) {
    tokio::time::sleep_until(start + Duration::from_millis(160)).await;
    seen.filled.set(Instant::now()).unwrap();
    for tx in senders {
        tx.send(()).unwrap();
    }
}

async fn a_then_b(seen: Arc<SeenAB>) {
    let start = Instant::now();
    seen.start.set(start).unwrap();
    let mut handles = Vec::new();
    let mut senders = Vec::new();
    for _ in 0..TASKS {
        let (tx, rx) = oneshot::channel();
        handles.push(theseus::spawn(waits_in_a_then_b(start, rx, seen.clone())));
        senders.push(tx);
    }
    let filler = theseus::spawn(fills_later(start, senders, seen));
    for handle in handles {
        handle.await.unwrap();
    }
    filler.await.unwrap();
}

fn check_a_then_b(profile: &Profile, seen: &SeenAB) {
    let in_a = profile.call_cost("await_points::a", SLEEP, "IdleNs");
    seen.in_a
        .check("IdleNs of 5 timers of 100 ms in a", in_a, |t| {
            seen.a_ready(t)
        });
    let in_b = profile.call_cost("await_points::b", ONESHOT, "IdleNs");
    seen.in_b
        .check("IdleNs of 5 channels filled 60 ms later in b", in_b, |t| {
            seen.b_ready(t)
        });
    assert_eq!(profile.call_cost("await_points::a", SLEEP, "Wakes"), TASKS);
    assert_eq!(
        profile.call_cost("await_points::b", ONESHOT, "Wakes"),
        TASKS
    );
    // An await point's wall time is its waiting.
    assert_eq!(profile.call_cost("await_points::a", SLEEP, "WallNs"), in_a);
    // The chain: the task's leaf, its fn, the fn that awaited, the leaf.
    let leaf = "[task] await_points::waits_in_a_then_b";
    for (caller, callee) in [
        (leaf, "await_points::waits_in_a_then_b"),
        ("await_points::waits_in_a_then_b", "await_points::a"),
        ("await_points::waits_in_a_then_b", "await_points::b"),
    ] {
        assert!(
            !profile.edges(caller, callee).is_empty(),
            "no {caller} -> {callee}: {:#?}",
            profile.calls.keys()
        );
    }
    assert_leaf_keeps_the_rest(profile, leaf, TASKS);
    let left = profile.self_of(leaf, "IdleNs");
    assert!(left < 5 * MS, "{left} ns of idle time left on the leaf");
    assert_eq!(profile.self_of(leaf, "Wakes"), 0);
}

#[test]
fn idle_time_is_split_by_await_point() {
    let seen = Arc::new(SeenAB::default());
    let profile = profile("awaits-a-b", 2, a_then_b(seen.clone()));
    check_a_then_b(&profile, &seen);
}

/// The default mode recognizes await points without unwinding; unwinding
/// every time must find the same ones.
#[test]
fn unwinding_every_time_finds_the_same_await_points() {
    let seen = Arc::new(SeenAB::default());
    let full = profile_with_awaits("awaits-full", AwaitMode::Full, 2, a_then_b(seen.clone()));
    check_a_then_b(&full, &seen);
    let default = profile("awaits-default", 2, a_then_b(Arc::default()));
    let awaits = |p: &Profile| -> Vec<(String, String)> {
        p.calls
            .keys()
            .filter(|(_, callee, _)| callee.starts_with("[await]"))
            .map(|(caller, callee, _)| (caller.clone(), callee.clone()))
            .collect()
    };
    assert_eq!(awaits(&full), awaits(&default));
}

#[test]
fn with_await_points_off_the_waits_stay_on_the_leaf() {
    let seen = Arc::new(SeenAB::default());
    let profile = profile_with_awaits("awaits-off", AwaitMode::Off, 2, a_then_b(seen.clone()));
    assert!(profile.functions("[await]").is_empty());
    let leaf = "[task] await_points::waits_in_a_then_b";
    // Both waits, as the tasks saw them, one after the other.
    let (least_a, most_a) = seen.in_a.bounds(|t| seen.a_ready(t));
    let (least_b, most_b) = seen.in_b.bounds(|t| seen.b_ready(t));
    check_waited(
        "IdleNs on the leaf with await points off",
        profile.self_of(leaf, "IdleNs"),
        (least_a + least_b, most_a + most_b),
    );
}

/// Waits in `select!` for whichever comes first: a timer at `timer`, or a
/// message.
async fn selects(timer: Instant, mut rx: mpsc::Receiver<()>, seen: Arc<SeenSelect>) {
    let before = Instant::now();
    tokio::select! {
        _ = tokio::time::sleep_until(timer) => {}
        _ = rx.recv() => {}
    }
    seen.waits.ended(before);
}

/// What the tasks of [`select_race`] saw: their waits in `select!`, and
/// when the timers were due and the messages sent.
#[derive(Default)]
struct SeenSelect {
    waits: Waits,
    timer: OnceLock<Instant>,
    sent: OnceLock<Instant>,
}

/// Sends to every channel at `at`, or never (dropping them then).
async fn sends_at(at: Instant, senders: Vec<mpsc::Sender<()>>, send: bool, seen: Arc<SeenSelect>) {
    tokio::time::sleep_until(at).await;
    seen.sent.set(Instant::now()).unwrap();
    for tx in senders {
        if send {
            tx.send(()).await.unwrap();
        }
    }
}

async fn select_race(timer: Duration, message: Duration, send: bool, seen: Arc<SeenSelect>) {
    let start = Instant::now();
    seen.timer.set(start + timer).unwrap();
    let mut handles = Vec::new();
    let mut senders = Vec::new();
    for _ in 0..TASKS {
        let (tx, rx) = mpsc::channel(1);
        handles.push(theseus::spawn(selects(start + timer, rx, seen.clone())));
        senders.push(tx);
    }
    let sender = theseus::spawn(sends_at(start + message, senders, send, seen));
    for handle in handles {
        handle.await.unwrap();
    }
    sender.await.unwrap();
}

/// `select!` leaves two wakers behind each poll (in random order); the wait
/// goes to the one that woke the task.
#[test]
fn a_select_wait_goes_to_the_branch_that_fired() {
    let seen = Arc::new(SeenSelect::default());
    let first = profile(
        "select-message",
        2,
        select_race(
            Duration::from_millis(300),
            Duration::from_millis(100),
            true,
            seen.clone(),
        ),
    );
    let by_message = first.call_cost("await_points::selects", RECV, "IdleNs");
    seen.waits
        .check("IdleNs at recv, message at 100 ms", by_message, |_| {
            *seen.sent.get().unwrap()
        });
    assert_eq!(
        first.call_cost("await_points::selects", RECV, "Wakes"),
        TASKS
    );
    assert_eq!(first.call_cost("await_points::selects", SLEEP, "IdleNs"), 0);
    assert_leaf_keeps_the_rest(&first, "[task] await_points::selects", TASKS);

    let seen = Arc::new(SeenSelect::default());
    let second = profile(
        "select-timer",
        2,
        select_race(
            Duration::from_millis(100),
            Duration::from_millis(200),
            false,
            seen.clone(),
        ),
    );
    let by_timer = second.call_cost("await_points::selects", SLEEP, "IdleNs");
    seen.waits
        .check("IdleNs at the sleep, timer at 100 ms", by_timer, |_| {
            *seen.timer.get().unwrap()
        });
    assert_eq!(
        second.call_cost("await_points::selects", SLEEP, "Wakes"),
        TASKS
    );
    assert_eq!(second.call_cost("await_points::selects", RECV, "IdleNs"), 0);
}

async fn short_wait() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

async fn long_wait() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn joins() {
    tokio::join!(short_wait(), long_wait());
}

async fn join_both() {
    let handles: Vec<_> = (0..TASKS).map(|_| theseus::spawn(joins())).collect();
    for handle in handles {
        handle.await.unwrap();
    }
}

/// `join!` of 50 ms and 100 ms: both wait for the first 50 ms, and the short
/// one's timer ends that wait; the long one's ends the next 50 ms.
///
/// A loaded machine fires the short timer late, which moves time from the
/// long branch's wait to the short one's: the short wait and the sum are
/// bounded as lengthened, the long wait only as there. A wait booked to the
/// wrong branch leaves one of them empty.
#[test]
fn join_waits_split_at_each_wake() {
    let profile = profile("join", 2, join_both());
    let short = profile.call_cost("await_points::short_wait", SLEEP, "IdleNs");
    let long = profile.call_cost("await_points::long_wait", SLEEP, "IdleNs");
    assert_lengthened("IdleNs of the 50 ms branch", short, 250 * MS, 0.10);
    assert_lengthened("IdleNs of both branches", short + long, 500 * MS, 0.10);
    assert!(
        (1..2 * 250 * MS).contains(&long),
        "IdleNs of the 100 ms branch after the 50 ms one: {long} ns"
    );
    assert_eq!(
        profile.call_cost("await_points::short_wait", SLEEP, "Wakes"),
        TASKS
    );
    assert_eq!(
        profile.call_cost("await_points::long_wait", SLEEP, "Wakes"),
        TASKS
    );
    assert_leaf_keeps_the_rest(&profile, "[task] await_points::joins", TASKS);
}

async fn child_sleeps() {
    tokio::time::sleep(Duration::from_millis(60)).await;
}

async fn parent_joins() {
    theseus::spawn(child_sleeps()).await.unwrap();
}

async fn parents() {
    let handles: Vec<_> = (0..TASKS).map(|_| theseus::spawn(parent_joins())).collect();
    for handle in handles {
        handle.await.unwrap();
    }
}

/// Awaiting a join handle is named after the task it joins.
#[test]
fn awaiting_a_join_handle_names_the_child_task() {
    let profile = profile("join-handle", 2, parents());
    let joined = profile.call_cost(
        "await_points::parent_joins",
        "[await] [task] await_points::child_sleeps",
        "IdleNs",
    );
    // A child starts and its timer fires no earlier than asked, and load
    // only delays them: both waits are bounded as lengthened (a wait
    // counted twice reaches twice).
    assert_lengthened("IdleNs awaiting 60 ms children", joined, 300 * MS, 0.10);
    let slept = profile.call_cost("await_points::child_sleeps", SLEEP, "IdleNs");
    assert_lengthened("IdleNs of the children's sleeps", slept, 300 * MS, 0.10);
    assert_leaf_keeps_the_rest(&profile, "[task] await_points::parent_joins", TASKS);
}

/// Holds the lock for 80 ms, saying when it has it.
/// What the tasks of [`contend`] saw: the waits for the lock and the
/// permit, each with the moment the holder let go, and the holders' sleeps.
#[derive(Default)]
struct SeenLocks {
    locked: Waits,
    permits: Waits,
    held: Waits,
}

/// When a holder let go: set just before its guard is dropped.
type Released = Arc<OnceLock<Instant>>;

/// Holds the lock for 80 ms, saying when it has it.
async fn holds_mutex(
    lock: Arc<Mutex<()>>,
    holding: oneshot::Sender<()>,
    released: Released,
    seen: Arc<SeenLocks>,
) {
    let _guard = lock.lock().await;
    holding.send(()).unwrap();
    let before = Instant::now();
    tokio::time::sleep(Duration::from_millis(80)).await;
    seen.held.ended(before);
    released.set(Instant::now()).unwrap();
}

async fn waits_for_mutex(
    lock: Arc<Mutex<()>>,
    held: oneshot::Receiver<()>,
    released: Released,
    seen: Arc<SeenLocks>,
) {
    held.await.unwrap();
    let before = Instant::now();
    let _guard = lock.lock().await;
    seen.locked.ended_after(before, *released.get().unwrap());
}

async fn holds_permit(semaphore: Arc<Semaphore>, holding: oneshot::Sender<()>, released: Released) {
    let _permit = semaphore.acquire().await.unwrap();
    holding.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    released.set(Instant::now()).unwrap();
}

async fn waits_for_permit(
    semaphore: Arc<Semaphore>,
    held: oneshot::Receiver<()>,
    released: Released,
    seen: Arc<SeenLocks>,
) {
    held.await.unwrap();
    let before = Instant::now();
    let _permit = semaphore.acquire().await.unwrap();
    seen.permits.ended_after(before, *released.get().unwrap());
}

async fn contend(seen: Arc<SeenLocks>) {
    for _ in 0..TASKS {
        let lock = Arc::new(Mutex::new(()));
        let (tx, rx) = oneshot::channel();
        let released = Released::default();
        let holder = theseus::spawn(holds_mutex(
            lock.clone(),
            tx,
            released.clone(),
            seen.clone(),
        ));
        theseus::spawn(waits_for_mutex(lock, rx, released, seen.clone()))
            .await
            .unwrap();
        holder.await.unwrap();

        let semaphore = Arc::new(Semaphore::new(1));
        let (tx, rx) = oneshot::channel();
        let released = Released::default();
        let holder = theseus::spawn(holds_permit(semaphore.clone(), tx, released.clone()));
        theseus::spawn(waits_for_permit(semaphore, rx, released, seen.clone()))
            .await
            .unwrap();
        holder.await.unwrap();
    }
}

/// A lock or a permit held by another task: the wait is at `lock` or
/// `acquire`, and the holder's time is its own sleep.
///
/// Load makes the holder's timer fire late, which lengthens every wait
/// here (445 ms for 400 was seen with the other tests of this file running
/// beside it, 1281 ms with two busy loops more): each is checked against
/// what the tasks saw of it. A wait booked elsewhere leaves one of them
/// empty; one counted twice doubles it.
#[test]
fn a_mutex_and_a_semaphore_held_by_another_task() {
    let seen = Arc::new(SeenLocks::default());
    let profile = profile("locks", 2, contend(seen.clone()));
    let never = |_| unreachable!("each wait for a lock knows when it was let go");
    let locked = profile.call_cost(
        "await_points::waits_for_mutex",
        "[await] tokio::sync::Mutex::lock",
        "IdleNs",
    );
    seen.locked
        .check("IdleNs waiting for a held mutex", locked, never);
    let permits = profile.call_cost(
        "await_points::waits_for_permit",
        "[await] tokio::sync::Semaphore::acquire",
        "IdleNs",
    );
    seen.permits
        .check("IdleNs waiting for a held permit", permits, never);
    let held = profile.call_cost("await_points::holds_mutex", SLEEP, "IdleNs");
    seen.held
        .check("IdleNs of the holder's sleep", held, |before| {
            before + Duration::from_millis(80)
        });
    assert_leaf_keeps_the_rest(&profile, "[task] await_points::waits_for_mutex", TASKS);
}

async fn yields() {
    for _ in 0..5 {
        theseus::task::yield_now().await;
    }
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
}

/// A yield wakes the task during its own poll: a wake at the yield, and no
/// waiting there (the time to the next poll is scheduling delay).
#[test]
fn a_yield_is_a_wake_with_no_waiting() {
    let profile = profile("yields", 2, async {
        theseus::spawn(yields()).await.unwrap();
    });
    let theseus_yield = "[await] theseus::task::yield_now";
    assert_eq!(
        profile.call_cost("await_points::yields", theseus_yield, "Wakes"),
        5
    );
    assert_eq!(
        profile.call_cost("await_points::yields", theseus_yield, "IdleNs"),
        0
    );
    let tokio_yield = "[await] tokio::task::yield_now";
    assert_eq!(
        profile.call_cost("await_points::yields", tokio_yield, "Wakes"),
        3
    );
    // tokio defers the wake to the end of the poll: a moment, not a wait.
    assert!(profile.call_cost("await_points::yields", tokio_yield, "IdleNs") < MS);
    assert_leaf_keeps_the_rest(&profile, "[task] await_points::yields", 1);
}

/// Nine naps; the task times the last two, which no await point keeps.
async fn nine_sleeps(past_seventh: Arc<Waits>) {
    s1().await;
    s2().await;
    s3().await;
    s4().await;
    s5().await;
    s6().await;
    s7().await;
    let before = Instant::now();
    s8().await;
    past_seventh.ended(before);
    let before = Instant::now();
    s9().await;
    past_seventh.ended(before);
}

async fn nap() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

async fn s1() {
    nap().await
}
async fn s2() {
    nap().await
}
async fn s3() {
    nap().await
}
async fn s4() {
    nap().await
}
async fn s5() {
    nap().await
}
async fn s6() {
    nap().await
}
async fn s7() {
    nap().await
}
async fn s8() {
    nap().await
}
async fn s9() {
    nap().await
}

/// A task keeps seven await points; waits at more stay on its leaf, and
/// its totals are still exact.
#[test]
fn waits_past_the_seventh_await_point_stay_on_the_leaf() {
    let past_seventh = Arc::new(Waits::default());
    let profile = profile("nine", 2, async {
        theseus::spawn(nine_sleeps(past_seventh.clone()))
            .await
            .unwrap();
    });
    for kept in ["s1", "s2", "s3", "s4", "s5", "s6", "s7"] {
        let caller = format!("await_points::{kept}");
        assert_eq!(profile.call_cost(&caller, "await_points::nap", "Wakes"), 1);
    }
    for left in ["s8", "s9"] {
        let caller = format!("await_points::{left}");
        assert!(profile.edges(&caller, "await_points::nap").is_empty());
    }
    let leaf = "[task] await_points::nine_sleeps";
    assert_eq!(profile.self_of(leaf, "Wakes"), 2);
    past_seventh.check(
        "IdleNs of the two sleeps past the seventh",
        profile.self_of(leaf, "IdleNs"),
        |before| before + Duration::from_millis(50),
    );
    assert_leaf_keeps_the_rest(&profile, leaf, 1);
}

/// Waits for the first of three timers through `FuturesUnordered`, whose
/// waker is registered by another crate (futures-core's `AtomicWaker`).
async fn first_of_three() {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let timers: FuturesUnordered<_> = (0..3)
        .map(|_| tokio::time::sleep(Duration::from_millis(100)))
        .collect();
    let mut timers = timers;
    timers.next().await;
}

async fn first_of_three_in_tasks() {
    let handles: Vec<_> = (0..TASKS)
        .map(|_| theseus::spawn(first_of_three()))
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
}

/// An await point is named after the API the program called, in that
/// API's file, not after where a library registered the waker.
#[test]
fn an_await_is_named_after_the_api_the_program_called() {
    let (profile, _dir) = profile_file("awaits-api", 2, first_of_three_in_tasks());
    let awaits: Vec<&String> = profile
        .calls
        .keys()
        .filter(|(caller, callee, _)| {
            caller == "await_points::first_of_three" && callee.starts_with("[await]")
        })
        .map(|(_, callee, _)| callee)
        .collect();
    assert_eq!(
        awaits,
        ["[await] futures_util::stream::stream::Next"],
        "{:#?}",
        profile.calls.keys()
    );
    // Timers end late on a loaded machine, never early: the wait is bounded
    // from below, and is all of the tasks' waiting.
    let waited = profile.call_cost("await_points::first_of_three", awaits[0], "IdleNs");
    let leaf = "[task] await_points::first_of_three";
    let idle = profile.inclusive_of(leaf, "IdleNs");
    assert!(waited >= 5 * 99 * MS, "{waited} ns at the await point");
    assert_within("IdleNs at the await point of all", waited, idle, 0.05);
    let declared = &profile.file_of[awaits[0]];
    assert!(
        declared.contains("futures-util-0.3.") && declared.ends_with("/src/stream/stream/next.rs"),
        "{declared}"
    );
}

const OPEN_WAITS: u64 = 200;

/// Counts itself as started, then sleeps far longer than any test runs:
/// its wait is still going on when the profile is written.
async fn sleeps_on(started: Arc<std::sync::atomic::AtomicU64>) {
    started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

/// A profile written while [`OPEN_WAITS`] tasks wait at one await point
/// counts each of those waits: `calls=` on the chain to the await point is
/// the number of waits, ended or not, as it is for waits a wake ended.
#[test]
fn waits_still_going_on_are_each_counted() {
    let _serial = common::ground::SERIAL
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let tracer = theseus::Tracer::new();
    tracer.install();
    let runtime = common::multi_thread(2);
    let began = std::time::Instant::now();
    let handles = runtime.block_on(async {
        let started = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let handles: Vec<_> = (0..OPEN_WAITS)
            .map(|_| theseus::spawn(sleeps_on(started.clone())))
            .collect();
        // Every task is at its sleep before the 100 ms start.
        while started.load(std::sync::atomic::Ordering::Relaxed) < OPEN_WAITS {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        handles
    });
    // One reading of the live tasks, written in both formats.
    let written = tracer.to_profile();
    let lived = began.elapsed().as_nanos() as u64;
    let mut text = Vec::new();
    written
        .write(
            theseus::profiler::Format::Callgrind,
            theseus::profiler::Event::WallNs,
            &mut text,
        )
        .unwrap();
    let folded = theseus_profiler::folded::lines(&written, theseus::profiler::Event::IdleNs);
    for handle in &handles {
        handle.abort();
    }
    drop(runtime);
    tracer.uninstall();
    let dir = common::Scratch::new("awaits-open");
    let path = dir.join("profile.callgrind");
    std::fs::write(&path, &text).unwrap();
    let profile = common::callgrind::parse(&String::from_utf8(text).unwrap());
    assert_eq!(
        common::readers::check_with_real_readers(&path),
        profile.totals
    );
    let leaf = "[task] await_points::sleeps_on (unfinished)";
    assert_eq!(profile.self_of(leaf, "Tasks"), OPEN_WAITS);
    let chain = [
        (leaf, "await_points::sleeps_on"),
        ("await_points::sleeps_on", SLEEP),
    ];
    for (caller, callee) in chain {
        let edges = profile.edges(caller, callee);
        let calls: u64 = edges.iter().map(|(_, (calls, _))| calls).sum();
        assert_eq!(
            calls, OPEN_WAITS,
            "calls from {caller} to {callee}: {edges:#?}"
        );
    }
    assert_eq!(
        profile.call_cost("await_points::sleeps_on", SLEEP, "Wakes"),
        0
    );
    // Each task waited from its first poll to the writing: the 100 ms the
    // program slept once all were at their sleep, less the moment a poll
    // can take to end after the task counted itself (half of it allowed on
    // a loaded machine; a wait left out would show none), and no longer
    // than the tasks lived.
    let waited = profile.call_cost("await_points::sleeps_on", SLEEP, "IdleNs");
    assert!(
        (OPEN_WAITS * 50 * MS..=OPEN_WAITS * lived).contains(&waited),
        "{waited} ns waited by {OPEN_WAITS} tasks that lived at most {lived} ns"
    );
    let at_await: Vec<_> = folded
        .iter()
        .filter(|(stack, _)| stack.ends_with(&format!("{leaf};await_points::sleeps_on;{SLEEP}")))
        .collect();
    assert_eq!(at_await.len(), 1, "{folded:#?}");
    assert_eq!(at_await[0].1, waited, "the folded stack's IdleNs");
}

async fn naps() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// A `main` that waits itself: a 200 ms sleep, then a task's 100 ms nap.
async fn main_waits() {
    tokio::time::sleep(Duration::from_millis(200)).await;
    theseus::spawn(naps()).await.unwrap();
}

/// The future given to `block_on` is a unit as a task is: a `[main]` leaf
/// with its own costs, its await points below it, and the tasks it spawns
/// below those frames of it that spawned them.
#[test]
fn mains_own_waits_are_its_await_points() {
    let began = std::time::Instant::now();
    let profile = profile("main-waits", 2, main_waits());
    let lived = began.elapsed().as_nanos() as u64;
    let main = "[main] await_points::main_waits";
    let body = "await_points::main_waits";
    // Neither a task nor a frame.
    assert_eq!(profile.self_of(main, "Tasks"), 0);
    assert_eq!(profile.self_of(main, "Frames"), 0);
    assert!(
        !profile.edges(main, body).is_empty(),
        "{:#?}",
        profile.calls.keys()
    );
    let slept = profile.call_cost(body, SLEEP, "IdleNs");
    assert_lengthened("main's 200 ms sleep", slept, 200 * MS, 0.10);
    assert_eq!(profile.call_cost(body, SLEEP, "Wakes"), 1);
    let joined_at = "[await] [task] await_points::naps";
    let joined = profile.call_cost(body, joined_at, "IdleNs");
    assert_lengthened("main's wait for a 100 ms task", joined, 100 * MS, 0.10);
    assert_eq!(profile.call_cost(body, joined_at, "Wakes"), 1);
    // The task hangs below main's frame that spawned it.
    assert!(!profile.edges(body, "[task] await_points::naps").is_empty());
    // main's own time: its leaf and its waits, busy + sched + idle, from
    // the first poll to the end, within the time `block_on` took.
    let own = profile.self_of(main, "WallNs") + slept + joined;
    assert!(
        (300 * MS..=lived).contains(&own),
        "main lived {own} ns; block_on took {lived} ns"
    );
    let parts = ["BusyNs", "SchedNs", "IdleNs"]
        .map(|event| profile.self_of(main, event))
        .iter()
        .sum::<u64>();
    assert_eq!(profile.self_of(main, "WallNs"), parts);
    assert!(profile.self_of(main, "IdleNs") < 5 * MS);
}
