//! The migration promise: a tokio program runs unchanged on theseus after
//! the README's substitutions, with the same output.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The README's migration, applied to source text: its sed line, run as a
/// user runs it, from a crate's root, on a copy of `tokio_source` in
/// `src/main.rs`.
fn migrate(tokio_source: &str) -> String {
    let krate = common::Scratch::new("migrate");
    std::fs::create_dir(krate.join("src")).unwrap();
    std::fs::write(krate.join("src/main.rs"), tokio_source).unwrap();
    run_sed_line(&krate);
    std::fs::read_to_string(krate.join("src/main.rs")).unwrap()
}

/// Runs the README's sed line, as a user runs it, in the crate at `root`.
fn run_sed_line(root: &Path) {
    let readme = include_str!("../README.md");
    let line = readme
        .lines()
        .find(|line| line.starts_with("find src examples tests benches"))
        .expect("the README's sed line");
    let status = Command::new("sh")
        .args(["-c", line])
        .current_dir(root)
        .status()
        .unwrap();
    assert!(status.success(), "the README's sed line failed: {line}");
}

#[test]
fn the_sed_line_writes_only_regular_files_that_use_tokio_s_task_api() {
    let krate = common::Scratch::new("migrate-files");
    for dir in ["src", "examples", "support"] {
        std::fs::create_dir(krate.join(dir)).unwrap();
    }
    let tokio =
        "#[tokio::main]\nasync fn main() {\n    let mut set = tokio::task::JoinSet::new();\n    \
                 set.spawn(async {});\n    tokio::spawn(async {});\n}\n";
    std::fs::write(krate.join("src/main.rs"), tokio).unwrap();
    std::fs::write(krate.join("examples/demo.rs"), tokio).unwrap();
    // A shared file reached through a symlink: sed -i would replace the
    // link with a migrated copy.
    std::fs::write(krate.join("support/shared.rs"), tokio).unwrap();
    std::os::unix::fs::symlink("../support/shared.rs", krate.join("src/shared.rs")).unwrap();
    // A file without tokio's task API is not rewritten, not even in place.
    let plain = krate.join("src/plain.rs");
    std::fs::write(&plain, "use tokio::time::sleep;\n").unwrap();
    let long_ago = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    std::fs::File::options()
        .write(true)
        .open(&plain)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();

    run_sed_line(&krate);

    let theseus = "#[theseus::main]\nasync fn main() {\n    let mut set = theseus::task::JoinSet::new();\n    \
                   set.spawn(async {});\n    theseus::spawn(async {});\n}\n";
    for migrated in ["src/main.rs", "examples/demo.rs"] {
        assert_eq!(
            std::fs::read_to_string(krate.join(migrated)).unwrap(),
            theseus
        );
    }
    let link = std::fs::symlink_metadata(krate.join("src/shared.rs")).unwrap();
    assert!(link.file_type().is_symlink(), "the symlink was replaced");
    assert_eq!(
        std::fs::read_to_string(krate.join("support/shared.rs")).unwrap(),
        tokio
    );
    let plain_meta = std::fs::metadata(&plain).unwrap();
    assert_eq!(
        plain_meta.modified().unwrap(),
        long_ago,
        "a file without tokio's task API was rewritten"
    );
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
    assert_eq!(expected.lines().count(), 10, "{expected}");
    assert_eq!(run("migration_theseus"), expected);
}
