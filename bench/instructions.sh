#!/usr/bin/env bash
# Instructions per spawn, per poll and per frame (or per channel hop) on each
# runtime, counted by valgrind's callgrind: a count that does not move with
# the load on a shared machine.
#
# Each runtime runs `theseus-bench --count N` at two values of N; the
# difference in instructions divided by the difference in N is the cost of
# one unit, start-up, shutdown and the profile's one-time costs cancelling
# out. One worker thread, so no stealing or spinning sibling adds to the
# count. The clock's one-time calibration (quanta::Clock::new, profiling on
# only) is taken out of each count: it reads the clock until enough time
# has passed, so its instructions move with the machine's load and would
# not cancel out.
#
# Tokio programs (the default): N spawns of empty tasks, one task yielding
# N times, one task awaiting N empty `#[theseus::profiled]` fns.
# With --smol, programs of the smol family on async-executor and
# theseus::Executor: N spawns of empty tasks from inside one task, one task
# yielding N times, two tasks passing a message back and forth N times.
#
# Usage: bench/instructions.sh [--smol] [RUNTIME...]
#   RUNTIME: tokio async-executor theseus-off theseus-on theseus-full
#   theseus-awaits-off theseus-awaits-full (default: the first five);
#   with --smol: async-executor theseus-off theseus-on (default: all three).
#   SMALL and LARGE set the two N (10000, 110000); BENCH_BIN, a
#   theseus-bench binary to count instead of building this checkout's.
#
# Needs: valgrind (callgrind), cargo. It installs nothing; it says what is
# missing and stops.
set -euo pipefail

family=(--count)
units=(spawn poll frame)
runtimes=(tokio async-executor theseus-off theseus-on theseus-full)
heading="| runtime | per spawn | per poll | per frame |"
about="1 worker"
if [ "${1:-}" = --smol ]; then
    shift
    family=(--smol --count)
    units=(spawn poll hop)
    runtimes=(async-executor theseus-off theseus-on)
    heading="| executor | per spawn | per poll | per hop |"
    about="1 runner"
fi
if [ $# -gt 0 ]; then
    runtimes=("$@")
fi
small=${SMALL:-10000}
large=${LARGE:-110000}
if [ "$large" -le "$small" ]; then
    echo "instructions.sh: LARGE ($large) must be more than SMALL ($small)" >&2
    exit 2
fi

missing=0
for tool in valgrind callgrind_annotate cargo awk; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "instructions.sh needs $tool, which is not on PATH" >&2
        missing=1
    fi
done
if [ "$missing" -ne 0 ]; then
    echo "valgrind comes with most package managers (e.g. apt-get install valgrind);" \
        "perf stat -e instructions would do as well where the kernel allows it." >&2
    exit 1
fi

cd "$(dirname "$0")/.."
if [ -n "${BENCH_BIN:-}" ]; then
    bin=$BENCH_BIN
else
    cargo build --release -p theseus-bench >&2
    target_dir=$(cargo metadata --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    bin="$target_dir/release/theseus-bench"
fi
if [ ! -x "$bin" ]; then
    echo "instructions.sh: no theseus-bench binary at $bin" >&2
    exit 1
fi

log=$(mktemp)
out=$(mktemp)
trap 'rm -f "$log" "$out"' EXIT

# count RUNTIME UNIT N: instructions of the whole run, all threads, less the
# clock's calibration.
count() {
    if ! valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$bin" "${family[@]}" "$3" --runtime "$1" --workload "$2" >"$log" 2>&1; then
        echo "instructions.sh: $1 $2 $3 failed:" >&2
        cat "$log" >&2
        exit 1
    fi
    local n calibration
    n=$(sed -n 's/.*Collected : *\([0-9][0-9]*\).*/\1/p' "$log")
    if [ -z "$n" ]; then
        echo "instructions.sh: no instruction count in callgrind's output:" >&2
        cat "$log" >&2
        exit 1
    fi
    calibration=$(callgrind_annotate --inclusive=yes --auto=no --threshold=100 "$out" |
        awk '/:quanta::Clock::new \[/ { gsub(",", "", $1); print $1; exit }')
    echo "$((n - ${calibration:-0}))"
}

per() { # UNIT RUNTIME: instructions per unit
    local a b
    a=$(count "$2" "$1" "$small")
    b=$(count "$2" "$1" "$large")
    awk -v a="$a" -v b="$b" -v d="$((large - small))" 'BEGIN { printf "%.0f", (b - a) / d }'
}

echo "instructions per ${units[0]}, per ${units[1]} and per ${units[2]}, from N = $small and N = $large (valgrind callgrind, $about)"
echo
echo "$heading"
echo "|---|---|---|---|"
for runtime in "${runtimes[@]}"; do
    echo "| $runtime | $(per "${units[0]}" "$runtime") | $(per "${units[1]}" "$runtime") | $(per "${units[2]}" "$runtime") |"
done
