#!/usr/bin/env bash
# Package repositories at scale: generated repositories of 10k, 50k and 100k package
# versions (20 per package, 3 builds each, layered dependency fan-out) published into an
# on-disk spfs repository and into memory. Prints, per size, publish time per recipe,
# `spk ls` / `spk ls NAME`, the cold first solve (index dropped, rebuild included), a full
# `spk index --rebuild`, and 200 random satisfiable solves on disk and in memory, with the
# growth of each figure against the smallest size.
# Usage: scripts/bench-scale.sh [SIZE...]    (default: 10000 50000 100000)
# The repositories go under $BENCH_DIR (default: a directory in $TMPDIR), removed after.
# On ext4 without a journal, creating files is many times slower for a few minutes
# after a large removal (docs/benchmarks.md): start it at least 7 minutes after one.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -j 1 --release --quiet --bin spk --example bench_scale
target="${CARGO_TARGET_DIR:-target}"
dir="${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/spk-bench-scale.XXXXXX")}"
trap 'rm -rf "$dir"' EXIT
"$target/release/examples/bench_scale" --dir "$dir" --spk "$target/release/spk" "$@"
