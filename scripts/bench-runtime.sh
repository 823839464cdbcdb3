#!/usr/bin/env bash
# Runtime benchmark (root): entry cost, metadata walks and reads through /spfs, for each
# view (render; fuse, which as root is an image view kept between runtimes; fuse-cold,
# a new image view for every runtime, forced with SPFS_VIEW_KEEP=0, as the first runtime
# of a stack on a host gets; fuse-server, the FUSE server that rootless and lazy
# runtimes use, forced with SPFS_FUSE_IMAGE=0), warm and cold, on the 45k-file layer
# and the 200-layer stack, plus FUSE
# with payloads fetched lazily from a second repository (and from S3 when
# SPFS_TEST_S3_ENDPOINT is set: see the lazy S3 part below). Every row is a ratio to a
# baseline measured in the same run (native tree, or `unshare -m true` for entry).
# Medians of RUNS runs (default 5). Reuses the tree of scripts/bench-store.sh.
#
# usage: sudo scripts/bench-runtime.sh [WORKDIR]     (WORKDIR default: /var/tmp/spfs-bench)
# env:   RUNS=5 BACKENDS="render fuse fuse-cold fuse-server" SECTIONS="entry walks pairs lazy ab"
#        SPFS (a prebuilt binary to measure instead of building one)
#        SPFS_BEFORE (section ab: a second binary, e.g. built from an earlier commit;
#          warm entries of both and `unshare -m true` are timed in turn, RUNS×3 rounds)
#        CARGO_TARGET_DIR (where the release build goes)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-common.sh
[ "$(id -u)" = 0 ] || { echo "error: run as root (mounts, namespaces, drop_caches)" >&2; exit 1; }
WORK=${1:-/var/tmp/spfs-bench}
RUNS=${RUNS:-5}
BACKENDS=${BACKENDS:-render fuse fuse-cold fuse-server}
SECTIONS=${SECTIONS:-entry walks pairs lazy ab}
want() { [[ " $SECTIONS " == *" $1 "* ]]; }
if [ -z "${SPFS:-}" ]; then
  cargo build --release -q -p spfs-cli
  SPFS=${CARGO_TARGET_DIR:-$PWD/target}/release/spfs
fi
bench_tree "$WORK"
export SPFS_ROOT=$WORK/rt-repo
# The benchmark's own view keeper, dropped at the end.
export SPFS_VIEW_KEEPER=$WORK/views.sock
trap '"$SPFS" runtime views --drop --all-repos >/dev/null 2>&1 || true' EXIT
if ! "$SPFS" tags bench/ 2>/dev/null | grep -q bench/big; then
  rm -rf "$SPFS_ROOT"
  "$SPFS" commit layer --path "$TREE" -t bench/big >/dev/null 2>&1
  for i in $(seq 0 199); do
    d=$WORK/small-layers/l$i
    mkdir -p "$d/lib/l$i" && echo "layer $i" > "$d/lib/l$i/file" && echo "$i" > "$d/top"
    "$SPFS" commit layer --path "$d" -t "bench/small/l$i" >/dev/null 2>&1
  done
fi
# `spfs run` through a view: render, fuse (an image view as root) or fuse-server.
spfs_run() {
  local b=$1; shift
  case $b in
    fuse-server) SPFS_FUSE_IMAGE=0 "$SPFS" run --backend fuse "$@" ;;
    fuse-cold) SPFS_FUSE_IMAGE=1 SPFS_VIEW_KEEP=0 "$SPFS" run --backend fuse "$@" ;;
    *) SPFS_FUSE_IMAGE=1 "$SPFS" run --backend "$b" "$@" ;;
  esac
}
# The same with another binary ($SPFS_BEFORE).
spfs_run_before() { SPFS=$SPFS_BEFORE spfs_run "$@"; }
stack() { local s=""; for i in $(seq 0 $(($1 - 1))); do s="$s${s:+ +}bench/small/l$i"; done; echo "${s// /}"; }
S50=$(stack 50); S200=$(stack 200)
# Native copy of the 200-layer stack's merged tree: the walk baseline for that stack.
if [ ! -d "$WORK/s200-native" ]; then "$SPFS" render --strategy copy "$S200" "$WORK/s200-native" >/dev/null 2>&1; fi
drop_renders() { rm -rf "$SPFS_ROOT/renders"; }
# Cold FUSE entry: no inode table, no image and no kept view.
drop_fuse_cache() { rm -rf "$SPFS_ROOT/renders/fuse"; "$SPFS" runtime views --drop --all-repos >/dev/null 2>&1; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
overhead() { printf '| %-40s | %8.1f ms above unshare (target ≤ 20 ms) |\n' "$1" "$(awk -v a="$2" -v b="$3" 'BEGIN{print (a-b)*1000}')"; }

echo "runtime benchmark: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), median of $RUNS runs; $(find "$TREE" -type f | wc -l) files in the big layer"
echo
t_unshare=$(median_of "$RUNS" unshare -m true)
if want entry; then
echo "## Entry (spfs run REF -- true)"
echo
header
t_empty=$(median_of "$RUNS" "$SPFS" run - -- true)
row "run - -- true" "$t_empty" "unshare -m true" "$t_unshare" -
overhead "empty entry overhead" "$t_empty" "$t_unshare"
for backend in $BACKENDS; do
  for case in big S50 S200; do
    case $case in big) ref=bench/big ;; S50) ref=$S50 ;; S200) ref=$S200 ;; esac
    label="$backend: ${case/S/stack of }"
    spfs_run "$backend" "$ref" -- true; sync  # warm up, then flush
    t_warm=$(median_of "$RUNS" spfs_run "$backend" "$ref" -- true)
    row "$label (warm)" "$t_warm" "unshare -m true" "$t_unshare" -
    overhead "  warm entry overhead" "$t_warm" "$t_unshare"
    if [ "$backend" = render ]; then
      t_cold=$(BENCH_RESET=drop_renders median_of 3 "$SPFS" run --backend render "$ref" -- true)
      row "$label (cold: no render cache)" "$t_cold" "unshare -m true" "$t_unshare" -
    else
      t_cold=$(BENCH_RESET=drop_fuse_cache median_of 3 spfs_run "$backend" "$ref" -- true)
      row "$label (cold: no inode cache, image or kept view)" "$t_cold" "unshare -m true" "$t_unshare" -
    fi
    spfs_run "$backend" "$ref" -- true  # leave the caches warm
  done
done
echo
fi
# Before/after: warm entry of two binaries on the same repository, interleaved round by
# round with the baseline so that load changes hit all three alike.
if want ab && [ -n "${SPFS_BEFORE:-}" ]; then
echo "## Warm entry, before/after (\$SPFS_BEFORE vs \$SPFS, $((RUNS * 3)) interleaved rounds)"
echo
printf '| %-22s | %s | %s | %s | %s |\n' case "unshare -m true" "before" "after" "after-before"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..24})" "---" "---" "---" "---"
# $EPOCHREALTIME (bash 5) reads the clock without forking `date`.
once() { local t0 t1; t0=${EPOCHREALTIME/./}; "$@" >/dev/null 2>&1 || { echo "benchmark command failed: $*" >&2; exit 1; }; t1=${EPOCHREALTIME/./}; echo $((t1 - t0)); }
# Median (and minimum) of a column, in ms.
medcol() { awk -v c="$1" '{print $c}' | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}'; }
mincol() { awk -v c="$1" '{print $c}' | sort -n | head -1 | awk '{printf "%.1f", $1/1000}'; }
for backend in $BACKENDS; do
  for case in big S200; do
    case $case in big) ref=bench/big ;; S200) ref=$S200 ;; esac
    spfs_run_before "$backend" "$ref" -- true; spfs_run "$backend" "$ref" -- true
    rounds=$(for _ in $(seq $((RUNS * 3))); do
      echo "$(once unshare -m true) $(once spfs_run_before "$backend" "$ref" -- true) $(once spfs_run "$backend" "$ref" -- true)"
    done)
    u=$(medcol 1 <<<"$rounds"); b=$(medcol 2 <<<"$rounds"); a=$(medcol 3 <<<"$rounds")
    d=$(awk '{print $3 - $2}' <<<"$rounds" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}')
    printf '| %-22s | %5s ms (min %s) | %5s ms (+%s; min %s) | %5s ms (+%s; min %s) | %6s ms |\n' "$backend: ${case/S/stack of }" \
      "$u" "$(mincol 1 <<<"$rounds")" \
      "$b" "$(awk -v x="$b" -v y="$u" 'BEGIN{printf "%.1f", x-y}')" "$(mincol 2 <<<"$rounds")" \
      "$a" "$(awk -v x="$a" -v y="$u" 'BEGIN{printf "%.1f", x-y}')" "$(mincol 3 <<<"$rounds")" "$d"
  done
done
echo
echo "Medians of each column; after-before is the median of the per-round differences."
echo
fi
# Reads and walks are timed inside the runtime (entry cost excluded); every run is a
# fresh runtime, so FUSE walks always start on a fresh mount.
inner() { local b=$1 ref=$2; shift 2; spfs_run "$b" "$ref" -- sh -c "$*"; }
time_in() { local s e; s=$(date +%s%N); eval "$1" >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000 )); }
med() { sort -n | awk '{a[NR]=$1} END {printf "%.3f\n", a[int((NR+1)/2)]/1e6}'; }
median_inner() { # backend ref command-on-/spfs [setup]
  local v
  for _ in $(seq "$RUNS"); do
    ${4:-true}
    v=$(inner "$1" "$2" "s=\$(date +%s%N); $3 >/dev/null 2>&1; e=\$(date +%s%N); echo \$(( (e - s) / 1000 ))")
    echo "$v"
  done | med
}
median_native() { # command [setup]
  for _ in $(seq "$RUNS"); do ${2:-true}; time_in "$1"; done | med
}
if want walks; then
cat "$TREE"/big/* >/dev/null
n_read=$(median_native "cat $TREE/big/*")
n_read_cold=$(median_native "cat $TREE/big/*" drop_caches)
n_find=$(median_native "find $TREE -type f | wc -l")
n_find_cold=$(median_native "find $TREE -type f | wc -l" drop_caches)
n_lslr=$(median_native "ls -lR $TREE")
n_lslr_cold=$(median_native "ls -lR $TREE" drop_caches)
n_find200=$(median_native "find $WORK/s200-native -type f | wc -l")
n_lslr200=$(median_native "ls -lR $WORK/s200-native")
bigmb=$(du -sm "$TREE/big" | cut -f1)
echo "## Reads and walks (45k-file layer; $bigmb MiB in the big files)"
echo
header
for backend in $BACKENDS; do
  inner "$backend" bench/big "cat /spfs/big/* >/dev/null"
  r_warm=$(median_inner "$backend" bench/big "cat /spfs/big/*")
  r_cold=$(median_inner "$backend" bench/big "cat /spfs/big/*" drop_caches)
  # Throughput ratio = native time / spfs time (target ≥ 0.9, shown as time ratio ≤ 1.11).
  row "$backend: read (warm)" "$r_warm" "native cat" "$n_read" 1.11
  row "$backend: read (cold)" "$r_cold" "native cat (cold)" "$n_read_cold" 1.11
  row "$backend: find -type f | wc -l (warm)" "$(median_inner "$backend" bench/big "find /spfs -type f | wc -l")" "native find" "$n_find" 1.5
  row "$backend: find -type f | wc -l (cold)" "$(median_inner "$backend" bench/big "find /spfs -type f | wc -l" drop_caches)" "native find (cold)" "$n_find_cold" 1.5
  row "$backend: ls -lR (warm)" "$(median_inner "$backend" bench/big "ls -lR /spfs")" "native ls -lR" "$n_lslr" 1.3
  row "$backend: ls -lR (cold)" "$(median_inner "$backend" bench/big "ls -lR /spfs" drop_caches)" "native ls -lR (cold)" "$n_lslr_cold" 1.3
  row "$backend: stack of 200, find" "$(median_inner "$backend" "$S200" "find /spfs -type f | wc -l")" "native find" "$n_find200" 1.5
  row "$backend: stack of 200, ls -lR" "$(median_inner "$backend" "$S200" "ls -lR /spfs")" "native ls -lR" "$n_lslr200" 1.3
done
echo
echo "Read rows compare times: a time ratio ≤ 1.11 is a throughput ≥ 0.9× native."
echo
fi
# Fresh-mount walks in alternating pairs (native, then the same walk in a new runtime),
# reported as the minimum of each side and the median of the per-pair ratios: on a
# shared machine a load spike hits one pair, not a whole column.
if want pairs; then
echo "## Fresh-mount walks, alternating pairs (45k-file layer, $RUNS pairs)"
echo
printf '| %-34s | %10s | %10s | %8s | %14s | %6s |\n' walk "min spfs" "min native" "min ratio" "median ratio" target
printf '|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..36})" "------------" "------------" "----------" "----------------" "--------"
for backend in $BACKENDS; do
  # One earlier runtime walked the stack: what a kept view keeps (fuse); the other views
  # start every runtime on a new mount anyway.
  inner "$backend" bench/big "ls -lR /spfs >/dev/null"
  for walk in "find @ -type f" "ls -lR @"; do
    target=1.5; [ "$walk" = "ls -lR @" ] && target=1.3
    pairs=$(for _ in $(seq "$RUNS"); do
      n=$(time_in "${walk/@/$TREE} | wc -l")
      f=$(inner "$backend" bench/big "s=\$(date +%s%N); ${walk/@//spfs} | wc -l >/dev/null 2>&1; e=\$(date +%s%N); echo \$(( (e - s) / 1000 ))")
      echo "$f $n"
    done)
    printf '| %-34s | %8.3f s | %8.3f s | %7.2f× | %13.2f× | ≤ %-4s |\n' "$backend: ${walk/ @/}" \
      "$(awk '{print $1}' <<<"$pairs" | sort -n | head -1 | awk '{print $1/1e6}')" \
      "$(awk '{print $2}' <<<"$pairs" | sort -n | head -1 | awk '{print $1/1e6}')" \
      "$(awk 'NR==1 || $1<f {f=$1} NR==1 || $2<n {n=$2} END {print f/n}' <<<"$pairs")" \
      "$(awk '{print $1/$2}' <<<"$pairs" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')" "$target"
  done
done
echo
fi
# Lazy remote: a local repository holding the objects and tags but no payloads;
# the full one serves as the remote. Entry plus reading one small and one big file;
# then the same stack with nothing local at all (objects read from the remote).
# (Assignments before `median_of` go inside the $(...): a bare `VAR=x t=$(...)` would
# keep VAR set for every later measurement.)
if want lazy && [[ " $BACKENDS " == *" fuse "* ]]; then
  LAZY=$WORK/lazy-repo-$$
  lazy_reset() {
    rm -rf "$LAZY" && mkdir -p "$LAZY"
    cp -a "$SPFS_ROOT/VERSION" "$SPFS_ROOT/objects" "$SPFS_ROOT/tags" "$LAZY/"
    mkdir -p "$LAZY/payloads" "$LAZY/renders" "$LAZY/runtimes" "$LAZY/tmp"
  }
  small=$(cd "$TREE" && find lib00 -type f -print -quit)
  bigf=$(cd "$TREE" && find big -type f -print -quit)
  lazy_run() { SPFS_ROOT=$LAZY "$SPFS" run --backend fuse --payloads-from "$SPFS_ROOT" bench/big -- sh -c "$1"; }
  echo "## Lazy remote (45k-file layer, $(du -sm "$SPFS_ROOT/payloads" | cut -f1) MiB, payloads only on the remote)"
  echo
  header
  t=$(BENCH_RESET=lazy_reset median_of 3 lazy_run "cat /spfs/$small")
  row "fuse lazy: enter + read 1 small file" "$t" "unshare -m true" "$t_unshare" -
  printf '| %-40s | %8.3f s (target ≤ 1 s) |\n' "  entry + first read" "$t"
  t=$(BENCH_RESET=lazy_reset median_of 3 lazy_run "cat /spfs/$bigf")
  row "fuse lazy: enter + read 1 big file" "$t" "unshare -m true" "$t_unshare" -
  t=$(median_of 3 lazy_run "cat /spfs/$bigf")
  row "fuse lazy: same, now local" "$t" "unshare -m true" "$t_unshare" -
  # The whole stack only on the remote: the local repository starts empty; the layer
  # and its manifest are read from the remote into memory (never stored locally).
  empty_reset() { rm -rf "$LAZY" && mkdir -p "$LAZY"; }
  t=$(BENCH_RESET=empty_reset median_of 3 lazy_run "cat /spfs/$small")
  row "fuse remote-only stack: enter + read 1 small file" "$t" "unshare -m true" "$t_unshare" -
  printf '| %-40s | %8.3f s (target ≤ 1 s) |\n' "  entry + first read" "$t"
  t=$(median_of 3 lazy_run "cat /spfs/$small")
  row "fuse remote-only stack: again (inode cache, payload local)" "$t" "unshare -m true" "$t_unshare" -
  [ -z "$(find "$LAZY/objects" -type f 2>/dev/null)" ] || { echo "objects were stored locally" >&2; exit 1; }
  rm -rf "$LAZY"
fi
# Lazy remote on S3: the same, with the payloads only in an S3 bucket. Runs when an S3
# server is configured (`set -a; . DIR/s3.env; set +a` after scripts/s3-server/start.sh
# DIR; bucket $S3_BENCH_BUCKET, default spfs-bench). The layer is pushed once per run
# to a fresh prefix.
if want lazy && [[ " $BACKENDS " == *" fuse "* ]] && [ -n "${SPFS_TEST_S3_ENDPOINT:-}" ]; then
  LAZY=$WORK/lazy-repo-$$
  lazy_reset() {
    rm -rf "$LAZY" && mkdir -p "$LAZY"
    cp -a "$SPFS_ROOT/VERSION" "$SPFS_ROOT/objects" "$SPFS_ROOT/tags" "$LAZY/"
    mkdir -p "$LAZY/payloads" "$LAZY/renders" "$LAZY/runtimes" "$LAZY/tmp"
  }
  S3REMOTE=s3://${S3_BENCH_BUCKET:-spfs-bench}/runtime-lazy-$$
  t_push=$( { t0=${EPOCHREALTIME/./}; "$SPFS" push bench/big --remote "$S3REMOTE" >/dev/null 2>&1 \
    || { echo "push to $S3REMOTE failed" >&2; exit 1; }; echo $(( ${EPOCHREALTIME/./} - t0 )); } )
  small=$(cd "$TREE" && find lib00 -type f -print -quit)
  bigf=$(cd "$TREE" && find big -type f -print -quit)
  s3_run() { SPFS_ROOT=$LAZY "$SPFS" run --backend fuse --payloads-from "$S3REMOTE" bench/big -- sh -c "$1"; }
  echo "## Lazy remote on S3 ($S3REMOTE at $SPFS_TEST_S3_ENDPOINT; 45k-file layer, payloads only on S3; push took $((t_push / 1000000)) s)"
  echo
  header
  t=$(BENCH_RESET=lazy_reset median_of "$RUNS" s3_run "cat /spfs/$small")
  row "fuse S3: enter + read 1 small file" "$t" "unshare -m true" "$t_unshare" -
  printf '| %-40s | %8.3f s (target ≤ 1 s) |\n' "  entry + first read" "$t"
  t=$(BENCH_RESET=lazy_reset median_of "$RUNS" s3_run "cat /spfs/$bigf")
  row "fuse S3: enter + read 1 big file ($(( $(stat -c %s "$TREE/$bigf") >> 20 )) MiB)" "$t" "unshare -m true" "$t_unshare" -
  t=$(median_of "$RUNS" s3_run "cat /spfs/$bigf")
  row "fuse S3: same, now local" "$t" "unshare -m true" "$t_unshare" -
  # The whole stack only on S3: the local repository starts empty.
  empty_reset() { rm -rf "$LAZY" && mkdir -p "$LAZY"; }
  t=$(BENCH_RESET=empty_reset median_of "$RUNS" s3_run "cat /spfs/$small")
  row "fuse S3 remote-only stack: enter + read 1 small file" "$t" "unshare -m true" "$t_unshare" -
  printf '| %-40s | %8.3f s (target ≤ 1 s) |\n' "  entry + first read" "$t"
  t=$(median_of "$RUNS" s3_run "cat /spfs/$small")
  row "fuse S3 remote-only stack: again (inode cache, payload local)" "$t" "unshare -m true" "$t_unshare" -
  [ -z "$(find "$LAZY/objects" -type f 2>/dev/null)" ] || { echo "objects were stored locally" >&2; exit 1; }
  echo
  rm -rf "$LAZY"
fi
