#!/usr/bin/env bash
# The dynkv command-line tool against a real local cluster: its help, version and usage
# errors; exit codes (1 not found, 2 usage, 3 unavailable, 4 refused); JSON that parses, binary values
# in base64; data commands and their output,
# status with each member's own report, anti-entropy repair on demand, and `dynkv local`
# restarting a killed node with its data and stopping the cluster.
#
#   cli-test.sh DYNKV STORAGED
set -u -o pipefail

DYNKV=$1
export DYNKV_STORAGED=$2
source "$(dirname "${BASH_SOURCE[0]}")/local-cluster.sh"

start_cluster "$DYNKV" 3
echo "cluster in $CLUSTER_DIR: $SEEDS"

[[ $SEEDS == "127.0.0.1:$BASE_PORT,127.0.0.1:$((BASE_PORT + 1)),127.0.0.1:$((BASE_PORT + 2))" ]] ||
  fail "local up printed '$SEEDS'"

kv() {
  # A generous deadline: the test asserts outcomes, not latency, on a possibly busy machine.
  "$DYNKV" --seeds "$SEEDS" --timeout 10000 "$@"
}

context_of() {
  # The context token from `put`/`get` text output ("context: TOKEN" on the last line).
  sed -n 's/^context: //p' <<<"$1"
}

json_ok() {
  # $1 must be one valid JSON document (python3's parser is strict: no inf, no raw bytes).
  python3 -m json.tool <<<"$1" >/dev/null || fail "not valid JSON: '$1'"
}

json_check() {
  # json_check JSON PYTHON-EXPRESSION: the expression, over the document as `d`, holds.
  python3 -c 'import json, sys
d = json.loads(sys.argv[1])
sys.exit(0 if eval(sys.argv[2]) else 1)' \
    "$1" "$2"
}

json_context() {
  sed -n 's/.*"context": "\([^"]*\)".*/\1/p' <<<"$1"
}

# ---- the command line itself: help, version, usage errors ----
expect_exit "--help" 0 "$DYNKV" --help
[[ $OUT == *"exit codes"* && $OUT == *"--seeds"* && -z $ERR ]] ||
  fail "--help printed '$OUT' '$ERR'"
expect_exit "get --help" 0 "$DYNKV" get --help
[[ $OUT == *"--r"* && $OUT == *KEY* ]] || fail "get --help printed '$OUT'"
expect_exit "admin repair -h" 0 "$DYNKV" admin repair -h
[[ $OUT == *"--partition"* ]] || fail "admin repair -h printed '$OUT'"
expect_exit "--version" 0 "$DYNKV" --version
[[ $OUT == "dynkv "*"(git "*")" ]] || fail "--version printed '$OUT'"
expect_exit "a mistyped flag" 2 kv get greeting --tiemout 500
[[ $ERR == *"--tiemout"* ]] || fail "a mistyped flag should be named: '$ERR'"
expect_exit "--jsn" 2 kv get --jsn greeting
[[ $ERR == *"--jsn"* ]] || fail "--jsn should be named: '$ERR'"
expect_exit "--r -1" 2 kv get greeting --r -1
[[ $ERR == *"--r"* && $ERR != *4294967295* ]] || fail "--r -1 gave '$ERR'"
expect_exit "a mistyped --secret" 2 kv status --secrt hunter2
[[ $ERR == *"--secrt"* && $ERR != *hunter2* ]] || fail "a mistyped --secret gave '$ERR'"
expect_exit "no command" 2 "$DYNKV"
expect_exit "another cluster's name" 4 kv --cluster not-this-one get greeting
[[ $ERR == *"wrong cluster"* && $ERR != *".c++:"* && $ERR != *"expected "* ]] ||
  fail "a wrong cluster name should be refused in plain words: '$ERR'"
expect_exit "another cluster's name, status" 4 kv --cluster not-this-one status

# ---- put / get ----
expect_exit "put" 0 kv put greeting "hello world"
[[ $(head -n1 <<<"$OUT") == ok ]] || fail "put printed '$OUT'"
[[ -n $(context_of "$OUT") ]] || fail "put printed no context: '$OUT'"

expect_exit "get" 0 kv get greeting
[[ $(head -n1 <<<"$OUT") == "hello world" ]] || fail "get printed '$OUT'"
[[ $(wc -l <<<"$OUT") -eq 2 ]] || fail "get printed more than the value and context: '$OUT'"
[[ -n $(context_of "$OUT") ]] || fail "get printed no context: '$OUT'"

expect_exit "get of a missing key" 1 kv get no-such-key
[[ $OUT == "context: "* && $(wc -l <<<"$OUT") -eq 1 ]] || fail "get of a missing key printed '$OUT'"
expect_exit "get --json of a missing key" 1 kv get no-such-key --json
json_ok "$OUT"
json_check "$OUT" 'd["found"] is False and d["siblings"] == []' ||
  fail "get --json of a missing key should say not found: '$OUT'"

# ---- a value that is not UTF-8: base64 in JSON, flagged ----
expect_exit "put of binary bytes" 0 kv put binary - < <(printf 'a\xff\xfe')
expect_exit "get --json of binary bytes" 0 kv get binary --json
json_ok "$OUT"
json_check "$OUT" 'd["siblings"] == ["Yf/+"] and d["siblings_base64"] and d["found"]' ||
  fail "a binary value should come back in base64: '$OUT'"
expect_exit "admin inspect --json of binary bytes" 0 kv admin inspect "127.0.0.1:$BASE_PORT" \
  binary --json
json_ok "$OUT"
json_check "$OUT" 'd["values"] == ["Yf/+"] and d["values_base64"] and d["found"]' ||
  fail "admin inspect --json of a binary value: '$OUT'"
expect_exit "admin inspect --json of a missing key" 1 kv admin inspect "127.0.0.1:$BASE_PORT" \
  no-such-key --json
json_check "$OUT" 'd["found"] is False' || fail "admin inspect --json, missing: '$OUT'"

# ---- get --json ----
expect_exit "get --json" 0 kv get greeting --json
json_ok "$OUT"
[[ $OUT =~ ^\{\"siblings\":\ \[\"hello\ world\"\],\ .*\"context\":\ \"[A-Za-z0-9+/=_-]+\"\}$ ]] ||
  fail "get --json printed '$OUT'"
if command -v jq >/dev/null; then
  jq -e '.siblings == ["hello world"] and (.context | length > 0)' <<<"$OUT" >/dev/null ||
    fail "get --json is not the expected JSON: '$OUT'"
fi

expect_exit "put --json" 0 kv put other value --json
[[ $OUT =~ ^\{\"ok\":\ true,\ \"context\":\ \"[^\"]+\"\}$ ]] || fail "put --json printed '$OUT'"

# ---- siblings and the --context round trip ----
expect_exit "first blind put" 0 kv put cart milk
expect_exit "second blind put" 0 kv put cart bread
expect_exit "get of a key with siblings" 0 kv get cart --json
[[ $OUT == *'"milk"'* && $OUT == *'"bread"'* ]] || fail "two blind puts should give two siblings: '$OUT'"
token=$(json_context "$OUT")
[[ -n $token ]] || fail "no context in '$OUT'"
expect_exit "put with --context" 0 kv put cart "milk,bread" --context "$token"
expect_exit "get after resolving" 0 kv get cart --json
[[ $OUT =~ ^\{\"siblings\":\ \[\"milk,bread\"\], ]] || fail "expected one sibling after put --context: '$OUT'"

expect_exit "bad context" 2 kv put cart x --context 'not*a*token'
[[ $ERR == *context* ]] || fail "a bad context token should be named: '$ERR'"

# ---- del ----
expect_exit "get before del" 0 kv get greeting
expect_exit "del" 0 kv del greeting --context "$(context_of "$OUT")"
expect_exit "get after del" 1 kv get greeting
expect_exit "get --json after del" 1 kv get greeting --json
[[ $OUT =~ ^\{\"siblings\":\ \[\], ]] || fail "deleted key shows siblings: '$OUT'"

# ---- ring ----
expect_exit "ring" 0 kv ring
nodes=$(grep -c '^  127\.0\.0\.1:' <<<"$OUT")
((nodes == 3)) || fail "ring should list 3 nodes: '$OUT'"
for ((p = BASE_PORT; p < BASE_PORT + 3; p++)); do
  [[ $OUT == *"127.0.0.1:$p "* ]] || fail "ring does not list 127.0.0.1:$p: '$OUT'"
done
expect_exit "ring with one seed" 0 "$DYNKV" --seeds "127.0.0.1:$((BASE_PORT + 2))" --timeout 10000 ring --json
json_ok "$OUT"
[[ $(grep -o '"address"' <<<"$OUT" | wc -l) -eq 3 ]] || fail "ring --json from one seed: '$OUT'"

# ---- status: the members, then each member's own report ----
expect_exit "status" 0 kv status
[[ $OUT == *"each member's own report"* ]] || fail "status has no per-node report: '$OUT'"
for column in "last exchange" exchanges failed differing repaired tombstones "tree memory" \
              rebuilding "hints held"; do
  [[ $OUT == *"$column"* ]] || fail "status has no '$column' column: '$OUT'"
done
for ((p = BASE_PORT; p < BASE_PORT + 3; p++)); do
  # The report's row: the address, then the age of the last exchange ("never" or "N s ago"),
  # five counts, the tree memory in KiB or MiB, and "no" (not rebuilding).
  grep -Eq "^  127\.0\.0\.1:$p +(never|[0-9.]+ s ago) +([0-9]+ +){5}[0-9.]+ [KM]iB +no +[0-9]+$" \
    <<<"$OUT" || fail "status has no report row for 127.0.0.1:$p: '$OUT'"
done

expect_exit "status --json" 0 kv status --json
json_ok "$OUT"
json_check "$OUT" 'all(m["phi"] is None or m["phi"] >= 0 for m in d["members"])' ||
  fail "status --json phi: '$OUT'"
[[ $(grep -o '"anti_entropy":{' <<<"$OUT" | wc -l) -eq 3 ]] ||
  fail "status --json should carry 3 members' anti-entropy state: '$OUT'"
for field in last_complete_age_ms exchanges_finished exchanges_failed segments_differing \
             keys_repaired tree_memory_bytes tombstones rebuilding hints; do
  [[ $OUT == *"\"$field\":"* ]] || fail "status --json has no \"$field\": '$OUT'"
done

# ---- admin repair: every member in turn, then one partition, then a bad one ----
expect_exit "admin repair" 0 kv admin repair
for ((p = BASE_PORT; p < BASE_PORT + 3; p++)); do
  # N=3 on 3 nodes: each node shares every partition with the two others.
  grep -Eq "^127\.0\.0\.1:$p: 2 exchanges \(0 failed\), [0-9]+ partition trees compared, [0-9]+ segments differing, [0-9]+ keys repaired, [0-9.]+ s$" \
    <<<"$OUT" || fail "admin repair printed no report for 127.0.0.1:$p: '$OUT'"
done
[[ $ERR == *"repairing 127.0.0.1:$BASE_PORT: every partition"* ]] ||
  fail "admin repair did not say what it repairs: '$ERR'"
expect_exit "status after a repair" 0 kv status --json
if grep -q '"exchanges_finished":0,' <<<"$OUT"; then
  fail "a node reports no finished exchange after a repair: '$OUT'"
fi
grep -q '"last_complete_age_ms":-1' <<<"$OUT" && fail "a node reports no exchange ever: '$OUT'"

expect_exit "admin repair of one partition on one node" 0 kv admin repair --partition 7 \
  --node "127.0.0.1:$((BASE_PORT + 1))"
[[ $OUT =~ ^127\.0\.0\.1:$((BASE_PORT + 1)):\ 2\ exchanges\ \(0\ failed\),\ 2\ partition\ trees\ compared, ]] ||
  fail "admin repair --partition 7 printed '$OUT'"

expect_exit "admin repair of a partition out of range" 2 kv admin repair --partition 99999
[[ $ERR == *"invalid argument: partition 99999 does not exist; the ring has "*" (0 to "* ]] ||
  fail "a partition out of range should be named with the range: '$ERR'"
[[ -z $OUT ]] || fail "a refused repair printed a report: '$OUT'"
expect_exit "admin repair of a negative partition" 2 kv admin repair --partition -3
[[ $ERR == *"--partition"* && $ERR == *"-3"* ]] || fail "--partition -3 gave '$ERR'"

# ---- put KEY - reads standard input ----
expect_exit "put from stdin" 0 kv put multiline - < <(printf 'line one\nline two\n')
expect_exit "get of the stdin value" 0 kv get multiline --json
[[ $OUT == '{"siblings": ["line one\nline two\n"], '* ]] || fail "stdin value read back as '$OUT'"

# ---- limits ----
head -c $((1024 * 1024 + 1)) /dev/zero | tr '\0' x >"$CLUSTER_DIR/big"
kv put big - <"$CLUSTER_DIR/big" >"$CLUSTER_DIR/big.out" 2>"$CLUSTER_DIR/big.err"
code=$?
((code != 0)) || fail "an over-limit value was accepted"
grep -q limit "$CLUSTER_DIR/big.err" || fail "over-limit error does not name the limit: $(cat "$CLUSTER_DIR/big.err")"
expect_exit "get of the rejected key" 1 kv get big

# ---- local up restarts a killed node, which keeps its data ----
expect_exit "put with W=3" 0 kv put kept "on every node" --w 3
pid2=$(<"$CLUSTER_DIR/node2/pid")
kill -9 "$pid2" || fail "cannot kill node 2 ($pid2)"
wait_gone "$pid2" || fail "node 2 ($pid2) survived kill -9"
expect_exit "get with node 2 down" 0 kv get kept

# A member that does not answer is shown as such; the command still succeeds.
node2="127.0.0.1:$((BASE_PORT + 1))"
expect_exit "status with node 2 down" 0 kv status
grep -q "^  $node2  unreachable: " <<<"$OUT" || fail "status should show $node2 unreachable: '$OUT'"
expect_exit "status --json with node 2 down" 0 kv status --json
json_ok "$OUT"
[[ $OUT == *"\"address\":\"$node2\""*"\"unreachable\":\""* ]] ||
  fail "status --json should show $node2 unreachable: '$OUT'"
expect_exit "admin repair on a stopped node" 3 kv admin repair --node "$node2"
[[ $ERR == *"repair on $node2: "* ]] || fail "repair on a stopped node should name it: '$ERR'"

# Without DYNKV_STORAGED: the tool finds storaged in its own build tree, as `./dev demo` needs.
expect_exit "local up again" 0 env -u DYNKV_STORAGED "$DYNKV" local up --dir "$CLUSTER_DIR"
[[ $ERR == *"(1 started)"* ]] || fail "local up should start only the killed node: '$ERR'"
[[ $OUT == "$SEEDS" ]] || fail "local up forgot the cluster's shape: '$OUT'"
new2=$(<"$CLUSTER_DIR/node2/pid")
[[ $new2 != "$pid2" ]] && ! pid_gone "$new2" || fail "node 2 was not restarted"

# Read from node 2 alone: the others are stopped, so only what it kept can answer.
pid1=$(<"$CLUSTER_DIR/node1/pid")
pid3=$(<"$CLUSTER_DIR/node3/pid")
kill -9 "$pid1" "$pid3"
wait_gone "$pid1" && wait_gone "$pid3" || fail "nodes 1 and 3 survived kill -9"
expect_exit "get from the restarted node alone" 0 kv get kept --r 1
[[ $(head -n1 <<<"$OUT") == "on every node" ]] || fail "restarted node 2 returned '$OUT'"
expect_exit "cart from node 2 alone" 0 kv get cart --r 1 --json
[[ $OUT =~ ^\{\"siblings\":\ \[\"milk,bread\"\], ]] || fail "restarted node 2 has cart '$OUT'"

expect_exit "local up brings back the rest" 0 "$DYNKV" local up --dir "$CLUSTER_DIR"
[[ $ERR == *"(2 started)"* ]] || fail "local up should have started 2 nodes: '$ERR'"
expect_exit "get with R=3 after restarts" 0 kv get kept --r 3
[[ $(head -n1 <<<"$OUT") == "on every node" ]] || fail "R=3 read returned '$OUT'"

# ---- local down stops every node ----
pids=$(cat "$CLUSTER_DIR"/node*/pid)
expect_exit "local down" 0 "$DYNKV" local down --dir "$CLUSTER_DIR"
for pid in $pids; do
  pid_gone "$pid" || fail "storaged $pid still running after local down"
done
for ((p = BASE_PORT; p < BASE_PORT + 3; p++)); do
  port_listening "$p" && fail "port $p still open after local down"
done
expect_exit "get with the cluster down" 3 "$DYNKV" --seeds "$SEEDS" --timeout 1000 get kept
[[ $ERR == *unavailable* ]] || fail "a get against a stopped cluster should say unavailable: '$ERR'"
expect_exit "status with the cluster down" 3 "$DYNKV" --seeds "$SEEDS" --timeout 1000 status
[[ $ERR != *".c++:"* ]] || fail "status with the cluster down shows kj internals: '$ERR'"
expect_exit "get from a host that does not resolve" 3 "$DYNKV" --seeds no-such-host.invalid:7400 \
  --timeout 1000 get kept
[[ $ERR == *"no-such-host.invalid:7400"* && $ERR != *".c++:"* ]] ||
  fail "a bad seed should be named without kj internals: '$ERR'"

echo "cli-test OK"
