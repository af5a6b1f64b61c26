#!/bin/bash
# gRPC ClusterService.GetInfo against the legacy GET /2/info and a bare Go
# handler serving the same body, side by side in one run (rounds
# interleaved), for one or more gateway binaries: the companion of
# ../shared/perf/side.sh for the gRPC figures of docs/performance.md.
# usage: tools/grpc-side.sh DIR [GW...]
#   DIR holds loadgen (../shared/perf/loadgen), grpcload (tools/grpcload)
#   and demo.json; GW are gateway binaries (default: DIR/gw).
#   env: CONNS="1 16" D=5s ROUNDS=2
set -u
DIR=$(cd "$1" && pwd); shift
GWS=("$@"); [ ${#GWS[@]} -eq 0 ] && GWS=("$DIR/gw")
CONNS=${CONNS:-"1 16"}; D=${D:-5s}; ROUNDS=${ROUNDS:-2}
L=$DIR/loadgen
W=$(mktemp -d); printf 'pr prp\n' > "$W/users"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$W"; }
trap cleanup EXIT
ADDRS=()
for i in "${!GWS[@]}"; do
  port=$($L freeport)
  "${GWS[$i]}" --listen "127.0.0.1:$port" --data-dir "$W/d$i" --users-file "$W/users" --write-rate off \
    --cluster-file "$DIR/demo.json" --log-level error > "$W/gw$i.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 300); do $L get -url "https://127.0.0.1:$port/version" -user pr -pass prp >/dev/null && break; sleep 0.2; done
  ADDRS+=("127.0.0.1:$port")
done
echo "# $(date -u +%FT%TZ) $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
$L get -url "https://${ADDRS[0]}/2/info" -user pr -pass prp > "$W/info.json"
$L bare -body "$W/info.json" > "$W/bare.addr" &
PIDS+=($!)
sleep 1
BARE="https://$(head -1 "$W/bare.addr")"
for c in $CONNS; do
  for r in $(seq "$ROUNDS"); do
    $L http -label "bare /2/info r$r" -url "$BARE/2/info" -c "$c" -d "$D"
    for i in "${!GWS[@]}"; do
      n=$(basename "${GWS[$i]}")
      $L http -label "$n /2/info r$r" -url "https://${ADDRS[$i]}/2/info" -c "$c" -d "$D" -user pr -pass prp
      "$DIR/grpcload" -label "$n GetInfo r$r" -addr "${ADDRS[$i]}" -c "$c" -d "$D" -user pr -pass prp
    done
  done
done
