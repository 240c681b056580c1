#!/usr/bin/env bash
# Instructions per spawn, per poll and per channel hop on async-executor and
# on theseus::Executor (profiling off and on), counted by valgrind's
# callgrind: a count that does not move with the load on a shared machine.
#
# Each executor runs `theseus-bench --smol --count N` (N spawns of empty
# tasks from inside one task; one task yielding N times; two tasks passing
# a message back and forth N times) at two values of N; the difference in
# instructions divided by the difference in N is the cost of one spawn
# (with its single poll and completion), one poll, or one hop, start-up and
# shutdown cancelling out. One runner thread, as bench/instructions.sh.
# The clock's one-time calibration (quanta::Clock::new, profiling on only)
# is taken out of each count: it reads the clock until enough time has
# passed, so its instructions move with the machine's load and would not
# cancel out.
#
# Usage: bench/smol-instructions.sh [RUNTIME...]
#   RUNTIME: async-executor theseus-off theseus-on (default: all three).
#   SMALL and LARGE set the two N (10000, 110000); BENCH_BIN, a
#   theseus-bench binary to count instead of building this checkout's.
#
# Needs: valgrind (callgrind), cargo.
set -euo pipefail

small=${SMALL:-10000}
large=${LARGE:-110000}
if [ "$large" -le "$small" ]; then
    echo "smol-instructions.sh: LARGE ($large) must be more than SMALL ($small)" >&2
    exit 2
fi
runtimes=("$@")
if [ ${#runtimes[@]} -eq 0 ]; then
    runtimes=(async-executor theseus-off theseus-on)
fi
for tool in valgrind callgrind_annotate cargo awk; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "smol-instructions.sh needs $tool, which is not on PATH" >&2
        exit 1
    fi
done

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
    echo "smol-instructions.sh: no binary at $bin" >&2
    exit 1
fi
log=$(mktemp)
out=$(mktemp)
trap 'rm -f "$log" "$out"' EXIT

# count RUNTIME WORKLOAD N: instructions of the whole run, all threads,
# less the clock's calibration.
count() {
    if ! valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$bin" --smol --count "$3" --runtime "$1" --workload "$2" >"$log" 2>&1; then
        echo "smol-instructions.sh: $1 $2 $3 failed:" >&2
        cat "$log" >&2
        exit 1
    fi
    local n
    n=$(sed -n 's/.*Collected : *\([0-9][0-9]*\).*/\1/p' "$log")
    if [ -z "$n" ]; then
        echo "smol-instructions.sh: no instruction count in callgrind's output:" >&2
        cat "$log" >&2
        exit 1
    fi
    local calibration
    calibration=$(callgrind_annotate --inclusive=yes --auto=no --threshold=100 "$out" |
        awk '/:quanta::Clock::new \[/ { gsub(",", "", $1); print $1; exit }')
    echo "$((n - ${calibration:-0}))"
}

per() { # WORKLOAD RUNTIME: instructions per unit
    local a b
    a=$(count "$2" "$1" "$small")
    b=$(count "$2" "$1" "$large")
    awk -v a="$a" -v b="$b" -v d="$((large - small))" 'BEGIN { printf "%.0f", (b - a) / d }'
}

echo "instructions per spawn, per poll and per hop, from N = $small and N = $large (valgrind callgrind, 1 runner)"
echo
echo "| executor | per spawn | per poll | per hop |"
echo "|---|---|---|---|"
for runtime in "${runtimes[@]}"; do
    echo "| $runtime | $(per spawn "$runtime") | $(per poll "$runtime") | $(per hop "$runtime") |"
done
