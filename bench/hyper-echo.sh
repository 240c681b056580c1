#!/usr/bin/env bash
# Keep-alive throughput of hyper's `examples/echo.rs` on tokio and on theseus.
#
# From a clone of github.com/hyperium/hyper, it makes two copies under WORK:
# `tokio/` as it is, and `theseus/` moved with the README's sed line (run on
# `examples/` only) with theseus added as a path dependency. It builds the
# echo example of each in release, then, ROUNDS times and alternating, starts
# each server on 127.0.0.1:3000 and drives it with `keepalive-client`
# (CONNECTIONS connections x REQUESTS POSTs to /echo, after a warm-up run of
# a tenth of that), printing requests per second, then each side's median,
# theseus's ratio to tokio and the median of the rounds' own ratios (each
# round's two runs are next to each other, so share the machine's load).
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

# Starts the server `$1`, waits for its port, runs the client, stops it.
one_run() {
    local server=$1 pid rate
    (cd "$work" && exec "$server" >/dev/null 2>&1) &
    pid=$!
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/3000) 2>/dev/null && break
        sleep 0.05
    done
    "$client" 127.0.0.1:3000 /echo "$connections" $((requests / 10 + 1)) >/dev/null
    rate=$("$client" 127.0.0.1:3000 /echo "$connections" "$requests" | sed -E 's/.*: ([0-9]+) requests\/s/\1/')
    kill -TERM "$pid"
    wait "$pid" || true
    echo "$rate"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

: >"$work/tokio.rates"
: >"$work/theseus.rates"
: >"$work/ratios"
for round in $(seq "$rounds"); do
    t=$(one_run "$work/echo-tokio")
    s=$(one_run "$work/echo-theseus")
    echo "$t" >>"$work/tokio.rates"
    echo "$s" >>"$work/theseus.rates"
    awk -v s="$s" -v t="$t" 'BEGIN { print s / t }' >>"$work/ratios"
    echo "round $round: tokio $t requests/s, theseus $s requests/s"
done
t=$(median <"$work/tokio.rates")
s=$(median <"$work/theseus.rates")
echo "median: tokio $t requests/s, theseus $s requests/s, theseus/tokio $(awk -v s="$s" -v t="$t" 'BEGIN { printf "%.3f", s / t }')"
echo "median of the rounds' theseus/tokio: $(median <"$work/ratios")"
