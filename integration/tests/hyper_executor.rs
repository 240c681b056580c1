//! hyper's connection tasks as theseus tasks, on a plain build: an HTTP/2
//! server (hyper-util's `auto` builder) and client (hyper's `http2`
//! handshake), both given `theseus::hyper::Executor`, over loopback. What
//! hyper spawns through it, a task per stream on the server and the task
//! that drives the client's connection, is in the profile as theseus tasks,
//! below the task that polled the connection, with their await points.

#[path = "../../tests/common/mod.rs"]
mod common;

use common::callgrind::parse;
use common::ground::{assert_lengthened, SERIAL};
use common::readers::{check_with_real_readers, folded_lines};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use theseus::profiler::{Event, Format, Profile, Sample};
use tokio::net::{TcpListener, TcpStream};

const MS: u64 = 1_000_000;
const REQUESTS: u64 = 30;
const STREAM: &str = "[task] hyper::proto::h2::server::H2Stream<";
const CLIENT_CONNECTION: &str = "[task] hyper::proto::h2::client::H2ClientFuture<";
const SLEEP: &str = "[await] tokio::time::Sleep";

/// How long the handlers measured themselves asleep, in all.
static SLEPT_NS: AtomicU64 = AtomicU64::new(0);

/// Each request sleeps 20 ms in the task hyper spawned for its stream.
async fn handle(_request: Request<Incoming>) -> Result<Response<String>, Infallible> {
    let start = Instant::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    SLEPT_NS.fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
    Ok(Response::new("slept".to_string()))
}

/// Accepts one connection and serves it with `service` in a task of its
/// own, as a server does, with the executor given to hyper-util's `auto`
/// builder.
async fn accept_one<S>(listener: TcpListener, service: S)
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<axum::body::Body>>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    let (stream, _) = listener.accept().await.unwrap();
    theseus::spawn(async move {
        let builder = hyper_util::server::conn::auto::Builder::new(theseus::hyper::Executor);
        builder
            .serve_connection(TokioIo::new(stream), service)
            .await
            .unwrap();
    })
    .await
    .unwrap();
}

/// The handler as a hyper service.
fn plain_service() -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<axum::body::Body>,
    Error = Infallible,
    Future = impl Send,
> + Send {
    hyper::service::service_fn(|request| async {
        let response = handle(request).await?;
        Ok(response.map(axum::body::Body::from))
    })
}

/// Serves one HTTP/2 connection with the handler, and sends it `requests`
/// requests at once from a client whose connection task hyper spawns.
async fn serve(requests: u64) {
    serve_with(plain_service(), || get("/"), requests).await
}

/// A GET of `path`.
fn get(path: &str) -> Request<String> {
    Request::get(format!("http://test{path}"))
        .body(String::new())
        .unwrap()
}

/// [`serve`] with `service`, each request made by `request`.
async fn serve_with<S>(service: S, request: fn() -> Request<String>, requests: u64)
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<axum::body::Body>>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = theseus::spawn(accept_one(listener, service));
    let stream = TcpStream::connect(address).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(theseus::hyper::Executor, TokioIo::new(stream))
            .await
            .unwrap();
    let connection = theseus::spawn(connection);
    let calls: Vec<_> = (0..requests)
        .map(|_| {
            let mut sender = sender.clone();
            theseus::spawn(async move {
                let response = sender.send_request(request()).await.unwrap();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(&body[..], b"slept");
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    drop(sender);
    connection.await.unwrap().unwrap();
    server.await.unwrap();
}

/// The profile of `serve(requests)` on a fresh two-worker runtime.
fn profiled_run(requests: u64) -> Profile {
    profiled(serve(requests))
}

/// The profile of running `future` on a fresh two-worker runtime.
fn profiled(future: impl std::future::Future<Output = ()>) -> Profile {
    let tracer = theseus::Tracer::new();
    tracer.install();
    let runtime = theseus::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(future);
    drop(runtime);
    tracer.uninstall();
    tracer.to_profile()
}

fn write(profile: &Profile, format: Format, event: Event, path: &std::path::Path) {
    let mut file = std::fs::File::create(path).unwrap();
    profile.write(format, event, &mut file).unwrap();
}

/// Where in `sample` the first frame whose name starts with `name` is.
fn at(sample: &Sample, name: &str) -> Option<usize> {
    sample.frames.iter().position(|f| f.name.starts_with(name))
}

/// The idle time of `samples` that ends at a sleep's await point.
fn idle_at_sleeps(samples: &[&Sample]) -> u64 {
    samples
        .iter()
        .filter(|s| s.frames.last().unwrap().name == SLEEP)
        .map(|s| s.value(Event::IdleNs))
        .sum()
}

/// The only name of `names`.
fn one(names: &[&str]) -> String {
    assert_eq!(names.len(), 1, "{names:?}");
    names[0].to_string()
}

/// The server's tasks, one per stream: below the connection's task,
/// spawned from hyper's h2 server (the spawn is hyper's call, not the
/// executor's line), each request's sleep an await point inside its task.
fn check_streams(profile: &Profile, slept_ns: u64) {
    let samples = profile.samples();
    let streams: Vec<&Sample> = samples.iter().filter(|s| at(s, STREAM).is_some()).collect();
    let tasks: u64 = streams.iter().map(|s| s.value(Event::Tasks)).sum();
    assert_eq!(tasks, REQUESTS);
    for sample in &streams {
        let connection = at(sample, "[task] async block in hyper_executor::accept_one");
        let spawned_by_hyper = at(sample, "<E as hyper::rt::bounds::h2_server::");
        let stream = at(sample, STREAM);
        assert!(
            connection < spawned_by_hyper && spawned_by_hyper < stream,
            "not below the connection's task and hyper's spawn: {:?}",
            sample.frames
        );
        let leaf = &sample.frames[stream.unwrap()];
        assert!(
            leaf.file.contains("hyper-1.") && leaf.file.ends_with("src/rt/bounds.rs"),
            "spawned at {}:{}, not in hyper",
            leaf.file,
            leaf.line
        );
    }
    let asleep = idle_at_sleeps(&streams);
    // The sleeps end together: the handlers' own clocks also hold the wait
    // for a worker after the wake, the task's `SchedNs`, not the sleep's.
    assert_lengthened("the streams' sleeps", asleep, REQUESTS * 20 * MS, 0.05);
    assert!(
        asleep <= slept_ns,
        "{asleep} ns asleep, more than the {slept_ns} ns the handlers measured"
    );
}

/// The client's connection: the task hyper spawns at the handshake to drive
/// it, waiting on the socket.
fn check_client_connection(profile: &Profile) {
    let samples = profile.samples();
    let driver = |s: &&Sample| {
        matches!(
            (at(s, "hyper::proto::h2::client::handshake"), at(s, CLIENT_CONNECTION)),
            (Some(h), Some(t)) if h < t
        )
    };
    let driving: Vec<&Sample> = samples.iter().filter(driver).collect();
    let tasks: u64 = driving.iter().map(|s| s.value(Event::Tasks)).sum();
    assert_eq!(tasks, 1);
    let on_socket: u64 = driving
        .iter()
        .filter(|s| s.frames.last().unwrap().name == "[await] tokio::net::tcp::stream::TcpStream")
        .map(|s| s.value(Event::IdleNs))
        .sum();
    assert!(on_socket > 0, "{driving:#?}");
}

#[test]
fn what_hyper_spawns_through_the_executor_is_a_theseus_task_with_its_waits() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    common::with_deadline(Duration::from_secs(120), || {
        // A first run sees every stack for the first time (an unwind
        // each); the figures checked are those of the second.
        profiled_run(2);
        SLEPT_NS.store(0, Relaxed);
        let profile = profiled_run(REQUESTS);
        let slept_ns = SLEPT_NS.load(Relaxed);
        let dir = common::Scratch::new("hyper-executor");
        let path = dir.join("hyper.callgrind");
        write(&profile, Format::Callgrind, Event::WallNs, &path);
        let callgrind = parse(&std::fs::read_to_string(&path).unwrap());
        assert_eq!(check_with_real_readers(&path), callgrind.totals);
        check_streams(&profile, slept_ns);
        check_client_connection(&profile);
        // Nothing hyper spawned went to `tokio::spawn`: with
        // `--cfg tokio_unstable` such a task would show as one.
        assert!(callgrind.functions("[task] tokio::spawn").is_empty());
        assert_eq!(
            callgrind.self_of(&one(&callgrind.functions(STREAM)), "Tasks"),
            REQUESTS
        );

        // The folded stacks show them too.
        let folded = dir.join("hyper.folded");
        write(&profile, Format::Folded, Event::Tasks, &folded);
        let streams: u64 = folded_lines(&folded)
            .iter()
            .filter(|(stack, _)| stack.rsplit(';').next().unwrap().starts_with(STREAM))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(streams, REQUESTS);
    });
}

/// An axum router served by hyper-util as docs/services.md shows, each request a
/// frame: the requests hang below the stream tasks the executor spawned,
/// below the connection's task, on a plain build.
#[test]
fn an_axum_router_served_with_the_executor_has_its_requests_below_the_stream_tasks() {
    const USER: &str = "[request] GET /users/{id}";
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    common::with_deadline(Duration::from_secs(120), || {
        let router = || {
            let app = axum::Router::new()
                .route(
                    "/users/{id}",
                    axum::routing::get(|| async {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        "slept"
                    }),
                )
                .route_layer(theseus::tower::RequestLayer::new());
            hyper_util::service::TowerToHyperService::new(app)
        };
        let run = |requests| profiled(serve_with(router(), || get("/users/7"), requests));
        run(2);
        let profile = run(REQUESTS);
        let samples = profile.samples();
        let requests: Vec<&Sample> = samples.iter().filter(|s| at(s, USER).is_some()).collect();
        let frames: u64 = requests.iter().map(|s| s.value(Event::Frames)).sum();
        assert_eq!(frames, REQUESTS);
        for sample in &requests {
            let connection = at(sample, "[task] async block in hyper_executor::accept_one");
            let stream = at(sample, STREAM);
            assert!(
                connection.is_some() && connection < stream && stream < at(sample, USER),
                "not below a stream's task and the connection's: {:?}",
                sample.frames
            );
        }
        let asleep = idle_at_sleeps(&requests);
        assert_lengthened("the requests' sleeps", asleep, REQUESTS * 20 * MS, 0.05);
    });
}

/// A gRPC service as tonic builds one (an axum router, the request layer
/// given to the server, outside the routing, so no route template is known
/// to it): each call is named by its method's path.
#[test]
fn grpc_calls_are_named_by_their_method() {
    const SAY_HELLO: &str = "[request] POST /hello.Greeter/SayHello";
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    common::with_deadline(Duration::from_secs(120), || {
        let router = || {
            let app = axum::Router::new()
                .route(
                    "/hello.Greeter/SayHello",
                    axum::routing::post(|| async {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        "slept"
                    }),
                )
                .layer(theseus::tower::RequestLayer::new());
            hyper_util::service::TowerToHyperService::new(app)
        };
        let call = || {
            Request::post("http://test/hello.Greeter/SayHello")
                .header("content-type", "application/grpc")
                .body(String::new())
                .unwrap()
        };
        let profile = profiled(serve_with(router(), call, REQUESTS));
        let samples = profile.samples();
        let calls: Vec<&Sample> = samples
            .iter()
            .filter(|s| at(s, SAY_HELLO).is_some())
            .collect();
        let frames: u64 = calls.iter().map(|s| s.value(Event::Frames)).sum();
        assert_eq!(frames, REQUESTS);
        let asleep = idle_at_sleeps(&calls);
        assert_lengthened("the calls' sleeps", asleep, REQUESTS * 20 * MS, 0.05);
    });
}
