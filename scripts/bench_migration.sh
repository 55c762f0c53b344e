#!/usr/bin/env bash
# Migration against what an operator does by hand, on the same 1 GiB of weights (two shards):
#   (0) `ema migrate-models --verify-integrity` of a hub cache vs `openssl dgst -sha256` of its blobs  goal <= 1.2x
#       and without --verify-integrity                                                           goal < 0.5 s
#   (1) `ema backup` (manifest with sha256) vs `cp -r` then `sha256sum` of the copy      goal <= 0.8x
#   (2) on XFS with reflinks: `ema backup` vs `openssl dgst -sha256` of the same files   goal <= 1.2x
#   (3) `ema rollback --verify-rollback` vs `rm -rf` + `cp -r` back + `sha256sum -c`     goal <= 0.8x
#       (a) after the models were moved away, as an in-place adoption does (ema moves them back, proven by hash);
#       (b) after they were deleted (ema copies them back from the backup)
# PARTS selects sections (default 0123).
# Medians of $RUNS (default 5) runs, each after `sync` with the page cache warm, measured in one run of this script.
#
#   scripts/bench_migration.sh [SHARD_MB]     (default 512: two shards, 1 GiB)
#
# (2) needs root (mkfs.xfs + a loop mount); it is skipped with the reason otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARD_MB=${1:-512}
RUNS=${RUNS:-5}
PARTS=${PARTS:-0123}
part() { [[ $PARTS == *$1* ]]; }
for t in openssl sha256sum python3; do command -v $t >/dev/null || { echo "$t is needed" >&2; exit 1; }; done

cargo build --release --locked -q
EMA="$PWD/target/release/ema"
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/ema-bench-migration.XXXXXX")
MNT=""
cleanup() {
  [ -n "$MNT" ] && umount "$MNT" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
export NO_COLOR=1 XDG_CACHE_HOME="$WORK/xdg" XDG_CONFIG_HOME="$WORK/xdg" XDG_DATA_HOME="$WORK/xdg"
unset EMA_CONFIG

# secs CMD...: wall seconds of one run (after sync, so no run pays for another's write-back).
secs() {
  sync
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
  t1=$(date +%s.%N)
  python3 -c "print(f'{$t1 - $t0:.4f}')"
}
median() { python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:])):.4f}')" "$@"; }

# safetensors FILE MIB: a valid safetensors file (one U8 tensor) of random data, so verification passes.
safetensors() {
  python3 - "$1" "$2" <<'PY'
import json, os, struct, sys
path, n = sys.argv[1], int(sys.argv[2]) << 20
header = json.dumps({"w": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}).encode()
header += b" " * (-len(header) % 8)
with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(header)) + header)
    left = n
    while left:
        chunk = min(left, 64 << 20)
        f.write(os.urandom(chunk))
        left -= chunk
PY
}

make_tree() { # make_tree DIR
  mkdir -p "$1/models/bench--big"
  for i in 1 2; do safetensors "$1/models/bench--big/model-0000$i-of-00002.safetensors" "$SHARD_MB"; done
  echo '{"model_type": "gpt2"}' > "$1/models/bench--big/config.json"
  echo '{"models_directory": "models"}' > "$1/config.json"
  cat "$1"/models/bench--big/* > /dev/null
}

if part 0; then
echo "== (0) adopting a $((2 * SHARD_MB)) MiB hub cache in place (HF_HUB_OFFLINE=1: nothing asked of any hub)"
HC="$WORK/hubcache/models--bench--big"
mkdir -p "$HC/blobs" "$HC/refs" "$HC/snapshots/1111111111111111111111111111111111111111"
for i in 1 2; do
  safetensors "$WORK/shard" "$SHARD_MB"
  sha=$(sha256sum "$WORK/shard" | cut -d' ' -f1)
  mv "$WORK/shard" "$HC/blobs/$sha"
  ln -s "../../blobs/$sha" "$HC/snapshots/1111111111111111111111111111111111111111/model-0000$i-of-00002.safetensors"
done
echo -n 1111111111111111111111111111111111111111 > "$HC/refs/main"
cat "$HC"/blobs/* > /dev/null
verify=(); quick=(); peer=()
for r in $(seq 1 "$RUNS"); do
  # A fresh copy of the cache for each run, sharing the data (hard links): adoption renames inside the copy only.
  rm -rf "$WORK/d"; cp -al "$WORK/hubcache" "$WORK/d"
  verify+=("$(HF_HUB_OFFLINE=1 secs "$EMA" migrate-models --models-dir "$WORK/d" --verify-integrity)")
  rm -rf "$WORK/d"; cp -al "$WORK/hubcache" "$WORK/d"
  quick+=("$(HF_HUB_OFFLINE=1 secs "$EMA" migrate-models --models-dir "$WORK/d")")
  peer+=("$(secs openssl dgst -sha256 "$HC"/blobs/*)")
done
HF_HUB_OFFLINE=1 "$EMA" verify-migration --models-dir "$WORK/d" >/dev/null || { echo "adopted store does not verify" >&2; exit 1; }
m_v=$(median "${verify[@]}"); m_q=$(median "${quick[@]}"); m_p=$(median "${peer[@]}")
echo "ema migrate-models --verify-integrity: ${verify[*]} -> median $m_v s"
echo "ema migrate-models (layout hashes only): ${quick[*]} -> median $m_q s (goal < 0.5 s)"
echo "openssl dgst -sha256: ${peer[*]} -> median $m_p s"
python3 -c "print(f'(0) ratio ema --verify-integrity / openssl = {$m_v/$m_p:.2f}x (goal <= 1.20x)')"
rm -rf "$WORK/d" "$WORK/hubcache"
fi

make_tree "$WORK/app"
if part 1; then
echo "== (1) backup on $(df --output=fstype "$WORK" | tail -1), $((2 * SHARD_MB)) MiB, $(nproc) cores, medians of $RUNS"
ours=(); peer=()
for r in $(seq 1 "$RUNS"); do
  rm -rf "$WORK/bk" "$WORK/cp"
  ours+=("$(secs "$EMA" backup --root "$WORK/app" --dest "$WORK/bk")")
  peer+=("$(secs sh -c "cp -r '$WORK/app/models' '$WORK/cp' && sha256sum '$WORK'/cp/bench--big/* > '$WORK/sums.txt'")")
done
m_ours=$(median "${ours[@]}"); m_peer=$(median "${peer[@]}")
echo "ema backup: ${ours[*]} -> median $m_ours s"
echo "cp -r + sha256sum: ${peer[*]} -> median $m_peer s"
python3 -c "print(f'(1) ratio ema/peer = {$m_ours/$m_peer:.2f}x (goal <= 0.80x)')"

fi

if part 3; then
rm -rf "$WORK/bk"; "$EMA" backup --root "$WORK/app" --dest "$WORK/bk" >/dev/null
(cd "$WORK/app/models" && sha256sum bench--big/* > "$WORK/sums.txt")
for how in moved deleted; do
  echo "== (3) rollback --verify-rollback after the models were $how"
  ours=(); peer=()
  for r in $(seq 1 "$RUNS"); do
    if [ $how = moved ]; then
      mv "$WORK/app/models/bench--big" "$WORK/app/models/adopted-$r"
    else
      rm -rf "$WORK/app/models/bench--big"
    fi
    ours+=("$(secs "$EMA" rollback --backup-dir "$WORK/bk" --verify-rollback)")
    rm -rf "$WORK"/pre-rollback-*
    peer+=("$(secs sh -c "rm -rf '$WORK/app/models' && cp -r '$WORK/bk/models' '$WORK/app/models' && cd '$WORK/app/models' && sha256sum -c --quiet '$WORK/sums.txt'")")
  done
  "$EMA" rollback --backup-dir "$WORK/bk" --verify-rollback >/dev/null || { echo "final tree differs from the backup" >&2; exit 1; }
  m_ours=$(median "${ours[@]}"); m_peer=$(median "${peer[@]}")
  echo "ema rollback --verify-rollback: ${ours[*]} -> median $m_ours s"
  echo "rm -rf + cp -r + sha256sum -c: ${peer[*]} -> median $m_peer s"
  python3 -c "print(f'(3, {\"$how\"}) ratio ema/peer = {$m_ours/$m_peer:.2f}x (goal <= 0.80x)')"
done
fi
rm -rf "$WORK/bk" "$WORK/cp" "$WORK/app"

if part 2; then
echo "== (2) backup on XFS with reflinks vs openssl dgst -sha256"
if [ "$(id -u)" -ne 0 ] || ! command -v mkfs.xfs >/dev/null; then
  echo "(2) skipped: needs root and xfsprogs (mkfs.xfs)"; exit 0
fi
truncate -s $(( (4 * SHARD_MB + 1024) << 20 )) "$WORK/xfs.img"
mkfs.xfs -q -m reflink=1 "$WORK/xfs.img"
MNT="$WORK/mnt"; mkdir -p "$MNT"; mount -o loop "$WORK/xfs.img" "$MNT"
make_tree "$MNT/app"
ours=(); peer=()
for r in $(seq 1 "$RUNS"); do
  rm -rf "$MNT/bk"
  ours+=("$(secs "$EMA" backup --root "$MNT/app" --dest "$MNT/bk")")
  peer+=("$(secs openssl dgst -sha256 "$MNT"/app/models/bench--big/*)")
done
python3 -c "import json; d=json.load(open('$MNT/bk/manifest.json')); t=d['totals']; assert t['reflinked_bytes'] >= t['bytes'] - (1 << 20), t; print('reflinked bytes:', t['reflinked_bytes'], 'copied bytes:', t['copied_bytes'])"
m_ours=$(median "${ours[@]}"); m_peer=$(median "${peer[@]}")
echo "ema backup (reflink): ${ours[*]} -> median $m_ours s"
echo "openssl dgst -sha256: ${peer[*]} -> median $m_peer s"
python3 -c "print(f'(2) ratio ema/openssl = {$m_ours/$m_peer:.2f}x (goal <= 1.20x)')"
fi
