#!/usr/bin/env bash
# BOSH import + build benchmark (root): a generated release of 30 packages in 10 levels
# with 2,000 source files (scripts/gen-bosh-release.py), against running the same
# packaging scripts natively, one after the other, into plain directories.
#
# usage: sudo scripts/bench-bosh.sh [WORKDIR]     (WORKDIR default: /var/tmp/spk-bosh-bench)
# env:   RUNS=3 PACKAGES=30 LEVELS=10 FILES=2000
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-common.sh
[ "$(id -u)" = 0 ] || { echo "error: run as root (runtimes mount filesystems)" >&2; exit 1; }
WORK=${1:-/var/tmp/spk-bosh-bench}
RUNS=${RUNS:-3}
cargo build --release -q -p spk
SPK=${CARGO_TARGET_DIR:-$PWD/target}/release/spk
REL=$WORK/release
rm -rf "$REL"
python3 scripts/gen-bosh-release.py "$REL" "${PACKAGES:-30}" "${LEVELS:-10}" "${FILES:-2000}"
ORDER=$(python3 - "$REL" <<'PY'
import os, sys, re
rel = sys.argv[1]
deps = {}
for n in sorted(os.listdir(os.path.join(rel, "packages"))):
    spec = open(os.path.join(rel, "packages", n, "spec")).read()
    deps[n] = [d.strip() for d in re.search(r"dependencies: \[(.*)\]", spec).group(1).split(",") if d.strip()]
done = []
while len(done) < len(deps):
    for n in sorted(deps):
        if n not in done and all(d in done for d in deps[n]):
            done.append(n)
            break
print(" ".join(done))
PY
)

# Native: stage each package's files like a compile VM does, run its packaging.
native() {
  local nat=$WORK/native
  rm -rf "$nat"; mkdir -p "$nat/packages" "$nat/compile"
  for n in $ORDER; do
    local c=$nat/compile/$n
    mkdir -p "$c"
    cp -a "$REL/src/$n" "$c/$n"
    cp "$REL/packages/$n/packaging" "$c/"
    mkdir -p "$nat/packages/$n"
    (cd "$c" && PKGS=$nat/packages BOSH_INSTALL_TARGET=$nat/packages/$n BOSH_COMPILE_TARGET=$c \
       BOSH_PACKAGE_NAME=$n BOSH_PACKAGE_VERSION=native bash -x packaging) >"$nat/$n.log" 2>&1
  done
}
export SPFS_ROOT=$WORK/repo
fresh_repo() { rm -rf "$SPFS_ROOT"; }
cold() { "$SPK" bosh build "$REL"; }
warm() { "$SPK" bosh build "$REL"; }
cold_j1() { "$SPK" bosh build -j 1 "$REL"; }

# Runs are interleaved (native, cold, cold -j 1, warm) so that load from other processes
# on the machine falls on every case alike.
time_of() { local t0 t1; t0=$(now_ns); "$@" >/dev/null 2>&1 || { echo "benchmark command failed: $*" >&2; exit 1; }; t1=$(now_ns); echo "$(( (t1 - t0) / 1000 ))"; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "%.3f\n", a[int((NR+1)/2)]/1e6}'; }
echo "bosh benchmark: $(nproc) cores, median of $RUNS interleaved runs; $(echo $ORDER | wc -w) packages, $(find "$REL/src" -type f | wc -l) source files"
echo
n=(); c=(); c1=(); w=()
for _ in $(seq "$RUNS"); do
  n+=("$(time_of native)")
  fresh_repo; c+=("$(time_of cold)")
  w+=("$(time_of warm)")
  fresh_repo; c1+=("$(time_of cold_j1)")
done
t_native=$(median "${n[@]}"); t_cold=$(median "${c[@]}"); t_cold1=$(median "${c1[@]}"); t_warm=$(median "${w[@]}")
header
row "import + build, cold (-j $(nproc))" "$t_cold" "native packaging" "$t_native" 1.3
row "import + build, cold (-j 1)" "$t_cold1" "native packaging" "$t_native" -
row "re-import + build, unchanged" "$t_warm" "cold import + build" "$t_cold" 0.1
