#!/usr/bin/env bash
# Bounded resources (DESIGN.md, "Wire protocol and security") against a real storaged: past
# each limit the node refuses or closes that one connection, keeps answering a legitimate
# client, and its resident memory stays under 256 MB.
#  1. 20,000 idle connections (18,000 held from nine addresses, 2,000 more from one of them
#     refused by the per-address limit); then 18,000 that each sent half a message header;
#  2. a peer that sends gets and never reads the answers: throttled, then cut off;
#  3. message headers that declare 64 MiB: refused before the node reads (or holds) the body;
#  4. a connection that never authenticates: closed at the handshake timeout.
# Usage: limits-test.sh DYNKV STORAGED UNREAD_PEER
set -uo pipefail
DYNKV=$1 STORAGED=$2 UNREAD_PEER=$3
source "$(dirname "$0")/local-cluster.sh"
command -v python3 >/dev/null || fail "python3 is not installed"
command -v curl >/dev/null || fail "curl is not installed (./dev installs it)"

MAX_RSS_KB=$((256 * 1024))
WORK=$(mktemp -d /tmp/dynkv-limits-test-XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; done
  wait 2>/dev/null
  if [[ -n ${DYNKV_KEEP_TEST_DIRS:-} ]]; then echo "keeping $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# start_node NAME FLAGS...: one storaged on a free port (PORT, HTTP, NODE_PID set), serving once
# its port answers.
start_node() {
  local name=$1 attempt
  shift
  for attempt in 1 2 3 4 5; do
    PORT=$((20000 + RANDOM % 12000)) HTTP=$((PORT + 1))
    port_listening "$PORT" || port_listening "$HTTP" || break
  done
  mkdir -p "$WORK/$name"
  "$STORAGED" --engine memory --listen "127.0.0.1:$PORT" --seeds "127.0.0.1:$PORT" \
    --http "127.0.0.1:$HTTP" --cluster limits --replicas 1 "$@" \
    >"$WORK/$name/log" 2>&1 &
  NODE_PID=$!
  PIDS+=("$NODE_PID")
  local deadline=$((SECONDS + 20))
  until port_listening "$HTTP"; do
    pid_gone "$NODE_PID" && fail "storaged $name exited: $(cat "$WORK/$name/log")"
    ((SECONDS < deadline)) || fail "storaged $name did not start: $(cat "$WORK/$name/log")"
    sleep 0.05
  done
  expect_exit "admin join of $name" 0 "$DYNKV" --seeds "127.0.0.1:$PORT" --cluster limits \
    admin join "127.0.0.1:$PORT"
  wait_for "node $name in its ring" 20 in_ring
}

# The node answers reads: a key it does not hold is "not found" (exit 1), not "unavailable".
in_ring() { kv get no-such-key >/dev/null 2>&1; (($? == 1)); }

kv() { "$DYNKV" --seeds "127.0.0.1:$PORT" --cluster limits --n 1 --r 1 --w 1 "$@"; }
# The node's peak resident memory so far (VmHWM): a bound that a sample between two peaks
# would miss still shows.
rss_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$NODE_PID/status"; }
metric() {
  curl -sf "http://127.0.0.1:$HTTP/metrics" | awk -v name="$1" '$1 == name { print $2 }'
}
refused() { metric "dynkv_refused_total{reason=\"$1\"}"; }

# wait_for DESCRIPTION SECONDS COMMAND...: until COMMAND succeeds, or fail at the deadline.
wait_for() {
  local what=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@"; do
    pid_gone "$NODE_PID" && fail "storaged exited while waiting for $what"
    ((SECONDS < deadline)) || fail "$what did not happen within $2 s"
    sleep 0.1
  done
}

# The node answers a legitimate client, and is under the memory bound.
check_serving() {
  local what=$1 rss
  expect_exit "put during $what" 0 kv put "k-$what" "v-$what"
  expect_exit "get during $what" 0 kv get "k-$what"
  [[ $OUT == *"v-$what"* ]] || fail "get during $what gave: $OUT"
  rss=$(rss_kb)
  echo "$what: storaged peak VmRSS ${rss} kB"
  ((rss < MAX_RSS_KB)) || fail "storaged holds ${rss} kB during $what (bound: $MAX_RSS_KB kB)"
}

# ---- 1. 20,000 idle connections ----
# 2,000 from each of ten addresses, nine held: storaged needs 18,000 descriptors and more. Where
# the hard descriptor limit is lower, fewer (said on the output).
EACH=2000
hard=$(ulimit -Hn)
if [[ $hard != unlimited ]] && ((hard < 20000)); then
  EACH=$(((hard - 1024) / 9))
  echo "note: ulimit -Hn is $hard: $((10 * EACH)) connections instead of 20,000"
fi
start_node idle --max-connections 20000 --max-connections-per-address "$EACH" \
  --handshake-timeout-ms 600000
cat >"$WORK/hold.py" <<'PY'
# Opens connections to 127.0.0.1:PORT from the given source addresses, COUNT from each (a
# process per address: the descriptor limit), sends SPEAK bytes of a message header on each,
# says "held", and holds them until its input closes.
import os, socket, sys
port, count, speak, sources = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
jobs = [(s, count) for s in sources]
children = []
for source, n in jobs:
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(reader)
        held = []
        for _ in range(n):
            s = socket.socket()
            s.bind((source, 0))
            try:
                s.connect(("127.0.0.1", port))
                if speak:
                    s.send(b"\0" * speak)
            except OSError:
                s.close()
                continue
            held.append(s)
        os.write(writer, b"x")
        sys.stdin.read()
        os._exit(0)
    os.close(writer)
    children.append((pid, reader))
for pid, reader in children:
    os.read(reader, 1)
print("held", flush=True)
sys.stdin.read()
PY
coproc HOLD { python3 "$WORK/hold.py" "$PORT" "$EACH" 0 127.0.0.{2..10} 127.0.0.2; }
PIDS+=("$HOLD_PID")
read -r -t 120 line <&"${HOLD[0]}" || fail "the idle connections were not opened"
open_is() { [[ $(metric dynkv_open_connections) == "$1" ]]; }
# Nine addresses' 2,000 each are held; a second 2,000 from the first address are refused.
held_all() {
  local open per total
  open=$(metric dynkv_open_connections) per=$(refused connections_per_address)
  total=$(refused connections)
  [[ -n $open ]] && ((open + per + total >= 10 * EACH))
}
wait_for "$((10 * EACH)) connections answered" 60 held_all
echo "open $(metric dynkv_open_connections), refused: total limit $(refused connections)," \
  "per address $(refused connections_per_address)"
check_serving idle-connections
eval "exec ${HOLD[1]}>&-"
wait "$HOLD_PID" 2>/dev/null
wait_for "the idle connections closed" 30 open_is 0
check_serving after-idle-connections

# The same 18,000, each having sent half a message header: each would hold an RPC system, but
# only max-handshakes (4096) may at once; the oldest make room, the node stays bounded.
coproc HOLD { python3 "$WORK/hold.py" "$PORT" "$EACH" 4 127.0.0.{2..10}; }
PIDS+=("$HOLD_PID")
read -r -t 120 line <&"${HOLD[0]}" || fail "the half-open handshakes were not opened"
evicted() { (($(refused handshake_timeout) >= 9 * EACH - 4096)); }
wait_for "the oldest handshakes closed" 60 evicted
check_serving half-open-handshakes
eval "exec ${HOLD[1]}>&-"
wait "$HOLD_PID" 2>/dev/null
wait_for "the half-open handshakes closed" 30 open_is 0

# The per-address limit, on its own: 50 from the client's own address, limit 20. The client is
# refused too, told why (OVERLOADED), until they go.
kill "$NODE_PID"
start_node per-address --max-connections-per-address 20 --handshake-timeout-ms 600000
coproc HOLD { python3 "$WORK/hold.py" "$PORT" 50 0 127.0.0.1; }
PIDS+=("$HOLD_PID")
read -r -t 60 line <&"${HOLD[0]}" || fail "the connections were not opened"
per_address_refused() { (($(refused connections_per_address) >= 30)); }
wait_for "30 connections from one address refused" 30 per_address_refused
[[ $(metric dynkv_open_connections) == 20 ]] ||
  fail "open connections: $(metric dynkv_open_connections), expected 20"
expect_exit "get past the per-address limit" 3 kv get k
[[ $ERR == *"limit of open connections from one address"* ]] ||
  fail "a client past the per-address limit was told: $ERR"
eval "exec ${HOLD[1]}>&-"
wait "$HOLD_PID" 2>/dev/null
wait_for "the held connections closed" 30 open_is 0
check_serving per-address-limit
kill "$NODE_PID"

# ---- 2. a peer that never reads its answers ----
start_node unread --slow-reader-timeout-ms 2000 --max-value-bytes 1048576
head -c $((512 * 1024)) /dev/zero | tr '\0' 'v' >"$WORK/value"
expect_exit "put of a 512 KiB value" 0 kv put big - <"$WORK/value"
"$UNREAD_PEER" "127.0.0.1:$PORT" limits big 20000 60 >"$WORK/unread.out" 2>&1 &
UNREAD=$!
PIDS+=("$UNREAD")
check_serving unread-answers
wait "$UNREAD" || fail "the peer that never reads was not cut off: $(cat "$WORK/unread.out")"
[[ $(refused slow_reader) -ge 1 ]] || fail "no slow reader counted: $(refused slow_reader)"
check_serving after-unread-answers
kill "$NODE_PID"

# ---- 3. message headers that declare 64 MiB ----
start_node frames
cat >"$WORK/frames.py" <<'PY'
# Opens COUNT connections, sends on each a frame header declaring one segment of 64 MiB
# (8 Mi words, under the reader's traversal limit), then that many bytes, a MiB at a time on
# each in turn, so that a node that reads them holds them all at once. Prints how many bytes
# the node took on each before it closed the connection.
import socket, struct, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
words = 8 << 20
chunk = b"\0" * (1 << 20)
conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
sent = [0] * count
open_ = [True] * count
for i, s in enumerate(conns):
    s.sendall(struct.pack("<II", 0, words))
while any(open_):
    for i, s in enumerate(conns):
        if not open_[i]:
            continue
        try:
            s.sendall(chunk)
            sent[i] += len(chunk)
        except OSError:
            open_[i] = False
        if sent[i] >= words * 8:
            open_[i] = False
for s in conns:
    s.close()
print(" ".join(str(n) for n in sent), flush=True)
PY
python3 "$WORK/frames.py" "$PORT" 8 >"$WORK/frames.out" || fail "frames.py failed"
echo "bytes taken after each oversized header: $(tr '\n' ' ' <"$WORK/frames.out")"
too_large() { [[ $(refused message_too_large) == 8 ]]; }
wait_for "8 oversized messages refused" 20 too_large
check_serving oversized-messages
kill "$NODE_PID"

# ---- 4. a connection that never authenticates ----
start_node handshake --handshake-timeout-ms 300
exec {idle}<>"/dev/tcp/127.0.0.1/$PORT"
# The node closes it: the read sees the end of the stream.
read -r -t 30 -u "$idle" _ 
timed_out() { [[ $(refused handshake_timeout) -ge 1 ]]; }
wait_for "the handshake timeout" 30 timed_out
exec {idle}>&-
check_serving handshake-timeout

echo "ok"
