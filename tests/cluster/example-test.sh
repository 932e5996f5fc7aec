#!/usr/bin/env bash
# The examples (client/examples/) run to completion against a local cluster. Each reports
# success with its name, dashes as spaces, then "OK": shopping-cart prints "shopping cart OK".
#
#   example-test.sh DYNKV STORAGED EXAMPLE...
set -u -o pipefail

DYNKV=$1
export DYNKV_STORAGED=$2
shift 2
source "$(dirname "${BASH_SOURCE[0]}")/local-cluster.sh"

start_cluster "$DYNKV" 3
for example in "$@"; do
  name=$(basename "$example")
  out=$("$example" --seeds "$SEEDS" 2>&1)
  code=$?
  echo "$out"
  ((code == 0)) || fail "$name exited with $code"
  grep -qx "${name//-/ } OK" <<<"$out" || fail "$name did not report OK"
done
"$DYNKV" local down --dir "$CLUSTER_DIR" || fail "local down failed"
echo "example-test OK"
