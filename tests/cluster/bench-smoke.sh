#!/usr/bin/env bash
# bench-smoke: dynkv-bench end to end on a tiny run: its own cluster (4 nodes, so that the
# server-driven path also meets nodes that hold no replica of the key, and starts faster than
# the default 5), both coordination modes and the floor, workload F (reads and
# read-modify-writes), and a JSON file with every key the issue asks for and no failed request.
# Then its command line (--help, --version, an unknown flag, a value out of range), and a run
# against an existing 3-node cluster given by one seed: the header names the cluster's 3
# nodes, and --plot without gnuplot installs nothing, says how to get it and writes the JSON.
#   bench-smoke.sh DYNKV_BENCH STORAGED DYNKV
set -euo pipefail
bench=$1
export DYNKV_STORAGED=$2
dynkv=$3
out=$(mktemp -d)
source "$(dirname "${BASH_SOURCE[0]}")/local-cluster.sh"

"$bench" --nodes 4 --keys 200 --ops 300 --block 100 --inflight 4 --workload f --json "$out/run.json" \
  > "$out/stdout" 2> "$out/stderr" || { cat "$out/stdout" "$out/stderr"; exit 1; }

trap 'rm -rf "$out"' EXIT
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

# ---- the command line ----
set +e
expect_exit "--help" 0 "$bench" --help
[[ $OUT == *--inflight*default\ 1* && $OUT == *--seeds* && $OUT == *--keep* && -z $ERR ]] ||
  fail "--help should list every flag with its default on stdout: '$OUT' '$ERR'"
expect_exit "--version" 0 "$bench" --version
[[ $OUT == "dynkv-bench "* ]] || fail "--version printed '$OUT'"
expect_exit "a typo'd flag" 2 "$bench" --inflihgt 4
[[ $ERR == *"unknown flag: --inflihgt"* && $ERR == *--help* ]] ||
  fail "a typo'd flag should be named: '$ERR'"
expect_exit "--inflight 0" 2 "$bench" --inflight 0
[[ $ERR == *--inflight* ]] || fail "an out-of-range --inflight should be named: '$ERR'"
expect_exit "--nodes 65" 2 "$bench" --nodes 65
expect_exit "--dist typo" 2 "$bench" --dist zipf
expect_exit "R > N" 2 "$bench" --n 2 --r 3

# ---- an existing 3-node cluster, named by one seed ----
trap 'stop_cluster; rm -rf "$out"' EXIT
start_cluster "$dynkv" 3
first=${SEEDS%%,*}
# No gnuplot on PATH: the run must not try to install it, and writes the table and JSON.
expect_exit "a run with --seeds" 1 env PATH=/nonexistent "$bench" --seeds "$first" --keys 50 \
  --ops 100 --block 50 --mode client --timeout 10000 --json "$out/seeds.json" \
  --plot "$out/seeds.svg"
[[ $OUT == *"--seeds, 3 nodes"* ]] || fail "the header should name the cluster's 3 nodes: '$OUT'"
[[ $ERR == *"apt-get install gnuplot-nox"* ]] ||
  fail "a missing gnuplot should be named with how to get it: '$ERR'"
[[ -s $out/seeds.json ]] || fail "no JSON written when gnuplot is missing"
echo "bench-smoke: ok"
