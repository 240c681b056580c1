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
        Some(other) => panic!("unknown program {other}"),
    }
}

mod service {
    use super::{CONNECTIONS, REQUESTS};
    use axum::routing::get;
    use std::time::Duration;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
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

    /// Sends one HTTP/1.1 GET and reads the response's body.
    async fn get_once(stream: &mut BufReader<TcpStream>, path: &str) -> String {
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
        stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            stream.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await.unwrap();
        String::from_utf8(body).unwrap()
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
