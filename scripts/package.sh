#!/usr/bin/env bash
# Build the Debian package with cargo-deb: target/debian/enhanced-model-availability_<version>-1_<arch>.deb holding
# /usr/bin/ema, man pages (generated from the clap definitions), shell completions, the systemd unit, the example
# configurations and themes, and /etc/ema/enhanced_model_config.json (a conffile).
#
#   scripts/package.sh                 release build (what you install)
#   scripts/package.sh --profile dev   the debug build (fast; the test suite checks the package's contents with it)
#
# Installs cargo-deb (pinned) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    *) echo "usage: scripts/package.sh [--profile release|dev]" >&2; exit 2 ;;
  esac
done
case "$profile" in
  release) out_dir=release ;;
  dev) out_dir=debug ;;
  *) echo "--profile takes release or dev, not $profile" >&2; exit 2 ;;
esac

CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
  echo "installing cargo-deb $CARGO_DEB_VERSION" >&2
  cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION" >&2
fi

target="${CARGO_TARGET_DIR:-target}"
cargo build --locked --profile "$profile" --bin ema >&2
bin="$target/$out_dir/ema"

# Generated assets (paths named in Cargo.toml's [package.metadata.deb]).
gen=target/package-assets
rm -rf "$gen"
mkdir -p "$gen/man" "$gen/completions"
"$bin" generate-manpages --out "$gen/man" >&2
gzip -9n "$gen"/man/*.1
"$bin" completions bash > "$gen/completions/ema.bash"
"$bin" completions zsh > "$gen/completions/_ema"
"$bin" completions fish > "$gen/completions/ema.fish"

mkdir -p target/debian
cargo deb --no-build --locked --profile "$profile" --output target/debian/ >&2
ls -1 target/debian/*.deb | tail -1
