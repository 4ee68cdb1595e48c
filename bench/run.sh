#!/usr/bin/env bash
# `make bench`: install the load generator and nginx when missing (root only), then run the
# Python orchestrator. Only 127.0.0.1 is loaded; every run is bounded (BENCH_DURATION × rounds).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${VENV:-.venv}/bin/python"

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "bench: installing ${missing[*]} (Debian packages)"
        apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
            || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; } \
            || echo "bench: could not install ${missing[*]}"
    else
        echo "bench: missing ${missing[*]}; install with: sudo apt-get install -y ${missing[*]}"
    fi
fi
if ! command -v wrk >/dev/null 2>&1; then
    echo "bench: wrk is required for the load scenarios (sudo apt-get install -y wrk)." >&2
    exit 1
fi
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    echo "bench: nginx missing: the upstream is the ASGI responder and scenario (b) is skipped."
    export BENCH_NO_NGINX=1
fi
if ! command -v redis-server >/dev/null 2>&1; then
    echo "bench: redis-server missing: gateways share REDIS_URL, so Redis command counts include other clients."
fi
"$PY" -m bench.bench "$@"
status=$?
# WebSockets (issue 6): relay rate and memory per idle socket; BENCH_WS_SOCKETS=0 skips it.
if [ "${BENCH_WS_SOCKETS:-10000}" != "0" ]; then
    echo
    echo "== WebSockets =="
    "$PY" -m bench.websockets || status=$?
fi
# The Python per request on in-memory transports (bench/pathcost.py): the figure that make bench's
# (d)/(c2) follows on this host, without wrk's noise; on the server's core. BENCH_PATHCOST=0 skips it.
if [ "${BENCH_PATHCOST:-1}" != "0" ]; then
    echo
    echo "== Python per request (no sockets) =="
    cpu=$(( $(nproc) > 1 ? 1 : 0 ))
    taskset -c "$cpu" "$PY" -m bench.pathcost || status=$?
    # CPU per request with 2 workers against 1, each worker on a CPU of its own (issue 17's
    # target): (f) above has to put both on the server's core, where they take turns.
    if [ "$(nproc)" -gt 1 ]; then
        "$PY" -m bench.pathcost e --workers 2 || status=$?
    fi
fi
# Redis capacity (issue 16): the limiter script driven directly at Redis, one Redis and a 3-primary
# cluster of its own (docs/operations.md "Redis, measured"); BENCH_CAPACITY=0 skips it.
if [ "${BENCH_CAPACITY:-1}" != "0" ]; then
    echo
    echo "== Redis capacity =="
    "$PY" -m bench.capacity --cluster || status=$?
    # The same population as a busy gateway sends it: 13 requests per script call ((e)'s batches).
    "$PY" -m bench.capacity --batch 13 || status=$?
fi
exit $status
