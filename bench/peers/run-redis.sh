#!/usr/bin/env bash
# The Redis comparison, in one command: dynkv and Redis on this machine, in the same shapes.
#
#   bench/peers/run-redis.sh [BUILD_DIR]      (default: build; OPS=N to change the op count)
#
# Installs redis-server and hiredis from Debian if they are missing, builds dynkv-bench and
# redis-bench, starts a Redis primary with two replicas on free loopback ports in a temporary
# directory (no persistence, as dynkv's buffered durability), and runs, for each shape, Redis
# (GET on the primary; SET then WAIT 1 as the replicated write; a 2-of-3 PING fan-out as the
# floor) and then dynkv-bench on its own local 5-node cluster (N=3 R=2 W=2, buffered):
#   1. workload a, uniform, 1 in flight    latency, reads and writes
#   2. workload c, uniform, 64 in flight   read throughput
#   3. workload w, uniform, 64 in flight   write throughput
# Everything it started is stopped on exit, however it exits.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
OPS=${OPS:-20000}
KEYS=${KEYS:-100000}

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
dpkg-query -W -f='${Status}' libhiredis-dev 2>/dev/null | grep -q "install ok installed" ||
  need+=(libhiredis-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
if [ ${#need[@]} -gt 0 ]; then
  echo "run-redis: installing ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

cmake -S "$ROOT" -B "$BUILD" -G Ninja >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target redis-bench dynkv-bench storaged >/dev/null

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
base=$((21000 + RANDOM % 9000))
while ! { port_free "$base" && port_free $((base + 1)) && port_free $((base + 2)); }; do
  base=$((21000 + RANDOM % 9000))
done

dir=$(mktemp -d /tmp/dynkv-redis-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

start_redis() {  # PORT [PRIMARY_PORT]
  local port=$1 args=(--port "$1" --bind 127.0.0.1 --dir "$dir" --dbfilename "dump-$1.rdb"
                      --save "" --appendonly no --daemonize no --protected-mode no
                      --logfile "$dir/redis-$1.log")
  [ $# -gt 1 ] && args+=(--replicaof 127.0.0.1 "$2")
  redis-server "${args[@]}" &
  pids+=($!)
}
start_redis "$base"
start_redis $((base + 1)) "$base"
start_redis $((base + 2)) "$base"
for _ in $(seq 100); do
  up=0
  for p in $((base + 1)) $((base + 2)); do
    redis-cli -p "$p" info replication 2>/dev/null | grep -q "master_link_status:up" && up=$((up + 1))
  done
  [ "$up" -eq 2 ] && break
  sleep 0.1
done
[ "$up" -eq 2 ] || { echo "run-redis: the replicas did not connect; see $dir/*.log" >&2; exit 1; }
servers="127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))"
echo "run-redis: Redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') primary and two replicas on $servers" >&2

shape() {  # TITLE ARGS...
  local title=$1
  shift
  echo
  echo "======== $title"
  "$BUILD/bench/peers/redis-bench" --servers "$servers" --keys "$KEYS" --ops "$OPS" "$@"
  "$BUILD/bench/dynkv-bench" --keys "$KEYS" --ops "$OPS" "$@"
}
shape "latency: workload a, 1 in flight" --workload a --dist uniform --inflight 1
shape "read throughput: workload c, 64 in flight" --workload c --dist uniform --inflight 64
shape "write throughput: writes only, 64 in flight" --workload w --dist uniform --inflight 64
