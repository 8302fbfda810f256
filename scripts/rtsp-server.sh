#!/usr/bin/env bash
# Start/stop the local RTSP test server (scripts/rtsp-server.py) in the background with a pid file.
#   scripts/rtsp-server.sh start [--port 8554] --mount /d0=path/d0.mp4 [--mount ...] [--hang-after S]
#   scripts/rtsp-server.sh stop
#   scripts/rtsp-server.sh status
# Env: RTSP_PIDFILE (default .cache/rtsp-server.pid), RTSP_LOG (default .cache/rtsp-server.log).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
pidfile="${RTSP_PIDFILE:-$root/.cache/rtsp-server.pid}"
logfile="${RTSP_LOG:-$root/.cache/rtsp-server.log}"
mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"

running() { [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case "${1:-}" in
  start)
    shift
    if running; then echo "rtsp-server already running (pid $(cat "$pidfile"))" >&2; exit 1; fi
    out="$(mktemp)"
    /usr/bin/python3 "$here/rtsp-server.py" "$@" >"$out" 2>>"$logfile" &
    pid=$!
    echo "$pid" >"$pidfile"
    # The server prints "ready <urls>" once it listens (the first start transcodes each file once).
    for _ in $(seq 1 600); do
      if grep -q '^ready ' "$out" 2>/dev/null; then sed 's/^ready //' "$out"; rm -f "$out"; exit 0; fi
      if ! kill -0 "$pid" 2>/dev/null; then
        echo "rtsp-server exited during start; see $logfile" >&2; rm -f "$out" "$pidfile"; exit 1
      fi
      sleep 0.1
    done
    echo "rtsp-server did not become ready in 60 s; see $logfile" >&2; kill "$pid" || true; rm -f "$out" "$pidfile"; exit 1
    ;;
  stop)
    if ! running; then rm -f "$pidfile"; echo "rtsp-server not running" >&2; exit 0; fi
    pid="$(cat "$pidfile")"
    kill -TERM "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    rm -f "$pidfile"
    ;;
  status)
    if running; then echo "running (pid $(cat "$pidfile"))"; else echo "stopped"; exit 1; fi
    ;;
  *)
    echo "usage: $0 start|stop|status [rtsp-server.py options]" >&2; exit 2 ;;
esac
