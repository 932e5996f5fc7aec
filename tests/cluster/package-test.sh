#!/usr/bin/env bash
# The .deb packages as an operator gets them. Builds them with CPack (into a scratch
# directory), checks their control fields (versions, dependencies, the conffile, the
# maintainer scripts), extracts them with dpkg-deb -x into a scratch root (nothing is
# installed on this machine) and checks the files, then:
# - starts the extracted storaged with the command line of the unit's ExecStart=, its paths
#   moved under the scratch root and the config edited the way an operator would (data dir
#   under the root, a free loopback port), checks that the extracted `dynkv status` gets an
#   answer from it, and that SIGTERM stops it cleanly;
# - `systemd-analyze verify`s the unit, when systemd-analyze is installed;
# - builds and runs tests/cluster/install-app/ against the extracted SDK (sdk-check.sh).
#
#   package-test.sh BUILD-DIR CPACK APP-SOURCE-DIR CMAKE MAKE-PROGRAM
set -u -o pipefail

BUILD=$1
CPACK=$2
APP=$3
CMAKE=$4
MAKE_PROGRAM=$5
source "$(dirname "${BASH_SOURCE[0]}")/local-cluster.sh"
source "$(dirname "${BASH_SOURCE[0]}")/sdk-check.sh"

WORK=$(mktemp -d /tmp/dynkv-package-test-XXXXXX)
ROOT=$WORK/root
STORAGED_PID=
cleanup() {
  if [[ -n $STORAGED_PID ]] && ! pid_gone "$STORAGED_PID"; then kill -9 "$STORAGED_PID"; fi
  if [[ -n ${DYNKV_KEEP_TEST_DIRS:-} ]]; then echo "keeping $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# ---- build the packages: into WORK, so the build directory's own cpack output is left alone
"$CPACK" -G DEB --config "$BUILD/CPackConfig.cmake" -B "$WORK/debs" >"$WORK/cpack.log" 2>&1 ||
  { cat "$WORK/cpack.log"; fail "cpack failed"; }
VERSION=$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$BUILD/CPackConfig.cmake")
[[ -n $VERSION ]] || fail "no CPACK_PACKAGE_VERSION in $BUILD/CPackConfig.cmake"
MAJOR=${VERSION%%.*}

package_file() {
  local files=("$WORK"/debs/"$1"_"$VERSION"_*.deb)
  [[ -f ${files[0]} ]] || fail "no $1 package: $(ls "$WORK/debs")"
  PACKAGE=${files[0]}
}
package_file dynkv-server
SERVER=$PACKAGE
package_file "libdynkv$MAJOR"
LIB=$PACKAGE
package_file libdynkv-dev
DEV=$PACKAGE

# ---- control fields
expect_depends() {
  # expect_depends DEB DEPENDENCY...: each DEPENDENCY (a package name, or a whole entry such
  # as "libdynkv0 (= 0.1.0)") is one of the package's Depends.
  local deb=$1 depends
  shift
  depends=", $(dpkg-deb -f "$deb" Depends),"
  local d
  for d in "$@"; do
    [[ $depends == *", $d"[\ ,]* ]] ||
      fail "$(basename "$deb") does not depend on $d: Depends:${depends%,}"
  done
}
for deb in "$SERVER" "$LIB" "$DEV"; do
  [[ $(dpkg-deb -f "$deb" Version) == "$VERSION" ]] ||
    fail "$(basename "$deb") has version $(dpkg-deb -f "$deb" Version), not $VERSION"
  dpkg-deb -I "$deb" >"$WORK/info" || fail "dpkg-deb -I $(basename "$deb") failed"
done
expect_depends "$SERVER" libcapnp-0.9.2 liblmdb0 libtomlplusplus3 libc6 libstdc++6 adduser
expect_depends "$LIB" libcapnp-0.9.2 libc6
expect_depends "$DEV" "libdynkv$MAJOR (= $VERSION)" libcapnp-dev

dpkg-deb -e "$SERVER" "$WORK/control" || fail "dpkg-deb -e failed"
[[ $(<"$WORK/control/conffiles") == /etc/dynkv/storaged.toml ]] ||
  fail "conffiles is not /etc/dynkv/storaged.toml: $(<"$WORK/control/conffiles")"
# (Listings go through variables: grep -q stopping a pipe early would fail it, under pipefail.)
info=$(dpkg-deb -I "$SERVER")
grep -Eq '\sconffiles\s*$' <<<"$info" || fail "dpkg-deb -I does not list conffiles: $info"
for script in postinst prerm postrm; do
  [[ -x $WORK/control/$script ]] || fail "dynkv-server has no executable $script"
  sh -n "$WORK/control/$script" || fail "$script is not valid sh"
done
# postinst configure on a machine without the user, its commands stubbed (each logs its
# arguments): it creates the system user, the data dir and the config's permissions.
mkdir -p "$WORK/stubs"
for command in getent adduser install chown chmod systemctl; do
  printf '#!/bin/sh\necho "%s $*" >>"%s"\n%s\n' "$command" "$WORK/calls" \
    "$([[ $command == getent ]] && echo 'exit 2' || echo 'exit 0')" >"$WORK/stubs/$command"
  chmod +x "$WORK/stubs/$command"
done
PATH=$WORK/stubs:$PATH "$WORK/control/postinst" configure "" || fail "postinst failed"
for call in "adduser --system --group --quiet --home /var/lib/dynkv" \
            "install -d -o dynkv -g dynkv -m 0750 /var/lib/dynkv" \
            "chown root:dynkv /etc/dynkv/storaged.toml" "chmod 0640 /etc/dynkv/storaged.toml"; do
  grep -qF "$call" "$WORK/calls" || fail "postinst did not run '$call': $(<"$WORK/calls")"
done
shlibs=$(dpkg-deb -I "$LIB" shlibs)
grep -q "^libdynkv $MAJOR libdynkv$MAJOR" <<<"$shlibs" ||
  fail "libdynkv$MAJOR has no shlibs entry: $shlibs"

# ---- files: each package holds its own, and nothing refers to the build tree
for deb in "$SERVER" "$LIB" "$DEV"; do
  dpkg-deb -x "$deb" "$ROOT" || fail "dpkg-deb -x $(basename "$deb") failed"
done
SERVER_FILES=$(dpkg-deb -c "$SERVER")
LIB_FILES=$(dpkg-deb -c "$LIB")
DEV_FILES=$(dpkg-deb -c "$DEV")
UNIT=$ROOT/lib/systemd/system/storaged.service
CONFIG=$ROOT/etc/dynkv/storaged.toml
for f in usr/bin/storaged usr/bin/dynkv; do
  [[ -x $ROOT/$f ]] || fail "/$f is not installed"
  grep -q " \./$f$" <<<"$SERVER_FILES" || fail "/$f is not in dynkv-server"
done
[[ -f $UNIT ]] || fail "no /lib/systemd/system/storaged.service"
[[ -f $CONFIG ]] || fail "no /etc/dynkv/storaged.toml"
grep -q "/libdynkv\.so\.$MAJOR -> " <<<"$LIB_FILES" || fail "libdynkv$MAJOR lacks .so.$MAJOR"
grep -q '/libdynkv\.so -> ' <<<"$LIB_FILES" && fail "libdynkv$MAJOR holds the dev link"
grep -q '/libdynkv\.so -> ' <<<"$DEV_FILES" || fail "libdynkv-dev lacks libdynkv.so"
for f in include/dynkv/client.h include/dynkv/async-client.h; do
  grep -q " \./usr/$f$" <<<"$DEV_FILES" || fail "/usr/$f is not in libdynkv-dev"
done
for f in "$ROOT"/usr/bin/storaged "$ROOT"/usr/bin/dynkv "$ROOT"/usr/lib/*/libdynkv.so.*.* \
         "$ROOT"/usr/lib/libdynkv.so.*.*; do
  [[ -e $f ]] || continue
  dynamic=$(readelf -d "$f") || fail "readelf -d $f failed"
  grep -Eq 'RPATH|RUNPATH' <<<"$dynamic" &&
    fail "${f#"$ROOT"} has an RPATH: $(grep -E 'RPATH|RUNPATH' <<<"$dynamic")"
  grep -qF "$BUILD" "$f" && fail "${f#"$ROOT"} names the build directory $BUILD"
  libraries=$(ldd "$f") || fail "ldd $f failed"
  grep -q 'not found' <<<"$libraries" && fail "${f#"$ROOT"}: $(grep 'not found' <<<"$libraries")"
done

# ---- the unit
exec_start=$(sed -n 's/^ExecStart=//p' "$UNIT")
[[ $exec_start == /usr/bin/storaged\ * ]] || fail "ExecStart is '$exec_start'"
for setting in User=dynkv ReadWritePaths=/var/lib/dynkv NoNewPrivileges=yes \
               ProtectSystem=strict CapabilityBoundingSet= Restart=on-failure; do
  grep -qx "$setting" "$UNIT" || fail "the unit lacks $setting"
done
if command -v systemd-analyze >/dev/null; then
  # Verified with ExecStart's binary under the scratch root (verify checks it exists).
  mkdir -p "$WORK/unit"
  sed "s|^ExecStart=/|ExecStart=$ROOT/|" "$UNIT" >"$WORK/unit/storaged.service"
  SYSTEMD_LOG_LEVEL=warning systemd-analyze verify "$WORK/unit/storaged.service" \
    >"$WORK/verify.log" 2>&1 || { cat "$WORK/verify.log"; fail "systemd-analyze verify failed"; }
  [[ ! -s $WORK/verify.log ]] || { cat "$WORK/verify.log"; fail "systemd-analyze warned"; }
  echo "systemd-analyze verify: ok"
else
  echo "systemd-analyze not installed: the unit is not verified"
fi

# ---- the extracted storaged, run as the unit runs it
port=$((20000 + RANDOM % 12000))
while port_listening "$port"; do port=$((20000 + RANDOM % 12000)); done
sed -i -e "s|^data-dir = \"/var/lib/dynkv\"|data-dir = \"$ROOT/var/lib/dynkv\"|" \
  -e "s|^listen = \"127.0.0.1:7400\"|listen = \"127.0.0.1:$port\"|" "$CONFIG"
grep -q "^data-dir = \"$ROOT/var/lib/dynkv\"" "$CONFIG" || fail "the config has no data-dir line"
grep -q "^listen = \"127.0.0.1:$port\"" "$CONFIG" || fail "the config has no listen line"
install -d -m 0750 "$ROOT/var/lib/dynkv"  # what postinst does, but for the dynkv user

read -ra command <<<"$exec_start"
for i in "${!command[@]}"; do
  [[ ${command[i]} == /* ]] && command[i]=$ROOT${command[i]}
done
echo "starting ${command[*]}"
"${command[@]}" >"$WORK/storaged.log" 2>&1 &
STORAGED_PID=$!

SEEDS=127.0.0.1:$port
deadline=$((SECONDS + 20))
until "$ROOT/usr/bin/dynkv" status --seeds "$SEEDS" >"$WORK/status" 2>&1; do
  pid_gone "$STORAGED_PID" && { cat "$WORK/storaged.log"; fail "storaged exited"; }
  ((SECONDS < deadline)) ||
    { cat "$WORK/status" "$WORK/storaged.log"; fail "no answer from storaged in 20 s"; }
  sleep 0.05
done
cat "$WORK/status"
grep -q "$SEEDS" "$WORK/status" || fail "dynkv status does not list the node"
[[ -n $(ls -A "$ROOT/var/lib/dynkv") ]] || fail "storaged wrote nothing to its data dir"

kill -TERM "$STORAGED_PID"
wait_gone "$STORAGED_PID" || fail "storaged still running 10 s after SIGTERM"
wait "$STORAGED_PID"
code=$?
STORAGED_PID=
((code == 0)) || { cat "$WORK/storaged.log"; fail "storaged exited with $code on SIGTERM"; }
echo "storaged from the unit's ExecStart answered and stopped on SIGTERM"

# ---- the SDK
check_sdk "$ROOT/usr" "$WORK" "$APP" "$CMAKE" "$MAKE_PROGRAM"
echo "package-test OK"
