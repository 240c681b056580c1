//! A small service with a known shape, profiled by theseus.
//!
//! Run it with `cargo run --release --example service`; it writes
//! `callgrind.theseus` (or the path in `THESEUS_OUT`). What it does:
//!
//! - an echo server on loopback spawns one `handle_connection` task per
//!   client; each waits on the network most of its life; when the clients
//!   are done, the accept loop stops and waits for its handlers, so every
//!   run has the same tasks, all completed;
//! - 20 clients each make 50 round trips, sleeping 2 ms between them;
//! - 8 `refresh_cache` tasks wait on a 100 ms timer;
//! - 4 `checksum` tasks burn about 20 ms of CPU each, in `spawn_blocking`
//!   and in plain tasks, so they show as busy time.
//!
//! Open the profile with `kcachegrind callgrind.theseus`,
//! `callgrind_annotate --threshold=100 callgrind.theseus`, or
//! `gprof2dot -f callgrind`.

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const CLIENTS: usize = 20;
const ROUND_TRIPS: usize = 50;

#[theseus::main]
async fn main() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel();
    let server = theseus::spawn(accept_loop(listener, stopped));

    let caches: Vec<_> = (0..8)
        .map(|shard| theseus::spawn(refresh_cache(shard)))
        .collect();
    let checksums: Vec<_> =
        (0..2)
            .map(|seed| theseus::spawn(checksum(seed, Duration::from_millis(20))))
            .chain((0..2).map(|seed| {
                theseus::spawn_blocking(move || burn_cpu(seed, Duration::from_millis(20)))
            }))
            .collect();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| theseus::spawn(client(address, id)))
        .collect();

    let mut bytes = 0;
    for client in clients {
        bytes += client.await??;
    }
    for cache in caches {
        cache.await?;
    }
    let mut sum = 0u64;
    for checksum in checksums {
        sum = sum.wrapping_add(checksum.await?);
    }
    let _ = stop.send(());
    let connections = server.await??;
    println!(
        "{CLIENTS} clients echoed {bytes} bytes over {connections} connections; checksum {sum:x}"
    );
    Ok(())
}

/// Accepts connections until told to stop, then waits for their handlers:
/// each ends when its client closes the connection.
async fn accept_loop(
    listener: TcpListener,
    mut stop: oneshot::Receiver<()>,
) -> std::io::Result<usize> {
    let mut handlers = Vec::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (socket, _) = accepted?;
                handlers.push(theseus::spawn(handle_connection(socket)));
            }
            _ = &mut stop => break,
        }
    }
    let connections = handlers.len();
    for handler in handlers {
        handler.await??;
    }
    Ok(connections)
}

async fn handle_connection(mut socket: TcpStream) -> std::io::Result<()> {
    let mut buffer = [0u8; 1024];
    loop {
        let n = socket.read(&mut buffer).await?;
        if n == 0 {
            return Ok(());
        }
        socket.write_all(&buffer[..n]).await?;
    }
}

async fn client(address: std::net::SocketAddr, id: usize) -> std::io::Result<usize> {
    let mut stream = TcpStream::connect(address).await?;
    let mut bytes = 0;
    for trip in 0..ROUND_TRIPS {
        let message = format!("client {id} trip {trip}");
        stream.write_all(message.as_bytes()).await?;
        let mut reply = vec![0u8; message.len()];
        stream.read_exact(&mut reply).await?;
        bytes += reply.len();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(bytes)
}

async fn refresh_cache(shard: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(100)).await;
    shard
}

async fn checksum(seed: u64, duration: Duration) -> u64 {
    burn_cpu(seed, duration)
}

/// Spins for `duration`, doing arithmetic the optimizer cannot remove.
fn burn_cpu(seed: u64, duration: Duration) -> u64 {
    let start = Instant::now();
    let mut x = seed | 1;
    while start.elapsed() < duration {
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
    }
    std::hint::black_box(x)
}
