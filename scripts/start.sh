#!/usr/bin/env bash
# Sets the machine up, then starts the arca daemon in the background on /var/run/arca.sock.
# Point the stock docker CLI (or docker-compose, docker-py) at it with the line printed at the end.
# Stop it with: kill "$(cat /run/arca.pid)"  (containers keep running; a new start picks them up).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO_ROOT=$(pwd)

SOCKET=${ARCA_SOCKET:-/var/run/arca.sock}
ROOT=${ARCA_ROOT:-/var/lib/arca}
EXEC_ROOT=${ARCA_EXEC_ROOT:-/run/arca}
LOG=${ARCA_LOG:-/var/log/arca.log}
PIDFILE=${ARCA_PIDFILE:-/run/arca.pid}

say() { printf 'start: %s\n' "$*" >&2; }
die() { printf 'start: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0)"

bash scripts/setup.sh

export DOCKER_HOST="unix://$SOCKET"

pid=""
if [ -f "$PIDFILE" ]; then
  pid=$(cat "$PIDFILE")
  # Only a live arca daemon counts: a stale pid file may name some other process by now.
  if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'cli/main.js daemon'; then
    say "arca is already running (pid $pid, log $LOG)"
  else
    pid=""
  fi
fi

if [ -z "$pid" ]; then
  mkdir -p "$(dirname "$LOG")" "$(dirname "$PIDFILE")" "$(dirname "$SOCKET")"
  say "starting arca (root $ROOT, log $LOG)"
  # Small semi-spaces: an idle daemon keeps ~10 MB less RSS after bursts (see bin/arca).
  nohup node --max-semi-space-size=1 "$REPO_ROOT/dist/src/cli/main.js" daemon \
    --host "unix://$SOCKET" --root "$ROOT" --exec-root "$EXEC_ROOT" \
    </dev/null >>"$LOG" 2>&1 &
  pid=$!
  echo "$pid" >"$PIDFILE"
  for _ in $(seq 1 100); do
    [ -S "$SOCKET" ] && break
    kill -0 "$pid" 2>/dev/null || { tail -n 30 "$LOG" >&2; die "the daemon exited during start-up"; }
    sleep 0.1
  done
  [ -S "$SOCKET" ] || { tail -n 30 "$LOG" >&2; die "no socket at $SOCKET after 10 s"; }
fi

for _ in $(seq 1 50); do
  if docker version >/dev/null 2>&1; then
    docker version --format 'arca {{.Server.Version}} (API {{.Server.APIVersion}}) is up' >&2
    echo "export DOCKER_HOST=unix://$SOCKET"
    exit 0
  fi
  sleep 0.2
done
docker version >&2 || true
tail -n 30 "$LOG" >&2
die "the daemon does not answer docker version"
