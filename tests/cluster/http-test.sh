#!/usr/bin/env bash
# The HTTP port of real storaged processes (storaged/http-status.h): /metrics parses as the
# Prometheus text format and its request counters move with puts and gets, /status.json names
# every member's HTTP address as `dynkv status --json` does, and anything but GET of a known
# path is refused. Usage: http-test.sh DYNKV STORAGED
set -uo pipefail
DYNKV=$1
export DYNKV_STORAGED=$2
source "$(dirname "$0")/local-cluster.sh"
command -v curl >/dev/null || fail "curl is not installed (./dev installs it)"

start_cluster "$DYNKV" 3
http_of() { echo "127.0.0.1:$((BASE_PORT + 80 + $1))"; }

# Every line a `# HELP`/`# TYPE` comment or `name{labels} value`.
check_format() {
  local bad name='[a-zA-Z_:][a-zA-Z0-9_:]*' label='[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*"'
  local value='([-+]?[0-9.eE+-]+|NaN|[-+]Inf)'
  bad=$(grep -Ev "^# (HELP|TYPE) $name .+\$" <<<"$1" |
        grep -Ev "^$name(\{$label(,$label)*\})? $value\$" | head -1)
  [[ -z $bad ]] || fail "not Prometheus text format: '$bad'"
  grep -q '^# TYPE dynkv_request_duration_seconds histogram$' <<<"$1" ||
    fail "no request latency histogram"
}

# The sum over the three nodes of the sample named exactly $1 (with its labels).
total() {
  local sum=0 n v
  for n in 0 1 2; do
    v=$(curl -sf "http://$(http_of $n)/metrics" | awk -v name="$1" '$1 == name { print $2 }')
    [[ -n $v ]] || fail "node $n exports no $1"
    sum=$((sum + v))
  done
  echo "$sum"
}

for n in 0 1 2; do
  text=$(curl -sf "http://$(http_of $n)/metrics") || fail "GET /metrics on node $n failed"
  check_format "$text"
done

PUT='dynkv_requests_total{op="put",role="coordinator"}'
REPLICA_PUT='dynkv_requests_total{op="put",role="replica"}'
GET='dynkv_requests_total{op="get",role="replica"}'
puts_before=$(total "$PUT") replicas_before=$(total "$REPLICA_PUT") gets_before=$(total "$GET")
for i in 1 2 3 4 5; do
  expect_exit "put k$i" 0 "$DYNKV" --seeds "$SEEDS" put "k$i" "v$i"
  expect_exit "get k$i" 0 "$DYNKV" --seeds "$SEEDS" get "k$i"
done
puts=$(($(total "$PUT") - puts_before))
replicas=$(($(total "$REPLICA_PUT") - replicas_before))
gets=$(($(total "$GET") - gets_before))
# Each put is coordinated by one replica, which the client replicates to the two others; each
# get reads at least R=2 replicas (the third answer may land after the client has returned).
((puts == 5)) || fail "coordinated puts counted $puts, expected 5"
((replicas >= 5)) || fail "replica puts counted $replicas, expected at least 5"
((gets >= 10)) || fail "replica gets counted $gets, expected at least 10"
text=$(curl -sf "http://$(http_of 0)/metrics")
check_format "$text"
grep -q '^dynkv_request_duration_seconds_count{op="put",role="coordinator"} ' <<<"$text" ||
  fail "no coordinator put latency"

# /status.json and `dynkv status --json` agree on every member's HTTP address.
expect_exit "status --json" 0 "$DYNKV" --seeds "$SEEDS" status --json
for n in 0 1 2; do
  address="127.0.0.1:$((BASE_PORT + n))"
  want="\"address\":\"$address\",\"id\":\"[0-9]*\",\"http\":\"$(http_of $n)\""
  grep -qE "$want" <<<"$OUT" ||
    fail "dynkv status --json does not give node $n's http address $(http_of $n): $OUT"
done
json=$(curl -sf "http://$(http_of 1)/status.json") || fail "GET /status.json failed"
for n in 0 1 2; do
  [[ $json == *"\"address\":\"127.0.0.1:$((BASE_PORT + n))\""* ]] || fail "no member $n: $json"
  [[ $json == *"\"http\":\"$(http_of $n)\""* ]] || fail "no http address of node $n: $json"
done
[[ $json == *'"partition_count":1024'* ]] || fail "partition count: $json"

# Only GET, only known paths.
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
[[ $(code "http://$(http_of 0)/nope") == 404 ]] || fail "an unknown path is not 404"
[[ $(code -X POST -d x "http://$(http_of 0)/metrics") == 405 ]] || fail "POST is not 405"
[[ $(code -X DELETE "http://$(http_of 0)/") == 405 ]] || fail "DELETE is not 405"
# Headers past kj's bound are refused, and the node goes on serving.
big=$(head -c 200000 /dev/zero | tr '\0' a)
[[ $(code -H "X-Big: $big" "http://$(http_of 0)/metrics") != 200 ]] ||
  fail "200 KB of headers were accepted"
[[ $(code "http://$(http_of 0)/") == 200 ]] || fail "the page is not served after a refusal"

# Past 64 open connections a new one is closed unserved, and counted; once they are gone the
# node serves again.
refused_http() {
  curl -sf "http://$(http_of 0)/metrics" | awk '$1 == "dynkv_refused_total{reason=\"http\"}" {
    print $2 }'
}
refused_before=$(refused_http)
fds=()
for ((i = 0; i < 64; i++)); do
  exec {fd}<>"/dev/tcp/127.0.0.1/$((BASE_PORT + 80))" || fail "connection $i refused"
  fds+=("$fd")
done
# The 64 idle connections are accepted in order; poll until the next one is turned away.
deadline=$((SECONDS + 10))
until [[ $(code --max-time 2 "http://$(http_of 0)/metrics") == 000 ]]; do
  ((SECONDS < deadline)) || fail "a 65th connection was served"
done
for fd in "${fds[@]}"; do exec {fd}>&-; done
deadline=$((SECONDS + 20))
until [[ $(code "http://$(http_of 0)/metrics") == 200 ]]; do
  ((SECONDS < deadline)) || fail "the HTTP port does not serve again after its connections closed"
  sleep 0.05  # polling: a closed connection has no event a script can await
done
(($(refused_http) > refused_before)) || fail "connections past the limit were not counted"
echo "http-test: ok"
