#!/usr/bin/env bash
# The protocol version exchanged on connect, against a real storaged: this build's version and
# an unversioned client (an older build: protocol 1) are accepted; a client claiming a version
# the node does not speak is refused (exit 4) with a message naming both versions and what to
# upgrade, without kj internals. The version is in --version and /status.json.
#
#   protocol-test.sh DYNKV STORAGED PROTOCOL-PROBE
set -u -o pipefail

DYNKV=$1
export DYNKV_STORAGED=$2
PROBE=$3
source "$(dirname "${BASH_SOURCE[0]}")/local-cluster.sh"

expect_exit "dynkv --version" 0 "$DYNKV" --version
[[ $OUT =~ protocol\ ([0-9]+),\ accepts\ ([0-9]+)\.\.([0-9]+)\)$ ]] ||
  fail "dynkv --version should name the protocol: '$OUT'"
VERSION=${BASH_REMATCH[1]} OLDEST=${BASH_REMATCH[2]}
expect_exit "storaged --version" 0 "$DYNKV_STORAGED" --version
[[ $OUT == *"protocol $VERSION, accepts $OLDEST..$VERSION)" ]] ||
  fail "storaged --version should name the same protocol: '$OUT'"

start_cluster "$DYNKV" 1
NODE=${SEEDS%%,*}

expect_exit "this build's protocol" 0 "$PROBE" "$NODE" "$VERSION"
expect_exit "an unversioned client (protocol 0: an older build)" 0 "$PROBE" "$NODE" 0

NEWER=$((VERSION + 1))
expect_exit "a newer protocol" 4 "$PROBE" "$NODE" "$NEWER"
want="incompatible protocol: this node speaks protocol $OLDEST..$VERSION; the client speaks $NEWER"
[[ $ERR == "dynkv: $NODE: $want — upgrade this node"* ]] ||
  fail "the refusal should name both versions: '$ERR'"
[[ $ERR != *".c++:"* && $ERR != *"stack:"* && $ERR != *"remote exception"* ]] ||
  fail "the refusal shows kj internals: '$ERR'"

json=$(curl -sf "http://127.0.0.1:$((BASE_PORT + 80))/status.json") || fail "GET /status.json"
python3 -c 'import json, sys
d = json.loads(sys.argv[1])
sys.exit(0 if d["protocol"] == {"version": int(sys.argv[2]), "oldest": int(sys.argv[3])} else 1)
' "$json" "$VERSION" "$OLDEST" || fail "/status.json should name the protocol: $json"
echo "PASS"
