#!/bin/bash
# Starts a 3-replica cluster with pprof, runs one concord-bench workload at 64
# clients, and takes CPU and alloc profiles of the leader and a follower.
set -u
BIN=${BIN:-.tmp/bin/replica}
BENCH=${BENCH:-.tmp/bin/concord-bench}
OUT=${OUT:-docs/profiles/new}
DATA=$(mktemp -d /tmp/concord-prof.XXXX)
mkdir -p $OUT
peers="c1=127.0.0.1:17001,c2=127.0.0.1:17002,c3=127.0.0.1:17003"
pids=()
for i in 1 2 3; do
  $BIN --node-id c$i --data-dir $DATA/c$i --api-addr 127.0.0.1:1710$i --raft-addr 127.0.0.1:1700$i \
    --peers $peers --log-level warn --pprof-addr 127.0.0.1:1720$i >$DATA/c$i.log 2>&1 &
  pids+=($!)
done
trap 'for p in "${pids[@]}"; do kill $p; done; wait; rm -rf $DATA' EXIT
for i in $(seq 1 100); do
  ok=1; for j in 1 2 3; do curl -sf http://127.0.0.1:1710$j/ready >/dev/null || ok=0; done
  [ $ok = 1 ] && break; sleep 0.3
done
leader=$(curl -s -X POST -H 'Content-Type: application/json' -d '{}' http://127.0.0.1:17101/concord.v1.ClusterService/Status | python3 -c 'import json,sys; print(json.load(sys.stdin)["leaderApiAddress"])')
echo "leader $leader"
L=${leader##*:}; L=${L: -1}
F=$(( L % 3 + 1 ))
eps=http://127.0.0.1:17101,http://127.0.0.1:17102,http://127.0.0.1:17103
IFS=,; for w in ${WORKLOADS:-put strong,get strong,get eventual}; do IFS=" "
  set -- $w
  name=$1-$2
  $BENCH --target sdk --endpoints $eps --workload $1 --consistency $2 --clients 64 --duration 12s --warmup 2s --preload=${PRELOAD:-true} > $OUT/$name.bench.txt 2>&1 &
  bp=$!
  sleep 4
  cps=()
  curl -s -o $OUT/$name.leader.cpu.pprof "http://127.0.0.1:1720$L/debug/pprof/profile?seconds=6" & cps+=($!)
  curl -s -o $OUT/$name.follower.cpu.pprof "http://127.0.0.1:1720$F/debug/pprof/profile?seconds=6" & cps+=($!)
  curl -s -o $OUT/$name.leader.allocs.pprof "http://127.0.0.1:1720$L/debug/pprof/allocs?seconds=6" & cps+=($!)
  curl -s -o $OUT/$name.follower.allocs.pprof "http://127.0.0.1:1720$F/debug/pprof/allocs?seconds=6" & cps+=($!)
  wait $bp "${cps[@]}"
  grep -v '^{' $OUT/$name.bench.txt | tail -2
done
