#!/usr/bin/env bash
# Clean benchmark: `spfs clean` of a repository holding the ~1 GiB, ~45,000-file layer
# untagged vs `rm -rf` of that repository (medians over RUNS runs), and of a synthetic
# repository of PAIRS×2 small objects (default 1,000,000) with half unreachable.
#
# usage: scripts/bench-clean.sh [WORKDIR]     (WORKDIR default: /var/tmp/spfs-bench)
# env:   RUNS=3 SMALL=45000 BIG=50 PAIRS=500000
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-common.sh
WORK=${1:-/var/tmp/spfs-bench}
RUNS=${RUNS:-3}
PAIRS=${PAIRS:-500000}
cargo build --release -q -p spfs-cli
cargo build --release -q -p spfs --example gen_store
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
SPFS=$TARGET/release/spfs
GEN=$TARGET/release/examples/gen_store
bench_tree "$WORK"

REPO=$WORK/clean-repo
SEED=$WORK/clean-seed
export SPFS_ROOT=$REPO
# One committed copy of the untagged layer, cloned (cp -a) before every timed run.
rm -rf "$SEED"
SPFS_ROOT=$SEED "$SPFS" commit layer --path "$TREE" >/dev/null 2>&1
reset_repo() { rm -rf "$REPO"; cp -a "$SEED" "$REPO"; sync; }
BENCH_RESET=reset_repo t_rm=$(median_of "$RUNS" rm -rf "$REPO")
BENCH_RESET=reset_repo t_clean=$(median_of "$RUNS" "$SPFS" clean -y --grace 0)
reset_repo
rm -rf "$REPO" "$SEED"

# The synthetic store: generated once, cleaned once (a clean changes it).
SYN=$WORK/clean-synthetic
rm -rf "$SYN"
echo "generating $((PAIRS * 2)) objects in $SYN ..." >&2
"$GEN" "$SYN" "$PAIRS"
sync
t0=$(now_ns)
out=$(SPFS_ROOT=$SYN "$SPFS" clean -y --grace 0)
t1=$(now_ns)
t_syn=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
remaining=$(find "$SYN/objects" -type f | wc -l)
sync
t0=$(now_ns); rm -rf "$SYN"; sync; t1=$(now_ns)
t_synrm=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')

echo
echo "clean benchmark: $files files, $((bytes / 1048576)) MiB untagged; median of $RUNS runs, $(nproc) cores"
echo
header
row "clean (45k-file layer untagged)" "$t_clean" "rm -rf repo" "$t_rm" 0.5
echo
echo "synthetic store: $((PAIRS * 2)) objects, half unreachable: clean in ${t_syn} s (target ≤ 30 s); $remaining objects remain"
echo "  $out"
echo "  for scale: rm -rf of the $remaining objects left took ${t_synrm} s on this disk"
