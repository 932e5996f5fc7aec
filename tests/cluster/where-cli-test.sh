#!/usr/bin/env bash
# `dynkv where KEY` against real storaged processes on loopback: after a put with W=3 the
# preference list names N distinct nodes, each of which holds the key; the fallbacks follow;
# a deletion shows as a tombstone; --json and --namespace too. `admin inspect` marks each copy
# a node holds: a replica's own, or a stand-in's hint for a replica that is down.
#
#   where-cli-test.sh DYNKV STORAGED
set -u -o pipefail

DYNKV=$1
export DYNKV_STORAGED=$2
source "$(dirname "${BASH_SOURCE[0]}")/local-cluster.sh"

start_cluster "$DYNKV" 4
echo "cluster in $CLUSTER_DIR: $SEEDS"

kv() {
  "$DYNKV" --seeds "$SEEDS" --timeout 10000 "$@"
}

check_where() {
  # check_where JSON TOMBSTONE: 3 distinct replicas each holding the key (a tombstone or
  # not), then the one fallback a 4-node cluster has.
  python3 -c 'import json, sys
d = json.loads(sys.argv[1])
tomb = sys.argv[2] == "1"
reps = [x for x in d["nodes"] if x["role"].startswith("replica")]
fbs = [x for x in d["nodes"] if x["role"] == "fallback"]
ok = (d["n"] == 3 and len(reps) == 3 and len({x["address"] for x in d["nodes"]}) == 4
      and len(fbs) == 1 and 0 <= d["partition"] < d["partitions"]
      and all(x["found"] and x["siblings"] == 1 and x["tombstone"] == tomb
              and x["version_vector"] for x in reps))
sys.exit(0 if ok else 1)' "$1" "$2" || fail "where: $1"
}

expect_exit "put" 0 kv put cart:alice "book" --w 3
expect_exit "where --json" 0 kv where cart:alice --json
check_where "$OUT" 0
expect_exit "where" 0 kv where cart:alice
[[ $OUT == *"partition "* && $OUT == *"replica 3"* && $OUT == *"1 sibling"* ]] ||
  fail "where: $OUT"

expect_exit "put in a namespace" 0 kv put cart:bob "pen" --ns carts --w 3
expect_exit "where --namespace" 0 kv where cart:bob --namespace carts --json
check_where "$OUT" 0
expect_exit "where of the key outside its namespace" 0 kv where cart:bob --json
python3 -c 'import json, sys
d = json.loads(sys.argv[1])
sys.exit(0 if not any(x["found"] for x in d["nodes"]) else 1)' "$OUT" ||
  fail "cart:bob is not in the default namespace: $OUT"

expect_exit "del" 0 kv del cart:alice --w 3
expect_exit "where after del" 0 kv where cart:alice --json
# A blind deletion is a sibling of the value it did not see (DESIGN.md): the tombstone shows.
python3 -c 'import json, sys
d = json.loads(sys.argv[1])
reps = [x for x in d["nodes"] if x["role"].startswith("replica")]
sys.exit(0 if all(x["found"] and x["tombstones"] >= 1 for x in reps) else 1)' "$OUT" ||
  fail "where after del: $OUT"

# ---- admin inspect: a replica's copy, and a stand-in's for a replica that is down ----
expect_exit "put cart:carol" 0 kv put cart:carol "hat" --w 3
expect_exit "where cart:carol" 0 kv where cart:carol --json
read -r FIRST FALLBACK < <(python3 -c 'import json, sys
d = json.loads(sys.argv[1])
print(d["nodes"][0]["address"], [x for x in d["nodes"] if x["role"] == "fallback"][0]["address"])
' "$OUT") || fail "where cart:carol: $OUT"
expect_exit "inspect on a replica" 0 kv admin inspect "$FIRST" cart:carol --json
python3 -c 'import json, sys
d = json.loads(sys.argv[1])
sys.exit(0 if d["replica"] and d["values"] == ["hat"] and [c["role"] for c in d["copies"]] ==
         ["replica"] and d["copies"][0]["values"] == ["hat"] else 1)' "$OUT" ||
  fail "inspect on a replica: $OUT"
expect_exit "inspect on a replica, text" 0 kv admin inspect "$FIRST" cart:carol
[[ $OUT == *"is on the key's preference list"*"replica copy: 1 sibling"*"  hat"* ]] ||
  fail "inspect on a replica, text: $OUT"

first_pid=$(<"$CLUSTER_DIR/node$((${FIRST##*:} - BASE_PORT + 1))/pid")
kill -9 "$first_pid" || fail "cannot kill $FIRST ($first_pid)"
wait_gone "$first_pid" || fail "$FIRST ($first_pid) survived kill -9"
# W=3 with one replica down: the fallback stands in, keeping the write as a hint for it.
expect_exit "put cart:carol with a replica down" 0 kv put cart:carol "scarf" --w 3
expect_exit "inspect on the fallback" 0 kv admin inspect "$FALLBACK" cart:carol --json
python3 -c 'import json, sys
d = json.loads(sys.argv[1])
stand = [c for c in d["copies"] if c["role"] == "stand-in"]
sys.exit(0 if not d["replica"] and len(stand) == 1 and stand[0]["for"] == sys.argv[2]
         and "scarf" in stand[0]["values"] else 1)' "$OUT" "$FIRST" ||
  fail "inspect on the fallback should show a stand-in copy for $FIRST: $OUT"
expect_exit "inspect on the fallback, text" 0 kv admin inspect "$FALLBACK" cart:carol
[[ $OUT == *"is not on the key's preference list"*"stand-in copy for $FIRST"*"scarf"* ]] ||
  fail "inspect on the fallback, text: $OUT"
echo "PASS"
