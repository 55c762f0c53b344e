#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need when it is missing, then runs
# formatting, lint and every test. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v tmux >/dev/null 2>&1 || need_apt+=(tmux)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# promtool lints the server's /metrics exposition (Debian's prometheus package ships it).
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
# Reflink backups are tested on a loop-mounted XFS image (root in CI).
[ -x /usr/sbin/mkfs.xfs ] || command -v mkfs.xfs >/dev/null 2>&1 || need_apt+=(xfsprogs)
# The Debian package: dpkg-shlibdeps for its dependencies, systemd-analyze to verify its unit.
command -v dpkg-shlibdeps >/dev/null 2>&1 || need_apt+=(dpkg-dev)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

# The guide's Python client snippets run against `ema start` with `requests`.
python3 -c 'import requests' 2>/dev/null || python3 -m pip install -q requests
# A throwaway PostgreSQL on loopback for the analytics tests (EMA_TEST_PG_URL), stopped and removed at the end.
. scripts/pg_cluster.sh
trap pg_cluster_stop EXIT
pg_cluster_start
# The OpenAPI document is validated and every route fuzzed from it (tests/server_openapi.rs).
python3 -c 'import schemathesis, openapi_spec_validator' 2>/dev/null \
  || python3 -m pip install -q schemathesis==4.32.5 openapi-spec-validator==0.9.0

cargo fmt --check
python3 scripts/check_layout.py
cargo clippy --all-targets --locked -- -D warnings
# The .deb from the debug build (tests/package.rs checks its contents; a release package: scripts/package.sh).
./scripts/package.sh --profile dev
cargo test --locked --all-targets -- --test-threads 2
