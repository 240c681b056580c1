//! The profile describes the program, not theseus: tokio-metrics'
//! `TaskMonitor`, wrapped around the same tasks that theseus times, must
//! agree with theseus on how long those tasks polled and waited for a
//! worker. An echo server's connection handlers, on 2 workers.

#[path = "../../tests/common/mod.rs"]
mod common;

use common::callgrind::parse;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CONNECTIONS: usize = 20;
const ROUND_TRIPS: usize = 100;

async fn handle_connection(mut stream: TcpStream) {
    let mut buffer = [0u8; 64];
    loop {
        let n = stream.read(&mut buffer).await.unwrap();
        if n == 0 {
            break;
        }
        // A little work per message, so polls have a length to compare.
        let until = std::time::Instant::now() + Duration::from_micros(50);
        while std::time::Instant::now() < until {
            std::hint::spin_loop();
        }
        stream.write_all(&buffer[..n]).await.unwrap();
    }
}

#[test]
fn theseus_and_tokio_metrics_agree_on_the_same_tasks() {
    let tracer = theseus::Tracer::new();
    tracer.install();
    let monitor = tokio_metrics::TaskMonitor::new();
    let runtime = theseus::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let watched = monitor.clone();
    runtime.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let acceptor = theseus::spawn(async move {
            let mut handlers = Vec::new();
            for _ in 0..CONNECTIONS {
                let (stream, _) = listener.accept().await.unwrap();
                handlers.push(theseus::spawn(
                    watched.instrument(handle_connection(stream)),
                ));
            }
            for handler in handlers {
                handler.await.unwrap();
            }
        });
        let clients: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                theseus::spawn(async move {
                    let mut stream = TcpStream::connect(address).await.unwrap();
                    let mut reply = [0u8; 64];
                    for round in 0..ROUND_TRIPS {
                        stream.write_all(&[round as u8; 64]).await.unwrap();
                        stream.read_exact(&mut reply).await.unwrap();
                    }
                })
            })
            .collect();
        for client in clients {
            client.await.unwrap();
        }
        acceptor.await.unwrap();
    });
    drop(runtime);
    tracer.uninstall();
    let mut text = Vec::new();
    tracer.write_data(&mut text).unwrap();
    let profile = parse(&String::from_utf8(text).unwrap());
    let leaf = profile
        .functions("handle_connection")
        .into_iter()
        .find(|f| f.starts_with("[task]"))
        .expect("the handlers' leaf");
    let metrics = monitor.cumulative();
    assert_eq!(metrics.instrumented_count, CONNECTIONS as u64);
    let ours = |event| profile.self_of(leaf, event);
    let theirs_polls = metrics.total_poll_count;
    let theirs_busy = metrics.total_poll_duration.as_nanos() as u64;
    let theirs_sched =
        (metrics.total_scheduled_duration + metrics.total_first_poll_delay).as_nanos() as u64;
    println!(
        "polls: theseus {} tokio-metrics {theirs_polls}; busy: theseus {:.2} ms, tokio-metrics {:.2} ms; \
         waiting for a worker: theseus {:.2} ms, tokio-metrics {:.2} ms",
        ours("Polls"),
        ours("BusyNs") as f64 / 1e6,
        theirs_busy as f64 / 1e6,
        ours("SchedNs") as f64 / 1e6,
        theirs_sched as f64 / 1e6,
    );
    assert_eq!(ours("Tasks"), CONNECTIONS as u64);
    assert_eq!(ours("Polls"), theirs_polls);
    // theseus times its wrapper around tokio-metrics' wrapper, so its polls
    // hold theirs plus a few clock reads each.
    let busy = ours("BusyNs") as f64 / theirs_busy as f64;
    assert!(
        (1.0..1.10).contains(&busy),
        "BusyNs / poll duration = {busy:.3}"
    );
    // Both time from the wake to the poll, through wakers a call apart:
    // they agree to well within 10% (0.1% in a run here), plus 5 ms for
    // clock reads preempted on a loaded machine.
    let sched = ours("SchedNs");
    assert!(
        sched.abs_diff(theirs_sched) <= theirs_sched / 10 + 5_000_000,
        "SchedNs {sched} against tokio-metrics' {theirs_sched}"
    );
}
