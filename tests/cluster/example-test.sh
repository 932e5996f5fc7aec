#!/usr/bin/env bash
# The shopping-cart example (client/examples/) runs to completion against a local cluster.
#
#   example-test.sh DYNKV STORAGED SHOPPING-CART
set -u -o pipefail

DYNKV=$1
export DYNKV_STORAGED=$2
EXAMPLE=$3
source "$(dirname "${BASH_SOURCE[0]}")/local-cluster.sh"

start_cluster "$DYNKV" 3
out=$("$EXAMPLE" --seeds "$SEEDS" 2>&1)
code=$?
echo "$out"
((code == 0)) || fail "shopping-cart exited with $code"
grep -q "shopping cart OK" <<<"$out" || fail "shopping-cart did not report OK"
"$DYNKV" local down --dir "$CLUSTER_DIR" || fail "local down failed"
echo "example-test OK"
