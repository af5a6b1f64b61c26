#!/bin/bash
# Replicas on etcd, measured in one run: a single-member etcd (a real etcd
# process, fsync on, its data in a temporary directory), two gateway
# replicas on it (a leader and a follower, the default lease) and, for
# comparison, one gateway on bbolt. It measures:
#   - GET /2/info on the leader, the follower and bbolt, interleaved rounds;
#   - the job round trip (submit, long poll to success) through the leader
#     and through the follower (its writes are forwarded to the leader);
#   - a burst of tag jobs through the leader and through the follower;
#   - the failover: kill -9 of the leader, then one tag job through the
#     follower, timed from the kill until it is accepted (the follower
#     takes over and the job is committed).
# usage: tools/etcd-side.sh DIR
#   DIR holds loadgen (../shared/perf/loadgen) and gw (the gateway binary).
#   env: CONNS="1 16" D=5s ROUNDS=2 JOBS=1000 JOBC=32 ETCD=etcd
set -u
DIR=$(cd "$1" && pwd)
CONNS=${CONNS:-"1 16"}; D=${D:-5s}; ROUNDS=${ROUNDS:-2}; JOBS=${JOBS:-1000}; JOBC=${JOBC:-32}
ETCD=${ETCD:-etcd}
L=$DIR/loadgen
W=$(mktemp -d)
printf 'pw pwp write\npr prp\n' > "$W/users"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$W"; }
trap cleanup EXIT

# One certificate for both replicas: a follower accepts a leader that shows
# its own certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$W/tls.key" -out "$W/tls.crt" 2>/dev/null

EC=$("$L" freeport); EP=$("$L" freeport)
"$ETCD" --name m0 --data-dir "$W/etcd" --listen-client-urls "http://127.0.0.1:$EC" \
  --advertise-client-urls "http://127.0.0.1:$EC" --listen-peer-urls "http://127.0.0.1:$EP" \
  --initial-advertise-peer-urls "http://127.0.0.1:$EP" --initial-cluster "m0=http://127.0.0.1:$EP" \
  --log-level error > "$W/etcd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$EC/health" >/dev/null && break; sleep 0.1; done

start() { # name extra-flags... -> sets URL, PID
  local name=$1 port; shift
  port=$("$L" freeport)
  "$DIR/gw" --listen "127.0.0.1:$port" --data-dir "$W/$name" --users-file "$W/users" --write-rate off \
    --tls-cert "$W/tls.crt" --tls-key "$W/tls.key" --log-level error "$@" > "$W/$name.log" 2>&1 &
  PID=$!
  PIDS+=($PID)
  for _ in $(seq 150); do "$L" get -url "https://127.0.0.1:$port/version" -user pr -pass prp >/dev/null 2>&1 && break; sleep 0.2; done
  URL="https://127.0.0.1:$port"
}
echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $("$ETCD" --version | head -1)"
start leader --store etcd --etcd-endpoints "http://127.0.0.1:$EC" --etcd-name leader
LEADER=$URL; LEADER_PID=$PID
sleep 1 # the first replica wins and seeds the cluster
start follower --store etcd --etcd-endpoints "http://127.0.0.1:$EC" --etcd-name follower
FOLLOWER=$URL
start bolt
BOLT=$URL

for c in $CONNS; do
  for round in $(seq "$ROUNDS"); do
    "$L" http -label "leader /2/info c$c r$round" -url "$LEADER/2/info" -c "$c" -d "$D" -user pr -pass prp
    "$L" http -label "follower /2/info c$c r$round" -url "$FOLLOWER/2/info" -c "$c" -d "$D" -user pr -pass prp
    "$L" http -label "bolt /2/info c$c r$round" -url "$BOLT/2/info" -c "$c" -d "$D" -user pr -pass prp
  done
done
for round in $(seq "$ROUNDS"); do
  "$L" seq -label "leader job round trip r$round" -url "$LEADER" -n 200 -user pw -pass pwp
  "$L" seq -label "follower job round trip r$round" -url "$FOLLOWER" -n 200 -user pw -pass pwp
  "$L" seq -label "bolt job round trip r$round" -url "$BOLT" -n 200 -user pw -pass pwp
done
"$L" jobs -label "leader burst" -url "$LEADER" -n "$JOBS" -c "$JOBC" -user pw -pass pwp
"$L" jobs -label "follower burst" -url "$FOLLOWER" -n "$JOBS" -c "$JOBC" -user pw -pass pwp
"$L" jobs -label "bolt burst" -url "$BOLT" -n "$JOBS" -c "$JOBC" -user pw -pass pwp

# Failover: kill -9 the leader, then a job through the follower.
start=$(date +%s.%N)
kill -9 "$LEADER_PID"
code=$(curl -sk -o /dev/null -w '%{http_code}' -u pw:pwp -X PUT "$FOLLOWER/2/tags?tag=after-failover")
end=$(date +%s.%N)
echo "failover: kill -9 of the leader -> a job through the follower accepted (HTTP $code) after $(echo "$end - $start" | bc) s"
