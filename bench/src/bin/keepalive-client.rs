//! A loopback HTTP/1.1 keep-alive client: N connections, each sending M
//! `POST` requests one after another on its one connection, reading each
//! response whole before the next; prints the requests per second.
//!
//! It drives any server that answers a `POST` with a `Content-Length`
//! response, such as hyper's `examples/echo.rs` (see `bench/hyper-echo.sh`):
//!
//! ```text
//! keepalive-client 127.0.0.1:3000 /echo 50 2000
//! ```
//!
//! Raw TCP rather than an HTTP library, so the client's own cost is small
//! and the same whatever runtime the server runs on.

use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The request body; echoed back by hyper's `/echo`.
const BODY: &[u8] = b"theseus keep-alive echo, sixty-four bytes of request body......";

const USAGE: &str = "usage: keepalive-client ADDR PATH CONNECTIONS REQUESTS_PER_CONNECTION
  e.g. keepalive-client 127.0.0.1:3000 /echo 50 2000";

struct Options {
    addr: String,
    path: String,
    connections: usize,
    requests: usize,
}

fn parse_options() -> Result<Options, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, path, connections, requests] = args.as_slice() else {
        return Err(format!("expected 4 arguments, got {}", args.len()));
    };
    let count = |name: &str, value: &str| match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "{name} must be a positive whole number, got {value:?}"
        )),
    };
    if !path.starts_with('/') {
        return Err(format!("PATH must start with '/', got {path:?}"));
    }
    Ok(Options {
        addr: addr.clone(),
        path: path.clone(),
        connections: count("CONNECTIONS", connections)?,
        requests: count("REQUESTS_PER_CONNECTION", requests)?,
    })
}

/// The value of the `Content-Length` header in `head` (the status line and
/// headers, without the blank line).
fn content_length(head: &str) -> Result<usize, String> {
    let status = head.lines().next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!("expected a 200 response, got {status:?}"));
    }
    head.lines()
        .skip(1)
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .ok_or_else(|| format!("response without a Content-Length header: {head:?}"))
}

/// Reads one response from `stream` into `buf` (which may hold the start of
/// it already) and removes it from `buf`, checking its body is `BODY`.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).map_err(|e| e.to_string())?;
            let total = end + 4 + content_length(head)?;
            if buf.len() >= total {
                if &buf[end + 4..total] != BODY {
                    return Err("the response body is not the request's".into());
                }
                buf.drain(..total);
                return Ok(());
            }
        }
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the server closed the connection mid-response".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// One connection's `requests` round trips.
async fn connection(addr: String, request: Vec<u8>, requests: usize) -> Result<(), String> {
    let mut stream = TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(4096);
    for _ in 0..requests {
        stream
            .write_all(&request)
            .await
            .map_err(|e| e.to_string())?;
        read_response(&mut stream, &mut buf).await?;
    }
    Ok(())
}

async fn run(options: Options) -> Result<(), String> {
    let mut request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
        options.path,
        options.addr,
        BODY.len()
    )
    .into_bytes();
    request.extend_from_slice(BODY);
    let start = Instant::now();
    let tasks: Vec<_> = (0..options.connections)
        .map(|_| {
            tokio::spawn(connection(
                options.addr.clone(),
                request.clone(),
                options.requests,
            ))
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    let elapsed = start.elapsed();
    let total = options.connections * options.requests;
    println!(
        "{total} requests in {:.3} s: {:.0} requests/s",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

fn main() {
    let options = parse_options().unwrap_or_else(|e| {
        eprintln!("keepalive-client: {e}\n{USAGE}");
        std::process::exit(2);
    });
    // One thread: the client's share of the machine stays the same whichever
    // server it drives.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let Err(e) = runtime.block_on(run(options)) {
        eprintln!("keepalive-client: {e}");
        std::process::exit(1);
    }
}
