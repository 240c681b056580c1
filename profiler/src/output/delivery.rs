//! Safe delivery of a profile file: written to a temporary file beside the
//! output, synced and renamed over it, so a reader sees the old file or the
//! new one, never half of one; a character device or a FIFO written
//! straight into, a symbolic link's target written, nothing the path points
//! at replaced by a regular file; and when the output cannot be written,
//! the fallback file, then standard error, each time saying where it went.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
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
pub(super) fn check_writable(path: &Path) -> Result<(), String> {
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
pub(super) fn write_atomically(
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

/// The file used when the output path cannot be written.
pub(super) fn fallback_path() -> PathBuf {
    std::env::temp_dir().join(format!("theseus-{}.callgrind", std::process::id()))
}

/// Writes `bytes` to `out`, else to the fallback file, else to standard
/// error, saying on standard error where it went whenever it is not `out`.
pub(super) fn deliver(out: &Path, bytes: &[u8]) -> Destination {
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

// A test's own temporary directory, as the workspace's tests have it.
#[cfg(test)]
#[path = "../../../tests/common/scratch.rs"]
mod scratch;

#[cfg(test)]
mod tests {
    use super::*;

    use super::scratch::Scratch;

    /// Names in a directory, sorted.
    fn list(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_start_up_check_refuses_what_cannot_hold_a_profile_and_leaves_nothing() {
        let dir = Scratch::new("unwritable-check");
        let file = dir.join("a-file");
        fs::write(&file, "x").unwrap();
        for bad in [
            dir.join("missing-dir").join("out.callgrind"),
            file.join("out.callgrind"),
            dir.to_path_buf(),
        ] {
            assert!(check_writable(&bad).is_err());
        }
        assert!(check_writable(&dir.join("ok.callgrind")).is_ok());
        assert_eq!(
            list(&dir),
            vec!["a-file"],
            "the check leaves nothing behind"
        );
    }

    /// Writing a profile into a socket (or onto a disk) is never what was
    /// meant: the check says what the path is, and a write fails.
    #[cfg(unix)]
    #[test]
    fn sockets_are_refused_by_the_check_and_never_written() {
        let dir = Scratch::new("refused-write");
        let socket = dir.join("socket");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let error = check_writable(&socket).unwrap_err();
        assert!(error.contains("socket"), "{error}");
        assert!(write_atomically(&socket, |w| w.write_all(b"x")).is_err());
    }

    #[test]
    fn the_fallback_is_in_the_temporary_directory_named_by_the_process() {
        let name = format!("theseus-{}.callgrind", std::process::id());
        assert_eq!(fallback_path(), std::env::temp_dir().join(name));
    }

    #[test]
    fn atomic_write_never_leaves_a_partial_file() {
        let dir = Scratch::new("atomic");
        let path = dir.join("profile");
        write_atomically(&path, |w| w.write_all(b"good and complete\n")).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "good and complete\n"
        );

        // A writer that fails half-way: the good file stays, no temporary remains.
        let err = write_atomically(&path, |w| {
            w.write_all(b"half of a ")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "good and complete\n"
        );
        assert_eq!(list(&dir), vec!["profile"]);

        // A writer that panics half-way: the same.
        let result = std::panic::catch_unwind(|| {
            let _ = write_atomically(&path, |w| {
                w.write_all(b"half")?;
                panic!("crash mid-write");
            });
        });
        assert!(result.is_err());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "good and complete\n"
        );
        assert_eq!(list(&dir), vec!["profile"]);

        // A rename that fails (a non-empty directory in the way): no temporary left.
        let blocked = dir.join("blocked");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("inside"), "x").unwrap();
        assert!(write_atomically(&blocked, |w| w.write_all(b"data")).is_err());
        assert_eq!(list(&dir), vec!["blocked", "profile"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
