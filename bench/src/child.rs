//! Measurements that run each runtime in a process of its own (this binary,
//! with a `--…-one` flag), so that every peak resident size in a table is
//! that runtime's alone.

use crate::runtimes::Kind;
use std::process::{Command, Stdio};

/// Runs this program once per kind, as `one_flag KIND` followed by `args`,
/// and prints what each child printed (its table row). `what` names the
/// measurement in errors.
pub fn rows(
    one_flag: &str,
    kinds: &[Kind],
    args: &[(&str, String)],
    what: &str,
) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    for kind in kinds {
        let mut child = Command::new(&exe);
        child.args([one_flag, kind.arg()]);
        for (flag, value) in args {
            child.args([*flag, value.as_str()]);
        }
        let output = child
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
        if !output.status.success() {
            return Err(format!(
                "{what} on {} failed: {}",
                kind.arg(),
                output.status
            ));
        }
        print!("{}", String::from_utf8_lossy(&output.stdout));
    }
    Ok(())
}

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`), 0 where there is
/// no such file.
pub fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            rest.trim().strip_suffix("kB")?.trim().parse().ok()
        })
        .unwrap_or(0)
}
