//! The migration promise: a tokio program runs unchanged on theseus after
//! the README's substitutions, with the same output.

mod common;

use std::path::PathBuf;
use std::process::Command;

/// The README's migration, applied to source text: its sed line, run as a
/// user runs it, from a crate's root, on a copy of `tokio_source` in
/// `src/main.rs`.
fn migrate(tokio_source: &str) -> String {
    let readme = include_str!("../README.md");
    let line = readme
        .lines()
        .find(|line| line.starts_with("find src examples tests benches"))
        .expect("the README's sed line");
    let krate = common::Scratch::new("migrate");
    std::fs::create_dir(krate.join("src")).unwrap();
    std::fs::write(krate.join("src/main.rs"), tokio_source).unwrap();
    let status = Command::new("sh")
        .args(["-c", line])
        .current_dir(&*krate)
        .status()
        .unwrap();
    assert!(status.success(), "the README's sed line failed: {line}");
    std::fs::read_to_string(krate.join("src/main.rs")).unwrap()
}

fn example_binary(name: &str) -> PathBuf {
    // Integration tests live in target/<profile>/deps; cargo builds the
    // examples next door, in target/<profile>/examples.
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let path = deps.parent().unwrap().join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run through `cargo test`, which builds the examples",
        path.display()
    );
    path
}

#[test]
fn the_theseus_twin_is_exactly_the_migrated_tokio_program() {
    let root = env!("CARGO_MANIFEST_DIR");
    let tokio = std::fs::read_to_string(format!("{root}/examples/migration_tokio.rs")).unwrap();
    let theseus = std::fs::read_to_string(format!("{root}/examples/migration_theseus.rs")).unwrap();
    assert!(tokio.contains("#[tokio::main]") && tokio.contains("tokio::spawn("));
    assert_eq!(
        theseus,
        migrate(&tokio),
        "examples/migration_theseus.rs is not the migrated tokio program"
    );
}

#[test]
fn the_migrated_program_prints_what_the_tokio_program_prints() {
    let out_dir = common::Scratch::new("migration");
    let run = |name: &str| {
        let output = Command::new(example_binary(name))
            .env("THESEUS_OUT", out_dir.join("migration.callgrind"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{name} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let expected = run("migration_tokio");
    assert_eq!(expected.lines().count(), 9, "{expected}");
    assert_eq!(run("migration_theseus"), expected);
}
