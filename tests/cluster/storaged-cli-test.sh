#!/usr/bin/env bash
# storaged's command line as an operator meets it, on the real binary: --help and --version on
# stdout with exit 0, a mistyped flag refused on stderr with exit 2, and --print-config's TOML
# taken back by --config. No node is started (each command exits before serving).
#
#   storaged-cli-test.sh STORAGED
set -u -o pipefail

STORAGED=$1
source "$(dirname "${BASH_SOURCE[0]}")/local-cluster.sh"
WORK=$(mktemp -d /tmp/dynkv-storaged-cli-XXXXXX)
trap 'rm -rf "$WORK"' EXIT

expect_exit "--help" 0 "$STORAGED" --help
[[ -z $ERR ]] || fail "--help wrote to stderr: $ERR"
for flag in --data-dir --listen --seeds --replicas --config --print-config --version; do
  [[ $OUT == *"$flag"* ]] || fail "--help does not list $flag: $OUT"
done
[[ $OUT == *"how many nodes hold each key (1 to 64; default 3)"* ]] ||
  fail "--help lacks meanings: $OUT"

expect_exit "--version" 0 "$STORAGED" --version
version_re='^storaged [0-9]+\.[0-9]+\.[0-9]+ \(git ([0-9a-f]+|unknown), protocol [0-9]+, '
version_re+='accepts [0-9]+\.\.[0-9]+\)$'
[[ $OUT =~ $version_re ]] ||
  fail "--version printed '$OUT'"

expect_exit "a mistyped flag" 2 "$STORAGED" --data-dir "$WORK/data" --replica 3
[[ -z $OUT ]] || fail "a usage error wrote to stdout: $OUT"
[[ $ERR == *"unknown flag: --replica"*"did you mean --replicas?"* ]] ||
  fail "a mistyped flag gave '$ERR'"
[[ ! -e $WORK/data ]] || fail "a refused command line created the data directory"

expect_exit "a mistyped --secret" 2 "$STORAGED" --data-dir "$WORK/data" --secrt hunter2
[[ $ERR == *"--secrt"* && $ERR != *hunter2* ]] || fail "a mistyped --secret gave '$ERR'"

expect_exit "a negative number" 2 "$STORAGED" --data-dir "$WORK/data" --replicas -1
[[ $ERR == *"--replicas: -1 is out of range; it must be 1 to 64"* ]] || fail "got '$ERR'"

expect_exit "--print-config with a secret" 0 "$STORAGED" --data-dir "$WORK/data" \
  --secret 'hunter2#x' --print-config
[[ $OUT == *"# secret: set, not shown"* ]] || fail "--print-config printed: $OUT"
[[ $OUT != *hunter2* ]] || fail "--print-config printed the secret: $OUT"

expect_exit "--print-config" 0 "$STORAGED" --data-dir "$WORK/data" --replicas 5 \
  --seeds 10.0.0.2:7400,10.0.0.3:7400 --print-config
[[ $OUT == *"replicas = 5"* ]] || fail "--print-config printed: $OUT"
printf '%s\n' "$OUT" >"$WORK/node.toml"
printed=$OUT
expect_exit "--print-config of --config" 0 "$STORAGED" --config "$WORK/node.toml" --print-config
[[ $OUT == "$printed" ]] || fail "--config of the printed file gave: $OUT"

printf 'data-dir = "%s"\n\nreplica = 3\n' "$WORK/data" >"$WORK/bad.toml"
expect_exit "an unknown key" 2 "$STORAGED" --config "$WORK/bad.toml"
[[ $ERR == *"$WORK/bad.toml:3: unknown key 'replica'"* ]] || fail "an unknown key gave '$ERR'"

echo "ok"
