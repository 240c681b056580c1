//! Ground truth for requests: an axum service with
//! `theseus::tower::RequestLayer`, a loopback client, and each request's
//! time checked under `[request] METHOD ROUTE`, the `#[theseus::profiled]`
//! fn it awaits below it, and every format showing them.
//!
//! `.ci/run` runs this with and without `--cfg tokio_unstable`: with it,
//! the requests hang below the connection tasks axum spawns.

#[path = "../../tests/common/mod.rs"]
mod common;
mod svg;

use axum::extract::Path as UrlPath;
use axum::routing::get;
use common::callgrind::{parse, Profile as Callgrind};
use common::ground::{assert_between, assert_within, SERIAL};
use common::http_client::get_once;
use common::polled::Polled;
use common::readers::{check_with_real_readers, folded_lines, pprof_raw};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use svg::svg_frames;
use theseus::profiler::{Event, Format, Profile};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const MS: u64 = 1_000_000;
const REQUESTS: u64 = 30;
const USERS: &str = "[request] GET /users/{id}";
const SLOW: &str = "[request] GET /slow";
const DB_QUERY: &str = "[frame] requests::db_query";
const SLEEP: &str = "[await] tokio::time::Sleep";

/// What the handlers measured of themselves.
static USER_NS: AtomicU64 = AtomicU64::new(0);
static SLOW_NS: AtomicU64 = AtomicU64::new(0);
static BURN_NS: AtomicU64 = AtomicU64::new(0);
/// What a layer outside the request layer measured of the user requests'
/// polls ([`PollTimer`]).
static POLLED_NS: AtomicU64 = AtomicU64::new(0);

/// A layer that times each `/users/` request's call and the polls of its
/// response future from outside: the time the profile's request frame can
/// have been busy, however a loaded machine preempted its polls.
#[derive(Clone)]
struct PollTimer<S>(S);

impl<S> tower_service::Service<axum::extract::Request> for PollTimer<S>
where
    S: tower_service::Service<axum::extract::Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Polled<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: axum::extract::Request) -> Polled<S::Future> {
        let counted = request.uri().path().starts_with("/users/");
        let start = Instant::now();
        let future = self.0.call(request);
        if counted {
            POLLED_NS.fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
        }
        if counted {
            Polled::timed(future, &POLLED_NS)
        } else {
            Polled::untimed(future)
        }
    }
}

#[theseus::profiled]
async fn db_query(id: u64) -> Result<String, String> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    // 2 ms of work, timed: a spin preempted near its end ends late.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2) {
        std::hint::spin_loop();
    }
    BURN_NS.fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
    Ok(format!("user {id}"))
}

async fn get_user(UrlPath(id): UrlPath<u64>) -> String {
    let start = Instant::now();
    let user = db_query(id).await.unwrap();
    USER_NS.fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
    user
}

async fn slow() -> &'static str {
    let start = Instant::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    SLOW_NS.fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
    "slow"
}

/// Serves the two routes and sends `requests` requests to each over one
/// keep-alive connection.
async fn serve(requests: u64) {
    let app = axum::Router::new()
        .route("/users/{id}", get(get_user))
        .route("/slow", get(slow))
        .route_layer(theseus::tower::RequestLayer::new())
        .route_layer(tower_layer::layer_fn(PollTimer));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = theseus::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    let stream = TcpStream::connect(address).await.unwrap();
    let mut stream = BufReader::new(stream);
    for id in 0..requests {
        let body = get_once(&mut stream, &format!("/users/{id}")).await;
        assert_eq!(body, format!("user {id}"));
    }
    for _ in 0..requests {
        assert_eq!(get_once(&mut stream, "/slow").await, "slow");
    }
    drop(stream);
    stop.send(()).unwrap();
    server.await.unwrap();
}

/// The profile of `serve(requests)` on a fresh two-worker runtime.
fn profiled_run(requests: u64) -> Profile {
    let tracer = theseus::Tracer::new();
    tracer.install();
    let runtime = common::multi_thread(2);
    runtime.block_on(serve(requests));
    drop(runtime);
    tracer.uninstall();
    tracer.to_profile()
}

fn write(profile: &Profile, format: Format, event: Event, path: &std::path::Path) {
    let mut file = std::fs::File::create(path).unwrap();
    profile.write(format, event, &mut file).unwrap();
}

#[test]
fn requests_are_frames_named_by_route_with_their_waits_below() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // A first run sees every stack for the first time (an unwind each);
    // the figures checked are those of the second.
    profiled_run(2);
    for counter in [&USER_NS, &SLOW_NS, &BURN_NS, &POLLED_NS] {
        counter.store(0, Relaxed);
    }
    let profile = profiled_run(REQUESTS);
    let measured = [&USER_NS, &SLOW_NS, &BURN_NS, &POLLED_NS].map(|c| c.load(Relaxed));
    let dir = common::Scratch::new("requests");
    let path = dir.join("service.callgrind");
    write(&profile, Format::Callgrind, Event::WallNs, &path);
    let callgrind = parse(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(check_with_real_readers(&path), callgrind.totals);
    check_requests(&profile, &callgrind, measured);
    check_other_formats(&profile, &dir);
}

/// The sum of `event` over the stacks that go through a frame named
/// `name` and, if given, end in one named `leaf`: `name`'s inclusive cost,
/// from the stacks themselves.
fn through(profile: &Profile, name: &str, leaf: Option<&str>, event: Event) -> u64 {
    profile
        .samples()
        .iter()
        .filter(|s| s.frames.iter().any(|f| f.name == name))
        .filter(|s| leaf.is_none_or(|leaf| s.frames.last().is_some_and(|f| f.name == leaf)))
        .map(|s| s.value(event))
        .sum()
}

fn check_requests(profile: &Profile, callgrind: &Callgrind, measured: [u64; 4]) {
    let [user_ns, slow_ns, burn_ns, polled_ns] = measured;
    // Named by route, never by raw path.
    let requests = callgrind.functions("[request]");
    assert_eq!(requests, [SLOW, USERS], "{requests:?}");
    assert!(callgrind.functions("/users/1").is_empty());
    assert_eq!(callgrind.self_of(USERS, "Frames"), REQUESTS);
    assert_eq!(callgrind.self_of(USERS, "Tasks"), 0);
    assert_eq!(callgrind.self_of(SLOW, "Frames"), REQUESTS);
    assert_eq!(callgrind.self_of(DB_QUERY, "Frames"), REQUESTS);

    let users = |event| through(profile, USERS, None, event);
    let late = user_ns.saturating_sub(REQUESTS * 22 * MS);
    let wall = users(Event::WallNs);
    // The request's leaf holds the whole request in callgrind too: library
    // frames below it that repeat names above it never fold it away.
    assert_eq!(callgrind.inclusive_of(USERS, "WallNs"), wall);
    assert_eq!(
        callgrind.inclusive_of(SLOW, "WallNs"),
        through(profile, SLOW, None, Event::WallNs)
    );
    assert_between(
        "GET /users/{id} WallNs",
        wall,
        REQUESTS * 22 * MS,
        0.05,
        late,
    );
    assert_within(
        "GET /users/{id} WallNs, against the handler's clock",
        wall,
        user_ns,
        0.05,
    );
    assert!(burn_ns >= REQUESTS * 2 * MS);
    println!(
        "the handlers' spins: {:.3} ms; the requests' polls, timed outside: {:.3} ms",
        burn_ns as f64 / 1e6,
        polled_ns as f64 / 1e6
    );
    // At least the spins, at most the polls as timed from outside: what a
    // loaded machine adds to a poll beyond its spin (a preemption, 1.1 ms a
    // request was seen beside four builds) it adds to both.
    assert_between(
        "GET /users/{id} BusyNs",
        users(Event::BusyNs),
        burn_ns,
        0.05,
        polled_ns.saturating_sub(burn_ns),
    );

    // The profiled fn below the request, with its sleep below it.
    let below = |s: &&theseus::profiler::Sample| {
        let at = |name| s.frames.iter().position(|f| f.name == name);
        matches!((at(USERS), at(DB_QUERY)), (Some(r), Some(q)) if r < q)
    };
    let samples = profile.samples();
    let queries: u64 = samples
        .iter()
        .filter(below)
        .map(|s| s.value(Event::Frames))
        .sum();
    assert_eq!(queries, REQUESTS);
    let slept = through(profile, DB_QUERY, Some(SLEEP), Event::IdleNs);
    assert_between("db_query's sleep", slept, REQUESTS * 20 * MS, 0.05, late);

    let late = slow_ns.saturating_sub(REQUESTS * 50 * MS);
    let slept = through(profile, SLOW, Some(SLEEP), Event::IdleNs);
    assert_between("GET /slow's sleep", slept, REQUESTS * 50 * MS, 0.05, late);

    if cfg!(tokio_unstable) {
        // Below the connection task axum spawned.
        for sample in samples
            .iter()
            .filter(|s| s.frames.iter().any(|f| f.name == USERS))
        {
            let task = sample
                .frames
                .iter()
                .position(|f| f.name.starts_with("[task] "));
            let request = sample.frames.iter().position(|f| f.name == USERS);
            assert!(task < request, "not below a task: {:?}", sample.frames);
        }
    }
}

/// pprof, folded stacks and the flame graph show the frames too.
fn check_other_formats(profile: &Profile, dir: &std::path::Path) {
    let pprof = dir.join("service.pb.gz");
    write(profile, Format::Pprof, Event::WallNs, &pprof);
    let raw = pprof_raw(&pprof);
    assert_eq!(raw.total("Frames"), 3 * REQUESTS);
    assert!(raw
        .samples
        .iter()
        .any(|s| s.stack.iter().any(|f| f == USERS) && s.stack.iter().any(|f| f == DB_QUERY)));

    let folded = dir.join("service.folded");
    write(profile, Format::Folded, Event::Frames, &folded);
    let lines = folded_lines(&folded);
    let frames: u64 = lines
        .iter()
        .filter(|(stack, _)| stack.ends_with(USERS))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(frames, REQUESTS, "{lines:#?}");

    let svg = dir.join("service.svg");
    write(profile, Format::FlameGraph, Event::WallNs, &svg);
    let shown = svg_frames(&svg);
    for name in [USERS, SLOW, DB_QUERY] {
        assert!(
            shown.iter().any(|(frame, _)| frame == name),
            "{name}: {shown:?}"
        );
    }
}

/// How long the client held each request's body back, and how long from
/// each request's head to the end of its response, in all.
static HELD_NS: AtomicU64 = AtomicU64::new(0);
static ROUND_TRIPS_NS: AtomicU64 = AtomicU64::new(0);
const BODIES: u64 = 5;

/// Sends `BODIES` POSTs to `/echo` on one keep-alive connection, each body
/// 50 ms after its head.
async fn post_slow_bodies() {
    let app = axum::Router::new()
        .route(
            "/echo",
            axum::routing::post(|body: String| async move { body }),
        )
        .route_layer(theseus::tower::RequestLayer::new());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = theseus::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut stream = TcpStream::connect(address).await.unwrap();
    for _ in 0..BODIES {
        let head = "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\n";
        // The round trip starts before the head is written: the server may
        // read it, and start waiting for the body, before this task runs on.
        let started = Instant::now();
        stream.write_all(head.as_bytes()).await.unwrap();
        let sent = Instant::now();
        tokio::time::sleep(Duration::from_millis(50)).await;
        HELD_NS.fetch_add(sent.elapsed().as_nanos() as u64, Relaxed);
        stream.write_all(b"hello").await.unwrap();
        let mut response = Vec::new();
        while !response.ends_with(b"hello") {
            let mut chunk = [0; 256];
            let read = stream.read(&mut chunk).await.unwrap();
            assert!(read > 0, "the server closed the connection");
            response.extend_from_slice(&chunk[..read]);
        }
        ROUND_TRIPS_NS.fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
    }
    server.abort();
}

/// A request whose handler takes its body waits for the body at an await
/// point named after the body it reads, hyper's `Incoming`, not after the
/// waker cell three crates further in that happened to keep its waker.
#[test]
fn a_request_waiting_for_its_body_waits_at_the_body() {
    const ECHO: &str = "[request] POST /echo";
    const BODY: &str = "[await] hyper::body::Incoming";
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let run = || {
        let tracer = theseus::Tracer::new();
        tracer.install();
        let runtime = common::multi_thread(2);
        runtime.block_on(post_slow_bodies());
        drop(runtime);
        tracer.uninstall();
        tracer.to_profile()
    };
    run();
    HELD_NS.store(0, Relaxed);
    ROUND_TRIPS_NS.store(0, Relaxed);
    let profile = run();
    let (held, round_trips) = (HELD_NS.load(Relaxed), ROUND_TRIPS_NS.load(Relaxed));
    let leaves: Vec<(String, u64)> = profile
        .samples()
        .iter()
        .filter(|s| s.frames.iter().any(|f| f.name == ECHO))
        .map(|s| {
            (
                s.frames.last().unwrap().name.clone(),
                s.value(Event::IdleNs),
            )
        })
        .filter(|(leaf, _)| leaf.starts_with("[await] "))
        .collect();
    let waited: u64 = leaves.iter().map(|(_, idle)| idle).sum();
    let at_body: u64 = leaves
        .iter()
        .filter(|(leaf, _)| leaf == BODY)
        .map(|(_, idle)| idle)
        .sum();
    // The requests wait for nothing but their bodies, which the client
    // held back for most of each round trip: the wait starts once the
    // server has read the head and ends as the server reads the body,
    // both a little late on a loaded machine.
    assert_eq!(at_body, waited, "{leaves:#?}");
    assert!(
        at_body >= held / 2 && at_body <= round_trips,
        "{at_body} ns at {BODY}; the client held the bodies {held} ns, \
         and the round trips took {round_trips} ns"
    );
    println!("{at_body} ns at {BODY}, the client held the bodies {held} ns");
}
