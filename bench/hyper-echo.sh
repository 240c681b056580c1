#!/usr/bin/env bash
# Keep-alive throughput of hyper's `examples/echo.rs` on tokio and on theseus.
#
# From a clone of github.com/hyperium/hyper, it makes two copies under WORK:
# `tokio/` as it is, and `theseus/` moved with the README's sed line (run on
# `examples/` only) with theseus added as a path dependency. It builds the
# echo example of each in release, then, ROUNDS times and alternating, starts
# each server on 127.0.0.1:3000 and drives it with `keepalive-client`
# (CONNECTIONS connections x REQUESTS POSTs to /echo, after a warm-up run of
# a tenth of that), printing requests per second and the server's CPU time
# per request (all its threads, over the measured run only), then each
# side's medians, theseus's ratios to tokio and the medians of the rounds'
# own ratios (each round's two runs are next to each other, so share the
# machine's load). CPU time per request moves far less with the machine's
# other load than requests per second do.
#
# Usage: bench/hyper-echo.sh HYPER_CLONE
#   ROUNDS (7), CONNECTIONS (50), REQUESTS (2000 per connection),
#   WORK (/tmp/theseus-hyper-echo). RUSTFLAGS is passed to both builds
#   (e.g. RUSTFLAGS="--cfg tokio_unstable"); each RUSTFLAGS gets its own
#   target folder under WORK.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
hyper=${1:?usage: bench/hyper-echo.sh HYPER_CLONE (a clone of github.com/hyperium/hyper)}
[ -f "$hyper/examples/echo.rs" ] || { echo "hyper-echo.sh: $hyper/examples/echo.rs not found" >&2; exit 2; }
rounds=${ROUNDS:-7}
connections=${CONNECTIONS:-50}
requests=${REQUESTS:-2000}
work=${WORK:-/tmp/theseus-hyper-echo}
flags=${RUSTFLAGS:-}
target="$work/target-$(echo "$flags" | tr -c 'a-zA-Z0-9_\n' '_')"

recipe=$(grep -m1 '^find src examples tests benches ' "$repo/README.md")
[ -n "$recipe" ] || { echo "hyper-echo.sh: no sed line in README.md" >&2; exit 2; }
recipe=${recipe/find src examples tests benches /find examples }

mkdir -p "$work"
for side in tokio theseus; do
    if [ ! -d "$work/$side" ]; then
        git clone -q "$hyper" "$work/$side"
    fi
done
# Moved once: moving it again would touch the files and rebuild hyper.
if ! grep -q '^theseus = ' "$work/theseus/Cargo.toml"; then
    (
        cd "$work/theseus"
        eval "$recipe"
        sed -i "s|^\[dev-dependencies\]|[dev-dependencies]\ntheseus = { path = \"$repo\" }|" Cargo.toml
    )
fi
for side in tokio theseus; do
    (cd "$work/$side" && CARGO_TARGET_DIR="$target" cargo build -q --release --example echo --features full)
    cp "$target/release/examples/echo" "$work/echo-$side"
done
(cd "$repo" && cargo build -q --release -p theseus-bench --bin keepalive-client)
client="$repo/target/release/keepalive-client"

# Nanoseconds on a CPU of every thread of process `$1` so far.
cpu_ns() {
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%d", s }'
}

# Starts the server `$1`, waits for its port, runs the client, stops it;
# prints requests per second and the server's CPU nanoseconds per request.
one_run() {
    local server=$1 pid rate before after
    (cd "$work" && exec "$server" >/dev/null 2>&1) &
    pid=$!
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/3000) 2>/dev/null && break
        sleep 0.05
    done
    "$client" 127.0.0.1:3000 /echo "$connections" $((requests / 10 + 1)) >/dev/null
    before=$(cpu_ns "$pid")
    rate=$("$client" 127.0.0.1:3000 /echo "$connections" "$requests" | sed -E 's/.*: ([0-9]+) requests\/s/\1/')
    after=$(cpu_ns "$pid")
    kill -TERM "$pid"
    wait "$pid" || true
    echo "$rate $(( (after - before) / (connections * requests) ))"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

: >"$work/tokio.rates"
: >"$work/theseus.rates"
: >"$work/ratios"
: >"$work/tokio.cpu"
: >"$work/theseus.cpu"
: >"$work/cpu-ratios"
for round in $(seq "$rounds"); do
    read -r t tc <<<"$(one_run "$work/echo-tokio")"
    read -r s sc <<<"$(one_run "$work/echo-theseus")"
    echo "$t" >>"$work/tokio.rates"
    echo "$s" >>"$work/theseus.rates"
    echo "$tc" >>"$work/tokio.cpu"
    echo "$sc" >>"$work/theseus.cpu"
    awk -v s="$s" -v t="$t" 'BEGIN { print s / t }' >>"$work/ratios"
    awk -v s="$sc" -v t="$tc" 'BEGIN { print s / t }' >>"$work/cpu-ratios"
    echo "round $round: tokio $t requests/s $tc ns/request, theseus $s requests/s $sc ns/request"
done
ratio() { awk -v s="$1" -v t="$2" 'BEGIN { printf "%.3f", s / t }'; }
t=$(median <"$work/tokio.rates")
s=$(median <"$work/theseus.rates")
echo "median: tokio $t requests/s, theseus $s requests/s, theseus/tokio $(ratio "$s" "$t")"
echo "median of the rounds' theseus/tokio: $(median <"$work/ratios")"
t=$(median <"$work/tokio.cpu")
s=$(median <"$work/theseus.cpu")
echo "server CPU per request, median: tokio $t ns, theseus $s ns, theseus/tokio $(ratio "$s" "$t")"
echo "median of the rounds' CPU theseus/tokio: $(median <"$work/cpu-ratios")"
