//! The workloads, written once against [`Spawner`] so every runtime runs the
//! same code. The first four are the shapes of tokio's own scheduler
//! benchmarks.

use crate::runtimes::Spawner;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// From inside a task, spawn 10,000 empty tasks and wait for all of them.
pub async fn spawn_many<S: Spawner>(spawner: S) {
    spawn_tasks(spawner, 10_000).await
}

/// From inside a task, spawn `tasks` empty tasks, dropping their handles,
/// and wait until the last of them has run.
pub async fn spawn_tasks<S: Spawner>(spawner: S, tasks: usize) {
    if tasks == 0 {
        return;
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let inner = spawner.clone();
    spawner
        .spawn(async move {
            let remaining = Arc::new(AtomicUsize::new(tasks));
            let tx = Arc::new(std::sync::Mutex::new(Some(tx)));
            for _ in 0..tasks {
                let remaining = remaining.clone();
                let tx = tx.clone();
                drop(inner.spawn(async move {
                    if remaining.fetch_sub(1, Ordering::Relaxed) == 1 {
                        tx.lock().unwrap().take().unwrap().send(()).unwrap();
                    }
                }));
            }
        })
        .await;
    rx.await.unwrap();
}

/// 200 tasks that each yield 1,000 times.
pub async fn yield_many<S: Spawner>(spawner: S) {
    yield_tasks(spawner, 200, 1_000).await
}

/// `tasks` tasks that each yield `yields` times; the main future waits for
/// every one.
pub async fn yield_tasks<S: Spawner>(spawner: S, tasks: usize, yields: usize) {
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            spawner.spawn(async move {
                for _ in 0..yields {
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await;
    }
}

/// Two tasks passing one message back and forth `hops` times in all, over
/// runtime-independent channels: each hop wakes the task waiting for it.
pub async fn hops<S: Spawner>(spawner: S, hops: usize) {
    let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<()>(1);
    let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<()>(1);
    let echo = spawner.spawn(async move {
        while ping_rx.recv().await.is_some() {
            if pong_tx.send(()).await.is_err() {
                break;
            }
        }
    });
    let first = spawner.spawn(async move {
        for _ in 0..hops / 2 {
            ping_tx.send(()).await.unwrap();
            pong_rx.recv().await.unwrap();
        }
    });
    first.await;
    echo.await;
}

/// A `#[theseus::profiled]` fn that does nothing: what a frame costs.
#[theseus::profiled]
async fn empty_frame() {}

/// From inside one task, `frames` frames awaited one after the other, each
/// done in one poll. Without a tracer a frame is its future alone, so the
/// difference between profiling on and off is the frame's cost.
pub async fn frame_calls<S: Spawner>(spawner: S, frames: usize) {
    spawner
        .spawn(async move {
            for _ in 0..frames {
                empty_frame().await;
            }
        })
        .await;
}

/// 1,000 pairs of tasks, each pair passing one message there and back.
pub async fn ping_pong<S: Spawner>(spawner: S) {
    const PAIRS: usize = 1_000;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let remaining = Arc::new(AtomicUsize::new(PAIRS));
    let done_tx = Arc::new(std::sync::Mutex::new(Some(done_tx)));
    let inner = spawner.clone();
    spawner
        .spawn(async move {
            for _ in 0..PAIRS {
                let remaining = remaining.clone();
                let done_tx = done_tx.clone();
                let spawner = inner.clone();
                drop(inner.spawn(async move {
                    let (ping_tx, ping_rx) = tokio::sync::oneshot::channel::<()>();
                    let (pong_tx, pong_rx) = tokio::sync::oneshot::channel::<()>();
                    drop(spawner.spawn(async move {
                        ping_rx.await.unwrap();
                        pong_tx.send(()).unwrap();
                    }));
                    ping_tx.send(()).unwrap();
                    pong_rx.await.unwrap();
                    if remaining.fetch_sub(1, Ordering::Relaxed) == 1 {
                        done_tx.lock().unwrap().take().unwrap().send(()).unwrap();
                    }
                }));
            }
        })
        .await;
    done_rx.await.unwrap();
}

/// A chain of 1,000 tasks, each spawning the next.
pub async fn chained_spawn<S: Spawner>(spawner: S) {
    const DEPTH: usize = 1_000;
    fn link<S: Spawner>(spawner: S, left: usize, done: tokio::sync::oneshot::Sender<()>) {
        if left == 0 {
            done.send(()).unwrap();
            return;
        }
        let next = spawner.clone();
        drop(spawner.spawn(async move { link(next, left - 1, done) }));
    }
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let inner = spawner.clone();
    spawner
        .spawn(async move { link(inner, DEPTH, done_tx) })
        .await;
    done_rx.await.unwrap();
}

/// From the main future, spawn 100,000 empty tasks and await every handle.
pub async fn spawn_join_100k<S: Spawner>(spawner: S) {
    const TASKS: usize = 100_000;
    let handles: Vec<_> = (0..TASKS).map(|_| spawner.spawn(async {})).collect();
    for handle in handles {
        handle.await;
    }
}

/// Defines `tcp_echo` over the sockets of `$net` and the read and write
/// extension traits of `$io`: the same echo for `tokio::net` here and for
/// async-net in `smol.rs`, whose traits differ but whose calls do not.
macro_rules! tcp_echo_over {
    ($(#[$doc:meta])* $($net:ident)::+, $($io:ident)::+) => {
        $(#[$doc])*
        pub async fn tcp_echo<S: Spawner>(spawner: S) {
            use $($io)::+::{AsyncReadExt, AsyncWriteExt};
            use $($net)::+::{TcpListener, TcpStream};
            const CONNECTIONS: usize = 50;
            const ROUND_TRIPS: usize = 200;
            const MESSAGE: usize = 64;

            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let inner = spawner.clone();
            let acceptor = spawner.spawn(async move {
                let mut servers = Vec::with_capacity(CONNECTIONS);
                for _ in 0..CONNECTIONS {
                    let (mut stream, _) = listener.accept().await.unwrap();
                    servers.push(inner.spawn(async move {
                        stream.set_nodelay(true).unwrap();
                        let mut buffer = [0u8; MESSAGE];
                        loop {
                            let n = stream.read(&mut buffer).await.unwrap();
                            if n == 0 {
                                break;
                            }
                            stream.write_all(&buffer[..n]).await.unwrap();
                        }
                    }));
                }
                for server in servers {
                    server.await;
                }
            });
            let clients: Vec<_> = (0..CONNECTIONS)
                .map(|c| {
                    spawner.spawn(async move {
                        let mut stream = TcpStream::connect(address).await.unwrap();
                        stream.set_nodelay(true).unwrap();
                        let mut message = [c as u8; MESSAGE];
                        let mut reply = [0u8; MESSAGE];
                        for round in 0..ROUND_TRIPS {
                            message[0] = round as u8;
                            stream.write_all(&message).await.unwrap();
                            stream.read_exact(&mut reply).await.unwrap();
                            assert_eq!(reply, message);
                        }
                    })
                })
                .collect();
            for client in clients {
                client.await;
            }
            acceptor.await;
        }
    };
}
pub(crate) use tcp_echo_over;

tcp_echo_over! {
    /// A TCP echo over loopback with `tokio::net`: 50 client tasks each connect,
    /// then send 200 messages of 64 bytes one at a time, each read back before
    /// the next is sent. An acceptor task spawns one server task per connection,
    /// which echoes until the client closes. Waits for every task, servers
    /// included.
    tokio::net, tokio::io
}

/// An axum service over loopback: `/fast` answered at once. 20 client
/// tasks each keep one connection alive and make 250 requests on it, one at
/// a time. axum spawns one task per connection with `tokio::spawn`, so on
/// theseus those tasks run on the same workers as theseus's own (and are
/// profiled when built with `--cfg tokio_unstable`).
pub async fn http_fast<S: Spawner>(spawner: S) {
    http_fast_layered(spawner, RouteLayer::None).await
}

/// What http_fast's route is wrapped in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteLayer {
    /// Nothing.
    None,
    /// A layer that adds nothing (`tower_layer::Identity`): what any layer
    /// costs in axum, which boxes the route again.
    Identity,
    /// `theseus::tower::RequestLayer`: each request a frame,
    /// `[request] GET /fast`.
    Request,
}

/// [`http_fast`] with its route wrapped in `layer`.
pub async fn http_fast_layered<S: Spawner>(spawner: S, layer: RouteLayer) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};
    const CONNECTIONS: usize = 20;
    const REQUESTS: usize = 250;

    async fn fast() -> &'static str {
        "fast"
    }
    let app = axum::Router::new().route("/fast", axum::routing::get(fast));
    let app = match layer {
        RouteLayer::None => app,
        RouteLayer::Identity => app.route_layer(tower_layer::Identity::new()),
        RouteLayer::Request => app.route_layer(theseus::tower::RequestLayer::new()),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = spawner.spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            spawner.spawn(async move {
                let stream = TcpStream::connect(address).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let mut stream = BufReader::new(stream);
                let mut line = String::new();
                let mut body = [0u8; 4];
                for _ in 0..REQUESTS {
                    stream
                        .get_mut()
                        .write_all(b"GET /fast HTTP/1.1\r\nHost: bench\r\n\r\n")
                        .await
                        .unwrap();
                    loop {
                        line.clear();
                        stream.read_line(&mut line).await.unwrap();
                        if line == "\r\n" {
                            break;
                        }
                    }
                    stream.read_exact(&mut body).await.unwrap();
                    assert_eq!(&body, b"fast");
                }
            })
        })
        .collect();
    for client in clients {
        client.await;
    }
    stop.send(()).unwrap();
    server.await;
}

/// How many spawn sites the churn uses.
pub const CHURN_SITES: usize = 30;
/// Tasks per churn wave: 10 parents, each with 99 children.
pub const CHURN_WAVE: usize = CHURN_PARENTS * (1 + CHURN_CHILDREN);
const CHURN_PARENTS: usize = 10;
const CHURN_CHILDREN: usize = 99;

/// Spawns `future` from one of [`CHURN_SITES`] distinct spawn lines, each
/// wrapping it in its own future type, as distinct call sites in a program
/// would (hence the async block that only awaits `future`).
#[allow(clippy::redundant_async_block)]
fn spawn_at<S, F>(spawner: &S, site: usize, future: F) -> S::Join<()>
where
    S: Spawner,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    macro_rules! site {
        () => {
            spawner.spawn(async move { future.await })
        };
    }
    match site % CHURN_SITES {
        0 => site!(),
        1 => site!(),
        2 => site!(),
        3 => site!(),
        4 => site!(),
        5 => site!(),
        6 => site!(),
        7 => site!(),
        8 => site!(),
        9 => site!(),
        10 => site!(),
        11 => site!(),
        12 => site!(),
        13 => site!(),
        14 => site!(),
        15 => site!(),
        16 => site!(),
        17 => site!(),
        18 => site!(),
        19 => site!(),
        20 => site!(),
        21 => site!(),
        22 => site!(),
        23 => site!(),
        24 => site!(),
        25 => site!(),
        26 => site!(),
        27 => site!(),
        28 => site!(),
        _ => site!(),
    }
}

/// Runs `waves` waves of [`CHURN_WAVE`] short tasks, one wave after the
/// other: the main future spawns 10 parent tasks, each from one of the
/// sites; each parent spawns 99 children from the sites and awaits them;
/// each child yields once. Over all waves every parent site is used with
/// every child site, so the profile has 30 + 30 x 30 distinct stacks.
/// `progress` is called after each wave with the number of waves done.
pub async fn churn<S: Spawner>(spawner: S, waves: usize, mut progress: impl FnMut(usize)) {
    for wave in 0..waves {
        let parents: Vec<_> = (0..CHURN_PARENTS)
            .map(|p| {
                let site = (wave + 3 * p) % CHURN_SITES;
                let inner = spawner.clone();
                spawn_at(&spawner, site, async move {
                    let children: Vec<_> = (0..CHURN_CHILDREN)
                        .map(|c| {
                            spawn_at(&inner, site + c, async move {
                                tokio::task::yield_now().await;
                                std::hint::black_box(c);
                            })
                        })
                        .collect();
                    for child in children {
                        child.await;
                    }
                })
            })
            .collect();
        for parent in parents {
            parent.await;
        }
        progress(wave + 1);
    }
}
