#!/usr/bin/env bash
# Download benchmark on loopback, one run, medians of REPS repetitions:
#   (a) one 1 GiB file: `ema download` wall time (verification included) vs `curl -o` of the same URL  (goal <= 1.10x)
#   (b) a mirror capping each connection at C MB/s: ema throughput vs connections x C                   (goal >= 0.8)
#   (c) a multi-file repo: `huggingface_hub.snapshot_download` vs `ema download`                          (goal >= 1.5x)
# Usage: [EMA_BIN=path] [PARTS=abc] scripts/bench_download.sh [SIZE_MIB=1024] [REPS=3] [CAP_MB_PER_S=25]
# PARTS picks which of (a), (b), (c) to run (default all three).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${1:-1024}
REPS=${2:-3}
CAP_MB=${3:-25}
CONNS=4
PARTS=${PARTS:-abc}
run_part() { [[ $PARTS == *$1* ]]; }

command -v curl >/dev/null || { echo "curl is required" >&2; exit 2; }
python3 -c 'import huggingface_hub' 2>/dev/null || python3 -m pip install --quiet huggingface_hub

# EMA_BIN=/path/to/ema measures another build (e.g. an older one, for before/after figures) instead of this tree's.
if [ -n "${EMA_BIN:-}" ]; then
  EMA="$EMA_BIN"
else
  cargo build --release --locked >&2
  EMA="$PWD/target/release/ema"
fi

WORK=$(mktemp -d /tmp/ema-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

SRC="$WORK/src"
mkdir -p "$SRC/bench--one" "$SRC/bench--multi" "$SRC/bench--mid"
echo '{"model_type": "bench"}' > "$SRC/bench--one/config.json"
head -c $((SIZE_MIB << 20)) /dev/urandom > "$SRC/bench--one/model.safetensors"
head -c $((256 << 20)) /dev/urandom > "$SRC/bench--mid/model.safetensors"
echo '{"model_type": "bench"}' > "$SRC/bench--multi/config.json"
echo '# bench' > "$SRC/bench--multi/README.md"
for i in 1 2 3 4 5 6 7 8; do
  head -c $((64 << 20)) /dev/urandom > "$SRC/bench--multi/model-0000$i-of-00008.safetensors"
done

# Every timed run starts from the same state: no dirty page cache left over from generating the sources or from the
# previous run (curl's 1 GiB is still being written back after it exits; left alone it would slow whatever runs
# next, and the freshly generated sources would throttle the first runs).
settle() { sync; }
settle

# Start `ema mirror` on a free port; sets MIRROR_EP. (Not in a subshell, so the cleanup trap knows the pid.)
start_mirror() {
  local out="$WORK/mirror.$RANDOM.json"
  "$EMA" --json mirror --port 0 --models-dir "$SRC" "$@" > "$out" 2>"$out.err" &
  PIDS+=("$!")
  for _ in $(seq 1 600); do
    if [ -s "$out" ]; then
      MIRROR_EP=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["endpoint"])' "$out")
      return
    fi
    sleep 0.1
  done
  echo "the mirror did not start: $(cat "$out.err")" >&2
  exit 1
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }

CFG="$WORK/ema.json"
cat > "$CFG" <<EOF
{"downloads": {"connections_per_file": $CONNS, "parallel_threshold_mb": 64, "max_concurrent_downloads": 8}}
EOF

start_mirror
EP=$MIRROR_EP
URL="$EP/bench/one/resolve/main/model.safetensors"
echo "mirror at $EP; file $SIZE_MIB MiB; $REPS repetitions" >&2

if run_part a; then
# (a) 1 GiB: curl vs ema
curl_t=(); ema_t=()
for r in $(seq 1 "$REPS"); do
  rm -f "$WORK/curl.out"; settle
  s=$(now); curl -s -f -L -o "$WORK/curl.out" "$URL"; e=$(now)
  curl_t+=("$(echo "$e - $s" | bc -l)")
  rm -rf "$WORK/dst"; settle
  s=$(now)
  HF_ENDPOINT="$EP" "$EMA" --config "$CFG" download bench/one --models-dir "$WORK/dst" >/dev/null
  e=$(now)
  ema_t+=("$(echo "$e - $s" | bc -l)")
  cmp -s "$WORK/curl.out" "$WORK/dst/bench--one/model.safetensors" || { echo "content differs" >&2; exit 1; }
done
CURL_A=$(printf '%s\n' "${curl_t[@]}" | median)
EMA_A=$(printf '%s\n' "${ema_t[@]}" | median)
RATIO_A=$(echo "$EMA_A / $CURL_A" | bc -l)
# Best runs too: on a VM the baseline's outliers (curl's page-cache allocations after the previous run's 1 GiB was
# freed) move the median more than ema's (direct writes, no page cache).
CURL_A_MIN=$(printf '%s\n' "${curl_t[@]}" | sort -g | head -1)
EMA_A_MIN=$(printf '%s\n' "${ema_t[@]}" | sort -g | head -1)
RATIO_A_MIN=$(echo "$EMA_A_MIN / $CURL_A_MIN" | bc -l)

fi

if run_part b; then
# (b) per-connection cap
CAP_BYTES=$((CAP_MB * 1000 * 1000))
start_mirror --throttle-per-connection "$CAP_BYTES"
EPB=$MIRROR_EP
cap_t=()
for r in $(seq 1 "$REPS"); do
  rm -rf "$WORK/dstb"; settle
  s=$(now)
  HF_ENDPOINT="$EPB" "$EMA" --config "$CFG" download bench/mid --models-dir "$WORK/dstb" >/dev/null
  e=$(now)
  cap_t+=("$(echo "$e - $s" | bc -l)")
done
CAP_T=$(printf '%s\n' "${cap_t[@]}" | median)
CAP_THR=$(echo "(256 * 1048576) / $CAP_T / 1000000" | bc -l)
RATIO_B=$(echo "$CAP_THR / ($CONNS * $CAP_MB)" | bc -l)

fi

if run_part c; then
# (c) huggingface_hub.snapshot_download vs ema on the multi-file repo
hf_t=(); ema_c=()
for r in $(seq 1 "$REPS"); do
  rm -rf "$WORK/hf" "$WORK/dstc"; settle
  s=$(now)
  HF_ENDPOINT="$EP" HF_HUB_DISABLE_TELEMETRY=1 HF_HOME="$WORK/hfhome" python3 -c \
    'import sys; from huggingface_hub import snapshot_download; snapshot_download("bench/multi", local_dir=sys.argv[1])' \
    "$WORK/hf" >/dev/null 2>&1
  e=$(now)
  settle
  hf_t+=("$(echo "$e - $s" | bc -l)")
  s=$(now)
  HF_ENDPOINT="$EP" "$EMA" --config "$CFG" download bench/multi --models-dir "$WORK/dstc" >/dev/null
  e=$(now)
  ema_c+=("$(echo "$e - $s" | bc -l)")
  diff -r -q -x .cache "$WORK/hf" "$WORK/dstc/bench--multi" >/dev/null || { echo "layouts differ" >&2; exit 1; }
done
HF_C=$(printf '%s\n' "${hf_t[@]}" | median)
EMA_C=$(printf '%s\n' "${ema_c[@]}" | median)
RATIO_C=$(echo "$HF_C / $EMA_C" | bc -l)

fi

if run_part a; then
echo "runs (a) curl: ${curl_t[*]}" >&2
echo "runs (a) ema:  ${ema_t[*]}" >&2
printf '(a) %d MiB file: curl %.2f s, ema %.2f s (incl. sha256) -> ema/curl = %.2fx (goal <= 1.10); best runs %.2f s vs %.2f s -> %.2fx\n' \
  "$SIZE_MIB" "$CURL_A" "$EMA_A" "$RATIO_A" "$CURL_A_MIN" "$EMA_A_MIN" "$RATIO_A_MIN"
fi
if run_part b; then
printf '(b) 256 MiB file, cap %d MB/s per connection, %d connections: %.1f MB/s -> %.2f of %d x cap (goal >= 0.80)\n' \
  "$CAP_MB" "$CONNS" "$CAP_THR" "$RATIO_B" "$CONNS"
fi
if run_part c; then
echo "runs (c) hf:   ${hf_t[*]}" >&2
echo "runs (c) ema:  ${ema_c[*]}" >&2
printf '(c) 8 x 64 MiB repo: huggingface_hub %.2f s, ema %.2f s -> ema is %.2fx faster (goal >= 1.5)\n' \
  "$HF_C" "$EMA_C" "$RATIO_C"
fi
