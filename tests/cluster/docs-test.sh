#!/usr/bin/env bash
# The docs' commands work: every ```sh block of docs/OPERATIONS.md runs, in order, in one
# shell with errexit and pipefail, against the local cluster its own first blocks start (in a
# temporary DYNKV_DIR, on a free DYNKV_PORT); a command that fails, or a block that does not
# run, fails the test. docs/SDK.md's worked example, built from the doc by the build
# (doc-blocks.sh, target sdk-example), runs against a cluster of its own.
#
#   docs-test.sh DYNKV STORAGED SDK-EXAMPLE SDK-EXAMPLE-SOURCE DOCS-DIR
set -u -o pipefail

DYNKV=$1
export DYNKV_STORAGED=$2
SDK_EXAMPLE=$3 SDK_SOURCE=$4 DOCS=$5
HERE="$(dirname "${BASH_SOURCE[0]}")"
source "$HERE/local-cluster.sh"

# ---- SDK.md: the example built is the doc's current one, and it runs ----
bash "$HERE/doc-blocks.sh" "$DOCS/SDK.md" cpp "int main(" | cmp -s - "$SDK_SOURCE" ||
  fail "the sdk-example build is not docs/SDK.md's example: rebuild"
start_cluster "$DYNKV" 3
out=$(DYNKV_SEEDS=$SEEDS "$SDK_EXAMPLE" 2>&1) || fail "SDK.md's example failed: $out"
[[ $out == "sdk example OK" ]] || fail "SDK.md's example printed '$out'"
"$DYNKV" local down --dir "$CLUSTER_DIR" >/dev/null 2>&1 || fail "local down failed"
stop_cluster
echo "SDK.md: the worked example runs"

# ---- OPERATIONS.md: every sh block, in order ----
WORK=$(mktemp -d /tmp/dynkv-docs-test-XXXXXX)
DYNKV_DIR=$WORK/cluster
DYNKV_PORT=$(pick_base_port 5)
export DYNKV_DIR DYNKV_PORT
cleanup() {
  CLUSTER_DIR=$DYNKV_DIR DYNKV_BIN=$DYNKV stop_cluster
  # A storaged the doc started itself (not one of `local up`'s), if a block failed before the
  # doc stopped it: only processes whose command line names this test's directory.
  local cmdline pid
  for cmdline in /proc/[0-9]*/cmdline; do
    pid=${cmdline#/proc/}
    pid=${pid%/cmdline}
    if tr '\0' ' ' <"$cmdline" 2>/dev/null | grep -q -- "--data-dir $DYNKV_DIR/"; then
      kill -9 "$pid" 2>/dev/null
    fi
  done
  [[ -n ${DYNKV_KEEP_TEST_DIRS:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT
export PATH="$(dirname "$DYNKV"):$(dirname "$DYNKV_STORAGED"):$PATH"

script=$WORK/operations.sh
done_file=$WORK/blocks-run
blocks=0
{
  while IFS= read -r line; do
    if [[ $line == "@@block "* ]]; then
      ((blocks > 0)) && echo "echo $blocks >> '$done_file'"
      blocks=$((blocks + 1))
      echo "echo '--- OPERATIONS.md block $blocks (line ${line#@@block }):' >&2"
      continue
    fi
    echo "$line"
  done < <(bash "$HERE/doc-blocks.sh" "$DOCS/OPERATIONS.md" sh)
  ((blocks > 0)) && echo "echo $blocks >> '$done_file'"
} >"$script"
((blocks > 0)) || fail "OPERATIONS.md has no sh blocks"

bash -e -o pipefail -x "$script" || fail "a command of OPERATIONS.md failed (see the trace above)"
ran=$(wc -l <"$done_file" 2>/dev/null || echo 0)
((ran == blocks)) || fail "only $ran of OPERATIONS.md's $blocks sh blocks ran"
echo "OPERATIONS.md: all $blocks sh blocks ran"
echo "PASS"
