#!/usr/bin/env bash
# Starts the oidc-provider test peer in the background on 127.0.0.1:$PORT (default 4455).
# Installs its npm dependencies first if node_modules is missing (npm ci: the npm registry only).
# Writes the server's pid to $PID_FILE, waits until discovery answers (at most $START_TIMEOUT seconds),
# then prints the issuer URL, and nothing else, on stdout. Diagnostics go to stderr; the server logs to $LOG_FILE.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PORT="${PORT:-4455}"
run_dir="${RUN_DIR:-$here/run}"
export LOG_FILE="${LOG_FILE:-$run_dir/oidc-provider-$PORT.log}"
pid_file="${PID_FILE:-$run_dir/oidc-provider-$PORT.pid}"
timeout="${START_TIMEOUT:-30}"
issuer="http://127.0.0.1:$PORT"

mkdir -p "$run_dir" "$(dirname "$LOG_FILE")" "$(dirname "$pid_file")"

if ! command -v node >/dev/null 2>&1; then
  echo "oidc-provider peer: node is not installed (apt-get install nodejs npm)" >&2
  exit 1
fi

if [ -f "$pid_file" ]; then
  old_pid="$(cat "$pid_file")"
  if [ -n "$old_pid" ] && kill -0 "$old_pid" 2>/dev/null; then
    echo "oidc-provider peer: already running with pid $old_pid ($pid_file); run stop.sh first" >&2
    exit 1
  fi
  rm -f "$pid_file"
fi

if [ ! -d "$here/node_modules/oidc-provider" ]; then
  echo "oidc-provider peer: installing npm dependencies (npm ci)" >&2
  if ! (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) >>"$LOG_FILE" 2>&1; then
    echo "oidc-provider peer: npm ci failed; see $LOG_FILE" >&2
    tail -n 20 "$LOG_FILE" >&2 || true
    exit 1
  fi
fi

# stdin, stdout and stderr are detached from the caller so that `issuer=$(start.sh)` returns.
node "$here/server.mjs" </dev/null >>"$LOG_FILE" 2>&1 &
pid=$!
echo "$pid" >"$pid_file"

probe() {
  node -e '
    fetch(process.argv[1], { signal: AbortSignal.timeout(2000) })
      .then((r) => r.json())
      .then((d) => process.exit(d.issuer === process.argv[2] ? 0 : 1), () => process.exit(1));
  ' "$issuer/.well-known/openid-configuration" "$issuer"
}

deadline=$((SECONDS + timeout))
until probe; do
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$pid_file"
    echo "oidc-provider peer: the server exited during start-up; last lines of $LOG_FILE:" >&2
    tail -n 20 "$LOG_FILE" >&2 || true
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    kill "$pid" 2>/dev/null || true
    rm -f "$pid_file"
    echo "oidc-provider peer: discovery did not answer within ${timeout}s; last lines of $LOG_FILE:" >&2
    tail -n 20 "$LOG_FILE" >&2 || true
    exit 1
  fi
  sleep 0.2
done

echo "$issuer"
