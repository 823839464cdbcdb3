#!/usr/bin/env bash
# Environment benchmark (root): `spk env` of 2 packages, of 20 packages (60 layers), and
# `spk env --load` of a saved environment, each running `true`, against `unshare -m true`
# measured in the same run; plus the solve alone (`spk explain`) for the 20 packages.
# Medians of RUNS runs.
#
# usage: sudo scripts/bench-env.sh [WORKDIR]     (WORKDIR default: /var/tmp/spk-bench-env)
# env:   RUNS=15
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-common.sh
[ "$(id -u)" = 0 ] || { echo "error: run as root (environments enter runtimes)" >&2; exit 1; }
WORK=${1:-/var/tmp/spk-bench-env}
RUNS=${RUNS:-15}
cargo build --release -q -p spk
SPK=$PWD/target/release/spk
export SPFS_ROOT=$WORK/repo
if [ ! -f "$WORK/built" ]; then
  rm -rf "$WORK"; mkdir -p "$WORK/specs"
  # p0 .. p19, each requiring the one before, with components bin, lib and run (which
  # uses both): 20 packages, 60 layers.
  python3 - "$WORK/specs" <<'PY'
import sys
for i in range(20):
    opts = f"[{{pkg: p{i-1}}}]" if i else "[]"
    reqs = f"[{{pkg: p{i-1}}}]" if i else "[]"
    open(f"{sys.argv[1]}/p{i}.spk.yaml", "w").write(f"""pkg: p{i}/1.0.0
build:
  options: {opts}
  script:
    - mkdir -p $PREFIX/bin/p{i} $PREFIX/lib/p{i} $PREFIX/share/p{i}
    - echo p{i} > $PREFIX/bin/p{i}/tool
    - echo p{i} > $PREFIX/lib/p{i}/lib.so
    - echo p{i} > $PREFIX/share/p{i}/data
install:
  requirements: {reqs}
  environment:
    - append: PATH
      value: /spfs/bin/p{i}
  components:
    - {{name: bin, files: [/bin/]}}
    - {{name: lib, files: [/lib/]}}
    - {{name: run, files: [/share/], uses: [bin, lib]}}
""")
PY
  for i in $(seq 0 19); do
    "$SPK" build --no-host "$WORK/specs/p$i.spk.yaml" >/dev/null 2>&1
  done
  "$SPK" env --no-host --save "$WORK/env20.yaml" p19 2>/dev/null
  touch "$WORK/built"
fi
layers=$(awk '/^layers:/{f=1;next} /^[a-z]/{f=0} f && /^- /' "$WORK/env20.yaml" | wc -l)

ns() { unshare -m true; }
env2() { "$SPK" env --no-host p1 -- true; }
env20() { "$SPK" env --no-host p19 -- true; }
load20() { "$SPK" env --load "$WORK/env20.yaml" -- true; }
solve20() { "$SPK" explain --no-host p19; }
# Warm the renders once.
env20 >/dev/null 2>&1

echo "environment benchmark: $(nproc) cores, median of $RUNS runs; the 20-package environment has $layers layers"
echo
header
t_ns=$(median_of "$RUNS" ns)
t2=$(median_of "$RUNS" env2)
t20=$(median_of "$RUNS" env20)
tl=$(median_of "$RUNS" load20)
ts=$(median_of "$RUNS" solve20)
row "spk env, 2 packages" "$t2" "unshare -m true" "$t_ns" "-"
row "spk env, 20 packages / 60 layers" "$t20" "unshare -m true" "$t_ns" "-"
row "spk env --load (20 packages)" "$tl" "unshare -m true" "$t_ns" "-"
row "solve only (spk explain, 20)" "$ts" "spk env, 20 packages" "$t20" "-"
awk -v a="$t2" -v b="$t20" -v c="$tl" 'BEGIN {
  printf "\nabsolute targets: 2 packages %.1f ms (≤ 40: %s), 20 packages %.1f ms (≤ 60: %s), --load %.1f ms (≤ 20: %s)\n",
    a*1000, (a <= 0.040 ? "PASS" : "FAIL"), b*1000, (b <= 0.060 ? "PASS" : "FAIL"), c*1000, (c <= 0.020 ? "PASS" : "FAIL") }'
