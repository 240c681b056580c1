//! What a session says to the user on standard error beyond where the
//! profile went: the command that opens it, and how to get full names when
//! the program was built without full debug info.

use crate::format::Format;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// What to change when some frames were named without full debug info
/// (see [`crate::resolve`]): the first time only, `None` otherwise.
pub(super) fn full_names_hint() -> Option<&'static str> {
    static GIVEN: AtomicBool = AtomicBool::new(false);
    (crate::resolution::names_degraded() && !GIVEN.swap(true, Ordering::Relaxed))
        .then_some(FULL_NAMES)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_names_hint_is_given_once_with_the_lines_to_paste() {
        crate::resolution::mark_names_degraded();
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
