# Shared by install-test.sh (an SDK from `cmake --install`) and package-test.sh (the SDK from
# the extracted .debs): source it, then
#
#   check_sdk PREFIX WORK APP-SOURCE-DIR CMAKE MAKE-PROGRAM
#
# checks the SDK installed under PREFIX (PREFIX/include/dynkv, libdynkv.so under PREFIX), then
# builds the application in APP-SOURCE-DIR (tests/cluster/install-app/) against it with
# find_package(dynkv), in WORK/app-build, and runs it. Source local-cluster.sh first: this
# calls its fail on the first problem, and its port_listening.

check_sdk() {
  local prefix=$1 work=$2 app=$3 cmake=$4 make_program=$5
  [[ -f $prefix/include/dynkv/client.h ]] || fail "client.h not installed under $prefix"
  local header
  for header in "$prefix"/include/dynkv/*.h; do
    grep -q 'capnp\.h' "$header" && fail "$header exposes generated Cap'n Proto headers"
  done
  local libdir
  libdir=$(dirname "$(find "$prefix" -name 'libdynkv.so' -print -quit)")
  [[ -d $libdir && $libdir != . ]] || fail "libdynkv.so not installed under $prefix"
  # The exported target carries its language level: an application gets C++17 from
  # target_link_libraries alone.
  grep -rq 'cxx_std_17' "$libdir/cmake/dynkv/" ||
    fail "dynkv's exported targets do not require cxx_std_17"

  "$cmake" -S "$app" -B "$work/app-build" -G Ninja -DCMAKE_MAKE_PROGRAM="$make_program" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >"$work/configure.log" 2>&1 ||
    { cat "$work/configure.log"; fail "configuring the application failed"; }
  "$cmake" --build "$work/app-build" >"$work/build.log" 2>&1 ||
    { cat "$work/build.log"; fail "building the application failed"; }

  # A port nothing listens on: bound by nobody now, picked below the ephemeral range.
  local port=$((20000 + RANDOM % 12000))
  while port_listening "$port"; do port=$((20000 + RANDOM % 12000)); done

  local out code
  out=$(LD_LIBRARY_PATH="$libdir" "$work/app-build/app" "127.0.0.1:$port" 2>&1)
  code=$?
  echo "$out"
  ((code == 0)) || fail "the application exited with $code"
  [[ $out == *"install-app OK"* ]] || fail "the application did not report OK"
}
