#!/usr/bin/env bash
# bench-smoke: dynkv-bench end to end on a tiny run: its own cluster (4 nodes, so that the
# server-driven path also meets nodes that hold no replica of the key, and starts faster than
# the default 5), both coordination modes and the floor, workload F (reads and
# read-modify-writes), and a JSON file with every key the issue asks for and no failed request.
#   bench-smoke.sh DYNKV_BENCH STORAGED
set -euo pipefail
bench=$1
export DYNKV_STORAGED=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$bench" --nodes 4 --keys 200 --ops 300 --block 100 --inflight 4 --workload f --json "$out/run.json" \
  > "$out/stdout" 2> "$out/stderr" || { cat "$out/stdout" "$out/stderr"; exit 1; }

fail() { echo "bench-smoke: $*"; cat "$out/run.json"; exit 1; }
json=$(tr -d ' \n' < "$out/run.json")
for key in floor modes client server read write p50 p99 p999 mean ops_per_s; do
  grep -q "\"$key\":" <<< "$json" || fail "the JSON has no \"$key\""
done
grep -Eq '"floor":\{"p50":[0-9.]+,"p99":[0-9.]+,"p999":[0-9.]+,"mean":[0-9.]+' <<< "$json" ||
  fail "the floor has no latencies"
for mode in client server; do
  grep -Eq "\"$mode\":\{\"read\":\{\"p50\":[0-9.]+,.*\"write\":\{\"p50\":[0-9.]+" <<< "$json" ||
    fail "mode $mode has no read or write latencies"
done
if grep -Eq '"errors":[1-9]' <<< "$json"; then fail "requests failed"; fi
grep -q "server / client" "$out/stdout" || fail "no Table 2 comparison row in the report"
echo "bench-smoke: ok"
