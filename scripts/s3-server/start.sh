#!/usr/bin/env bash
# Starts a throwaway S3 server for tests and benchmarks: a single-node Ceph cluster
# (one monitor, one in-memory "memstore" OSD) and radosgw, all on 127.0.0.1, no cephx.
# Needs root and the Debian packages ceph-mon ceph-osd radosgw curl (.ci/run installs them).
#
#   scripts/s3-server/start.sh [DIR]     # DIR: scratch directory (default $S3_SERVER_DIR,
#                                        # else /tmp/spfs-s3-server); everything lives there
#
# Creates the buckets in $S3_SERVER_BUCKETS (default "spfs-test spfs-bench"), writes
# DIR/s3.env (export lines: SPFS_TEST_S3_ENDPOINT, AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ALLOW_HTTP) and prints the endpoint as its last
# stdout line. Stop with scripts/s3-server/stop.sh [DIR]. Exits non-zero, with the tail
# of the daemons' logs, if anything fails to come up.
# Other overrides: S3_SERVER_PORT (7480) S3_SERVER_MON_PORTS ("3300 6789")
#   S3_SERVER_MEMSTORE_BYTES (memstore cap, default 8 GiB; RAM is used only for what
#   is stored; when the cap fills writes hang, so size it above what a run keeps)
#   S3_SERVER_TIMEOUT (seconds per phase, 120)
set -euo pipefail

BASE=${1:-${S3_SERVER_DIR:-/tmp/spfs-s3-server}}
PORT=${S3_SERVER_PORT:-7480}
read -r MON_V2_PORT MON_V1_PORT <<<"${S3_SERVER_MON_PORTS:-3300 6789}"
MEMSTORE_BYTES=${S3_SERVER_MEMSTORE_BYTES:-8589934592}
BUCKETS=${S3_SERVER_BUCKETS:-spfs-test spfs-bench}
ACCESS_KEY=SPFSTESTACCESSKEY001
SECRET_KEY=spfstestsecretkey00000000000000000000001
TMO=${S3_SERVER_TIMEOUT:-120}

mkdir -p "$BASE"
BASE=$(cd "$BASE" && pwd)
CONF=$BASE/ceph.conf RUN=$BASE/run LOGS=$BASE/logs DATA=$BASE/data
export CEPH_CONF=$CONF

t0=$EPOCHREALTIME
log() { awk -v a="$t0" -v b="$EPOCHREALTIME" -v m="$*" 'BEGIN{printf "[s3-server %5.1fs] %s\n", b-a, m}' >&2; }
die() {
  echo "s3-server: FAILED to start: $*" >&2
  for f in "$LOGS"/mon.a.log "$LOGS"/osd.0.log "$LOGS"/client.rgw.s3.log "$LOGS"/daemons.err; do
    [ -f "$f" ] && { echo "--- tail $f" >&2; tail -n 15 "$f" >&2; }
  done
  echo "s3-server: run scripts/s3-server/stop.sh $BASE to clean up" >&2
  exit 1
}
trap 'die "command failed at line $LINENO"' ERR
wait_for() {  # wait_for <what> <cmd...>
  local what=$1; shift
  local deadline=$(( SECONDS + TMO ))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "timeout (${TMO}s) waiting for $what"
    sleep 0.2
  done
}
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

missing=()
for tool in ceph-mon:ceph-mon ceph-osd:ceph-osd radosgw:radosgw radosgw-admin:radosgw curl:curl; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
[ ${#missing[@]} -eq 0 ] || die "missing commands; apt-get install ${missing[*]}"
[ "$(id -u)" = 0 ] || die "needs root (the Ceph daemons)"
if ls "$RUN"/*.pid >/dev/null 2>&1; then die "$RUN has pid files: a server runs there; stop it first"; fi
for p in "$PORT" "$MON_V2_PORT" "$MON_V1_PORT"; do port_free "$p" || die "127.0.0.1:$p is already in use"; done
rm -rf "$DATA" "$LOGS"
mkdir -p "$RUN" "$LOGS" "$DATA/rgw" "$BASE/crash"

FSID=$(cat /proc/sys/kernel/random/uuid)
MON_ADDRS="[v2:127.0.0.1:${MON_V2_PORT},v1:127.0.0.1:${MON_V1_PORT}]"

cat >"$CONF" <<EOF
[global]
fsid = $FSID
mon host = $MON_ADDRS
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
public network = 127.0.0.0/8
ms bind ipv6 = false
# no cephx
auth cluster required = none
auth service required = none
auth client required = none
# one OSD: pools of size 1
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
# default 1 s: each pool radosgw creates at startup would cost 1-2 s of paxos waits
paxos propose interval = 0.05
# the monitor must not stop itself on a fullish disk (default crit 5%)
mon data avail warn = 5
mon data avail crit = 1
client mount timeout = 30
# everything under the scratch directory
run dir = $RUN
admin socket = $RUN/\$name.asok
pid file = $RUN/\$name.pid
log file = $LOGS/\$name.log
mon cluster log file = default=$LOGS/\$cluster.\$channel.log cluster=$LOGS/\$cluster.log
crash dir = $BASE/crash
mon data = $DATA/mon.\$id
osd data = $DATA/osd.\$id
keyring = $BASE/keyring
log to stderr = false

[osd]
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES

[client.rgw.s3]
# radosgw defaults to ms_mon_client_mode=secure, impossible without cephx
ms mon client mode = crc
# tcp_nodelay: without it every small GET waits ~40 ms (Nagle vs delayed ACK)
rgw frontends = beast endpoint=127.0.0.1:$PORT tcp_nodelay=1
rgw data = $DATA/rgw
# reclaim deleted objects after 30 s (default 2 h): memstore keeps them in RAM
rgw gc obj min wait = 30
rgw gc processor period = 30
EOF

ceph-authtool --create-keyring "$BASE/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
monmaptool --create --fsid "$FSID" --addv a "$MON_ADDRS" "$BASE/monmap" >/dev/null
ceph-mon -c "$CONF" --mkfs -i a --monmap "$BASE/monmap" --keyring "$BASE/keyring" 2>>"$LOGS/daemons.err"
ceph-mon -c "$CONF" -i a 2>>"$LOGS/daemons.err"          # daemonizes: $RUN/mon.a.pid
wait_for "the monitor" timeout 10 ceph --connect-timeout 5 mon stat
log "monitor up"

OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
OSD_ID=$(ceph osd new "$OSD_UUID" 2>>"$LOGS/daemons.err")
mkdir -p "$DATA/osd.$OSD_ID"
ceph-osd -c "$CONF" -i "$OSD_ID" --mkfs --osd-uuid "$OSD_UUID" >>"$LOGS/daemons.err" 2>&1
ceph-osd -c "$CONF" -i "$OSD_ID" 2>>"$LOGS/daemons.err"  # daemonizes: $RUN/osd.N.pid
osd_up() { ceph osd dump 2>/dev/null | grep -q "^osd.$OSD_ID up"; }
wait_for "osd.$OSD_ID up" osd_up
log "osd.$OSD_ID up"

# radosgw creates its pools before it daemonizes: bound that
timeout "$TMO" radosgw -c "$CONF" -n client.rgw.s3 2>>"$LOGS/daemons.err" || die "radosgw did not start"
wait_for "radosgw on 127.0.0.1:$PORT" curl -fs -o /dev/null "http://127.0.0.1:$PORT/"
log "radosgw answering on 127.0.0.1:$PORT"

radosgw-admin user create --uid=spfs-test --display-name=spfs-test \
  --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >"$LOGS/user-create.json" 2>>"$LOGS/daemons.err"

# Buckets and a first PUT, signed with SigV4 by curl (RGW wants x-amz-content-sha256).
ENDPOINT=http://127.0.0.1:$PORT
SIG=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$ACCESS_KEY:$SECRET_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")
for b in $BUCKETS; do
  curl -fsS "${SIG[@]}" -X PUT "$ENDPOINT/$b" >/dev/null || die "creating bucket $b"
done
first=${BUCKETS%% *}
echo ok | curl -fsS "${SIG[@]}" -X PUT --data-binary @- "$ENDPOINT/$first/.start-probe" >/dev/null || die "first PUT"
curl -fsS "${SIG[@]}" -X DELETE "$ENDPOINT/$first/.start-probe" >/dev/null || die "DELETE of the probe"
log "buckets created: $BUCKETS"

cat >"$BASE/s3.env" <<EOF
export SPFS_TEST_S3_ENDPOINT=$ENDPOINT
export AWS_ENDPOINT_URL=$ENDPOINT
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=us-east-1
export AWS_ALLOW_HTTP=true
EOF
echo "$ENDPOINT"
