//! How a profile spells a source file: the same on every machine and in
//! every working directory.
//!
//! Debug info names files by the absolute paths of the machine that built
//! the program: cargo's registry cache for a library
//! (`$CARGO_HOME/registry/src/<index>/tokio-1.54.1/src/time/sleep.rs`), the
//! checkout for the program's own. A profile shows a library's file from
//! its crate's directory on (`tokio-1.54.1/src/time/sleep.rs`), a git
//! dependency's from its checkout's directory on, and the program's own
//! relative to its crate root (the workspace's, for a workspace member), as
//! cargo spells them to the compiler (`src/server.rs`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// `file` as a profile shows it (see the module docs). A file under no
/// crate root (the program's sources are not on this machine) is shown
/// relative to `cwd` when it lies inside it, and as it is otherwise.
///
/// ```
/// use theseus_profiler::source_file::shown;
///
/// let sleep = "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/time/sleep.rs";
/// assert_eq!(shown(sleep, None), "tokio-1.54.1/src/time/sleep.rs");
/// ```
pub fn shown(file: &str, cwd: Option<&Path>) -> String {
    for cache in ["/registry/src/", "/git/checkouts/"] {
        if let Some(at) = file.find(cache) {
            let rest = &file[at + cache.len()..];
            // The registry's index directory, or the checkout's repository.
            if let Some((_, inside)) = rest.split_once('/') {
                return match cache {
                    "/registry/src/" => inside.to_string(),
                    _ => rest.to_string(),
                };
            }
        }
    }
    if Path::new(file).is_absolute() {
        if let Some(rest) = crate_root_of(Path::new(file)).and_then(|root| below(&root, file)) {
            return rest;
        }
        if let Some(rest) = cwd.and_then(|cwd| below(cwd, file)) {
            return rest;
        }
    }
    file.to_string()
}

/// Whether `file`, as [`shown`] spells it, is a library's: its first
/// directory is a crate's, `<name>-<version>`, or a git checkout's.
///
/// ```
/// use theseus_profiler::source_file::is_library;
///
/// assert!(is_library("tokio-1.54.1/src/time/sleep.rs"));
/// assert!(!is_library("src/main.rs"));
/// ```
pub fn is_library(file: &str) -> bool {
    let Some((first, _)) = file.split_once('/') else {
        return false;
    };
    // `tokio-1.54.1`, or a checkout's `bore-<16 hex digits of its URL's hash>`.
    first.rsplit_once('-').is_some_and(|(name, version)| {
        let hash = version.len() == 16 && version.chars().all(|c| c.is_ascii_hexdigit());
        !name.is_empty() && (version.starts_with(|c: char| c.is_ascii_digit()) || hash)
    })
}

/// `file` relative to `dir` when it lies inside it.
fn below(dir: &Path, file: &str) -> Option<String> {
    let dir = dir.to_str()?;
    let rest = file.strip_prefix(dir)?.strip_prefix('/')?;
    Some(rest.to_string())
}

/// The root of the crate that holds `file`: the nearest directory above it
/// with a `Cargo.toml`, or, when a directory further up has a `Cargo.toml`
/// with a `[workspace]`, the outermost such. Looked up once per directory.
fn crate_root_of(file: &Path) -> Option<PathBuf> {
    static ROOTS: Mutex<Option<HashMap<PathBuf, Option<PathBuf>>>> = Mutex::new(None);
    let dir = file.parent()?;
    let mut roots = ROOTS.lock().unwrap_or_else(|e| e.into_inner());
    let roots = roots.get_or_insert_with(HashMap::new);
    if let Some(root) = roots.get(dir) {
        return root.clone();
    }
    let found = find_crate_root(dir);
    roots.insert(dir.to_path_buf(), found.clone());
    found
}

fn find_crate_root(dir: &Path) -> Option<PathBuf> {
    let package = dir.ancestors().find(|d| d.join("Cargo.toml").is_file())?;
    let workspace = package.ancestors().filter(|d| {
        std::fs::read_to_string(d.join("Cargo.toml"))
            .is_ok_and(|manifest| manifest.lines().any(|l| l.trim() == "[workspace]"))
    });
    Some(workspace.last().unwrap_or(package).to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_are_shown_from_their_crate_directory() {
        let registry = "/home/u/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f";
        let file = format!("{registry}/h2-0.4.12/src/proto/streams/streams.rs");
        assert_eq!(shown(&file, None), "h2-0.4.12/src/proto/streams/streams.rs");
        let git = "/home/u/.cargo/git/checkouts/bore-5c1a0f0e2b3d4a11/3e2f1a9/src/lib.rs";
        assert_eq!(shown(git, None), "bore-5c1a0f0e2b3d4a11/3e2f1a9/src/lib.rs");
        assert!(is_library(&shown(&file, None)));
        assert!(is_library(&shown(git, None)));
        assert!(is_library("bore-a1b2c3d4e5f60718/3e2f1a9/src/lib.rs"));
        assert!(!is_library("my-app/src/main.rs"));
        assert!(!is_library("src/server.rs"));
        assert!(!is_library("tests/ground_truth.rs"));
        assert!(!is_library("???"));
    }

    #[test]
    fn the_programs_own_files_are_shown_from_its_crate_root_in_any_directory() {
        let root = std::env::temp_dir().join(format!("theseus-source-file-{}", std::process::id()));
        let member = root.join("server");
        std::fs::create_dir_all(member.join("src/net")).unwrap();
        std::fs::write(
            root.join("Cargo.toml"),
            "[workspace]\nmembers = [\"server\"]\n",
        )
        .unwrap();
        std::fs::write(member.join("Cargo.toml"), "[package]\nname = \"server\"\n").unwrap();
        let file = member.join("src/net/listen.rs");
        let file = file.to_str().unwrap();
        for cwd in [None, Some(Path::new("/")), Some(member.as_path())] {
            assert_eq!(shown(file, cwd), "server/src/net/listen.rs");
        }
        std::fs::remove_dir_all(&root).unwrap();
        // Where no crate root is found, the working directory is the base.
        let cwd = Path::new("/nowhere/app");
        assert_eq!(shown("/nowhere/app/src/main.rs", Some(cwd)), "src/main.rs");
        assert_eq!(shown("/nowhere/else.rs", Some(cwd)), "/nowhere/else.rs");
        assert_eq!(shown("src/lib.rs", Some(cwd)), "src/lib.rs");
    }
}
