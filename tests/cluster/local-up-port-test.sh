#!/usr/bin/env bash
# `dynkv local up` and the ports it needs: with one of them held by another program it stops
# at once, before starting any node, naming the port and the flag that picks others (exit 3);
# --listen binds the nodes on the address given.
#   local-up-port-test.sh DYNKV STORAGED
set -u -o pipefail

DYNKV=$1
export DYNKV_STORAGED=$2
source "$(dirname "${BASH_SOURCE[0]}")/local-cluster.sh"

holder=
dirs=()
cleanup() {
  [[ -n $holder ]] && kill "$holder" 2>/dev/null
  local d
  for d in "${dirs[@]}"; do
    [[ -f $d/cluster.conf ]] && "$DYNKV" local down --dir "$d" >/dev/null 2>&1
    rm -rf "$d"
  done
}
trap cleanup EXIT

# A free range of 2 nodes' RPC and HTTP ports (HTTP: 80 above), below the ephemeral range.
base=
for attempt in 1 2 3 4 5 6 7 8; do
  b=$((20000 + RANDOM % 12000))
  port_listening "$b" || port_listening "$((b + 1))" || port_listening "$((b + 80))" ||
    port_listening "$((b + 81))" || { base=$b; break; }
done
[[ -n $base ]] || fail "no free port range found"

hold() {
  # Another program listening on port $1 until killed; returns once it says it listens.
  coproc HOLDER { exec python3 -c 'import signal, socket, sys
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
print("listening", flush=True); signal.pause()' "$1"; }
  holder=$HOLDER_PID
  local line=
  read -r -t 10 line <&"${HOLDER[0]}"
  [[ $line == listening ]] || fail "the port holder did not listen on $1"
}

release() {
  kill "$holder"
  wait "$holder" 2>/dev/null
  holder=
}

check_refused() {
  # check_refused PORT KIND: local up of 2 nodes on $base fails fast, names PORT and
  # --base-port, and leaves no node running.
  local port=$1 kind=$2 dir
  dir=$(mktemp -d /tmp/dynkv-port-test-XXXXXX)
  dirs+=("$dir")
  local start=$SECONDS
  expect_exit "local up with $kind port $port taken" 3 \
    "$DYNKV" local up --nodes 2 --dir "$dir" --base-port "$base"
  ((SECONDS - start <= 5)) || fail "local up took $((SECONDS - start)) s to give up"
  [[ $ERR == *"port $port"* && $ERR == *"$kind"* && $ERR == *--base-port* ]] ||
    fail "the error should name port $port ($kind) and --base-port: '$ERR'"
  [[ $ERR != *".c++:"* ]] || fail "the error shows kj internals: '$ERR'"
  local pidfile
  for pidfile in "$dir"/node*/pid; do
    [[ -f $pidfile ]] && fail "a node was started ($pidfile) although a port was taken"
  done
  return 0
}

# The second node's RPC port taken: nothing starts, not even the first node.
hold "$((base + 1))"
check_refused "$((base + 1))" RPC
release

# The first node's HTTP port (base + 80) taken.
hold "$((base + 80))"
check_refused "$((base + 80))" HTTP
release

# --listen: the nodes bind, and are reached on, the address given.
dir=$(mktemp -d /tmp/dynkv-port-test-XXXXXX)
dirs+=("$dir")
expect_exit "local up --listen 127.0.0.2" 0 \
  "$DYNKV" local up --nodes 1 --dir "$dir" --base-port "$base" --listen 127.0.0.2
[[ $OUT == "127.0.0.2:$base" ]] || fail "local up --listen 127.0.0.2 printed '$OUT'"
expect_exit "status over 127.0.0.2" 0 "$DYNKV" --seeds "$OUT" --timeout 10000 status
expect_exit "local down" 0 "$DYNKV" local down --dir "$dir"

echo "local-up-port-test OK"
