//! A small tokio program that uses most of what tokio programs use.
//! `migration_tokio.rs` and `migration_theseus.rs` differ only by the
//! migration from tokio to theseus that the README describes;
//! `tests/migration.rs` checks that, and that both print the same.

use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Mutex, Semaphore};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (tx, mut rx) = mpsc::channel(2);
    let producer = tokio::spawn(async move {
        for i in 0..5 {
            tx.send(i).await.unwrap();
        }
    });
    let mut received = Vec::new();
    while let Some(value) = rx.recv().await {
        received.push(value);
    }
    producer.await?;
    println!("channel: {received:?}");

    let counter = Arc::new(Mutex::new(0));
    let permits = Arc::new(Semaphore::new(2));
    let mut workers = Vec::new();
    for _ in 0..10 {
        let counter = counter.clone();
        let permits = permits.clone();
        workers.push(tokio::spawn(async move {
            let _permit = permits.acquire().await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
            *counter.lock().await += 1;
        }));
    }
    for worker in workers {
        worker.await?;
    }
    println!("mutex and semaphore: {}", *counter.lock().await);

    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(500)) => println!("select: slow branch"),
        _ = tokio::time::sleep(Duration::from_millis(10)) => println!("select: fast branch"),
    }
    let timed_out =
        tokio::time::timeout(Duration::from_millis(20), std::future::pending::<()>()).await;
    println!("timeout elapsed: {}", timed_out.is_err());

    let panicked = tokio::spawn(async { panic!("a task panics on purpose") })
        .await
        .unwrap_err();
    println!("panicking task: is_panic={}", panicked.is_panic());

    let sleeper = tokio::spawn(async { tokio::time::sleep(Duration::from_secs(60)).await });
    sleeper.abort();
    println!(
        "aborted task: is_cancelled={}",
        sleeper.await.unwrap_err().is_cancelled()
    );

    let (done_tx, done_rx) = oneshot::channel();
    drop(tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        done_tx
            .send("finished after its handle was dropped")
            .unwrap();
    }));
    println!("detached task: {}", done_rx.await?);

    let sum = tokio::task::spawn_blocking(|| (1..=100u64).sum::<u64>()).await?;
    println!("spawn_blocking: {sum}");
    tokio::task::yield_now().await;

    let mut set = tokio::task::JoinSet::new();
    for i in 1..=3u64 {
        set.spawn(async move { i * 10 });
    }
    let aborted = set.spawn(std::future::pending::<u64>());
    aborted.abort();
    let mut joined = 0;
    while let Some(done) = set.join_next().await {
        joined += done.unwrap_or(0);
    }
    let in_place = tokio::task::block_in_place(|| joined + 1);
    println!("join set: {joined}, then {in_place} in place");

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        let mut buffer = vec![0; 1024];
        loop {
            let n = socket.read(&mut buffer).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            socket.write_all(&buffer[..n]).await?;
        }
    });
    let mut client = TcpStream::connect(address).await?;
    client.write_all(b"hello over loopback").await?;
    let mut echoed = [0; 19];
    tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut echoed)).await??;
    drop(client);
    server.await??;
    println!("tcp echo: {}", String::from_utf8_lossy(&echoed));
    Ok(())
}
