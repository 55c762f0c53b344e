#!/usr/bin/env bash
# Console benchmarks (release build):
#   1. time to render one frame with 5,000 models (median of many frames on a TestBackend)   goal < 2 ms
#   2. idle CPU of the running console over 10 s (in tmux, from /proc/<pid>/stat)            goal < 1% of a core
#      — with a small store (health monitor off, then on) and with 5,000 models
#   3. resident memory (VmRSS / VmHWM) with 5,000 models                                      goal < 60 MB
# Prints each figure with its ratio to the goal. Needs tmux (scripts/test.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-5000}
IDLE_SECONDS=${IDLE_SECONDS:-10}
cargo build --release --quiet --bin ema --example bench_tui
EMA="$PWD/target/release/ema"
BENCH="$PWD/target/release/examples/bench_tui"
TMP=$(mktemp -d)
SOCK="ema-bench-$$"
cleanup() {
  tmux -L "$SOCK" kill-server 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

echo "== render: one frame of the Models pane with $N models (TestBackend)"
for size in 120x40 200x60; do
  line=$("$BENCH" render "$N" 3000 "$size")
  echo "$line"
  median=$(sed -n 's/.*median_us=\([0-9]*\).*/\1/p' <<<"$line")
  awk -v m="$median" 'BEGIN { printf "   median %.3f ms = %.2f x the 2 ms goal\n", m/1000, m/2000 }'
done

command -v tmux >/dev/null || { echo "tmux not installed: skipping the idle CPU and RSS measurements"; exit 0; }

# Console idle: start it in tmux, wait for the first full frame, settle, then sample /proc for IDLE_SECONDS.
measure() {
  local label=$1 store=$2 expect=$3 monitor=${4:-false}
  cat >"$TMP/config.json" <<EOF
{"storage": {"models_directory": "$store"},
 "health_monitoring": {"enabled": $monitor}}
EOF
  tmux -L "$SOCK" -f /dev/null new-session -d -s b -x 120 -y 40 \
    "exec env HF_HUB_OFFLINE=1 HF_HOME=$TMP/hf $EMA --config $TMP/config.json"
  local pid; pid=$(tmux -L "$SOCK" display -p -t b '#{pane_pid}')
  for _ in $(seq 1 200); do
    tmux -L "$SOCK" capture-pane -p -t b | grep -q "$expect" && break
    sleep 0.1
  done
  tmux -L "$SOCK" capture-pane -p -t b | grep -q "$expect" || { echo "console did not start"; tmux -L "$SOCK" capture-pane -p -t b; exit 1; }
  sleep 2
  local hz; hz=$(getconf CLK_TCK)
  local t0; t0=$(awk '{print $14+$15}' "/proc/$pid/stat")
  sleep "$IDLE_SECONDS"
  local t1; t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
  local rss hwm
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  echo "== $label"
  awk -v d=$((t1 - t0)) -v hz="$hz" -v s="$IDLE_SECONDS" 'BEGIN {
    cpu = d / hz / s * 100; printf "   idle CPU over %ds: %.2f%% of a core (%d ticks) = %.2f x the 1%% goal\n", s, cpu, d, cpu / 1 }'
  awk -v r="$rss" -v h="$hwm" 'BEGIN {
    printf "   RSS %.1f MB (peak %.1f MB) = %.2f x the 60 MB goal\n", r/1024, h/1024, r/1024/60 }'
  # Scroll through the list, then check the console is still responsive and drawn.
  tmux -L "$SOCK" send-keys -t b G
  sleep 0.5
  tmux -L "$SOCK" send-keys -t b q
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  tmux -L "$SOCK" kill-server 2>/dev/null || true
}

mkdir -p "$TMP/small" "$TMP/big"
"$BENCH" gen-store "$TMP/small" 3 >/dev/null
measure "console, 3 models" "$TMP/small" "Models (3/3)"
measure "console, 3 models, health monitor on (its first full check runs before the sample)" "$TMP/small" "Models (3/3)" true
"$BENCH" gen-store "$TMP/big" "$N" >/dev/null
measure "console, $N models" "$TMP/big" "Models ($N/$N)"
