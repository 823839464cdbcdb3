#!/usr/bin/env bash
# Stops the S3 server scripts/s3-server/start.sh started in DIR (default $S3_SERVER_DIR,
# else /tmp/spfs-s3-server): exactly the daemons named by the PID files they wrote there,
# and only if each PID still runs with that directory's ceph.conf. Then deletes the data
# (memstore: the objects were in RAM). S3_SERVER_KEEP_LOGS=1 keeps DIR/logs.
set -uo pipefail
BASE=${1:-${S3_SERVER_DIR:-/tmp/spfs-s3-server}}
[ -d "$BASE" ] || exit 0
BASE=$(cd "$BASE" && pwd)
RUN=$BASE/run
CONF=$BASE/ceph.conf

stop_pidfile() {  # stop_pidfile <pidfile> <signal> <grace seconds>
  local pf=$1 sig=$2 grace=$3 pid name
  [ -f "$pf" ] || return 0
  name=$(basename "$pf" .pid)
  pid=$(cat "$pf" 2>/dev/null || true)
  case "$pid" in ''|*[!0-9]*) rm -f "$pf"; return 0;; esac
  if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "-c $CONF "; then
    kill "-$sig" "$pid" 2>/dev/null || true
    local n=$(( grace * 10 ))
    while [ $n -gt 0 ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; n=$((n - 1)); done
    if kill -0 "$pid" 2>/dev/null; then
      echo "s3-server: $name (pid $pid) still running after SIG$sig, sending KILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      n=50; while [ $n -gt 0 ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; n=$((n - 1)); done
    fi
    echo "s3-server: stopped $name (pid $pid)" >&2
  else
    echo "s3-server: $name: pid $pid is not ours or not running; not signalled" >&2
  fi
  rm -f "$pf"
}

shopt -s nullglob
for pf in "$RUN"/client.rgw.*.pid; do stop_pidfile "$pf" TERM 10; done
# a clean memstore shutdown would serialise the whole store to disk: it is discarded anyway
for pf in "$RUN"/osd.*.pid; do stop_pidfile "$pf" KILL 3; done
for pf in "$RUN"/mon.*.pid; do stop_pidfile "$pf" TERM 10; done

rm -rf "$BASE/data" "$RUN" "$BASE/crash" "$BASE/monmap" "$BASE/keyring" "$CONF" "$BASE/s3.env"
[ "${S3_SERVER_KEEP_LOGS:-0}" = 1 ] || rm -rf "$BASE/logs"
exit 0
