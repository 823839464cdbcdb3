# Shared helpers for the benchmark scripts (sourced).

# The scripts take a work directory as their first argument: one that looks like an
# option prints the script's leading comment instead of filling a directory named
# `--help` with generated trees.
case "${1:-}" in
  -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0" | sed '$d'; exit 0 ;;
  -*) printf 'error: unknown option %s\nhelp: the argument is a work directory (see --help)\n' "$1" >&2; exit 2 ;;
esac

# now_ns: monotonic-enough wall clock in nanoseconds.
now_ns() { date +%s%N; }

# median_of N CMD...: runs a setup-free command N times, prints the median seconds.
# Before each run, the function named by $BENCH_RESET (if set) runs untimed.
median_of() {
  local n=$1; shift
  local times=()
  for _ in $(seq "$n"); do
    if [ -n "${BENCH_RESET:-}" ]; then $BENCH_RESET; fi
    local t0 t1
    t0=$(now_ns)
    "$@" >/dev/null 2>&1 || { echo "benchmark command failed: $*" >&2; exit 1; }
    t1=$(now_ns)
    times+=("$(( (t1 - t0) / 1000 ))")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; printf "%.3f\n", m/1e6}'
}

# row LABEL SECONDS BASE_LABEL BASE_SECONDS TARGET: prints one table row with the ratio.
row() {
  local ratio verdict
  ratio=$(awk -v a="$2" -v b="$4" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
  verdict=$(awk -v r="$ratio" -v t="$5" 'BEGIN { if (t == "-") print "-"; else if (r <= t) print "PASS"; else print "FAIL" }')
  printf '| %-34s | %8.3f s | %-22s | %8.3f s | %6s× | %6s | %-4s |\n' "$1" "$2" "$3" "$4" "$ratio" "≤ $5" "$verdict"
}

header() {
  printf '| %-34s | %10s | %-22s | %10s | %7s | %6s | %-4s |\n' operation time baseline "base time" ratio target ok
  printf '|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..36})" "------------" "------------------------" "------------" "---------" "--------" "------"
}

# bench_tree DIR [SMALL BIG]: makes the file tree of scripts/gen-tree.py (SMALL small
# files, default $SMALL or 45000; BIG big ones, default $BIG or 50) in DIR/tree once,
# and sets TREE to it, files to its file count and bytes to its size.
bench_tree() {
  mkdir -p "$1"
  TREE=$1/tree
  if [ ! -f "$1/tree.done" ]; then
    rm -rf "$TREE"
    echo "generating tree in $TREE ..." >&2
    python3 scripts/gen-tree.py "$TREE" "${2:-${SMALL:-45000}}" "${3:-${BIG:-50}}"
    touch "$1/tree.done"
  fi
  files=$(find "$TREE" -type f | wc -l)
  bytes=$(du -sb "$TREE" | cut -f1)
}
