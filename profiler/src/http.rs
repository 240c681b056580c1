//! Profiles pulled from a running program (`THESEUS_HTTP=ADDR:PORT`): an
//! HTTP server on a thread of its own, in Go's `net/http/pprof` convention.
//!
//! - `GET /debug/pprof/theseus?seconds=N` answers after `N` seconds (1 to
//!   3600) with the profile of those seconds, as an interval snapshot has
//!   it ([`crate::Window`]); without `seconds`, the whole run so far.
//!   Gzipped pprof unless `format=` says `callgrind`, `folded` or `svg`;
//!   `event=` as `THESEUS_EVENT`.
//! - `GET /debug/theseus/`: a page with the top stacks ([`crate::report`])
//!   and a flame graph of the last `seconds` (10 unless asked), see `page`.
//!
//! The server is hyper, on a current-thread tokio runtime that belongs to
//! it alone: none of its work is a task of the profiled program, so none of
//! it shows in the profile, and a program whose workers are all busy cannot
//! keep it from answering. Rendering a profile runs on that runtime's
//! blocking threads (at most [`RENDERERS`]), so a large profile never holds
//! up the connections being accepted meanwhile.
//!
//! Limits, so that no client can tie the server up: a connection has
//! [`HEADER_TIMEOUT`] to send its request, serves one request, and is cut
//! after [`CONNECTION_LIMIT`] whatever it does; at most [`MAX_WINDOWS`]
//! windowed pulls wait at once (past that, 503). Pulls of the run so far
//! have no bound: each is a render, queued for a renderer.

mod page;
mod query;
mod route;

use crate::profile::{Event, Profile};
use crate::tracer::Window;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;

/// The profile endpoint, as Go's `net/http/pprof` names its own.
pub const PROFILE_PATH: &str = "/debug/pprof/theseus";

/// The page.
pub const PAGE_PATH: &str = "/debug/theseus/";

/// How long a connection may take to send its request's head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest a connection lives: the longest window and then some, for
/// rendering and sending.
pub const CONNECTION_LIMIT: Duration = Duration::from_secs(query::MAX_SECONDS + 120);

/// How many windowed pulls may wait at once.
pub const MAX_WINDOWS: usize = 8;

/// How many profiles are rendered at once.
pub const RENDERERS: usize = 4;

/// Where the served profiles come from: the session, as long as it runs.
pub(crate) trait Source: Send + Sync + 'static {
    /// The whole run so far; `None` once the session has ended.
    fn so_far(&self) -> Option<Profile>;
    /// A window opened now; `None` once the session has ended.
    fn open_window(&self) -> Option<Window>;
}

/// What `THESEUS_HTTP` accepts, for its error message.
pub const ACCEPTS: &str = "an IP address and a port, such as 127.0.0.1:6060 or [::1]:6060 \
                           (port 0 takes any free port, printed at start); profiles reveal \
                           the program's structure, so bind loopback or a private interface";

/// `THESEUS_HTTP`'s value as an address to listen on: an IP address and a
/// port, no host name, so it binds exactly what it names.
///
/// ```
/// use theseus_profiler::http::parse_address;
///
/// assert_eq!(parse_address(" 127.0.0.1:6060 ").unwrap().port(), 6060);
/// assert!(parse_address("[::1]:0").is_some());
/// assert!(parse_address("localhost:6060").is_none());
/// assert!(parse_address("6060").is_none());
/// ```
pub fn parse_address(value: &str) -> Option<SocketAddr> {
    value.trim().parse().ok()
}

/// The running server; stopping it (or dropping it) ends every connection.
pub(crate) struct Server {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    address: SocketAddr,
}

impl Server {
    /// Listens on `address` at once, so that a taken port is an error now,
    /// and serves from `source` on a thread of its own; pulls without
    /// `event=` get `event`.
    pub(crate) fn start(
        address: SocketAddr,
        source: Arc<dyn Source>,
        event: Event,
    ) -> io::Result<Server> {
        let listener = TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(RENDERERS)
            .thread_name("theseus-http")
            .build()?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let (stop, stopped) = oneshot::channel();
        let routes = Arc::new(route::Routes::new(source, event));
        let thread = std::thread::Builder::new()
            .name("theseus-http".to_string())
            .spawn(move || {
                runtime.block_on(serve(listener, routes, stopped));
                // Renders under way are given a moment; windows still
                // waiting are dropped with their connections.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        Ok(Server {
            stop: Some(stop),
            thread: Some(thread),
            address,
        })
    }

    /// The address it listens on (with the port given, for port 0).
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting, ends every connection, and waits for the thread.
    pub(crate) fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Accepts connections until `stopped`, each served on a task of its own.
async fn serve(
    listener: tokio::net::TcpListener,
    routes: Arc<route::Routes>,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, routes.clone()));
            }
            // Out of descriptors and the like: wait a little rather than spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Serves one request on `stream`, within the limits.
async fn connection(stream: tokio::net::TcpStream, routes: Arc<route::Routes>) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |request| {
        let routes = routes.clone();
        async move { Ok::<_, std::convert::Infallible>(routes.answer(request).await) }
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    // A timeout or a client gone are nobody's error but the client's.
    let _ = tokio::time::timeout(CONNECTION_LIMIT, served).await;
}
