#!/usr/bin/env bash
# Build benchmark (root): `spk build` of a trivial recipe, the runtime's overhead on a
# build that compiles the example C library and installs 20,000 files / ~500 MiB, and
# the capture of that install against `cp -a` of it. Medians of RUNS runs.
#
# usage: sudo scripts/bench-build.sh [WORKDIR]     (WORKDIR default: /var/tmp/spk-bench-build)
# env:   RUNS=7 BIG_RUNS=3
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-common.sh
[ "$(id -u)" = 0 ] || { echo "error: run as root (builds enter runtimes)" >&2; exit 1; }
WORK=${1:-/var/tmp/spk-bench-build}
RUNS=${RUNS:-7}
BIG_RUNS=${BIG_RUNS:-3}
cargo build --release -q -p spk
SPK=$PWD/target/release/spk
LIBSRC=$PWD/examples/packages/hello-lib/src
bench_tree "$WORK" 20000 25
export SPFS_ROOT=$WORK/repo
rm -rf "$SPFS_ROOT"

# The trivial recipe: no dependencies, the script writes one file.
mkdir -p "$WORK/trivial"
cat > "$WORK/trivial/trivial.spk.yaml" <<'SPEC'
pkg: trivial/1.0.0
build:
  script:
    - mkdir -p "$PREFIX/share"
    - echo hello > "$PREFIX/share/hello.txt"
SPEC

# The big recipe: compile the C library, then install the generated tree.
SCRIPT="cc -O2 -fPIC -c $LIBSRC/hello.c -o \"\$PREFIX/hello.o\" && mkdir -p \"\$PREFIX/lib\" && cc -shared -o \"\$PREFIX/lib/libhello.so\" \"\$PREFIX/hello.o\" && rm \"\$PREFIX/hello.o\" && cp -a $TREE/. \"\$PREFIX/data/\""
mkdir -p "$WORK/big"
cat > "$WORK/big/big.spk.yaml" <<SPEC
pkg: big/1.0.0
build:
  script:
    - mkdir -p "\$PREFIX/data"
    - $SCRIPT
SPEC

trivial() { "$SPK" build --no-host "$WORK/trivial/trivial.spk.yaml"; }
native_trivial() { P=$WORK/native-trivial; rm -rf "$P"; mkdir -p "$P/share"; echo hello > "$P/share/hello.txt"; }
ns() { unshare -m true; }

big_times=()
big_build() {
  local out
  out=$("$SPK" -v build --no-host "$WORK/big/big.spk.yaml" 2>&1) || { echo "$out" >&2; exit 1; }
  echo "$out" | grep -o 'capture [0-9.]*s' | tail -1 | tr -dc '0-9.\n' >> "$WORK/capture.times"
}
native_big() {
  local P=$WORK/native-prefix
  rm -rf "$P"; mkdir -p "$P/data"
  PREFIX=$P bash -ec "$SCRIPT"
}
native_big_synced() { native_big; sync -f "$WORK/native-prefix"; }
reset_big() { rm -rf "$WORK/native-prefix" "$WORK/cp-copy"; sync; }
cp_tree() { cp -a "$TREE" "$WORK/cp-copy"; }

echo "build benchmark: $(nproc) cores, median of $RUNS runs (big: $BIG_RUNS); $(find "$TREE" -type f | wc -l) files, $(du -sm "$TREE" | cut -f1) MiB installed by the big build"
echo
header
t_triv=$(median_of "$RUNS" trivial)
t_ns=$(median_of "$RUNS" ns)
row "spk build, trivial recipe" "$t_triv" "unshare -m true" "$t_ns" "-"
awk -v t="$t_triv" 'BEGIN { printf "| %-34s | %8.3f s | %-22s | %8.3f s | %6.2f× | %6s | %-4s |\n", "spk build, trivial (absolute)", t, "target 150 ms", 0.150, t/0.150, "≤ 1", (t <= 0.150 ? "PASS" : "FAIL") }'
: > "$WORK/capture.times"
BENCH_RESET=reset_big
t_native=$(median_of "$BIG_RUNS" native_big)
t_big=$(median_of "$BIG_RUNS" big_build)
t_native_sync=$(median_of "$BIG_RUNS" native_big_synced)
row "build: compile + 20k files" "$t_big" "same script, native" "$t_native" "1.15"
row "build: compile + 20k files" "$t_big" "native + syncfs" "$t_native_sync" "1.15"
t_cp=$(median_of "$BIG_RUNS" cp_tree)
t_cap=$(sort -n "$WORK/capture.times" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
row "capture of the install" "$t_cap" "cp -a of the tree" "$t_cp" "0.5"
unset BENCH_RESET
