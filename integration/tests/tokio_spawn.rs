//! Tasks that libraries spawn with `tokio::spawn`: an axum service, moved to
//! theseus as a user would (`#[theseus::main]`, `theseus::spawn`), serving
//! keep-alive clients. axum spawns each connection's task itself.
//!
//! Built with `--cfg tokio_unstable` (`.ci/run` runs the suite both ways),
//! those tasks are in the profile, one per connection, below axum's own
//! frames and `main`. Without it, the program says at exit that they ran
//! unseen and what to add to see them.

#[path = "../../tests/common/mod.rs"]
mod common;

use common::child;
use common::readers::folded_lines;

const CONNECTIONS: usize = 8;
const REQUESTS: usize = 20;

/// The child side.
#[test]
fn child() {
    match child::program().as_deref() {
        None => {}
        Some("service") => service::main(),
        Some("unseen_until_signal") => unseen::until_signal::main(),
        Some("two_runtimes") => unseen::two_runtimes::main(),
        Some(other) => panic!("unknown program {other}"),
    }
}

mod service {
    use super::common::http_client::get_once;
    use super::{CONNECTIONS, REQUESTS};
    use axum::routing::get;
    use std::time::Duration;
    use tokio::io::BufReader;
    use tokio::net::{TcpListener, TcpStream};

    async fn fast() -> &'static str {
        "fast"
    }

    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_millis(20)).await;
        "slow"
    }

    #[theseus::main(worker_threads = 2)]
    pub async fn main() {
        let app = axum::Router::new()
            .route("/fast", get(fast))
            .route("/slow", get(slow));
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
        let clients: Vec<_> = (0..CONNECTIONS)
            .map(|_| theseus::spawn(client(address)))
            .collect();
        for client in clients {
            client.await.unwrap();
        }
        stop.send(()).unwrap();
        server.await.unwrap();
    }

    /// One keep-alive connection: `REQUESTS` requests, every fifth slow.
    async fn client(address: std::net::SocketAddr) {
        let stream = TcpStream::connect(address).await.unwrap();
        let mut stream = BufReader::new(stream);
        for request in 0..REQUESTS {
            let path = if request % 5 == 4 { "/slow" } else { "/fast" };
            let body = get_once(&mut stream, path).await;
            assert_eq!(body, &path[1..]);
        }
    }
}

#[test]
fn connections_that_axum_spawns_are_seen_or_said_to_be_unseen() {
    let dir = child::scratch_dir("tokio-spawn");
    let out = dir.join("service.folded");
    let output = child::run(
        "service",
        &[
            ("THESEUS_OUT", out.to_str().unwrap()),
            ("THESEUS_EVENT", "Tasks"),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let lines = folded_lines(&out);
    // Stacks of tasks spawned by axum: a frame of axum's serve loop, then
    // the task's leaf.
    let by_axum: Vec<&(String, u64)> = lines
        .iter()
        .filter(|(stack, _)| stack.contains("axum::serve"))
        .collect();
    if cfg!(tokio_unstable) {
        let tasks: u64 = by_axum.iter().map(|(_, tasks)| tasks).sum();
        assert!(
            tasks >= CONNECTIONS as u64,
            "{tasks} tasks under axum::serve, expected one per connection ({CONNECTIONS}): {lines:#?}"
        );
        for (stack, _) in &by_axum {
            let frames: Vec<&str> = stack.split(';').collect();
            assert!(
                frames[0].contains("service::main"),
                "not below main: {stack}"
            );
            assert!(
                frames.last().unwrap().starts_with("[task]"),
                "no task leaf: {stack}"
            );
        }
        assert!(!stderr.contains("ran unseen"), "{stderr}");
    } else {
        assert!(by_axum.is_empty(), "{by_axum:?}");
        assert!(
            stderr.contains("tokio::spawn ran unseen"),
            "no word of the unseen tasks: {stderr}"
        );
        assert!(stderr.contains("--cfg tokio_unstable"), "{stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Tasks spawned with `tokio::spawn` from three sites: 100 that end at
/// once, 10 that spin 2 ms in one poll and 10 that sleep once (two polls,
/// one wake). Seen through tokio's hooks, each site is a leaf of its own
/// and every poll counts.
mod sites {
    use std::time::{Duration, Instant};

    pub const INSTANT: usize = 100;
    pub const SPINNING: usize = 10;
    pub const SLEEPING: usize = 10;
    pub const SPIN: Duration = Duration::from_millis(2);

    pub async fn main() {
        let mut handles = instant_tasks();
        for _ in 0..SPINNING {
            handles.push(tokio::spawn(async {
                let until = Instant::now() + SPIN;
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
            }));
        }
        for _ in 0..SLEEPING {
            handles.push(tokio::spawn(tokio::time::sleep(Duration::from_millis(20))));
        }
        for handle in handles {
            handle.await.unwrap();
        }
    }

    /// A second function that spawns: its tasks are told apart by the
    /// function, not only by the line.
    fn instant_tasks() -> Vec<tokio::task::JoinHandle<()>> {
        (0..INSTANT).map(|_| tokio::spawn(async {})).collect()
    }
}

#[test]
fn each_tokio_spawn_site_is_a_leaf_of_its_own_with_every_poll() {
    // In a theseus task, so that a build without tokio's hooks has a
    // profile too.
    let profile = common::ground::profile("tokio-spawn-sites", 2, async {
        theseus::spawn(sites::main()).await.unwrap();
    });
    let leaves = profile.functions("[task] tokio::spawn");
    if !cfg!(tokio_unstable) {
        assert!(leaves.is_empty(), "seen without tokio's hooks: {leaves:?}");
        return;
    }
    assert_eq!(leaves.len(), 3, "one leaf per spawn site: {leaves:#?}");
    let leaf = |function: &str, line_of: &str| -> String {
        let found: Vec<&&str> = leaves
            .iter()
            .filter(|leaf| leaf.contains(function) && leaf.contains(line_of))
            .collect();
        assert_eq!(found.len(), 1, "{function} {line_of}: {leaves:#?}");
        found[0].to_string()
    };
    let instant = leaf("sites::instant_tasks", "tests/tokio_spawn.rs:");
    let (spinning, sleeping): (Vec<&&str>, Vec<&&str>) = leaves
        .iter()
        .filter(|l| l.contains("sites::main"))
        .partition(|l| profile.self_of(l, "BusyNs") >= 10 * sites::SPIN.as_nanos() as u64);
    assert_eq!((spinning.len(), sleeping.len()), (1, 1), "{leaves:#?}");
    let figures =
        |leaf: &str| ["Tasks", "Polls", "Wakes"].map(|event| profile.self_of(leaf, event));
    let (instant_n, spinning_n, sleeping_n) = (
        sites::INSTANT as u64,
        sites::SPINNING as u64,
        sites::SLEEPING as u64,
    );
    assert_eq!(figures(&instant), [instant_n, instant_n, 0], "{instant}");
    assert_eq!(
        figures(spinning[0]),
        [spinning_n, spinning_n, 0],
        "{spinning:?}"
    );
    assert_eq!(
        figures(sleeping[0]),
        [sleeping_n, 2 * sleeping_n, sleeping_n],
        "{sleeping:?}"
    );
}

/// Programs whose `tokio::spawn` tasks run unseen without `tokio_unstable`.
mod unseen {
    pub use std::future::pending;
    pub use std::time::Duration;

    /// Wakes a worker every few milliseconds, so that workers park often
    /// and compare their counts.
    pub fn ticker() -> theseus::JoinHandle<()> {
        theseus::spawn(async {
            loop {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    }

    /// A server that runs until SIGTERM, 4 `tokio::spawn` tasks waiting.
    pub mod until_signal {
        use super::*;

        #[theseus::main(worker_threads = 2)]
        pub async fn main() {
            let _ticker = ticker();
            let _waiting: Vec<_> = (0..4).map(|_| tokio::spawn(pending::<()>())).collect();
            tokio::time::sleep(Duration::from_millis(200)).await;
            println!("ready");
            pending::<()>().await
        }
    }

    /// This runtime runs 5 waiting theseus tasks; a second one, on its own
    /// thread, runs 3 waiting `tokio::spawn` tasks beside a theseus task.
    pub mod two_runtimes {
        use super::*;

        #[theseus::main(worker_threads = 1)]
        pub async fn main() {
            let _ticker = ticker();
            let _waiting: Vec<_> = (0..4).map(|_| theseus::spawn(pending::<()>())).collect();
            let (done, second_done) = tokio::sync::oneshot::channel();
            std::thread::spawn(move || {
                let second = crate::common::multi_thread(1);
                second.block_on(async {
                    let _ticker = ticker();
                    let _waiting: Vec<_> = (0..3).map(|_| tokio::spawn(pending::<()>())).collect();
                    tokio::time::sleep(Duration::from_millis(300)).await;
                });
                done.send(()).unwrap();
            });
            second_done.await.unwrap();
        }
    }
}

#[test]
fn tasks_unseen_are_said_when_a_signal_writes_the_profile() {
    use std::io::{BufRead, Read};
    let dir = child::scratch_dir("tokio-spawn-signal");
    let out = dir.join("server.folded");
    let mut server = child::spawn(
        "unseen_until_signal",
        &[
            ("THESEUS_OUT", out.to_str().unwrap()),
            ("THESEUS_EVENT", "Tasks"),
        ],
    );
    let mut stdout = std::io::BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("ready") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "ended before it was ready"
        );
    }
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = common::with_deadline(std::time::Duration::from_secs(30), move || {
        let status = server.wait().unwrap();
        let mut stderr = String::new();
        server
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        (status, stderr)
    });
    let (status, stderr) = status;
    assert!(!status.success(), "SIGTERM ends it: {status:?}");
    assert!(stderr.contains("profile written to"), "{stderr}");
    let hooked: u64 = folded_lines(&out)
        .iter()
        .filter(|(stack, _)| stack.contains("[task] tokio::spawn in"))
        .map(|(_, tasks)| tasks)
        .sum();
    if cfg!(tokio_unstable) {
        assert_eq!(hooked, 4, "{stderr}");
        assert!(!stderr.contains("ran unseen"), "{stderr}");
    } else {
        assert_eq!(hooked, 0);
        assert!(
            stderr.contains("tokio::spawn ran unseen (up to 4 at once)"),
            "no word of the unseen tasks on SIGTERM: {stderr}"
        );
    }
}

#[test]
fn tasks_unseen_on_one_runtime_are_not_hidden_by_another() {
    let dir = child::scratch_dir("tokio-spawn-runtimes");
    let out = dir.join("two.folded");
    let output = child::run("two_runtimes", &[("THESEUS_OUT", out.to_str().unwrap())]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    if cfg!(tokio_unstable) {
        assert!(!stderr.contains("ran unseen"), "{stderr}");
    } else {
        // The first runtime's 5 theseus tasks must not cancel out the
        // second's 3 unseen ones.
        assert!(
            stderr.contains("tokio::spawn ran unseen (up to 3 at once)"),
            "{stderr}"
        );
    }
}

/// A client whose tasks are all spawned from one helper line, as
/// hyper-util's `TokioExecutor::execute` spawns reqwest's: called on
/// connecting and on sending a request, its tasks are told apart by those
/// callers in the default stack mode.
mod helpers {
    pub const CONNECTS: usize = 3;
    pub const REQUESTS: usize = 5;

    async fn conn_task() {
        tokio::task::yield_now().await;
    }

    #[inline(never)]
    fn spawn_conn() -> theseus::JoinHandle<()> {
        theseus::spawn(conn_task())
    }

    #[inline(never)]
    fn spawn_conn_tokio() -> tokio::task::JoinHandle<()> {
        tokio::spawn(conn_task())
    }

    /// Spawns one task through each helper.
    async fn through_helpers() {
        spawn_conn().await.unwrap();
        spawn_conn_tokio().await.unwrap();
    }

    async fn connect_to() {
        for _ in 0..CONNECTS {
            through_helpers_from_connect().await;
        }
    }

    async fn send_request() {
        for _ in 0..REQUESTS {
            through_helpers_from_request().await;
        }
    }

    #[inline(never)]
    async fn through_helpers_from_connect() {
        through_helpers().await;
    }

    #[inline(never)]
    async fn through_helpers_from_request() {
        through_helpers().await;
    }

    pub async fn main() {
        theseus::spawn(async {
            connect_to().await;
            send_request().await;
        })
        .await
        .unwrap();
    }
}

#[test]
fn tasks_spawned_by_one_helper_are_told_apart_by_their_callers() {
    let profile = common::ground::profile("tokio-spawn-helpers", 2, helpers::main());
    let tasks = |caller: &str, callee: &str| {
        profile.call_cost(
            &format!("tokio_spawn::helpers::{caller}"),
            &format!("tokio_spawn::helpers::{callee}"),
            "Tasks",
        )
    };
    // A task through `theseus::spawn` each time, and one through
    // `tokio::spawn` where tokio's hooks show it.
    let each = 1 + u64::from(cfg!(tokio_unstable));
    let (connects, requests) = (helpers::CONNECTS as u64, helpers::REQUESTS as u64);
    assert_eq!(
        [
            tasks("connect_to", "through_helpers_from_connect"),
            tasks("send_request", "through_helpers_from_request"),
        ],
        [each * connects, each * requests],
        "one helper line, two callers: {:#?}",
        profile.calls.keys()
    );
}
