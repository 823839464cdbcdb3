#!/usr/bin/env bash
# Store benchmark: commit, re-commit, render and check of a ~1 GiB, ~50,000-file tree
# against cp -a, cp -al and b3sum/sha256sum, medians over RUNS runs (default 3).
#
# usage: scripts/bench-store.sh [WORKDIR]     (WORKDIR default: /var/tmp/spfs-bench)
# env:   RUNS=3 SMALL=45000 BIG=50 CARGO_TARGET_DIR (where the release build goes)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-common.sh
WORK=${1:-/var/tmp/spfs-bench}
RUNS=${RUNS:-3}
cargo build --release -q -p spfs-cli
SPFS=${CARGO_TARGET_DIR:-$PWD/target}/release/spfs
bench_tree "$WORK"
# Warm the page cache so every contender reads from memory.
cat $(find "$TREE/big" -type f) >/dev/null; find "$TREE" -type f -print0 | xargs -0 cat >/dev/null

REPO=$WORK/repo
OUT=$WORK/out
export SPFS_ROOT=$REPO
clean_out() { rm -rf "$OUT"; sync; }
clean_all() { rm -rf "$OUT" "$REPO"; sync; }
# A reset applies to one measurement only: `t=$(BENCH_RESET=f median_of ...)` (a bare
# `BENCH_RESET=f t=$(...)` would keep it set for every later row).

t_cp=$(BENCH_RESET=clean_out median_of "$RUNS" cp -a "$TREE" "$OUT")
t_commit=$(BENCH_RESET=clean_all median_of "$RUNS" "$SPFS" commit layer --path "$TREE" -t bench/tree)
clean_all; "$SPFS" commit layer --path "$TREE" -t bench/tree >/dev/null 2>&1
t_recommit=$(median_of "$RUNS" "$SPFS" commit layer --path "$TREE" -t bench/tree)
t_cpal=$(BENCH_RESET=clean_out median_of "$RUNS" cp -al "$TREE" "$OUT")
"$SPFS" render bench/tree "$OUT.warm" >/dev/null 2>&1; rm -rf "$OUT.warm"   # proxies made once
t_rhl=$(BENCH_RESET=clean_out median_of "$RUNS" "$SPFS" render bench/tree "$OUT" --strategy hardlink)
t_rcp=$(BENCH_RESET=clean_out median_of "$RUNS" "$SPFS" render bench/tree "$OUT" --strategy copy)
clean_out
t_check=$(median_of "$RUNS" "$SPFS" check bench/tree)
if command -v b3sum >/dev/null; then sum=b3sum; else sum=sha256sum; fi
sum_tree() { find "$TREE" -type f -print0 | xargs -0 -P "$(nproc)" -n 500 "$sum" >/dev/null; }
t_sum=$(median_of "$RUNS" sum_tree)

echo
echo "store benchmark: $files files, $((bytes / 1048576)) MiB, median of $RUNS runs, $(nproc) cores, page cache warm"
echo
header
row "commit (fresh repo)" "$t_commit" "cp -a" "$t_cp" 1.0
row "re-commit (unchanged tree)" "$t_recommit" "cp -a" "$t_cp" 0.5
row "render --strategy hardlink" "$t_rhl" "cp -al" "$t_cpal" 1.2
row "render --strategy copy" "$t_rcp" "cp -a" "$t_cp" -
row "check (re-hash all)" "$t_check" "$sum (parallel)" "$t_sum" -
