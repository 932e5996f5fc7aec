# Shared by the shell integration tests: a `dynkv local` cluster in a temporary directory on
# a free port range. Source it, then call start_cluster DYNKV NODES; it sets CLUSTER_DIR and
# SEEDS and installs an EXIT trap that stops the cluster and removes the directory. Also
# fail and expect_exit, for any test that runs a command.

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# expect_exit DESCRIPTION EXPECTED-EXIT COMMAND...: runs it, keeps stdout in $OUT and
# stderr in $ERR, and fails unless it exits with EXPECTED-EXIT.
expect_exit() {
  local what=$1 want=$2
  shift 2
  local errfile
  errfile=$(mktemp)
  OUT=$("$@" 2>"$errfile")
  local got=$?
  ERR=$(<"$errfile")
  rm -f "$errfile"
  ((got == want)) || fail "$what: exit $got, expected $want; stdout: $OUT; stderr: $ERR"
}

port_listening() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pid_gone() {
  # A zombie (exited, not yet reaped by whoever inherited it) counts as gone.
  local pid=$1
  [[ ! -e /proc/$pid ]] && return 0
  local stat
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 0
  [[ ${stat##*) } == Z* ]]
}

wait_gone() {
  # Waits up to 10 s for process $1 to exit. Polling: a process that is not our child has
  # no exit event we can wait on.
  local pid=$1 deadline=$((SECONDS + 10))
  until pid_gone "$pid"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.02
  done
}

stop_cluster() {
  if [[ -n ${CLUSTER_DIR:-} && -d $CLUSTER_DIR ]]; then
    if [[ -f $CLUSTER_DIR/cluster.conf ]]; then
      "$DYNKV_BIN" local down --dir "$CLUSTER_DIR" >/dev/null 2>&1
    fi
    # Belt and braces: nothing of ours may outlive the test.
    local pidfile
    for pidfile in "$CLUSTER_DIR"/node*/pid; do
      [[ -f $pidfile ]] || continue
      local pid
      pid=$(<"$pidfile")
      if [[ -n $pid ]] && ! pid_gone "$pid" && grep -q storaged "/proc/$pid/cmdline" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null
      fi
    done
    if [[ -n ${DYNKV_KEEP_TEST_DIRS:-} ]]; then
      echo "keeping $CLUSTER_DIR" >&2
    else
      rm -rf "$CLUSTER_DIR"
    fi
  fi
}

pick_base_port() {
  # pick_base_port NODES: prints a random port below the ephemeral range (outgoing connections
  # take ports from there) such that NODES ports from it, and their HTTP ports 80 above (dynkv
  # local up's default), have nothing listening.
  local nodes=$1 base p busy
  while :; do
    base=$((20000 + RANDOM % 12000))
    busy=
    for ((p = base; p < base + nodes; p++)); do
      port_listening "$p" && busy=1
      port_listening "$((p + 80))" && busy=1
    done
    [[ -z $busy ]] && break
  done
  echo "$base"
}

start_cluster() {
  # start_cluster DYNKV NODES: tries random port ranges below the ephemeral range (outgoing
  # connections take ports from there) until `dynkv local up` succeeds. The array
  # LOCAL_UP_ARGS, if set, is passed to `local up` too (e.g. --tls).
  DYNKV_BIN=$1
  local nodes=$2 attempt base
  trap stop_cluster EXIT
  for attempt in 1 2 3 4 5; do
    base=$(pick_base_port "$nodes")
    CLUSTER_DIR=$(mktemp -d /tmp/dynkv-script-test-XXXXXX)
    if SEEDS=$("$DYNKV_BIN" local up --nodes "$nodes" --dir "$CLUSTER_DIR" --base-port "$base" \
                 ${LOCAL_UP_ARGS[@]+"${LOCAL_UP_ARGS[@]}"} 2>"$CLUSTER_DIR/up.err"); then
      BASE_PORT=$base
      return 0
    fi
    cat "$CLUSTER_DIR/up.err" >&2
    stop_cluster
  done
  fail "could not start a local cluster"
}
