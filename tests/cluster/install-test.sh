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

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

WORK=$(mktemp -d /tmp/dynkv-install-test-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
PREFIX=$WORK/prefix

"$CMAKE" --install "$BUILD" --prefix "$PREFIX" >"$WORK/install.log" 2>&1 ||
  { cat "$WORK/install.log"; fail "cmake --install failed"; }
[[ -f $PREFIX/include/dynkv/client.h ]] || fail "client.h not installed"
for header in "$PREFIX"/include/dynkv/*.h; do
  grep -q 'capnp\.h' "$header" && fail "$header exposes generated Cap'n Proto headers"
done
LIBDIR=$(dirname "$(find "$PREFIX" -name 'libdynkv.so*' -print -quit)")
[[ -d $LIBDIR && $LIBDIR != . ]] || fail "libdynkv.so not installed"

"$CMAKE" -S "$APP" -B "$WORK/build" -G Ninja -DCMAKE_MAKE_PROGRAM="$MAKE_PROGRAM" \
  -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_BUILD_TYPE=Release >"$WORK/configure.log" 2>&1 ||
  { cat "$WORK/configure.log"; fail "configuring the application failed"; }
"$CMAKE" --build "$WORK/build" >"$WORK/build.log" 2>&1 ||
  { cat "$WORK/build.log"; fail "building the application failed"; }

# A port nothing listens on: bound by nobody now, picked below the ephemeral range.
port_listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=$((20000 + RANDOM % 12000))
while port_listening "$port"; do port=$((20000 + RANDOM % 12000)); done

out=$(LD_LIBRARY_PATH="$LIBDIR" "$WORK/build/app" "127.0.0.1:$port" 2>&1)
code=$?
echo "$out"
((code == 0)) || fail "the application exited with $code"
[[ $out == *"install-app OK"* ]] || fail "the application did not report OK"
