#!/usr/bin/env bash
# `ema suggest` benchmark (release build): the warm engine call (`Engine::suggest`: rules, gates, the score over
# every sidecar, availability of the qualifying ones) over a store of N synthetic models (default 5,000).
# Goal: < 20 ms per call. Prints median, p95 and max, and the median's ratio to the goal.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-5000}
CALLS=${CALLS:-200}
cargo build --release --quiet --example bench_suggest
line=$("$PWD/target/release/examples/bench_suggest" "$N" "$CALLS")
echo "$line"
median=$(sed -n 's/.*median_ms=\([0-9.]*\).*/\1/p' <<<"$line")
p95=$(sed -n 's/.*p95_ms=\([0-9.]*\).*/\1/p' <<<"$line")
awk -v m="$median" -v p="$p95" 'BEGIN { printf "   median %.3f ms = %.3f x the 20 ms goal; p95 %.3f ms = %.3f x\n", m, m/20, p, p/20 }'
