#!/usr/bin/env bash
# Regenerate screenshots/*.png: the real console in a real terminal (tmux, 120x40), against the sample models served
# by `ema mirror` on loopback, one picture per pane plus the help overlay. Each capture (with its escape codes) is
# rendered to PNG by scripts/render_ansi.py (python3 with pyte and Pillow, DejaVu Sans Mono).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet --bin ema --example bench_tui
EMA="$PWD/target/release/ema"
TOOL="$PWD/target/release/examples/bench_tui"
OUT="$PWD/screenshots"
TMP=$(mktemp -d)
SOCK="ema-shots-$$"
MIRROR_PID=""
cleanup() {
  tmux -L "$SOCK" kill-server 2>/dev/null || true
  [ -n "$MIRROR_PID" ] && kill "$MIRROR_PID" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
mkdir -p "$OUT"

# The hub: the four sample models, served on a free loopback port.
"$TOOL" sample-hub "$TMP/hub" >/dev/null
"$EMA" mirror --models-dir "$TMP/hub" --port 0 >"$TMP/mirror.log" 2>&1 &
MIRROR_PID=$!
for _ in $(seq 1 100); do grep -qs '^HF_ENDPOINT=' "$TMP/mirror.log" && break; sleep 0.1; done
ENDPOINT=$(sed -n 's/^HF_ENDPOINT=//p' "$TMP/mirror.log")
[ -n "$ENDPOINT" ] || { cat "$TMP/mirror.log"; exit 1; }

# The operator's store: two sample models already here (one with a flipped byte, for the Health pane), the other
# two wanted.
mkdir -p "$TMP/models"
for m in ema-demo--tiny-sentiment ema-demo--tiny-gpt; do
  cp -r "$TMP/hub/$m" "$TMP/models/"
  cp "$TMP/hub/$m.metadata.json" "$TMP/models/"
done
python3 - "$TMP/models/ema-demo--tiny-sentiment/model.safetensors" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[-100] ^= 0xFF
open(p, "wb").write(bytes(b))
PY
cat >"$TMP/config.json" <<EOF
{"storage": {"models_directory": "$TMP/models", "max_storage_gb": 0.1,
             "wanted_models": ["ema-demo/small-gpt", "ema-demo/mini-embed"]},
 "downloads": {"bandwidth_limit_mbps": 24}}
EOF

tmux -L "$SOCK" -f /dev/null new-session -d -s s -x 120 -y 40 \
  "exec env TERM=xterm-256color HF_ENDPOINT=$ENDPOINT HF_HOME=$TMP/hf $EMA --config $TMP/config.json"
screen() { tmux -L "$SOCK" capture-pane -p -t s; }
wait_for() {
  for _ in $(seq 1 200); do screen | grep -q -- "$1" && return 0; sleep 0.1; done
  echo "timed out waiting for: $1"; screen; exit 1
}
shot() {
  sleep 0.4
  tmux -L "$SOCK" capture-pane -p -e -t s >"$TMP/$1.txt"
  python3 scripts/render_ansi.py "$TMP/$1.txt" "$OUT/$1.png" --cols 120 --rows 40
  echo "screenshots/$1.png"
}
keys() { tmux -L "$SOCK" send-keys -t s "$@"; }

wait_for "online"
wait_for "feature-extraction"
# Start the big download (small-gpt is the second row), then picture every pane while it runs.
keys j d
wait_for "downloading"
shot 1-models
keys 2 G
wait_for "downloading ·"
sleep 2
shot 2-downloads
keys 3
shot 3-health
keys 1 4
wait_for "requested ema-demo/small-gpt"
shot 4-fallback
keys 5 Enter
wait_for "result:"
keys j j m
shot 5-migration
keys '?'
wait_for "Everywhere"
shot help
keys Escape
sleep 0.3
keys 2
wait_for "finished ·"
shot 2-downloads-finished
keys q
