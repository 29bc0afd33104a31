#!/bin/sh
# Container entrypoint of every Memestream process (API, workers, one-shot commands).
# It empties PROMETHEUS_MULTIPROC_DIR before the process starts: prometheus-client keeps one file
# per pid there, and files left by an earlier container (emptyDir survives restarts) would
# otherwise be summed into /metrics. FORWARDED_ALLOW_IPS is exported (empty when unset) because
# a bare `uvicorn` command reads it, and without it trusts X-Forwarded-For from 127.0.0.1.
# Then it execs the command, so signals reach it directly.
set -eu
export FORWARDED_ALLOW_IPS="${FORWARDED_ALLOW_IPS-}"
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    rm -rf "${PROMETHEUS_MULTIPROC_DIR:?}"
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi
exec "$@"
