#!/usr/bin/env bash
# Stops the oidc-provider test peer started by start.sh, by the pid in its pid file (SIGTERM, then SIGKILL after 5 s).
# Use the same PORT / PID_FILE as for start.sh. Exits 0 if it was not running.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
port="${PORT:-4455}"
run_dir="${RUN_DIR:-$here/run}"
pid_file="${PID_FILE:-$run_dir/oidc-provider-$port.pid}"

if [ ! -f "$pid_file" ]; then
  echo "oidc-provider peer: no pid file $pid_file; not running" >&2
  exit 0
fi
pid="$(cat "$pid_file")"
rm -f "$pid_file"

case "$pid" in
  '' | *[!0-9]*)
    echo "oidc-provider peer: pid file $pid_file holds no pid" >&2
    exit 1
    ;;
esac

# Only signal the process if it still is our server (the pid may have been reused).
if ! kill -0 "$pid" 2>/dev/null || ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'server\.mjs'; then
  echo "oidc-provider peer: pid $pid is not running (any more)" >&2
  exit 0
fi

kill -TERM "$pid"
for _ in $(seq 1 50); do
  kill -0 "$pid" 2>/dev/null || exit 0
  sleep 0.1
done
echo "oidc-provider peer: pid $pid ignored SIGTERM; sending SIGKILL" >&2
kill -KILL "$pid" 2>/dev/null || true
