#!/usr/bin/env bash
# Regenerate screenshots/*.png: the real console in a real terminal (tmux, 120x40), against the sample models served
# by `ema demo`'s built-in hub on loopback, one picture per pane plus the help overlay. Each capture (with its escape codes) is
# rendered to PNG by scripts/render_ansi.py (python3 with pyte and Pillow, DejaVu Sans Mono).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet --bin ema --example bench_tui
EMA="$PWD/target/release/ema"
TOOL="$PWD/target/release/examples/bench_tui"
OUT="$PWD/screenshots"
TMP=$(mktemp -d)
SOCK="ema-shots-$$"
cleanup() {
  tmux -L "$SOCK" kill-server 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
mkdir -p "$OUT"

# A running `ema demo`: its built-in hub holds the four sample models (generated here with the same generator
# the demo uses, so the demo finds them in place); two of them are already in the demo store, one with a flipped
# byte so the Health pane has something to say, and the other two are on the watch list.
DEMO="$TMP/demo"
"$TOOL" sample-hub "$DEMO/hub" >/dev/null
mkdir -p "$DEMO/models"
for m in ema-demo--tiny-sentiment ema-demo--tiny-gpt; do
  cp -r "$DEMO/hub/$m" "$DEMO/models/"
  cp "$DEMO/hub/$m.metadata.json" "$DEMO/models/"
done
python3 - "$DEMO/models/ema-demo--tiny-sentiment/model.safetensors" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[-100] ^= 0xFF
open(p, "wb").write(bytes(b))
PY

tmux -L "$SOCK" -f /dev/null new-session -d -s s -x 120 -y 40 \
  "exec env -u EMA_CONFIG -u HF_TOKEN TERM=xterm-256color HF_HOME=$TMP/hf $EMA demo --dir $DEMO --rate-mbps 24"
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
wait_for "corrupted"
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
