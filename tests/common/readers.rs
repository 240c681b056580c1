//! Runs the real callgrind readers on a profile and checks they accept it.

use std::path::Path;
use std::process::Command;

/// `callgrind_annotate` and `gprof2dot` must read `path` with exit status 0
/// and nothing on stderr; returns the totals `callgrind_annotate` reports.
/// For a profile written by a program that ran in this test's directory.
pub fn check_with_real_readers(path: &Path) -> Vec<u64> {
    check_with_real_readers_in(path, Path::new(env!("CARGO_MANIFEST_DIR")))
}

/// As [`check_with_real_readers`], for a program that ran in `ran_in`: the
/// readers run there too, as a user runs them where the program ran.
pub fn check_with_real_readers_in(path: &Path, ran_in: &Path) -> Vec<u64> {
    let annotate = Command::new("callgrind_annotate")
        .arg(path)
        .output()
        .expect("callgrind_annotate (from valgrind) must be installed: apt-get install valgrind");
    let stderr = String::from_utf8_lossy(&annotate.stderr);
    assert!(
        annotate.status.success() && stderr.is_empty(),
        "callgrind_annotate: {stderr}"
    );
    let stdout = String::from_utf8_lossy(&annotate.stdout);
    let totals_line = stdout
        .lines()
        .find(|line| line.ends_with("PROGRAM TOTALS"))
        .unwrap_or_else(|| panic!("no PROGRAM TOTALS in callgrind_annotate output:\n{stdout}"));
    // "9,589,082,158 (100.0%) 121,520,024 (100.0%) ... PROGRAM TOTALS"
    let totals = totals_line
        .split_whitespace()
        .filter(|word| word.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(|word| word.replace(',', "").parse::<u64>().unwrap())
        .collect();

    // The inclusive view, run where the program ran, as a user would:
    // every function must appear once (callgrind_annotate names functions
    // by file and name, so a file spelled two ways splits one into two).
    let inclusive = Command::new("callgrind_annotate")
        .arg("--inclusive=yes")
        .arg(path)
        .current_dir(ran_in)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&inclusive.stderr);
    assert!(
        inclusive.status.success() && stderr.is_empty(),
        "callgrind_annotate --inclusive=yes: {stderr}"
    );
    let stdout = String::from_utf8_lossy(&inclusive.stdout);
    let mut seen = std::collections::BTreeMap::new();
    for line in stdout
        .lines()
        .skip_while(|l| !l.ends_with("file:function"))
        .skip(2)
    {
        if line.trim().is_empty() || line.starts_with("--") {
            break;
        }
        let Some(file_function) = line.split("  ").last() else {
            continue;
        };
        let Some((file, function)) = file_function.trim().split_once(':') else {
            continue;
        };
        if let Some(other) = seen.insert(function.to_string(), file.to_string()) {
            panic!("callgrind_annotate shows {function:?} twice, in {other:?} and {file:?}");
        }
    }
    assert!(
        !seen.is_empty(),
        "no functions in the inclusive view:\n{stdout}"
    );

    let gprof2dot = Command::new("gprof2dot")
        .args(["-f", "callgrind", "-o"])
        .arg(path.with_extension("dot"))
        .arg(path)
        .output()
        .expect("gprof2dot must be installed: pip install gprof2dot");
    let stderr = String::from_utf8_lossy(&gprof2dot.stderr);
    assert!(
        gprof2dot.status.success() && stderr.is_empty(),
        "gprof2dot: {stderr}"
    );
    let dot = std::fs::read_to_string(path.with_extension("dot")).unwrap();
    assert!(dot.starts_with("digraph"), "gprof2dot wrote no graph");
    totals
}
