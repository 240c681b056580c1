//! A profiling session as a program sees it: read the settings, check the
//! output path at start, install a tracer, write the profile at the end (and
//! on SIGINT/SIGTERM), atomically, and never lose it silently.
//!
//! The file itself is delivered by `delivery` (`write_atomically`: a
//! reader never sees half a profile, a device, a FIFO or a link is written
//! through, and a failing output falls back to the temporary directory,
//! then to standard error); what the session says besides where it went
//! (the command that opens it, how to get full names) is `messages`'.
//!
//! The profile is rendered in the session's [`Format`] (`THESEUS_FORMAT`,
//! or `THESEUS_OUT`'s extension). With `THESEUS_INTERVAL`, a timer thread
//! has the session write a profile of each interval beside the output (see
//! [`crate::snapshots`]); every write of the whole run is preceded by the
//! snapshot of the interval since the last one, so the snapshots cover the
//! run. With `THESEUS_REPORT=1`, each write of the whole run also prints
//! the top stacks to standard error ([`crate::report`]).

mod delivery;
mod messages;

pub use delivery::Destination;
pub use messages::open_command;

use crate::config::{Config, ConfigError};
use crate::forked::Starter;
use crate::format::Format;
use crate::profile::{Event, Profile};
use crate::snapshots::{snapshot_path, Ticker};
use crate::tracer::Tracer;
use delivery::{check_writable, deliver, write_atomically};
use messages::full_names_hint;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

/// A running profiling session: a tracer installed for the whole program
/// and the path its profile goes to.
///
/// Dropping a session without [`Session::finish`] finishes it, so a profile
/// is written even when the program unwinds past it. A program that ends
/// through `std::process::exit` (which runs no destructor) gets its profile
/// written by an `atexit` handler, as a snapshot: tasks still running count
/// as unfinished. Nothing can be written when a process ends without
/// running any code of its own: `std::process::abort` (and panics with
/// `panic = "abort"`), `libc::_exit`, SIGKILL.
pub struct Session {
    inner: Arc<Inner>,
    /// theseus's CPU sampler, when `THESEUS_SAMPLE_HZ` asked for it;
    /// stopped before the final write, so the write itself is not sampled
    /// and every buffered sample is in the profile.
    sampler: Option<crate::sampler::Sampler>,
    /// Kept for its `Drop`, which gives the signals back.
    signals: Option<crate::exit_signal::SignalGuard>,
    /// The interval snapshot thread, with `THESEUS_INTERVAL`.
    ticker: Option<Ticker>,
    /// The profiles served over HTTP, with `THESEUS_HTTP`.
    http: Option<crate::http::Server>,
    finished: bool,
}

struct Inner {
    tracer: Tracer,
    out: PathBuf,
    format: Format,
    event: Event,
    /// Whether profiles are cut into intervals.
    intervals: bool,
    report: bool,
    /// One write at a time: the final write, an interval's and a signal's
    /// snapshot may race. Holds the number of the last interval written.
    writing: Mutex<u64>,
    /// The profile is this process's: a forked child writes none of it
    /// (see `forked`).
    started: Starter,
    /// Set, under `writing`, when the final write begins: a signal that
    /// comes after that waits for it and writes nothing more.
    final_write: AtomicBool,
}

impl Inner {
    fn write_profile(&self) -> Destination {
        let mut written = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        self.write_locked(&mut written)
    }

    /// The last write of the session (it finishes, or the process exits):
    /// no signal's snapshot follows it. Announced with `writing` still
    /// held, so that a signal that came during the write, which ends the
    /// process once the lock is free, never cuts the announcement off.
    fn write_final(&self) -> Destination {
        let mut written = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        self.final_write.store(true, Ordering::Relaxed);
        let destination = self.write_locked(&mut written);
        self.announce(&destination);
        destination
    }

    /// A signal's snapshot, unless the final write began (it may still be
    /// going on: this waits for it): that one is the profile.
    fn write_on_signal(&self) -> Option<Destination> {
        let mut written = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        if self.final_write.load(Ordering::Relaxed) {
            return None;
        }
        Some(self.write_locked(&mut written))
    }

    /// Writes the profile, with `writing` held (`written`).
    fn write_locked(&self, written: &mut u64) -> Destination {
        let mut profile = self.tracer.to_profile();
        if profile.is_empty() && *written == 0 {
            return Destination::Nothing;
        }
        if self.intervals {
            // Reported on stderr by `write_interval`; the whole run goes on.
            let _ = self.write_interval(written);
            // With what ended while the interval was cut.
            profile = self.tracer.to_profile();
        }
        let destination = deliver(&self.out, &self.render(&profile));
        if self.report {
            let _ = crate::report::write(&mut io::stderr().lock(), &profile);
        }
        if let Some(hint) = full_names_hint() {
            eprintln!("{hint}");
        }
        crate::notes::say_notes();
        destination
    }

    /// Says on standard error where a profile went and the command that
    /// reads it. A profile that went to standard error was announced by
    /// [`deliver`].
    fn announce(&self, destination: &Destination) {
        let path = match destination {
            Destination::Out(path) | Destination::Fallback(path) => path,
            Destination::Stderr => return,
            Destination::Nothing => {
                eprintln!(
                    "theseus: no task ran, so no profile was written ({} is left as it was)",
                    self.out.display()
                );
                return;
            }
        };
        eprintln!(
            "theseus: profile written to {}; read it with: {}",
            path.display(),
            open_command(path, self.format)
        );
    }

    /// Cuts the interval since the last one and writes it as snapshot
    /// number `*written + 1`; failures are reported on stderr and returned.
    fn write_interval(&self, written: &mut u64) -> io::Result<PathBuf> {
        let profile = self.tracer.take_interval();
        *written += 1;
        let path = snapshot_path(&self.out, self.format, *written);
        let bytes = self.render(&profile);
        match write_atomically(&path, |w| w.write_all(&bytes)) {
            Ok(()) => Ok(path),
            Err(e) => {
                eprintln!(
                    "theseus: could not write the interval profile {}: {e}; \
                     the next interval is tried all the same, and the whole run \
                     still goes to {} at the end",
                    path.display(),
                    self.out.display()
                );
                Err(e)
            }
        }
    }

    fn render(&self, profile: &Profile) -> Vec<u8> {
        let mut bytes = Vec::new();
        if let Err(e) = profile.write(self.format, self.event, &mut bytes) {
            // Writing into a Vec cannot fail on I/O; report what did.
            eprintln!("theseus: could not render the profile: {e}");
        }
        bytes
    }
}

impl Session {
    /// Starts a session from the environment (see [`Config::from_env`]):
    /// `Ok(None)` when `THESEUS=0`.
    ///
    /// A `THESEUS_*` variable that theseus does not read (a misspelling such
    /// as `THESEUS_OUTPUT`) gets a warning on standard error naming the
    /// ones it reads.
    pub fn from_env() -> Result<Option<Session>, ConfigError> {
        let names = std::env::vars_os().map(|(name, _)| name);
        if let Some(warning) = crate::config::unknown_variables_warning(names) {
            eprintln!("theseus: {warning}");
        }
        Session::start(&Config::from_env()?)
    }

    /// Starts a session with `config`: `Ok(None)` when it is disabled.
    ///
    /// Checks at once that the output can be written, by creating and
    /// removing a file in its directory, so a bad path is reported before
    /// the program runs rather than after. A relative output path is taken
    /// relative to the working directory now, so a later change of directory
    /// does not move it. Then sets the stack capture mode
    /// ([`crate::set_capture_mode`]) and the await mode
    /// ([`crate::set_await_mode`]), installs a tracer, starts the CPU
    /// sampler if `config.sample_hz` asks for it (a sampler that cannot
    /// start is an error naming `THESEUS_SAMPLE_HZ`) and, if
    /// `config.signals`, the SIGINT/SIGTERM handling.
    pub fn start(config: &Config) -> Result<Option<Session>, ConfigError> {
        if !config.enabled {
            return Ok(None);
        }
        let out = absolute(&config.out);
        check_writable(&out).map_err(|problem| {
            ConfigError::unusable("THESEUS_OUT", config.out.display().to_string(), problem)
        })?;
        if let Some(interval) = config.interval {
            check_snapshots_fit(&out, config.format()).map_err(|problem| {
                ConfigError::unusable("THESEUS_INTERVAL", interval_text(interval), problem)
            })?;
        }
        crate::capture::set_capture_mode(config.stacks);
        crate::capture::set_await_mode(config.awaits);

        let tracer = Tracer::new();
        tracer.install();
        // On an error, `tracer` is dropped on return, which uninstalls it.
        let sampler = start_sampler(config.sample_hz)?;
        let inner = Arc::new(Inner {
            tracer,
            out,
            format: config.format(),
            event: config.event,
            intervals: config.interval.is_some(),
            report: config.report,
            writing: Mutex::new(0),
            started: Starter::this_process(),
            final_write: AtomicBool::new(false),
        });
        let ticker = match config.interval {
            None => None,
            Some(interval) => Some(start_ticker(&inner, interval)?),
        };
        let http = match config.http {
            None => None,
            Some(address) => Some(start_http(&inner, address, config.event)?),
        };
        let signals = if config.signals {
            write_on_signals(&inner)
        } else {
            None
        };
        write_at_exit(&inner);
        Ok(Some(Session {
            inner,
            sampler,
            signals,
            ticker,
            http,
            finished: false,
        }))
    }

    /// The absolute path the profile is written to.
    pub fn path(&self) -> &Path {
        &self.inner.out
    }

    /// The session's tracer.
    pub fn tracer(&self) -> &Tracer {
        &self.inner.tracer
    }

    /// Where the profiles are served over HTTP (`THESEUS_HTTP`, with the
    /// port it got for port 0), if they are.
    ///
    /// ```no_run
    /// use theseus_profiler::{Config, Session};
    ///
    /// let config = Config { http: Some("127.0.0.1:0".parse().unwrap()), ..Config::default() };
    /// let session = Session::start(&config).unwrap().unwrap();
    /// let address = session.http_address().unwrap();
    /// println!("curl -o now.pb.gz 'http://{address}/debug/pprof/theseus?seconds=10'");
    /// ```
    pub fn http_address(&self) -> Option<std::net::SocketAddr> {
        self.http.as_ref().map(crate::http::Server::address)
    }

    /// The format the profile is written in.
    pub fn format(&self) -> Format {
        self.inner.format
    }

    /// Writes the profile so far (finished tasks, and live ones as
    /// unfinished), atomically, without ending the session.
    pub fn write_profile_so_far(&self) -> Destination {
        self.inner.write_profile()
    }

    /// Ends the current interval and writes its profile beside the output,
    /// numbered after the last one ([`crate::snapshots::snapshot_path`]);
    /// returns where it went. This is what `THESEUS_INTERVAL` does on a
    /// timer, for programs that would rather cut on their own schedule
    /// (after each batch, on a request). The next interval starts now.
    ///
    /// A failure is reported on standard error too; the session goes on.
    pub fn write_interval(&self) -> io::Result<PathBuf> {
        let mut written = self
            .inner
            .writing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.inner.write_interval(&mut written)
    }

    /// Stops the CPU sampler (if any), writes the final profile, says on
    /// standard error where it went and how to read it, uninstalls the
    /// tracer and gives the signals back. Returns where the profile went.
    pub fn finish(mut self) -> Destination {
        self.finish_in_place()
    }

    fn finish_in_place(&mut self) -> Destination {
        self.finished = true;
        if !self.inner.started.is_this_process() {
            return self.leave_to_the_parent();
        }
        // Before the final write, which writes the last interval itself.
        if let Some(mut ticker) = self.ticker.take() {
            ticker.stop();
        }
        if let Some(sampler) = self.sampler.take() {
            sampler.stop();
        }
        if let Some(mut http) = self.http.take() {
            http.stop();
        }
        let written = self.inner.write_final();
        forget_at_exit(&self.inner);
        self.inner.tracer.uninstall();
        // After the write: a signal arriving during it still finds a handler
        // that waits for the write to finish.
        self.signals = None;
        written
    }
}

impl Session {
    /// In a forked child: the session is the parent's, which writes its
    /// profile; the child lets go of the threads it does not have, and of
    /// the tracer, and writes nothing. Says where the parent's goes.
    fn leave_to_the_parent(&mut self) -> Destination {
        if let Some(mut ticker) = self.ticker.take() {
            ticker.stop();
        }
        drop(self.sampler.take());
        forget_at_exit(&self.inner);
        self.inner.tracer.uninstall();
        self.signals = None;
        Destination::Out(self.inner.out.clone())
    }
}

/// theseus's CPU sampler at `hz`, if asked for; a sampler that cannot
/// start is an error naming `THESEUS_SAMPLE_HZ`.
fn start_sampler(hz: Option<u32>) -> Result<Option<crate::sampler::Sampler>, ConfigError> {
    let Some(hz) = hz else {
        return Ok(None);
    };
    crate::sampler::Sampler::start(hz).map(Some).map_err(|e| {
        ConfigError::unusable(
            "THESEUS_SAMPLE_HZ",
            hz.to_string(),
            format!("cannot start the CPU sampler: {e}"),
        )
    })
}

/// Has SIGINT and SIGTERM write the session's profile (see
/// [`crate::exit_signal`]); where that cannot be set up, says so, and the
/// profile is written when the program ends.
fn write_on_signals(inner: &Arc<Inner>) -> Option<crate::exit_signal::SignalGuard> {
    let weak = Arc::downgrade(inner);
    let write = Arc::new(move || {
        let written = weak
            .upgrade()
            .and_then(|inner| Some((inner.write_on_signal()?, inner)));
        if let Some((destination, inner)) = written {
            inner.announce(&destination);
        }
    });
    match crate::exit_signal::write_on_termination(write) {
        Ok(guard) => Some(guard),
        Err(e) => {
            eprintln!(
                "theseus: cannot handle SIGINT/SIGTERM ({e}); \
                 the profile will be written only when the program ends normally"
            );
            None
        }
    }
}

/// The session whose profile is written if the process ends through
/// `exit` (`std::process::exit`, common in command-line tools) before the
/// session finishes: no destructor runs then, but `atexit` handlers do.
static AT_EXIT: Mutex<Option<Weak<Inner>>> = Mutex::new(None);

/// Makes `inner` the session written at exit, registering the handler the
/// first time. Where the handler cannot be registered, says so: the
/// profile is then written only when the program ends normally.
fn write_at_exit(inner: &Arc<Inner>) {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    // SAFETY: `at_exit` is an `extern "C" fn()` that lives as long as the
    // program and never unwinds (it catches panics).
    let registered = *REGISTERED.get_or_init(|| unsafe { libc::atexit(at_exit) } == 0);
    if registered {
        *AT_EXIT.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::downgrade(inner));
    } else {
        eprintln!(
            "theseus: cannot register an exit handler; if the program ends with \
             std::process::exit, its profile will not be written"
        );
    }
}

/// After a session finished: nothing left to write at exit.
fn forget_at_exit(inner: &Arc<Inner>) {
    let mut at_exit = AT_EXIT.lock().unwrap_or_else(PoisonError::into_inner);
    if at_exit
        .as_ref()
        .is_some_and(|weak| std::ptr::eq(weak.as_ptr(), Arc::as_ptr(inner)))
    {
        *at_exit = None;
    }
}

/// Runs in `exit`, on the thread that called it, before the process ends:
/// other threads still run, so the profile is written as a SIGINT snapshot
/// is (tasks still running counted as unfinished). No theseus lock is held
/// across user code, so none can be held by this thread here.
extern "C" fn at_exit() {
    let written = std::panic::catch_unwind(|| {
        let inner = AT_EXIT
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .and_then(|weak| weak.upgrade())
            .filter(|inner| inner.started.is_this_process());
        if let Some(inner) = inner {
            inner.write_final();
        }
    });
    if written.is_err() {
        eprintln!("theseus: writing the profile at exit failed");
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.finished {
            self.finish_in_place();
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("path", &self.inner.out)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    match std::env::current_dir() {
        Ok(cwd) => cwd.join(path),
        Err(_) => path.to_path_buf(),
    }
}

/// The session as the HTTP server reads it, while it runs.
struct Served(Weak<Inner>);

impl crate::http::Source for Served {
    fn so_far(&self) -> Option<Profile> {
        self.0.upgrade().map(|inner| inner.tracer.to_profile())
    }

    fn open_window(&self) -> Option<crate::tracer::Window> {
        self.0.upgrade().map(|inner| inner.tracer.open_window())
    }
}

/// Starts serving profiles on `address`; a taken port, or any other
/// reason it cannot listen there, is an error naming `THESEUS_HTTP`.
fn start_http(
    inner: &Arc<Inner>,
    address: std::net::SocketAddr,
    event: Event,
) -> Result<crate::http::Server, ConfigError> {
    let source = Arc::new(Served(Arc::downgrade(inner)));
    let server = crate::http::Server::start(address, source, event).map_err(|e| {
        ConfigError::unusable(
            "THESEUS_HTTP",
            address.to_string(),
            format!("cannot serve profiles there: {e}; pick a free port, or port 0 for any"),
        )
    })?;
    eprintln!(
        "theseus: serving profiles at http://{0}{1} and http://{0}{2}",
        server.address(),
        crate::http::PAGE_PATH,
        crate::http::PROFILE_PATH
    );
    Ok(server)
}

/// Starts the thread that writes a snapshot of each interval.
fn start_ticker(inner: &Arc<Inner>, interval: std::time::Duration) -> Result<Ticker, ConfigError> {
    let weak = Arc::downgrade(inner);
    let tick = move || match weak.upgrade() {
        Some(inner) => {
            let mut written = inner.writing.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = inner.write_interval(&mut written);
            true
        }
        None => false,
    };
    Ticker::start(interval, tick).map_err(|e| {
        ConfigError::unusable(
            "THESEUS_INTERVAL",
            interval_text(interval),
            format!("cannot start the thread that writes the intervals: {e}"),
        )
    })
}

/// An interval as `THESEUS_INTERVAL` accepts it, in the largest whole unit.
fn interval_text(interval: std::time::Duration) -> String {
    let ms = interval.as_millis();
    match ms {
        _ if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        _ if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        _ => format!("{ms}ms"),
    }
}

/// Interval snapshots go beside the output, under names made from its own
/// ([`snapshot_path`]): that takes an output that names a file, not a
/// device, a FIFO or a directory.
fn check_snapshots_fit(out: &Path, format: Format) -> Result<(), String> {
    match fs::metadata(out) {
        Ok(meta) if !meta.is_file() => Err(format!(
            "needs THESEUS_OUT to name a regular file, and {} is not one: the interval \
             profiles are written beside it, as {}",
            out.display(),
            snapshot_path(out, format, 1).display()
        )),
        _ => Ok(()),
    }
}
