#!/usr/bin/env bash
# Runs a 3-member cord cluster on 127.0.0.1 in the foreground; Ctrl-C stops it.
#   clients: 127.0.0.1:2379, 22379, 32379   peers: 2380, 22380, 32380
#   data:    ./infra1.cord, ./infra2.cord, ./infra3.cord
set -euo pipefail
cd "$(dirname "$0")/.."
CORD=${CORD:-build/cord}
[ -x "$CORD" ] || make build
CLUSTER="infra1=http://127.0.0.1:2380,infra2=http://127.0.0.1:22380,infra3=http://127.0.0.1:32380"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' INT TERM EXIT
for i in 1 2 3; do
  c=$([ $i = 1 ] && echo 2379 || echo ${i}2379)
  p=$([ $i = 1 ] && echo 2380 || echo ${i}2380)
  "$CORD" --name infra$i --data-dir infra$i.cord \
    --listen-client-urls http://127.0.0.1:$c --advertise-client-urls http://127.0.0.1:$c \
    --listen-peer-urls http://127.0.0.1:$p --initial-advertise-peer-urls http://127.0.0.1:$p \
    --initial-cluster "$CLUSTER" --initial-cluster-token cord-local --initial-cluster-state new &
  pids+=($!)
done
echo "cluster up: ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 member list"
wait
