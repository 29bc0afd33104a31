#!/bin/sh
# Container entrypoint of every Memestream process (API, workers, one-shot commands).
# It empties PROMETHEUS_MULTIPROC_DIR before the process starts: prometheus-client keeps one file
# per pid there, and files left by an earlier container (emptyDir survives restarts) would
# otherwise be summed into /metrics. Then it execs the command, so signals reach it directly.
set -eu
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    rm -rf "${PROMETHEUS_MULTIPROC_DIR:?}"
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi
exec "$@"
