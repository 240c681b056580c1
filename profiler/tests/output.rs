//! Settings, the output session, atomic writes and the fallback.

mod common;

use common::{check_with_readers, list, serial, temp_dir};
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use theseus_profiler::output::{check_writable, fallback_path, write_atomically};
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
    assert_eq!(c.stacks, CaptureMode::Default);
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
        ("default", CaptureMode::Default),
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
    let dir = temp_dir("unwritable");
    let file = dir.join("a-file");
    std::fs::write(&file, "x").unwrap();
    for bad in [
        dir.join("missing-dir").join("out.callgrind"),
        file.join("out.callgrind"),
        dir.clone(),
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
        assert!(check_writable(&bad).is_err());
        assert!(!theseus_profiler::is_active(), "no tracer left installed");
    }
    assert!(check_writable(&dir.join("ok.callgrind")).is_ok());
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
    let dir = temp_dir("session");
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
    assert_eq!(session.write_snapshot(), Destination::Out(out.clone()));
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
    let dir = temp_dir("drop");
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
    let dir = temp_dir("fallback");
    let out = dir.join("p.callgrind");
    let c = Config {
        out: out.clone(),
        signals: false,
        ..Config::default()
    };
    let session = Session::start(&c).unwrap().unwrap();
    common::some_records();
    std::fs::remove_dir_all(&dir).unwrap();
    let fallback = fallback_path();
    let _ = std::fs::remove_file(&fallback);
    assert_eq!(session.finish(), Destination::Fallback(fallback.clone()));
    assert_eq!(check_with_readers(&fallback).totals[6], 2);
    std::fs::remove_file(&fallback).unwrap();
}

#[test]
fn atomic_write_never_leaves_a_partial_file() {
    let dir = temp_dir("atomic");
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
