//! A profiling session as a program sees it: read the settings, check the
//! output path at start, install a tracer, write the profile at the end (and
//! on SIGINT/SIGTERM), atomically, and never lose it silently.
//!
//! Writes go to a temporary file in the output's directory, which is synced
//! and then renamed over the output: a reader sees the old file or the new
//! one, never half of one. If the output cannot be written at the end, the
//! profile goes to `theseus-<pid>.callgrind` in the system's temporary
//! directory, and if even that fails, to standard error; each time a message
//! on standard error says where it went.

use crate::config::{Config, ConfigError};
use crate::Tracer;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Where a profile was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// The configured output path.
    Out(PathBuf),
    /// The fallback file, because the output path failed.
    Fallback(PathBuf),
    /// Standard error, because no file could be written.
    Stderr,
}

/// A running profiling session: a tracer installed for the whole program
/// and the path its profile goes to.
///
/// Dropping a session without [`Session::finish`] finishes it, so a profile
/// is written even when the program unwinds past it.
pub struct Session {
    inner: Arc<Inner>,
    /// theseus's CPU sampler, when `THESEUS_SAMPLE_HZ` asked for it;
    /// stopped before the final write, so the write itself is not sampled
    /// and every buffered sample is in the profile.
    sampler: Option<crate::Sampler>,
    /// Kept for its `Drop`, which gives the signals back.
    signals: Option<crate::signal::SignalGuard>,
    finished: bool,
}

struct Inner {
    tracer: Tracer,
    out: PathBuf,
    /// One write at a time: the final write and a signal's snapshot may race.
    writing: Mutex<()>,
}

impl Inner {
    fn write_profile(&self) -> Destination {
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let mut bytes = Vec::new();
        if let Err(e) = self.tracer.write_data(&mut bytes) {
            // Writing into a Vec cannot fail on I/O; report what did.
            eprintln!("theseus: could not render the profile: {e}");
        }
        deliver(&self.out, &bytes)
    }
}

impl Session {
    /// Starts a session from the environment (see [`Config::from_env`]):
    /// `Ok(None)` when `THESEUS=0`.
    pub fn from_env() -> Result<Option<Session>, ConfigError> {
        Session::start(&Config::from_env()?)
    }

    /// Starts a session with `config`: `Ok(None)` when it is disabled.
    ///
    /// Checks at once that the output can be written, by creating and
    /// removing a file in its directory, so a bad path is reported before
    /// the program runs rather than after. A relative output path is taken
    /// relative to the working directory now, so a later change of directory
    /// does not move it. Then sets the stack capture mode
    /// ([`crate::set_capture_mode`]), installs a tracer, starts the CPU
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
        crate::set_capture_mode(config.stacks);

        let tracer = Tracer::new();
        tracer.install();
        let sampler = match config.sample_hz {
            None => None,
            Some(hz) => Some(crate::Sampler::start(hz).map_err(|e| {
                // `tracer` is dropped on return, which uninstalls it.
                ConfigError::unusable(
                    "THESEUS_SAMPLE_HZ",
                    hz.to_string(),
                    format!("cannot start the CPU sampler: {e}"),
                )
            })?),
        };
        let inner = Arc::new(Inner {
            tracer,
            out,
            writing: Mutex::new(()),
        });
        let signals = if config.signals {
            let weak = Arc::downgrade(&inner);
            let write = Arc::new(move || {
                if let Some(inner) = weak.upgrade() {
                    inner.write_profile();
                }
            });
            match crate::signal::write_on_termination(write) {
                Ok(guard) => Some(guard),
                Err(e) => {
                    eprintln!(
                        "theseus: cannot handle SIGINT/SIGTERM ({e}); \
                         the profile will be written only when the program ends normally"
                    );
                    None
                }
            }
        } else {
            None
        };
        Ok(Some(Session {
            inner,
            sampler,
            signals,
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

    /// Writes the profile so far (finished tasks, and live ones as
    /// unfinished), atomically, without ending the session.
    pub fn write_snapshot(&self) -> Destination {
        self.inner.write_profile()
    }

    /// Stops the CPU sampler (if any), writes the final profile, uninstalls
    /// the tracer and gives the signals back. Returns where the profile went.
    pub fn finish(mut self) -> Destination {
        self.finish_in_place()
    }

    fn finish_in_place(&mut self) -> Destination {
        self.finished = true;
        if let Some(sampler) = self.sampler.take() {
            sampler.stop();
        }
        let written = self.inner.write_profile();
        self.inner.tracer.uninstall();
        // After the write: a signal arriving during it still finds a handler
        // that waits for the write to finish.
        self.signals = None;
        written
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

/// Checks that a profile could be written at `path`: it is not a directory,
/// and a file can be created (and is then removed) in its directory.
/// The error says what is wrong and how to fix it.
pub fn check_writable(path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err(format!(
            "is a directory; set THESEUS_OUT to a file path such as {}",
            path.join(crate::config::DEFAULT_OUT).display()
        ));
    }
    let probe = temporary_beside(path, "check");
    match OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(file) => {
            drop(file);
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!(
            "cannot be written: creating a file in {} failed: {e}; \
             set THESEUS_OUT to a path in a writable directory",
            directory_of(path).display()
        )),
    }
}

/// Writes a file atomically: `write` fills a temporary file in the same
/// directory, which is synced to disk and then renamed to `path`. On any
/// error, or a panic in `write`, the temporary file is removed and `path`
/// is left as it was.
pub fn write_atomically(
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
