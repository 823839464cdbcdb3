#!/usr/bin/env bash
# Solver benchmark: generates three repositories, in memory and on disk (the same data
# published into an spfs repository, read through the package index), and prints median and p90
# solve times per case and repository against the targets. Usage: scripts/bench-solver.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run -j 1 --release --quiet --example bench_solver
