//! tokio's I/O, timers, sync types and signals inside theseus tasks.

mod common;

use common::profiled::multi_thread;
use common::with_deadline;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[test]
fn tcp_echo_over_loopback_with_timeouts() {
    const CLIENTS: usize = 50;
    const ROUND_TRIPS: usize = 100;
    let echoed = with_deadline(Duration::from_secs(60), || {
        multi_thread(2).block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let server = theseus::spawn(async move {
                for _ in 0..CLIENTS {
                    let (mut socket, _) = listener.accept().await.unwrap();
                    theseus::spawn(async move {
                        let mut buffer = [0u8; 64];
                        loop {
                            let n = socket.read(&mut buffer).await.unwrap();
                            if n == 0 {
                                break;
                            }
                            socket.write_all(&buffer[..n]).await.unwrap();
                        }
                    });
                }
            });
            let clients: Vec<_> = (0..CLIENTS)
                .map(|client| {
                    theseus::spawn(async move {
                        let mut stream = TcpStream::connect(address).await.unwrap();
                        let mut bytes = 0;
                        for trip in 0..ROUND_TRIPS {
                            let message = format!("{client}:{trip}");
                            stream.write_all(message.as_bytes()).await.unwrap();
                            let mut reply = vec![0u8; message.len()];
                            tokio::time::timeout(
                                Duration::from_secs(5),
                                stream.read_exact(&mut reply),
                            )
                            .await
                            .expect("echo timed out")
                            .unwrap();
                            assert_eq!(reply, message.as_bytes());
                            bytes += reply.len();
                        }
                        bytes
                    })
                })
                .collect();
            let mut total = 0;
            for client in clients {
                total += client.await.unwrap();
            }
            server.await.unwrap();
            total
        })
    });
    let expected: usize = (0..CLIENTS)
        .flat_map(|c| (0..ROUND_TRIPS).map(move |t| format!("{c}:{t}").len()))
        .sum();
    assert_eq!(echoed, expected);
}

#[test]
fn timers_sleep_as_long_as_asked() {
    multi_thread(2).block_on(async {
        let start = Instant::now();
        let sleepers: Vec<_> = [30u64, 60, 90]
            .into_iter()
            .map(|ms| {
                theseus::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    ms
                })
            })
            .collect();
        for sleeper in sleepers {
            let ms = sleeper.await.unwrap();
            assert!(start.elapsed() >= Duration::from_millis(ms));
        }
        assert!(start.elapsed() < Duration::from_millis(500));
        let mut interval = tokio::time::interval(Duration::from_millis(5));
        for _ in 0..5 {
            interval.tick().await;
        }
        let timed_out =
            tokio::time::timeout(Duration::from_millis(10), std::future::pending::<()>()).await;
        assert!(timed_out.is_err());
    });
}

#[test]
fn select_picks_the_ready_branch() {
    multi_thread(2).block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<&str>(1);
        theseus::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            tx.send("message").await.unwrap();
        });
        let picked = tokio::select! {
            message = rx.recv() => message.unwrap(),
            _ = tokio::time::sleep(Duration::from_secs(5)) => "timer",
        };
        assert_eq!(picked, "message");
    });
}

#[test]
fn sync_types_work_across_tasks() {
    multi_thread(2).block_on(async {
        let (watch_tx, mut watch_rx) = tokio::sync::watch::channel(0);
        let (broadcast_tx, _) = tokio::sync::broadcast::channel::<u32>(16);
        let lock = std::sync::Arc::new(tokio::sync::RwLock::new(Vec::new()));
        let mut listeners = Vec::new();
        for id in 0..4 {
            let mut broadcast_rx = broadcast_tx.subscribe();
            let lock = lock.clone();
            listeners.push(theseus::spawn(async move {
                let value = broadcast_rx.recv().await.unwrap();
                lock.write().await.push(id * value);
            }));
        }
        broadcast_tx.send(10).unwrap();
        for listener in listeners {
            listener.await.unwrap();
        }
        let mut values = lock.read().await.clone();
        values.sort();
        assert_eq!(values, vec![0, 10, 20, 30]);
        theseus::spawn(async move { watch_tx.send(7).unwrap() });
        watch_rx.changed().await.unwrap();
        assert_eq!(*watch_rx.borrow(), 7);
    });
}

#[test]
fn signals_reach_a_theseus_task() {
    use tokio::signal::unix::{signal, SignalKind};
    multi_thread(2).block_on(async {
        let mut hangups = signal(SignalKind::user_defined1()).unwrap();
        let waiter = theseus::spawn(async move { hangups.recv().await });
        let pid = std::process::id().to_string();
        let status = std::process::Command::new("kill")
            .args(["-USR1", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        let received = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert_eq!(received.expect("signal not delivered").unwrap(), Some(()));
    });
}

#[test]
fn tokio_spawn_still_works_inside_theseus_tasks() {
    multi_thread(2).block_on(async {
        let nested = theseus::spawn(async { tokio::spawn(async { 5 }).await.unwrap() });
        assert_eq!(nested.await.unwrap(), 5);
    });
}
