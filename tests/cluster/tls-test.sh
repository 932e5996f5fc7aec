#!/usr/bin/env bash
# Mutual TLS and roles against real storaged processes, from `dynkv local up --tls`: the keys it
# writes are 0600; a plain-TCP caller and a certificate from another CA are refused in the
# handshake; a client certificate can put and get but reaches no node-to-node call (gossip) and
# no admin command (exit 4, "permission denied"); an admin certificate runs admin commands; a
# node certificate gossips. A file that cannot be used is named, its contents never shown.
#
#   tls-test.sh DYNKV STORAGED TLS-PROBE
set -u -o pipefail

DYNKV=$1
export DYNKV_STORAGED=$2
PROBE=$3
source "$(dirname "${BASH_SOURCE[0]}")/local-cluster.sh"

LOCAL_UP_ARGS=(--tls)
start_cluster "$DYNKV" 2
NODE=${SEEDS%%,*}
CERTS=$CLUSTER_DIR/certs
grep -q "DYNKV_TLS_CERT=$CERTS/client.pem" "$CLUSTER_DIR/up.err" ||
  fail "local up --tls should say how a client connects: $(<"$CLUSTER_DIR/up.err")"

for key in "$CERTS"/*.key; do
  [[ $(stat -c %a "$key") == 600 ]] || fail "$key should be 0600, is $(stat -c %a "$key")"
done

export DYNKV_SEEDS=$SEEDS
client=(env DYNKV_TLS_CA="$CERTS/ca.pem" DYNKV_TLS_CERT="$CERTS/client.pem"
        DYNKV_TLS_KEY="$CERTS/client.key")
admin=(env DYNKV_TLS_CA="$CERTS/ca.pem" DYNKV_TLS_CERT="$CERTS/admin.pem"
       DYNKV_TLS_KEY="$CERTS/admin.key")

# Plain TCP: the node wants a TLS handshake, and nothing is served without one.
expect_exit "a plain-TCP ping" 3 "$PROBE" "$NODE" - - - ping
expect_exit "a plain-TCP get" 3 "$DYNKV" get k --timeout 2000
# ...each such connection counted in /metrics (the first node serves HTTP 80 above its port).
refused=$(curl -sf "http://127.0.0.1:$((BASE_PORT + 80))/metrics" |
            awk '$1 == "dynkv_refused_total{reason=\"tls_handshake\"}" { print $2 }')
((${refused:-0} >= 2)) || fail "the failed handshakes should be counted: '$refused'"

# A client certificate: data, and nothing else.
expect_exit "put with a client certificate" 0 "${client[@]}" "$DYNKV" put k v1
expect_exit "get with a client certificate" 0 "${client[@]}" "$DYNKV" get k
[[ $OUT == v1* ]] || fail "get should read v1: $OUT"
expect_exit "status with a client certificate" 4 "${client[@]}" "$DYNKV" status
want="permission denied: admin commands need a certificate with role admin; this caller's role"
[[ $ERR == *"$want is client"* ]] ||
  fail "the refusal should say which role is needed: $ERR"
[[ $ERR != *".c++:"* && $ERR != *"stack:"* ]] || fail "the refusal shows kj internals: $ERR"
expect_exit "admin join with a client certificate" 4 "${client[@]}" "$DYNKV" admin join "$NODE"
expect_exit "gossip with a client certificate" 4 \
  "$PROBE" "$NODE" "$CERTS/ca.pem" "$CERTS/client.pem" "$CERTS/client.key" gossip
[[ $OUT == *"permission denied: node-to-node calls"*"role node"* ]] ||
  fail "gossip should be refused for want of the node role: $OUT"
expect_exit "ping with a client certificate" 0 \
  "$PROBE" "$NODE" "$CERTS/ca.pem" "$CERTS/client.pem" "$CERTS/client.key" ping

# An admin certificate runs admin commands; a node certificate gossips.
expect_exit "status with an admin certificate" 0 "${admin[@]}" "$DYNKV" status
expect_exit "gossip with a node certificate" 0 \
  "$PROBE" "$NODE" "$CERTS/ca.pem" "$CERTS/node-n2.pem" "$CERTS/node-n2.key" gossip
expect_exit "admin status with a node certificate" 4 \
  "$PROBE" "$NODE" "$CERTS/ca.pem" "$CERTS/node-n2.pem" "$CERTS/node-n2.key" status

# Another CA's certificates: refused in the handshake, either way round.
OTHER=$CLUSTER_DIR/other-ca
expect_exit "dynkv admin certs" 0 "$DYNKV" admin certs "$OTHER" --nodes n1
expect_exit "get with another CA's client certificate" 3 \
  env DYNKV_TLS_CA="$CERTS/ca.pem" DYNKV_TLS_CERT="$OTHER/client.pem" \
  DYNKV_TLS_KEY="$OTHER/client.key" "$DYNKV" get k --timeout 2000
expect_exit "ping with another CA's admin certificate" 3 \
  "$PROBE" "$NODE" "$CERTS/ca.pem" "$OTHER/admin.pem" "$OTHER/admin.key" ping
expect_exit "a client trusting another CA" 3 \
  "$PROBE" "$NODE" "$OTHER/ca.pem" "$OTHER/admin.pem" "$OTHER/admin.key" ping
# A client's certificate cannot pose as a node: callers check the name every node's carries.
FAKE_PORT=$(pick_base_port 1)
"$DYNKV_STORAGED" --engine memory --listen "127.0.0.1:$FAKE_PORT" --tls-ca "$CERTS/ca.pem" \
  --tls-cert "$CERTS/client.pem" --tls-key "$CERTS/client.key" 2>"$CLUSTER_DIR/fake.log" &
FAKE=$!
trap 'kill $FAKE 2>/dev/null; stop_cluster' EXIT
for _ in $(seq 250); do port_listening "$FAKE_PORT" && break; sleep 0.02; done
expect_exit "a node holding a client's certificate" 3 \
  "$PROBE" "127.0.0.1:$FAKE_PORT" "$CERTS/ca.pem" "$CERTS/admin.pem" "$CERTS/admin.key" ping

# A file that cannot be used is named, with what is wrong, and its contents are not shown.
expect_exit "a CA file that is a key" 3 \
  env DYNKV_TLS_CA="$CERTS/client.key" DYNKV_TLS_CERT="$CERTS/client.pem" \
  DYNKV_TLS_KEY="$CERTS/client.key" "$DYNKV" get k
[[ $ERR == *"cannot read the CA certificate $CERTS/client.key: not a PEM certificate"* ]] ||
  fail "the error should name the file and the problem: $ERR"
[[ $ERR != *"PRIVATE KEY"* && $ERR != *"BEGIN"* ]] || fail "the error shows the file: $ERR"
expect_exit "a missing key file" 3 \
  env DYNKV_TLS_CA="$CERTS/ca.pem" DYNKV_TLS_CERT="$CERTS/client.pem" \
  DYNKV_TLS_KEY="$CERTS/nope.key" "$DYNKV" get k
[[ $ERR == *"cannot read the private key $CERTS/nope.key: No such file or directory"* ]] ||
  fail "the error should name the missing file: $ERR"
echo "PASS"
