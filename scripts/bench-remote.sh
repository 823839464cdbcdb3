#!/usr/bin/env bash
# Remote benchmark: push of the ~1 GiB, ~45,000-file layer to a file:// remote vs
# `cp -a` of the tree, re-push with nothing new, and pull back into an empty
# repository; then push/pull to a local S3 server vs rclone (below). Medians over
# RUNS runs (default 3).
#
# usage: scripts/bench-remote.sh [WORKDIR]     (WORKDIR default: /var/tmp/spfs-bench)
# env:   RUNS=3 SMALL=45000 BIG=50 FILE=0 (skips the file:// part); S3 part: see below
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-common.sh
WORK=${1:-/var/tmp/spfs-bench}
RUNS=${RUNS:-3}
cargo build --release -q -p spfs-cli
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
SPFS=$TARGET/release/spfs
LOCAL=$WORK/remote-local
REMOTE=$WORK/remote-shared
FRESH=$WORK/remote-fresh
OUT=$WORK/remote-out
reset_out() { rm -rf "$OUT"; sync; }
reset_fresh() { rm -rf "$FRESH"; sync; }

# ---------------------------------------------------------------- file://
# FILE=0 skips this part.
if [ "${FILE:-1}" = 1 ]; then
  bench_tree "$WORK"
  rm -rf "$LOCAL" "$REMOTE" "$FRESH" "$OUT"
  SPFS_ROOT=$LOCAL "$SPFS" commit layer --path "$TREE" -t bench/tree >/dev/null 2>&1
  # Warm the page cache for every contender.
  find "$TREE" "$LOCAL/payloads" -type f -print0 | xargs -0 cat >/dev/null
  push() { SPFS_ROOT=$LOCAL "$SPFS" push bench/tree --remote "file://$REMOTE"; }
  pull() { SPFS_ROOT=$FRESH "$SPFS" pull bench/tree --remote "file://$REMOTE"; }
  reset_remote() { rm -rf "$REMOTE"; sync; }

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
fi

# ---------------------------------------------------------------- S3
# Push/pull of a tree to the local S3 server (Ceph radosgw, memstore: objects in RAM)
# vs `rclone copy` of the same tree to the same server (its defaults: 4 transfers,
# 8 checkers, and once with --transfers 32, spfs's concurrency), and `s3cmd sync`
# (single-threaded) with S3CMD=1. Every run writes to a new key prefix.
# env: S3=0 skips this part; S3_SMALL=10000 S3_BIG=10 (files of the S3 tree: the full
#      45k-file/1 GiB tree takes ~10 GiB of server RAM over all runs and far longer);
#      AWS_ENDPOINT_URL etc. set: use that server, else one is started for the run.
[ "${S3:-1}" = 1 ] || exit 0
for tool in rclone:rclone curl:curl ceph-mon:ceph-mon radosgw:radosgw; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need_pkgs+=" ${tool##*:}"
done
[ "${S3CMD:-0}" = 1 ] && ! command -v s3cmd >/dev/null && need_pkgs+=" s3cmd"
if [ -n "${need_pkgs:-}" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need_pkgs
fi
if [ -z "${AWS_ENDPOINT_URL:-}" ]; then
  S3DIR=$WORK/s3-server
  scripts/s3-server/stop.sh "$S3DIR"
  trap 'scripts/s3-server/stop.sh "$S3DIR"' EXIT
  S3_SERVER_MEMSTORE_BYTES=$((16 << 30)) scripts/s3-server/start.sh "$S3DIR" >/dev/null
  # shellcheck disable=SC1091
  . "$S3DIR/s3.env"
fi
bench_tree "$WORK/s3-${S3_SMALL:-10000}-${S3_BIG:-10}" "${S3_SMALL:-10000}" "${S3_BIG:-10}"
S3TREE=$TREE s3files=$files s3bytes=$bytes
rm -rf "$LOCAL" "$FRESH" "$OUT"
SPFS_ROOT=$LOCAL "$SPFS" commit layer --path "$S3TREE" -t bench/s3tree >/dev/null 2>&1
find "$S3TREE" "$LOCAL/payloads" -type f -print0 | xargs -0 cat >/dev/null
export SPFS_ROOT=$LOCAL
export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Ceph \
  RCLONE_CONFIG_BENCH_ENDPOINT=$AWS_ENDPOINT_URL RCLONE_CONFIG_BENCH_REGION=$AWS_REGION \
  RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID \
  RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
S3CFG=$WORK/s3cfg
hostport=${AWS_ENDPOINT_URL#http://}
cat >"$S3CFG" <<EOF
[default]
access_key = $AWS_ACCESS_KEY_ID
secret_key = $AWS_SECRET_ACCESS_KEY
host_base = $hostport
host_bucket = $hostport
use_https = False
signature_v2 = False
bucket_location = $AWS_REGION
EOF
# (rclone 1.60 refuses an AWS_CA_BUNDLE with its own HTTP transport; the endpoint is http)
rclone_() { env -u AWS_CA_BUNDLE rclone "$@"; }
n=0
next_prefix() { n=$((n + 1)); P=run$$-$n; }
# The pull sources: one copy by each tool, made untimed.
"$SPFS" push bench/s3tree --remote "s3://spfs-bench/src$$" >/dev/null 2>&1
rclone_ copy "$S3TREE" "bench:spfs-bench/rclone-src$$" >/dev/null 2>&1
s3_push() { "$SPFS" push bench/s3tree --remote "s3://spfs-bench/$P"; }
s3_pull() { SPFS_ROOT=$FRESH "$SPFS" pull bench/s3tree --remote "s3://spfs-bench/src$$"; }
s3_repush() { "$SPFS" push bench/s3tree --remote "s3://spfs-bench/src$$"; }
rc_push() { rclone_ copy "$S3TREE" "bench:spfs-bench/$P" "$@"; }
rc_pull() { rclone_ copy "bench:spfs-bench/rclone-src$$" "$OUT" "$@"; }
rc_push32() { rc_push --transfers 32 --checkers 32; }
rc_pull32() { rc_pull --transfers 32 --checkers 32; }
sc_push() { s3cmd -q -c "$S3CFG" sync "$S3TREE/" "s3://spfs-bench/$P/"; }
sc_pull() { s3cmd -q -c "$S3CFG" sync "s3://spfs-bench/rclone-src$$/" "$OUT/"; }
BENCH_RESET=next_prefix t_s3push=$(median_of "$RUNS" s3_push)
BENCH_RESET= t_s3repush=$(median_of "$RUNS" s3_repush)
BENCH_RESET=reset_fresh t_s3pull=$(median_of "$RUNS" s3_pull)
SPFS_ROOT=$FRESH "$SPFS" check bench/s3tree >/dev/null 2>&1 || { echo "repository pulled from S3 fails check" >&2; exit 1; }
BENCH_RESET=next_prefix t_rcpush=$(median_of "$RUNS" rc_push)
BENCH_RESET=reset_out t_rcpull=$(median_of "$RUNS" rc_pull)
BENCH_RESET=next_prefix t_rcpush32=$(median_of "$RUNS" rc_push32)
BENCH_RESET=reset_out t_rcpull32=$(median_of "$RUNS" rc_pull32)
if [ "${S3CMD:-0}" = 1 ]; then
  BENCH_RESET=next_prefix t_scpush=$(median_of "$RUNS" sc_push)
  BENCH_RESET=reset_out t_scpull=$(median_of "$RUNS" sc_pull)
fi
rm -rf "$LOCAL" "$FRESH" "$OUT"

echo
echo "S3 benchmark: $s3files files, $((s3bytes / 1048576)) MiB, local radosgw (memstore) at $AWS_ENDPOINT_URL, median of $RUNS runs, $(nproc) cores"
echo
header
row "push to S3 (empty prefix)" "$t_s3push" "rclone copy" "$t_rcpush" 0.5
row "push to S3 (empty prefix)" "$t_s3push" "rclone copy -j32" "$t_rcpush32" 0.5
row "re-push to S3 (nothing new)" "$t_s3repush" "rclone copy" "$t_rcpush" 0.05
row "pull from S3 into an empty repo" "$t_s3pull" "rclone copy" "$t_rcpull" 0.5
row "pull from S3 into an empty repo" "$t_s3pull" "rclone copy -j32" "$t_rcpull32" 0.5
if [ "${S3CMD:-0}" = 1 ]; then
  row "push to S3 (empty prefix)" "$t_s3push" "s3cmd sync" "$t_scpush" 0.5
  row "pull from S3 into an empty repo" "$t_s3pull" "s3cmd sync" "$t_scpull" 0.5
fi
