#!/usr/bin/env bash
# Instructions per spawn, per poll and per frame on each runtime, counted by valgrind's
# callgrind: a count that does not move with the load on a shared machine.
#
# Each runtime runs `theseus-bench --count N` (exactly N spawns of empty
# tasks, one task yielding N times, or one task awaiting N empty
# `#[theseus::profiled]` fns) at two values of N; the difference in
# instructions divided by the difference in N is the cost of one spawn (with
# its single poll and completion) or of one poll, with start-up, shutdown
# and the profile's one-time costs cancelling out. One worker thread, so no
# stealing or spinning sibling adds to the count.
#
# Usage: bench/instructions.sh [RUNTIME...]
#   RUNTIME: tokio async-executor theseus-off theseus-on theseus-full
#   theseus-awaits-off theseus-awaits-full
#   (default: all of them). SMALL and LARGE set the two N (10000, 110000).
#
# Needs: valgrind (callgrind), cargo. It installs nothing; it says what is
# missing and stops.
set -euo pipefail

small=${SMALL:-10000}
large=${LARGE:-110000}
if [ "$large" -le "$small" ]; then
    echo "instructions.sh: LARGE ($large) must be more than SMALL ($small)" >&2
    exit 2
fi
runtimes=("$@")
if [ ${#runtimes[@]} -eq 0 ]; then
    runtimes=(tokio async-executor theseus-off theseus-on theseus-full)
fi

missing=0
for tool in valgrind cargo awk; do
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
cargo build --release -p theseus-bench >&2
target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="$target_dir/release/theseus-bench"
if [ ! -x "$bin" ]; then
    echo "instructions.sh: no binary at $bin after the build" >&2
    exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# count RUNTIME WORKLOAD N: instructions of the whole run, all threads.
count() {
    if ! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        "$bin" --count "$3" --runtime "$1" --workload "$2" >"$log" 2>&1; then
        echo "instructions.sh: $1 $2 $3 failed:" >&2
        cat "$log" >&2
        exit 1
    fi
    local n
    n=$(sed -n 's/.*Collected : *\([0-9][0-9]*\).*/\1/p' "$log")
    if [ -z "$n" ]; then
        echo "instructions.sh: no instruction count in callgrind's output:" >&2
        cat "$log" >&2
        exit 1
    fi
    echo "$n"
}

per() { # WORKLOAD RUNTIME: instructions per unit
    local a b
    a=$(count "$2" "$1" "$small")
    b=$(count "$2" "$1" "$large")
    awk -v a="$a" -v b="$b" -v d="$((large - small))" 'BEGIN { printf "%.0f", (b - a) / d }'
}

echo "instructions per spawn, per poll and per frame, from N = $small and N = $large (valgrind callgrind, 1 worker)"
echo
echo "| runtime | per spawn | per poll | per frame |"
echo "|---|---|---|---|"
for runtime in "${runtimes[@]}"; do
    echo "| $runtime | $(per spawn "$runtime") | $(per poll "$runtime") | $(per frame "$runtime") |"
done
