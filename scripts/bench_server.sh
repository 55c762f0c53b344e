#!/usr/bin/env bash
# Server benchmark (release build, loopback, one run):
#   1. `wrk --latency` against GET /api/v1/models/status/detailed of `ema start` with N models in the store (synthetic
#      sidecars and small files), beside nginx serving the same JSON body as a static file on the same machine:
#      requests/s and p50 / p99 of each, and the ratios          goal: rps >= 0.5x nginx's, p99 <= 3x nginx's
#      (the status answers come from a snapshot kept between engine changes: src/server/api/cache.rs; the script
#      prints how many times the server walked the store during the run, from ema_status_builds_total)
#   2. the idle server's CPU over IDLE_SECONDS (from /proc/<pid>/stat), health monitor on, measured once its first
#      pass over the store is over (every model counted healthy in /metrics)   goal < 1% of a core
# Needs wrk and nginx (Debian packages; installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-1000}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
IDLE_SECONDS=${IDLE_SECONDS:-30}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release --quiet --bin ema
EMA="$PWD/target/release/ema"
TMP=$(mktemp -d)
chmod 755 "$TMP"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP" 2>/dev/null || true
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

echo "== a store of $N models (one small file and a sidecar each)"
python3 - "$TMP/models" "$N" <<'EOF'
import datetime, hashlib, json, os, sys
root, n = sys.argv[1], int(sys.argv[2])
os.makedirs(root, exist_ok=True)
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
for i in range(n):
    rid, folder = f"bench/model-{i:04d}", f"bench--model-{i:04d}"
    os.makedirs(os.path.join(root, folder), exist_ok=True)
    # Valid JSON (the health monitor parses config files: a broken one would be "corrupted" and sent to repair).
    body = json.dumps({"model_type": "gpt2", "n_layer": i % 48, "vocab": "x" * 100}).encode()
    with open(os.path.join(root, folder, "config.json"), "wb") as f:
        f.write(body)
    meta = {
        "schema_version": 1, "repo_id": rid, "requested_revision": "main", "commit": f"{i:040x}",
        "endpoint": None,
        "files": [{"path": "config.json", "size": len(body), "sha256": hashlib.sha256(body).hexdigest(),
                   "lfs": False}],
        "total_size": len(body), "pipeline_tag": "text-generation", "library_name": "transformers",
        "tags": [], "parameters": None, "created_at": now, "updated_at": now, "last_verified_at": None,
        "verification": "local_only",
    }
    with open(os.path.join(root, folder + ".metadata.json"), "w") as f:
        json.dump(meta, f)
EOF

PORT=$(free_port)
cat >"$TMP/config.json" <<EOF
{"storage": {"models_directory": "$TMP/models"},
 "health_monitoring": {"enabled": false},
 "api": {"port": $PORT}}
EOF
HF_ENDPOINT=http://127.0.0.1:9 "$EMA" --config "$TMP/config.json" start >"$TMP/ema.out" 2>"$TMP/ema.err" &
EMA_PID=$!
PIDS+=("$EMA_PID")
URL="http://127.0.0.1:$PORT/api/v1/models/status/detailed"
for _ in $(seq 100); do curl -sf "$URL" -o "$TMP/detailed.json" && break; sleep 0.1; done
[ -s "$TMP/detailed.json" ] || { echo "ema start did not answer"; cat "$TMP/ema.err"; exit 1; }
echo "   body: $(wc -c <"$TMP/detailed.json") bytes, $(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['models']))" "$TMP/detailed.json") models"

NPORT=$(free_port)
mkdir -p "$TMP/www/api/v1/models/status" "$TMP/nginx"
cp "$TMP/detailed.json" "$TMP/www/api/v1/models/status/detailed"
chmod -R a+rX "$TMP/www"
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 100000;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  server {
    listen 127.0.0.1:$NPORT;
    root $TMP/www;
    default_type application/json;
  }
}
EOF
"$NGINX" -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" &
PIDS+=("$!")
NURL="http://127.0.0.1:$NPORT/api/v1/models/status/detailed"
for _ in $(seq 50); do curl -sf "$NURL" -o /dev/null && break; sleep 0.1; done
cmp -s <(curl -s "$NURL") "$TMP/detailed.json" || { echo "nginx does not serve the same body"; exit 1; }

# wrk's latency figures in ms.
to_ms() { awk '{ v=$1; if (v ~ /us$/) { sub(/us$/,"",v); print v/1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v); print v } else { sub(/s$/,"",v); print v*1000 } }'; }
bench() {
  local label=$1 url=$2 out
  wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$url" >"$TMP/wrk-$label.txt"
  out="$TMP/wrk-$label.txt"
  local rps p50 p99 errs
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  p50=$(awk '$1=="50%" {print $2}' "$out" | to_ms)
  p99=$(awk '$1=="99%" {print $2}' "$out" | to_ms)
  errs=$(awk '/Non-2xx|Socket errors/ {print}' "$out")
  printf "   %-6s %10.0f req/s   p50 %7.2f ms   p99 %7.2f ms  %s\n" "$label" "$rps" "$p50" "$p99" "$errs"
  eval "${label}_rps=$rps ${label}_p50=$p50 ${label}_p99=$p99"
}
echo "== wrk -t2 -c$CONNECTIONS -d${DURATION}s --latency, GET /api/v1/models/status/detailed ($N models)"
builds() { curl -s "http://127.0.0.1:$PORT/metrics" | awk '$1=="ema_status_builds_total" {print $2}'; }
bench nginx "$NURL"
b0=$(builds)
bench ema "$URL"
b1=$(builds)
echo "   ema walked the store $((b1 - b0)) time(s) for those requests (ema_status_builds_total)"
awk -v e="$ema_rps" -v n="$nginx_rps" -v ep="$ema_p99" -v np="$nginx_p99" 'BEGIN {
  printf "   ema / nginx: requests/s %.2fx (goal >= 0.5x), p99 %.2fx (goal <= 3x)\n", e/n, ep/np }'
kill "$EMA_PID"; wait "$EMA_PID" 2>/dev/null || true

echo "== idle ema start with $N models, health monitor on: CPU over ${IDLE_SECONDS} s"
cat >"$TMP/config.json" <<EOF
{"storage": {"models_directory": "$TMP/models"},
 "health_monitoring": {"enabled": true},
 "api": {"port": $PORT}}
EOF
HF_ENDPOINT=http://127.0.0.1:9 "$EMA" --config "$TMP/config.json" start >"$TMP/ema.out" 2>"$TMP/ema.err" &
EMA_PID=$!
PIDS+=("$EMA_PID")
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/api/v1/admin/health" -o /dev/null && break; sleep 0.1; done
# The monitor's first pass verifies every model; idle means after it.
for _ in $(seq 600); do
  healthy=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '$1=="ema_models{health=\"healthy\"}" {print $2}')
  [ "${healthy:-0}" -ge "$N" ] && break
  sleep 0.5
done
echo "   first health pass over: ${healthy:-0} of $N models healthy"
sleep 2
ticks() { awk '{print $14+$15}' "/proc/$EMA_PID/stat"; }
HZ=$(getconf CLK_TCK)
t0=$(ticks); sleep "$IDLE_SECONDS"; t1=$(ticks)
awk -v d=$((t1 - t0)) -v hz="$HZ" -v s="$IDLE_SECONDS" 'BEGIN {
  pct = 100 * d / hz / s; printf "   %d ticks in %d s = %.2f%% of a core (goal < 1%%: %.2fx the goal)\n", d, s, pct, pct }'
