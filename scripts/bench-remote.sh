#!/usr/bin/env bash
# Remote benchmark: push of the ~1 GiB, ~45,000-file layer to a file:// remote vs
# `cp -a` of the tree, re-push with nothing new, and pull back into an empty
# repository; medians over RUNS runs (default 3).
#
# usage: scripts/bench-remote.sh [WORKDIR]     (WORKDIR default: /var/tmp/spfs-bench)
# env:   RUNS=3 SMALL=45000 BIG=50
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-common.sh
WORK=${1:-/var/tmp/spfs-bench}
RUNS=${RUNS:-3}
cargo build --release -q -p spfs-cli
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
SPFS=$TARGET/release/spfs
bench_tree "$WORK"
LOCAL=$WORK/remote-local
REMOTE=$WORK/remote-shared
FRESH=$WORK/remote-fresh
OUT=$WORK/remote-out
rm -rf "$LOCAL" "$REMOTE" "$FRESH" "$OUT"
SPFS_ROOT=$LOCAL "$SPFS" commit layer --path "$TREE" -t bench/tree >/dev/null 2>&1
# Warm the page cache for every contender.
find "$TREE" "$LOCAL/payloads" -type f -print0 | xargs -0 cat >/dev/null
export SPFS_ROOT=$LOCAL
push() { "$SPFS" push bench/tree --remote "file://$REMOTE"; }
pull() { SPFS_ROOT=$FRESH "$SPFS" pull bench/tree --remote "file://$REMOTE"; }
reset_out() { rm -rf "$OUT"; sync; }
reset_remote() { rm -rf "$REMOTE"; sync; }
reset_fresh() { rm -rf "$FRESH"; sync; }

BENCH_RESET=reset_out t_cp=$(median_of "$RUNS" cp -a "$TREE" "$OUT")
reset_out
BENCH_RESET=reset_remote t_push=$(median_of "$RUNS" push)
reset_remote; push >/dev/null 2>&1
BENCH_RESET= t_repush=$(median_of "$RUNS" push)
BENCH_RESET=reset_fresh t_pull=$(median_of "$RUNS" pull)
SPFS_ROOT=$FRESH "$SPFS" check bench/tree >/dev/null 2>&1 || { echo "pulled repository fails check" >&2; exit 1; }
rm -rf "$LOCAL" "$REMOTE" "$FRESH" "$OUT"

echo
echo "remote benchmark: $files files, $((bytes / 1048576)) MiB, file:// remote on the same disk, median of $RUNS runs, $(nproc) cores, page cache warm"
echo
header
row "push (empty remote)" "$t_push" "cp -a" "$t_cp" 1.0
row "re-push (nothing new)" "$t_repush" "cp -a" "$t_cp" 0.05
row "pull into an empty repo" "$t_pull" "cp -a" "$t_cp" 1.0
