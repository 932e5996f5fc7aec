#!/usr/bin/env bash
# `dynkv admin` for the failures an operator meets, against real storaged processes on
# loopback: a node killed for good is taken out with `admin remove --force` (refused while
# it is alive; `admin leave` of it suggests remove --force, and a dead leaving node can be
# removed), `status` stops listing it (`--all` shows it removed), and writes and reads with the
# default quorum succeed on the rest; `admin join` issued the moment a node starts waits for
# gossip to bring it in, and a node that never comes is a clear error, not kj's.
#
#   admin-cli-test.sh DYNKV STORAGED
set -u -o pipefail

DYNKV=$1
STORAGED=$2
export DYNKV_STORAGED=$2
source "$(dirname "${BASH_SOURCE[0]}")/local-cluster.sh"

start_cluster "$DYNKV" 4
echo "cluster in $CLUSTER_DIR: $SEEDS"
NODE1=127.0.0.1:$BASE_PORT
DEAD=127.0.0.1:$((BASE_PORT + 3))
LIVE_SEEDS=$NODE1,127.0.0.1:$((BASE_PORT + 1)),127.0.0.1:$((BASE_PORT + 2))

kv() {
  # Admin commands go to node 1 first; a generous deadline on a possibly busy machine.
  "$DYNKV" --seeds "$LIVE_SEEDS" --timeout 10000 "$@"
}

json_check() {
  # json_check JSON PYTHON-EXPRESSION: the expression (it may span lines), over the document
  # as `d`, holds.
  python3 -c 'import json, sys
d = json.loads(sys.argv[1])
sys.exit(0 if eval("(" + sys.argv[2] + ")") else 1)' \
    "$1" "$2"
}

poll() {
  # poll SECONDS DESCRIPTION COMMAND...: until COMMAND succeeds, or fail at the deadline.
  # Gossip and failure detection have no event a script can await: it polls their effects.
  local seconds=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + seconds))
  until "$@"; do
    ((SECONDS < deadline)) || fail "$what: not within $seconds s"
    sleep 0.2
  done
}

no_kj_internals() {
  [[ $1 != *".c++:"* && $1 != *"params."* && $1 != *"expected "* && $1 != *"stack:"* ]] ||
    fail "$2 shows kj internals: '$1'"
}

for i in $(seq 1 30); do
  expect_exit "put k$i" 0 kv put "k$i" "v$i"
done

# ---- remove --force of a live node is refused, and says what to use instead ----
expect_exit "remove --force of a live node" 4 kv admin remove --force "$DEAD"
[[ $ERR == *refused* && $ERR == *"dynkv admin leave $DEAD"* && $ERR == *--even-if-alive* ]] ||
  fail "the refusal should name admin leave and --even-if-alive: '$ERR'"
no_kj_internals "$ERR" "the refusal"
expect_exit "remove without --force" 2 kv admin remove "$DEAD"
[[ $ERR == *--force* && $ERR == *"admin leave"* ]] || fail "remove without --force: '$ERR'"

# ---- kill -9 node 4; once node 1 suspects it, leave suggests remove --force ----
pid4=$(<"$CLUSTER_DIR/node4/pid")
kill -9 "$pid4" || fail "cannot kill node 4 ($pid4)"
wait_gone "$pid4" || fail "node 4 ($pid4) survived kill -9"

suspected() {
  local out
  out=$("$DYNKV" --seeds "$NODE1" --timeout 2000 status --node "$NODE1" --json 2>/dev/null) &&
    json_check "$out" "any(m['address'] == '$DEAD' and m['suspected'] for m in d['members'])"
}
poll 60 "node 1 suspects the killed node" suspected

expect_exit "leave of a dead node" 0 kv admin leave "$DEAD"
[[ $ERR == *"remove --force $DEAD"* ]] ||
  fail "leave of a dead node should suggest remove --force: '$ERR'"

# ---- a dead leaving node is removed at once ----
expect_exit "remove --force of the dead node" 0 kv admin remove --force "$DEAD"
[[ $OUT == "ok: remove $DEAD" ]] || fail "remove --force printed '$OUT'"
expect_exit "remove --force again" 0 kv admin remove --force "$DEAD" --json
json_check "$OUT" "d['ok'] and d['remove'] == '$DEAD'" || fail "remove --json printed '$OUT'"

# ---- status no longer lists it; --all shows it removed ----
expect_exit "status" 0 kv status
[[ $OUT != *"$DEAD"* ]] || fail "status still lists the removed node: '$OUT'"
expect_exit "status --json" 0 kv status --json
json_check "$OUT" "len(d['members']) == 3 and
  all(m['address'] != '$DEAD' for m in d['members'])" ||
  fail "status --json still lists the removed node: '$OUT'"
expect_exit "status --all --json" 0 kv status --all --json
json_check "$OUT" "any(m['address'] == '$DEAD' and m['status'] == 'removed'
  for m in d['members'])" ||
  fail "status --all --json should show the node removed: '$OUT'"
expect_exit "status --all" 0 kv status --all
grep -q "$DEAD *removed" <<<"$OUT" || fail "status --all should show the node removed: '$OUT'"

# ---- the ring spreads its partitions over the rest, and settles ----
settled() {
  local out
  out=$("$DYNKV" --seeds "$NODE1" --timeout 2000 status --json 2>/dev/null) &&
    json_check "$out" "len(d['members']) == 3 and all(m['status'] == 'up' and
      m['map_version'] == d['map_version'] and m['pending_transfers'] == 0 and
      m['partitions'] > 0 for m in d['members'])"
}
poll 120 "the three remaining nodes settle on a map without the removed node" settled
expect_exit "ring" 0 kv ring --json
json_check "$OUT" "len(d['nodes']) == 3 and all(n['address'] != '$DEAD' for n in d['nodes'])" ||
  fail "the ring still holds the removed node: '$OUT'"

# ---- writes and reads with the default quorum succeed ----
for i in $(seq 1 30); do
  expect_exit "get k$i after the removal" 0 kv get "k$i"
  [[ $(head -n1 <<<"$OUT") == "v$i" ]] || fail "get k$i printed '$OUT'"
done
for i in $(seq 31 45); do
  expect_exit "put k$i after the removal" 0 kv put "k$i" "v$i"
  expect_exit "get k$i after the removal" 0 kv get "k$i"
  [[ $(head -n1 <<<"$OUT") == "v$i" ]] || fail "get k$i printed '$OUT'"
done

# ---- admin join issued the moment a node starts ----
port5=$((BASE_PORT + 4))
port_listening "$port5" && port5=$((BASE_PORT + 5))
port_listening "$port5" && fail "no free port for a fifth node"
NEW=127.0.0.1:$port5
mkdir -p "$CLUSTER_DIR/node5/data"
"$STORAGED" --data-dir "$CLUSTER_DIR/node5/data" --listen "$NEW" --seeds "$SEEDS" \
  --cluster dynkv >"$CLUSTER_DIR/node5/storaged.log" 2>&1 &
echo $! >"$CLUSTER_DIR/node5/pid"  # stop_cluster kills it too
disown
expect_exit "admin join right after start" 0 kv admin join "$NEW"
[[ $OUT == "ok: join $NEW" ]] || fail "admin join printed '$OUT'"
expect_exit "status after the join" 0 kv status --json
json_check "$OUT" "any(m['address'] == '$NEW' and m['status'] == 'up' for m in d['members'])" ||
  fail "the new node is not up: '$OUT'"

# ---- a node that never comes: a clear error at the timeout, in the user's terms ----
nowhere=127.0.0.1:$((BASE_PORT + 6))
port_listening "$((BASE_PORT + 6))" && nowhere=127.0.0.1:1
expect_exit "join of a node that does not run" 3 kv admin join "$nowhere" --timeout 1500
[[ $ERR == *"waiting for $nowhere to be known"* && $ERR == *"does not answer"* &&
   $ERR == *"--seeds"* ]] || fail "join of a node that does not run: '$ERR'"
no_kj_internals "$ERR" "join of a node that does not run"
expect_exit "join of a host that does not resolve" 3 kv admin join no-such-host.invalid:7400 \
  --timeout 1000
no_kj_internals "$ERR" "join of a host that does not resolve"
expect_exit "join of a bad address" 2 kv admin join "not-an-address"
[[ $ERR == *"bad node address 'not-an-address'"* ]] || fail "a bad address gave '$ERR'"

echo "admin-cli-test: ok"
