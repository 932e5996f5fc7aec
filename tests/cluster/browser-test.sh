#!/usr/bin/env bash
# The status page of a real 3-node cluster, as a browser shows it: headless Chromium loads /
# from one node, runs its script (which fetches /status.json), and the rendered page must name
# every member with the state and partition count `dynkv status --json` reports, and draw every
# partition of the ring. Usage: browser-test.sh DYNKV STORAGED
set -uo pipefail
DYNKV=$1
export DYNKV_STORAGED=$2
source "$(dirname "$0")/local-cluster.sh"

CHROMIUM=$(command -v chromium || command -v chromium-browser || command -v google-chrome) ||
  fail "chromium is not installed: this test needs a headless browser (./dev installs the" \
       "chromium package; or apt-get install chromium)"

start_cluster "$DYNKV" 3
PAGE="http://127.0.0.1:$((BASE_PORT + 81))/"
PROFILE=$(mktemp -d /tmp/dynkv-browser-XXXXXX)
trap 'rm -rf "$PROFILE"; stop_cluster' EXIT

render() {
  # The DOM after the page's script has run: virtual time runs the first fetch and its
  # rendering without waiting on the wall clock.
  timeout 60 "$CHROMIUM" --headless --disable-gpu --no-sandbox --no-first-run \
    --user-data-dir="$PROFILE" --virtual-time-budget=5000 --dump-dom "$PAGE" 2>/dev/null
}

expect_exit "status --json" 0 "$DYNKV" --seeds "$SEEDS" status --json
status=$OUT
fields='"address":"[^"]*","id":"[^"]*","http":"[^"]*","status":"[^"]*","partitions":[0-9]+'
members=$(grep -oE "$fields" <<<"$status")
(($(wc -l <<<"$members") == 3)) || fail "dynkv status --json does not list 3 members: $status"

# Poll: the page may be loaded before every node has gossiped its HTTP address or the final
# map; what it shows must match once the cluster has settled (it already has: start_cluster).
deadline=$((SECONDS + 60))
while true; do
  dom=$(render) || fail "chromium failed to load $PAGE"
  problem=
  while read -r m; do
    address=$(sed -E 's/.*"address":"([^"]*)".*/\1/' <<<"$m")
    state=$(sed -E 's/.*"status":"([^"]*)".*/\1/' <<<"$m")
    parts=$(sed -E 's/.*"partitions":([0-9]+).*/\1/' <<<"$m")
    row="<td class=\"address\">$address</td><td class=\"state state-$state\">$state</td>"
    row+="<td class=\"num partitions\">$parts</td>"
    [[ $dom == *"$row"* ]] || problem="no row for $address, $state, $parts partitions"
  done <<<"$members"
  count=$(grep -o 'class="partition"' <<<"$dom" | wc -l)
  [[ $dom == *'<span id="partition-count">1024</span>'* ]] || problem="partition count not shown"
  ((count == 1024)) || problem="the ring draws $count partitions, not 1024"
  [[ $dom == *'<span id="member-count">3</span>'* ]] || problem="member count not 3"
  [[ -z $problem ]] && break
  ((SECONDS < deadline)) || fail "$problem; the page: $dom"
done
echo "browser-test: ok"
