//! A profiling session as a program sees it: read the settings, check the
//! output path at start, install a tracer, write the profile at the end (and
//! on SIGINT/SIGTERM), atomically, and never lose it silently.
//!
//! Writes go to a temporary file in the output's directory, which is synced
//! and then renamed over the output: a reader sees the old file or the new
//! one, never half of one. A character device or a FIFO is written straight
//! into instead, and a symbolic link's target is written (see
//! [`write_atomically`]): nothing the path points at is ever replaced by a
//! regular file. If the output cannot be written at the end, the
//! profile goes to `theseus-<pid>.callgrind` in the system's temporary
//! directory, and if even that fails, to standard error; each time a message
//! on standard error says where it went.
//!
//! The profile is rendered in the session's [`Format`] (`THESEUS_FORMAT`,
//! or `THESEUS_OUT`'s extension). With `THESEUS_INTERVAL`, a timer thread
//! has the session write a profile of each interval beside the output (see
//! [`crate::snapshots`]); every write of the whole run is preceded by the
//! snapshot of the interval since the last one, so the snapshots cover the
//! run. With `THESEUS_REPORT=1`, each write of the whole run also prints
//! the top stacks to standard error ([`crate::report`]).

use crate::config::{Config, ConfigError};
use crate::forked::Starter;
use crate::format::Format;
use crate::profile::{Event, Profile};
use crate::snapshots::{snapshot_path, Ticker};
use crate::tracer::Tracer;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

/// Where a profile was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// The configured output path.
    Out(PathBuf),
    /// The fallback file, because the output path failed.
    Fallback(PathBuf),
    /// Standard error, because no file could be written.
    Stderr,
    /// Nowhere: the run had no task and no CPU sample (a `--help`, a
    /// start-up error), and an empty profile would only replace a useful
    /// one. Whatever was at the output path is left as it was.
    Nothing,
}

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
        crate::stack::set_capture_mode(config.stacks);
        crate::stack::set_await_mode(config.awaits);

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

/// The directory a file at `path` lives in.
fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// A name for a temporary file next to `path`, unique in this process.
fn temporary_beside(path: &Path, purpose: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "profile".to_string());
    directory_of(path).join(format!(".{name}.{}.{n}.{purpose}", std::process::id()))
}

/// What an output path is, once symbolic links are followed: how a profile
/// can be written there without damaging it.
enum Target {
    /// A regular file, or nothing yet: written to a temporary file beside
    /// it, then renamed into place.
    File(PathBuf),
    /// A character device (`/dev/null`, a terminal) or a FIFO: written
    /// straight into it. Renaming a file over it would replace the device
    /// or the pipe with a regular file.
    Stream { path: PathBuf, fifo: bool },
}

/// Most symbolic links followed, as Linux's own limit.
const MAX_LINKS: usize = 40;

/// How long a write waits for a process to open a FIFO for reading, before
/// the profile goes to the fallback file instead: a program should not hang
/// at exit for a reader that never comes.
const FIFO_WAIT: Duration = Duration::from_secs(10);

/// What `path` is: a symlink's final target, and how to write it. An error
/// for what must not or cannot be written: a directory (kind
/// `IsADirectory`), a block device, a socket.
fn target_of(path: &Path) -> io::Result<Target> {
    let mut path = path.to_path_buf();
    for _ in 0..=MAX_LINKS {
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Target::File(path)),
            Err(e) => return Err(e),
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            // A relative link is relative to the link's directory; joining
            // an absolute one replaces the directory.
            let link = fs::read_link(&path)?;
            path = directory_of(&path).join(link);
            continue;
        }
        if kind.is_file() {
            return Ok(Target::File(path));
        }
        if kind.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a directory", path.display()),
            ));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            let refused = if kind.is_char_device() {
                return Ok(Target::Stream { path, fifo: false });
            } else if kind.is_fifo() {
                return Ok(Target::Stream { path, fifo: true });
            } else if kind.is_block_device() {
                "is a block device: a profile written there would overwrite the disk's contents"
            } else if kind.is_socket() {
                "is a socket, which cannot be written as a file"
            } else {
                "is neither a file, a character device nor a FIFO"
            };
            return Err(io::Error::other(format!("{} {refused}", path.display())));
        }
        #[cfg(not(unix))]
        return Err(io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Err(io::Error::other(format!(
        "{}: more than {MAX_LINKS} levels of symbolic links",
        path.display()
    )))
}

/// Checks that a profile could be written at `path`, without changing
/// anything there. A regular file (or nothing yet): a file can be created
/// (and is then removed) in its directory. A character device or FIFO: it
/// is writable; it is not opened, since opening a FIFO waits for a reader.
/// A symlink is checked as its target. The error says what is wrong and how
/// to fix it.
pub fn check_writable(path: &Path) -> Result<(), String> {
    if names_a_directory(path) {
        return Err(format!(
            "names a directory (it ends with `/`, `/.` or `..`); set THESEUS_OUT to a file \
             path such as {}",
            path.join(crate::config::DEFAULT_OUT).display()
        ));
    }
    let target = match target_of(path) {
        Ok(target) => target,
        Err(e) if e.kind() == io::ErrorKind::IsADirectory => {
            return Err(format!(
                "is a directory; set THESEUS_OUT to a file path such as {}",
                path.join(crate::config::DEFAULT_OUT).display()
            ))
        }
        Err(e) => {
            return Err(format!(
                "cannot be used: {e}; set THESEUS_OUT to a file, a character device or a FIFO"
            ))
        }
    };
    match target {
        Target::File(file) => {
            let probe = temporary_beside(&file, "check");
            match OpenOptions::new().write(true).create_new(true).open(&probe) {
                Ok(created) => {
                    drop(created);
                    let _ = fs::remove_file(&probe);
                    Ok(())
                }
                Err(e) => Err(format!(
                    "cannot be written: creating a file in {} failed: {e}; \
                     set THESEUS_OUT to a path in a writable directory",
                    directory_of(&file).display()
                )),
            }
        }
        Target::Stream { path: stream, .. } => {
            writable(&stream).map_err(|e| format!("cannot be written: {}: {e}", stream.display()))
        }
    }
}

/// Whether `path` can only name a directory, whether one is there or not:
/// a file path never ends with a separator, `.` or `..`.
fn names_a_directory(path: &Path) -> bool {
    let bytes = path.as_os_str().as_encoded_bytes();
    bytes.ends_with(b"/") || bytes.ends_with(b"/.") || path.file_name().is_none()
}

/// Whether this process may write `path`, asked without opening it.
#[cfg(unix)]
fn writable(path: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("the path holds a NUL byte"))?;
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call;
    // access(2) only reads it.
    if unsafe { libc::access(c_path.as_ptr(), libc::W_OK) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(unix))]
fn writable(_path: &Path) -> io::Result<()> {
    Ok(())
}

/// Writes a profile to `path` without damaging what is there, and so that
/// a reader never sees half of it where that can be promised:
///
/// - a regular file, or nothing yet: `write` fills a temporary file in the
///   same directory, which is synced to disk and then renamed to `path`. On
///   any error, or a panic in `write`, the temporary file is removed and
///   `path` is left as it was;
/// - a character device (`/dev/null`) or a FIFO: written straight into it
///   (for a FIFO, once a process opens it for reading, waiting up to ten
///   seconds for one), never replaced;
/// - a symbolic link: its target, as above; the link stays;
/// - a directory, a block device or a socket: an error, nothing written.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    match target_of(path)? {
        Target::File(file) => replace_file(&file, write),
        Target::Stream { path, fifo } => write_through(&path, fifo, write),
    }
}

/// The regular-file case of [`write_atomically`].
fn replace_file(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    /// Removes the temporary file unless it was renamed into place, also
    /// when `write` panics.
    struct Temporary(Option<PathBuf>);
    impl Drop for Temporary {
        fn drop(&mut self) {
            if let Some(path) = self.0.take() {
                let _ = fs::remove_file(path);
            }
        }
    }

    let tmp = temporary_beside(path, "tmp");
    let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
    let mut guard = Temporary(Some(tmp.clone()));
    {
        let mut buffered = io::BufWriter::new(&mut file);
        write(&mut buffered)?;
        buffered.flush()?;
    }
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    guard.0 = None;
    // Make the rename itself durable where the platform allows; the profile
    // is already complete and in place, so a failure here is not an error.
    if let Ok(dir) = fs::File::open(directory_of(path)) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// The device and FIFO case of [`write_atomically`]: opened without
/// creating or truncating anything, written, not synced (neither can be).
fn write_through(
    path: &Path,
    fifo: bool,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let file = if fifo {
        open_fifo(path)?
    } else {
        OpenOptions::new().write(true).open(path)?
    };
    let mut buffered = io::BufWriter::new(file);
    write(&mut buffered)?;
    buffered.flush()
}

/// Opens a FIFO for writing once a process has it open for reading, for at
/// most [`FIFO_WAIT`]. A plain open would wait for a reader for ever.
#[cfg(unix)]
fn open_fifo(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let deadline = std::time::Instant::now() + FIFO_WAIT;
    loop {
        let opened = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path);
        match opened {
            Ok(file) => {
                let fd = file.as_raw_fd();
                // SAFETY: `fd` is the open descriptor `file` owns; F_GETFL
                // and F_SETFL only read and set its status flags. Writes
                // should block while the reader catches up, not fail.
                unsafe {
                    let flags = libc::fcntl(fd, libc::F_GETFL);
                    if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                return Ok(file);
            }
            // ENXIO: no process has the FIFO open for reading yet.
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                if std::time::Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "no process opened the FIFO for reading within {} s",
                            FIFO_WAIT.as_secs()
                        ),
                    ));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(not(unix))]
fn open_fifo(path: &Path) -> io::Result<fs::File> {
    OpenOptions::new().write(true).open(path)
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

/// What to change when some frames were named without full debug info
/// (see [`crate::resolve`]): the first time only, `None` otherwise.
fn full_names_hint() -> Option<&'static str> {
    static GIVEN: AtomicBool = AtomicBool::new(false);
    (crate::stack::names_degraded() && !GIVEN.swap(true, Ordering::Relaxed)).then_some(FULL_NAMES)
}

/// The hint [`full_names_hint`] gives: the exact lines, ready to paste.
const FULL_NAMES: &str =
    "theseus: some functions in this profile are named by file and line only: \
the program was built without full debug info (cargo's release profile has none, \
and `debug = \"line-tables-only\"` keeps no paths). For full names, add these lines \
to Cargo.toml and rebuild:

[profile.release]
debug = \"limited\"
";

/// One shell command that shows the profile at `path`, written in
/// `format`. For callgrind, `callgrind_annotate` (it comes with valgrind),
/// with a threshold of 100 % to list every function: the default of 99 %
/// hides all but the largest.
pub fn open_command(path: &Path, format: Format) -> String {
    let quoted = shell_quoted(&path.to_string_lossy());
    match format {
        Format::Callgrind => {
            format!("callgrind_annotate --inclusive=yes --threshold=100 {quoted}")
        }
        Format::Pprof => format!("go tool pprof -top {quoted}"),
        Format::Folded => format!(
            "inferno-flamegraph {quoted} > {}",
            shell_quoted(&path.with_extension("svg").to_string_lossy())
        ),
        Format::FlameGraph => format!("xdg-open {quoted}"),
    }
}

/// `word` as one shell word: as it is when it is made of characters no
/// shell treats specially, else in single quotes.
fn shell_quoted(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:+,=@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The file used when the output path cannot be written.
pub fn fallback_path() -> PathBuf {
    std::env::temp_dir().join(format!("theseus-{}.callgrind", std::process::id()))
}

/// Writes `bytes` to `out`, else to the fallback file, else to standard
/// error, saying on standard error where it went whenever it is not `out`.
fn deliver(out: &Path, bytes: &[u8]) -> Destination {
    let first = match write_atomically(out, |w| w.write_all(bytes)) {
        Ok(()) => return Destination::Out(out.to_path_buf()),
        Err(e) => e,
    };
    let fallback = fallback_path();
    match write_atomically(&fallback, |w| w.write_all(bytes)) {
        Ok(()) => {
            eprintln!(
                "theseus: could not write the profile to {}: {first}; wrote it to {} instead",
                out.display(),
                fallback.display()
            );
            Destination::Fallback(fallback)
        }
        Err(second) => {
            eprintln!(
                "theseus: could not write the profile to {} ({first}) nor to {} ({second}); \
                 it follows on standard error, between the BEGIN and END lines",
                out.display(),
                fallback.display()
            );
            let stderr = io::stderr();
            let mut stderr = stderr.lock();
            let _ = writeln!(stderr, "----- BEGIN theseus profile -----");
            let _ = stderr.write_all(bytes);
            let _ = writeln!(stderr, "----- END theseus profile -----");
            Destination::Stderr
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_names_hint_is_given_once_with_the_lines_to_paste() {
        crate::stack::mark_names_degraded();
        let hint = full_names_hint().expect("names were degraded");
        assert!(
            hint.contains("\n[profile.release]\ndebug = \"limited\"\n"),
            "{hint}"
        );
        assert_eq!(full_names_hint(), None, "given twice");
    }

    #[test]
    fn open_commands_fit_the_format_and_quote_what_a_shell_would_split() {
        let path = Path::new("/tmp/app.callgrind");
        assert_eq!(
            open_command(path, Format::Callgrind),
            "callgrind_annotate --inclusive=yes --threshold=100 /tmp/app.callgrind"
        );
        assert_eq!(
            open_command(Path::new("/tmp/my app's.cg"), Format::Callgrind),
            "callgrind_annotate --inclusive=yes --threshold=100 '/tmp/my app'\\''s.cg'"
        );
        assert_eq!(
            open_command(Path::new("app.pb.gz"), Format::Pprof),
            "go tool pprof -top app.pb.gz"
        );
        assert_eq!(
            open_command(Path::new("app.folded"), Format::Folded),
            "inferno-flamegraph app.folded > app.svg"
        );
        assert_eq!(
            open_command(Path::new("app.svg"), Format::FlameGraph),
            "xdg-open app.svg"
        );
    }
}
