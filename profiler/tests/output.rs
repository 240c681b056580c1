//! Settings, the output session, atomic writes and the fallback.

mod common;

use common::{check_with_readers, list, serial, Scratch};
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use theseus_profiler::{CaptureMode, Config, Destination, Session};

fn config(vars: &[(&str, &str)]) -> Result<Config, theseus_profiler::ConfigError> {
    let map: HashMap<String, OsString> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    Config::from_lookup(|name| map.get(name).cloned())
}

#[test]
fn defaults() {
    let c = config(&[]).unwrap();
    assert!(c.enabled && c.signals);
    assert_eq!(c.out, PathBuf::from("callgrind.theseus"));
    assert_eq!(c.stacks, CaptureMode::Cached);
    // Empty counts as unset.
    assert_eq!(config(&[("THESEUS", ""), ("THESEUS_OUT", "")]).unwrap(), c);
}

#[test]
fn accepted_values() {
    assert!(!config(&[("THESEUS", "0")]).unwrap().enabled);
    assert!(config(&[("THESEUS", "1")]).unwrap().enabled);
    assert_eq!(
        config(&[("THESEUS_OUT", "a/b.cg")]).unwrap().out,
        PathBuf::from("a/b.cg")
    );
    for (v, mode) in [
        ("default", CaptureMode::Cached),
        ("full", CaptureMode::Full),
        ("location", CaptureMode::Location),
        ("Full", CaptureMode::Full),
    ] {
        assert_eq!(config(&[("THESEUS_STACKS", v)]).unwrap().stacks, mode);
    }
}

#[test]
fn bad_values_name_the_variable_the_value_and_what_is_accepted() {
    let e = config(&[("THESEUS", "yes")]).unwrap_err();
    assert_eq!((e.variable(), e.value()), ("THESEUS", "yes"));
    let msg = e.to_string();
    for part in ["THESEUS=\"yes\"", "0", "1", "accepted"] {
        assert!(msg.contains(part), "{msg:?} lacks {part:?}");
    }

    let e = config(&[("THESEUS_STACKS", "fulll")]).unwrap_err();
    assert_eq!(e.variable(), "THESEUS_STACKS");
    let msg = e.to_string();
    for part in ["THESEUS_STACKS=\"fulll\"", "default", "full", "location"] {
        assert!(msg.contains(part), "{msg:?} lacks {part:?}");
    }
}

#[test]
fn disabled_means_no_session() {
    let _g = serial();
    let c = config(&[("THESEUS", "0")]).unwrap();
    assert!(Session::start(&c).unwrap().is_none());
    assert!(!theseus_profiler::is_active());
}

#[test]
fn unwritable_output_is_reported_at_start() {
    let _g = serial();
    let dir = Scratch::new("unwritable");
    let file = dir.join("a-file");
    std::fs::write(&file, "x").unwrap();
    for bad in [
        dir.join("missing-dir").join("out.callgrind"),
        file.join("out.callgrind"),
        dir.to_path_buf(),
    ] {
        let c = Config {
            out: bad.clone(),
            signals: false,
            ..Config::default()
        };
        let e = Session::start(&c).unwrap_err();
        assert_eq!(e.variable(), "THESEUS_OUT");
        let msg = e.to_string();
        assert!(msg.contains("THESEUS_OUT"), "{msg}");
        assert!(msg.contains(&bad.display().to_string()), "{msg}");
        assert!(!theseus_profiler::is_active(), "no tracer left installed");
    }
    let ok = session_to(&dir.join("ok.callgrind"));
    assert_eq!(ok.finish(), Destination::Nothing, "no task, no profile");
    assert_eq!(
        list(&dir),
        vec!["a-file"],
        "the check leaves nothing behind"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_session_writes_its_profile_and_leaves_nothing_else() {
    let _g = serial();
    let dir = Scratch::new("session");
    let out = dir.join("app.callgrind");
    let c = Config {
        out: out.clone(),
        signals: false,
        ..Config::default()
    };
    let session = Session::start(&c).unwrap().unwrap();
    assert_eq!(session.path(), out);
    assert!(theseus_profiler::is_active());
    common::some_records();
    assert_eq!(
        session.write_profile_so_far(),
        Destination::Out(out.clone())
    );
    let snapshot = check_with_readers(&out);
    assert_eq!(snapshot.totals[6], 2);
    common::some_records();
    assert_eq!(session.finish(), Destination::Out(out.clone()));
    assert!(!theseus_profiler::is_active());
    let p = check_with_readers(&out);
    assert_eq!(p.totals[6], 4);
    assert_eq!(p.totals[0], 4_000);
    assert_eq!(list(&dir), vec!["app.callgrind"], "no temporary file left");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dropping_a_session_still_writes_the_profile() {
    let _g = serial();
    let dir = Scratch::new("drop");
    let out = dir.join("p.callgrind");
    let c = Config {
        out: out.clone(),
        signals: false,
        ..Config::default()
    };
    {
        let _session = Session::start(&c).unwrap().unwrap();
        common::some_records();
    }
    assert_eq!(check_with_readers(&out).totals[6], 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failing_output_falls_back_and_says_where() {
    let _g = serial();
    let dir = Scratch::new("fallback");
    let out = dir.join("p.callgrind");
    let c = Config {
        out: out.clone(),
        signals: false,
        ..Config::default()
    };
    let session = Session::start(&c).unwrap().unwrap();
    common::some_records();
    std::fs::remove_dir_all(&dir).unwrap();
    let fallback = fallback_file();
    let _ = std::fs::remove_file(&fallback);
    assert_eq!(session.finish(), Destination::Fallback(fallback.clone()));
    assert_eq!(check_with_readers(&fallback).totals[6], 2);
    std::fs::remove_file(&fallback).unwrap();
}

/// Where a profile goes when its output cannot be written, as the docs say:
/// `theseus-<pid>.callgrind` in the system's temporary directory.
fn fallback_file() -> PathBuf {
    std::env::temp_dir().join(format!("theseus-{}.callgrind", std::process::id()))
}

fn file_type(path: &std::path::Path) -> std::fs::FileType {
    std::fs::symlink_metadata(path).unwrap().file_type()
}

fn session_to(out: &std::path::Path) -> Session {
    let c = Config {
        out: out.to_path_buf(),
        signals: false,
        ..Config::default()
    };
    Session::start(&c).unwrap().unwrap()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Makes a device node at `path`, as `mknod` does: `kind` is `S_IFCHR` or
/// `S_IFBLK`, and (major, minor) the device.
fn mknod(path: &std::path::Path, kind: libc::mode_t, major: u32, minor: u32) {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c_path` is a NUL-terminated path that outlives the call.
    let made = unsafe { libc::mknod(c_path.as_ptr(), kind | 0o666, libc::makedev(major, minor)) };
    assert_eq!(
        made,
        0,
        "mknod {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// `THESEUS_OUT=/dev/null` run as root replaced `/dev/null` with a regular
/// file. Private nodes of the same devices, never the real ones: a device
/// is written through, the start-up check leaves it alone, and a device
/// that fails writes (like `/dev/full`) sends the profile to the fallback.
#[test]
fn a_device_node_is_written_through_never_replaced() {
    if !is_root() {
        eprintln!("skipped: making device nodes (mknod) needs root");
        return;
    }
    let _g = serial();
    let dir = Scratch::new("device");
    let null = dir.join("null");
    let full = dir.join("full");
    mknod(&null, libc::S_IFCHR, 1, 3);
    mknod(&full, libc::S_IFCHR, 1, 7);
    use std::os::unix::fs::FileTypeExt;
    for device in [&null, &full] {
        let session = session_to(device);
        assert!(file_type(device).is_char_device());
        drop(session);
    }
    assert_eq!(
        list(&dir),
        ["full", "null"],
        "the check made files beside them"
    );

    let session = session_to(&null);
    common::some_records();
    assert_eq!(session.finish(), Destination::Out(null.clone()));
    assert!(file_type(&null).is_char_device(), "the device was replaced");

    let session = session_to(&full);
    common::some_records();
    let fallback = fallback_file();
    let _ = std::fs::remove_file(&fallback);
    assert_eq!(session.finish(), Destination::Fallback(fallback.clone()));
    assert!(file_type(&full).is_char_device(), "the device was replaced");
    assert_eq!(check_with_readers(&fallback).totals[6], 2);
    std::fs::remove_file(&fallback).unwrap();
    assert_eq!(list(&dir), ["full", "null"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A FIFO is written through to the process reading it, and stays a FIFO.
#[test]
fn a_fifo_is_written_through_to_its_reader() {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::FileTypeExt;
    let _g = serial();
    let dir = Scratch::new("fifo");
    let fifo = dir.join("profile.fifo");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c_path` is a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    // Nobody reads it yet: the start-up check must neither block nor touch it.
    let session = session_to(&fifo);
    common::some_records();
    let reader = std::process::Command::new("cat")
        .arg(&fifo)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(session.finish(), Destination::Out(fifo.clone()));
    // A replaced FIFO would leave `cat` waiting for a writer for ever.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut reader = reader;
    while reader.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            reader.kill().unwrap();
            panic!("the reader of the FIFO got no end of file");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let read = reader.wait_with_output().unwrap();
    assert!(read.status.success());
    let text = String::from_utf8(read.stdout).unwrap();
    assert!(text.starts_with("# callgrind format\n"), "{text}");
    assert!(
        text.contains("\ntotals: 2000 200 20 1780 4 2 2 0\n"),
        "{text}"
    );
    assert!(file_type(&fifo).is_fifo(), "the FIFO was replaced");
    assert_eq!(list(&dir), ["profile.fifo"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A symlink's target is written (atomically, beside the target); the
/// link stays a link, also when its target does not exist yet.
#[test]
fn a_symlink_is_followed_and_its_target_written() {
    let _g = serial();
    let dir = Scratch::new("symlink");
    std::fs::create_dir(dir.join("profiles")).unwrap();
    let link = dir.join("latest.callgrind");
    std::os::unix::fs::symlink("profiles/run.callgrind", &link).unwrap();
    let target = dir.join("profiles/run.callgrind");
    for round in 1..=2 {
        let session = session_to(&link);
        common::some_records();
        assert_eq!(session.finish(), Destination::Out(link.clone()));
        assert!(
            file_type(&link).is_symlink(),
            "round {round}: the link was replaced"
        );
        assert!(file_type(&target).is_file());
        assert_eq!(check_with_readers(&target).totals[6], 2);
        assert_eq!(list(&dir), ["latest.callgrind", "profiles"]);
        assert_eq!(list(&dir.join("profiles")), ["run.callgrind"]);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writing a profile onto a disk or into a socket is never what was meant:
/// both are refused at start, saying what the path is.
#[test]
fn block_devices_and_sockets_are_refused() {
    let _g = serial();
    let dir = Scratch::new("refused");
    let socket = dir.join("socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let mut refused = vec![(socket, "socket")];
    if is_root() {
        let disk = dir.join("disk");
        mknod(&disk, libc::S_IFBLK, 7, 0);
        refused.push((disk, "block device"));
    }
    for (path, what) in refused {
        let c = Config {
            out: path.clone(),
            signals: false,
            ..Config::default()
        };
        let error = Session::start(&c).unwrap_err().to_string();
        assert!(error.contains(what), "{error}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
