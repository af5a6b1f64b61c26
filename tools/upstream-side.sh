#!/bin/bash
# The gateway in front of a real Ganeti cluster against that cluster's own
# ganeti-rapi, side by side in one run (rounds interleaved): the gateway
# with the read cache on (--upstream-cache-ttl 5s) and off, on GET /2/info
# and GET /2/instances?bulk=1, at 1 and 16 connections.
# usage: tools/upstream-side.sh DIR
#   DIR holds loadgen (../shared/perf/loadgen) and gw (the gateway binary).
#   env: REF=https://198.51.100.10:5080 (../shared/ganeti-real), REF_CA,
#        REF_USER/REF_PASS (a read user, for the direct load),
#        UP_USER/UP_PASS (the gateway's upstream user: write, for waits),
#        CONNS="1 16" D=5s ROUNDS=2
set -u
DIR=$(cd "$1" && pwd)
REF=${REF:-https://198.51.100.10:5080}; REF_CA=${REF_CA:-/var/lib/ganeti/rapi.pem}
REF_USER=${REF_USER:-reader}; REF_PASS=${REF_PASS:-readpass}
UP_USER=${UP_USER:-writer}; UP_PASS=${UP_PASS:-writepass}
CONNS=${CONNS:-"1 16"}; D=${D:-5s}; ROUNDS=${ROUNDS:-2}
L=$DIR/loadgen
W=$(mktemp -d); printf 'pr prp\n' > "$W/users"; printf '%s\n' "$UP_PASS" > "$W/upw"; chmod 600 "$W/upw"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$W"; }
trap cleanup EXIT
start() { # name cache-ttl -> prints the base URL
  local port; port=$("$L" freeport)
  "$DIR/gw" --listen "127.0.0.1:$port" --data-dir "$W/$1" --users-file "$W/users" --write-rate off --log-level error \
    --upstream "$REF" --upstream-ca "$REF_CA" --upstream-user "$UP_USER" --upstream-password-file "$W/upw" \
    --upstream-cache-ttl "$2" > "$W/$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do "$L" get -url "https://127.0.0.1:$port/version" -user pr -pass prp >/dev/null 2>&1 && break; sleep 0.2; done
  echo "https://127.0.0.1:$port"
}
echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
ON=$(start cache-on 5s)
OFF=$(start cache-off 0)
for path in "/2/info" "/2/instances?bulk=1"; do
  for c in $CONNS; do
    for round in $(seq "$ROUNDS"); do
      "$L" http -label "ganeti $path c$c r$round" -url "$REF$path" -c "$c" -d "$D" -user "$REF_USER" -pass "$REF_PASS"
      "$L" http -label "gw cache-on $path c$c r$round" -url "$ON$path" -c "$c" -d "$D" -user pr -pass prp
      "$L" http -label "gw cache-off $path c$c r$round" -url "$OFF$path" -c "$c" -d "$D" -user pr -pass prp
    done
  done
done
