#!/usr/bin/env bash
# Analytics benchmark, release build, one run:
#   (1) ingest: records through the recorder into a fresh SQLite file (bounded queue, batched transactions),
#       events/s per run and the median                                                        (goal >= 50,000/s)
#   (2) the download benchmark's case (a) (one SIZE_MIB file from `ema mirror` on loopback, see bench_download.sh)
#       with analytics on vs off, alternating, medians and their ratio                          (goal within 5 %)
# Usage: [EMA_BIN=path] scripts/bench_analytics.sh [SIZE_MIB=1024] [REPS=5] [EVENTS=200000]
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${1:-1024}
REPS=${2:-5}
EVENTS=${3:-200000}

cargo build --release --locked --example bench_analytics >&2
if [ -n "${EMA_BIN:-}" ]; then
  EMA="$EMA_BIN"
else
  cargo build --release --locked >&2
  EMA="$PWD/target/release/ema"
fi
BENCH="${CARGO_TARGET_DIR:-$PWD/target}/release/examples/bench_analytics"

echo "== (1) ingest into SQLite"
"$BENCH" "$EVENTS" "$REPS"

WORK=$(mktemp -d /tmp/ema-bench-analytics.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

SRC="$WORK/src"
mkdir -p "$SRC/bench--one"
echo '{"model_type": "bench"}' > "$SRC/bench--one/config.json"
head -c $((SIZE_MIB << 20)) /dev/urandom > "$SRC/bench--one/model.safetensors"
sync

out="$WORK/mirror.json"
"$EMA" --json mirror --port 0 --models-dir "$SRC" > "$out" 2>"$out.err" &
PIDS+=("$!")
for _ in $(seq 1 600); do [ -s "$out" ] && break; sleep 0.1; done
EP=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["endpoint"])' "$out")

for mode in on off; do
  enabled=true; [ "$mode" = off ] && enabled=false
  cat > "$WORK/ema-$mode.json" <<EOF
{"downloads": {"connections_per_file": 4, "parallel_threshold_mb": 64, "max_concurrent_downloads": 8},
 "storage": {"cache_directory": "$WORK/cache-$mode"}, "analytics": {"enabled": $enabled}}
EOF
done

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }
on_t=(); off_t=()
echo "== (2) ema download of $SIZE_MIB MiB from $EP, analytics on vs off, $REPS repetitions each (alternating)"
for r in $(seq 1 "$REPS"); do
  for mode in on off; do
    rm -rf "$WORK/dst"; sync
    s=$(now)
    HF_ENDPOINT="$EP" "$EMA" --config "$WORK/ema-$mode.json" download bench/one --models-dir "$WORK/dst" >/dev/null 2>&1
    e=$(now)
    t=$(echo "$e - $s" | bc -l)
    if [ "$mode" = on ]; then on_t+=("$t"); else off_t+=("$t"); fi
    printf '  run %d analytics %-3s %.3f s\n' "$r" "$mode" "$t"
  done
done
[ -s "$WORK/cache-on/analytics.db" ] || { echo "analytics on recorded nothing" >&2; exit 1; }
[ ! -e "$WORK/cache-off/analytics.db" ] || { echo "analytics off recorded something" >&2; exit 1; }
ON=$(printf '%s\n' "${on_t[@]}" | median)
OFF=$(printf '%s\n' "${off_t[@]}" | median)
printf 'download case (a), %d MiB: analytics on %.3f s, off %.3f s (medians); on/off = %.3f (goal <= 1.05)\n' \
  "$SIZE_MIB" "$ON" "$OFF" "$(echo "$ON / $OFF" | bc -l)"
"$EMA" --config "$WORK/ema-on.json" analytics | sed -n '1,2p;/^downloads/,/duration/p'
