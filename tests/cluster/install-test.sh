#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, then builds and runs a small application
# (tests/cluster/install-app/) that finds dynkv with find_package and links dynkv::client.
#
#   install-test.sh BUILD-DIR APP-SOURCE-DIR CMAKE MAKE-PROGRAM
set -u -o pipefail

BUILD=$1
APP=$2
CMAKE=$3
MAKE_PROGRAM=$4
source "$(dirname "${BASH_SOURCE[0]}")/local-cluster.sh"
source "$(dirname "${BASH_SOURCE[0]}")/sdk-check.sh"

WORK=$(mktemp -d /tmp/dynkv-install-test-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
PREFIX=$WORK/prefix

"$CMAKE" --install "$BUILD" --prefix "$PREFIX" >"$WORK/install.log" 2>&1 ||
  { cat "$WORK/install.log"; fail "cmake --install failed"; }
# The unit and /etc's config are the package's alone (absolute destinations): a prefix
# install writes nothing outside its prefix.
outside=$(grep -E '^-- (Installing|Up-to-date): ' "$WORK/install.log" | grep -v " $PREFIX/")
[[ -z $outside ]] || fail "cmake --install wrote outside the prefix: $outside"
check_sdk "$PREFIX" "$WORK" "$APP" "$CMAKE" "$MAKE_PROGRAM"
