//! An axum service profiled request by request: each request a frame named
//! by its route, the database call it awaits a frame below it.
//!
//! Run it with `cargo run --release --features axum --example axum_service`
//! (add `RUSTFLAGS="--cfg tokio_unstable"` to see the connection tasks axum
//! spawns too). It serves two routes on loopback, sends them 30 requests
//! each from a client in the same program, and writes `callgrind.theseus`
//! (or the path in `THESEUS_OUT`) when done:
//!
//! - `GET /users/{id}` awaits `db_query`, which waits 20 ms for its
//!   "database" and then works 2 ms;
//! - `GET /slow` sleeps 50 ms.

use axum::extract::Path;
use axum::routing::get;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const REQUESTS: u64 = 30;

/// Every call of this fn is a frame, `[frame] axum_service::db_query`.
#[theseus::profiled]
async fn db_query(id: u64) -> Result<String, std::io::Error> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2) {
        std::hint::spin_loop();
    }
    Ok(format!("user {id}"))
}

async fn get_user(Path(id): Path<u64>) -> String {
    db_query(id)
        .await
        .unwrap_or_else(|error| format!("error: {error}"))
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_millis(50)).await;
    "slow"
}

#[theseus::main]
async fn main() -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/users/{id}", get(get_user))
        .route("/slow", get(slow))
        // `route_layer`: each request is named by its route template.
        .route_layer(theseus::tower::RequestLayer::new());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = theseus::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    let mut stream = BufReader::new(TcpStream::connect(address).await?);
    for id in 0..REQUESTS {
        get_once(&mut stream, &format!("/users/{id}")).await?;
    }
    for _ in 0..REQUESTS {
        get_once(&mut stream, "/slow").await?;
    }
    drop(stream);
    let _ = stop.send(());
    server.await.expect("the server task panicked")?;
    Ok(())
}

/// Sends one HTTP/1.1 GET over a keep-alive connection and reads the body.
async fn get_once(stream: &mut BufReader<TcpStream>, path: &str) -> std::io::Result<String> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: example\r\n\r\n");
    stream.get_mut().write_all(request.as_bytes()).await?;
    let mut length = 0;
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).await?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}
