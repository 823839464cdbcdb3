#!/usr/bin/env bash
# Sets up and runs the main job on a fresh Debian 12 + Rust machine: builds both
# binaries, builds and tests the example packages (a C library and a tool linking it),
# and enters an `spk env` with them. usage: scripts/quickstart.sh [WORKDIR]
# Builds enter runtimes, which need root (or unprivileged user namespaces and /spfs).
set -euo pipefail
case "${1:-}" in
  -h | --help) sed -n '2,5s/^# \{0,1\}//p' "$0"; exit 0 ;;
  -*) printf 'error: unknown option %s\nhelp: the argument is a work directory (see --help)\n' "$1" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
need=()
for tool in cc:gcc git:git; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
cargo build --release -q -p spk -p spfs-cli
BIN=$PWD/target/release
WORK=${1:-$(mktemp -d)}
export SPFS_ROOT=$WORK/repo
set -x
"$BIN/spk" build examples/packages/hello-lib/hello-lib.spk.yaml
"$BIN/spk" build examples/packages/hello-tool/hello-tool.spk.yaml
"$BIN/spk" test examples/packages/hello-tool/hello-tool.spk.yaml
"$BIN/spk" ls hello-tool
"$BIN/spk" env hello-tool -- hello-tool world
"$BIN/spfs" check
