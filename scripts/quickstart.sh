#!/usr/bin/env bash
# Builds both binaries and walks through a first commit, listing and render in a
# throw-away repository. usage: scripts/quickstart.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
BIN=$PWD/target/release
WORK=${1:-$(mktemp -d)}
export SPFS_ROOT=$WORK/repo
mkdir -p "$WORK/tree/bin" "$WORK/tree/etc"
printf '#!/bin/sh\necho hello from spfs\n' > "$WORK/tree/bin/hello"
chmod +x "$WORK/tree/bin/hello"
echo "greeting: hello" > "$WORK/tree/etc/hello.yaml"
set -x
"$BIN/spfs" commit layer --path "$WORK/tree" -t demo/hello
"$BIN/spfs" ls -lR demo/hello
"$BIN/spfs" info demo/hello
"$BIN/spfs" render demo/hello "$WORK/rendered"
"$WORK/rendered/bin/hello"
"$BIN/spfs" check
# Runtimes need root (or unprivileged user namespaces and an existing /spfs).
if [ "$(id -u)" = 0 ] || [ -d /spfs ]; then
  "$BIN/spfs" run demo/hello -- /spfs/bin/hello
fi
