#!/usr/bin/env bash
# `dynkv admin snapshot` against real storaged processes on loopback: a node copies its store
# while serving; the node, stopped, its data directory replaced by the snapshot and restarted,
# is the same member again (status shows it up) and holds every key written before the copy
# (admin inspect, no read repair), and reads with R=3 find every key. A relative or non-empty
# directory is refused with a clear message and the exit code the table promises.
#
#   snapshot-cli-test.sh DYNKV STORAGED
set -u -o pipefail

DYNKV=$1
export DYNKV_STORAGED=$2
source "$(dirname "${BASH_SOURCE[0]}")/local-cluster.sh"

start_cluster "$DYNKV" 3
echo "cluster in $CLUSTER_DIR: $SEEDS"
NODE2=127.0.0.1:$((BASE_PORT + 1))

kv() {
  "$DYNKV" --seeds "$SEEDS" --timeout 10000 "$@"
}

no_kj_internals() {
  [[ $1 != *".c++:"* && $1 != *"params."* && $1 != *"expected "* && $1 != *"stack:"* ]] ||
    fail "$2 shows kj internals: '$1'"
}

KEYS=40
for i in $(seq 1 $KEYS); do
  expect_exit "put k$i" 0 kv put "k$i" "v$i" --w 3
done

# ---- refusals ----
expect_exit "snapshot into a relative path" 2 kv admin snapshot --node "$NODE2" snap
[[ $ERR == *absolute* ]] || fail "relative path: '$ERR'"
no_kj_internals "$ERR" "the relative-path refusal"
mkdir -p "$CLUSTER_DIR/full" && echo x >"$CLUSTER_DIR/full/file"
expect_exit "snapshot into a non-empty directory" 4 \
  kv admin snapshot --node "$NODE2" "$CLUSTER_DIR/full"
[[ $ERR == *"$CLUSTER_DIR/full"* && $ERR == *"not empty"* ]] || fail "non-empty dir: '$ERR'"
no_kj_internals "$ERR" "the non-empty refusal"
expect_exit "snapshot without --node" 2 kv admin snapshot "$CLUSTER_DIR/x"

# ---- snapshot node 2 while it serves ----
SNAP=$CLUSTER_DIR/snap/node2
expect_exit "snapshot" 0 kv admin snapshot --node "$NODE2" "$SNAP" --json
python3 -c 'import json, sys
d = json.loads(sys.argv[1])
sys.exit(0 if d["ok"] and d["bytes"] > 0 and d["keys"] >= int(sys.argv[2]) else 1)' \
  "$OUT" "$KEYS" || fail "snapshot report: $OUT"
[[ -s $SNAP/data.mdb ]] || fail "no data.mdb in $SNAP"
expect_exit "snapshot into the same directory again" 4 kv admin snapshot --node "$NODE2" "$SNAP"

# ---- stop node 2, restore the snapshot as its data directory, restart it ----
pid2=$(<"$CLUSTER_DIR/node2/pid")
kill "$pid2" || fail "cannot stop node 2 ($pid2)"
wait_gone "$pid2" || fail "node 2 ($pid2) did not stop"
rm -rf "$CLUSTER_DIR/node2/data"
cp -a "$SNAP" "$CLUSTER_DIR/node2/data"
expect_exit "restart node 2" 0 "$DYNKV" local up --dir "$CLUSTER_DIR"

up2() {
  local out
  out=$("$DYNKV" --seeds "$NODE2" status --node "$NODE2" --json 2>/dev/null) || return 1
  python3 -c 'import json, sys
d = json.loads(sys.argv[1])
ms = d["members"]
sys.exit(0 if len(ms) == 3 and all(m["status"] == "up" for m in ms) else 1)' "$out"
}
deadline=$((SECONDS + 60))
until up2; do
  ((SECONDS < deadline)) || fail "restored node 2 is not up in its own status within 60 s"
  sleep 0.2
done

# What node 2 holds now came from the snapshot: nothing has read-repaired it yet.
for i in $(seq 1 $KEYS); do
  expect_exit "inspect k$i on the restored node" 0 kv admin inspect "$NODE2" "k$i"
  [[ $OUT == *$'\n'"replica copy: 1 sibling"*$'\n'"  v$i" ]] ||
    fail "restored node 2 holds '$OUT' for k$i, expected its replica copy v$i"
done
for i in $(seq 1 $KEYS); do
  expect_exit "get k$i with R=3" 0 kv get "k$i" --r 3
  [[ $OUT == "v$i"* ]] || fail "get k$i: '$OUT'"
done
echo "PASS"
