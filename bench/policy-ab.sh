#!/usr/bin/env bash
# bench/policy-ab.sh — what policies cost a core: the gateway's CPU time per request with CONFIG=nopolicy (A) and
# CONFIG=policies (B) of bench/meshgate.sh, under the same constant request rate.
#
# Both gateways run side by side, pinned to PROXY_CPU (an idle one costs ~nothing); the upstream (nginx) and the load
# (h2load, HTTP/1.1, constant rate) share LOAD_CPU. Rounds alternate A and B; a round reports the requests served, the
# gateway's CPU time (all its threads, the access-log writer included; from /proc/PID/task/*/schedstat) and the CPU
# microseconds per request. The result is the median over rounds of B's cost over A's, each B round against the A round just before it.
#
# A constant rate below saturation keeps both gateways in the same regime (how many requests one wakeup finds);
# saturating loads on this 2-core VM swing ±20 % from round to round as the load's core speeds up and slows down.
#
#   bench/policy-ab.sh                        # 12 rounds x 6 s at 16 connections x 1,000 req/s
#   ROUNDS=20 RATE=1500 bench/policy-ab.sh    # RATE: requests per second per connection
#   A=nopolicy B=policies-nolog bench/policy-ab.sh
#   TOGETHER=1 RATE=800 bench/policy-ab.sh    # each round loads A and B at the same time (twice the total rate)
#   bench/policy-ab.sh -H 'accept: */*'       # arguments go to h2load
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

A=${A:-nopolicy}
B=${B:-policies}
ROUNDS=${ROUNDS:-12}
DURATION=${DURATION:-6}
CONNS=${CONNS:-16}
RATE=${RATE:-1000}
TOGETHER=${TOGETHER:-0}
LOAD_ARGS=("$@")
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BASE_PORT=${BASE_PORT:-18500}
export MESHGATE_BIN=${MESHGATE_BIN:-$HERE/../target/release/meshgate}
bench_prepare meshgate-ab "$MESHGATE_BIN" "apt-get install nginx-light nghttp2-client util-linux" nginx h2load taskset ||
  exit 1
UP_PORT=$BASE_PORT
start_plain_upstream "$UP_PORT" "$LOAD_CPU" || exit 1

A_PORT=$((BASE_PORT + 10)) B_PORT=$((BASE_PORT + 20))
start_gateway gw_a "$A" "$A_PORT" "$PROXY_CPU" || exit 1
start_gateway gw_b "$B" "$B_PORT" "$PROXY_CPU" || exit 1

# cpu_ns PID : nanoseconds on CPU of all the threads of PID (schedstat: finer than clock ticks)
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", s}'; }

# round NAME PID PORT -> "requests cpu_ms us_per_request"
round() {
  local out t0 t1 reqs
  t0=$(cpu_ns "$2")
  out=$(taskset -c "$LOAD_CPU" h2load --h1 -c "$CONNS" --rps "$RATE" -D "$DURATION" "${LOAD_ARGS[@]}" "http://127.0.0.1:$3/" 2>&1)
  t1=$(cpu_ns "$2")
  reqs=$(awk '/^requests:/{print $8}' <<<"$out")
  if ! grep -q "^status codes: $reqs 2xx" <<<"$out"; then log "$1: not every request succeeded"; echo "$out" >&2; exit 1; fi
  awk -v r="$reqs" -v a="$t0" -v b="$t1" 'BEGIN{printf "%d %.1f %.3f\n", r, (b - a) / 1e6, (b - a) / 1e3 / r}'
}
# load NAME PORT OUT : h2load at the constant rate against PORT, its report in OUT; fails unless every request got a 2xx
load() {
  taskset -c "$LOAD_CPU" h2load --h1 -c "$CONNS" --rps "$RATE" -D "$DURATION" "${LOAD_ARGS[@]}" "http://127.0.0.1:$2/" >"$3" 2>&1
  if ! grep -q "^status codes: $(awk '/^requests:/{print $8}' "$3") 2xx" "$3"; then
    log "$1: not every request succeeded"
    cat "$3" >&2
    return 1
  fi
}

# together -> "a_requests a_cpu_ms a_us b_requests b_cpu_ms b_us": both loads at once, so that both gateways meet the
# same moments of the machine (a neighbour's burst, a frequency step) and the noise cancels in their ratio.
together() {
  local a0 b0 a1 b1 pa pb
  a0=$(cpu_ns "$PID_gw_a") b0=$(cpu_ns "$PID_gw_b")
  # Which load starts first alternates from round to round ($1: the round).
  if (($1 % 2)); then
    load gw_a "$A_PORT" "$RUN/load_a" &
    pa=$!
    load gw_b "$B_PORT" "$RUN/load_b" &
    pb=$!
  else
    load gw_b "$B_PORT" "$RUN/load_b" &
    pb=$!
    load gw_a "$A_PORT" "$RUN/load_a" &
    pa=$!
  fi
  wait "$pa" || exit 1
  wait "$pb" || exit 1
  a1=$(cpu_ns "$PID_gw_a") b1=$(cpu_ns "$PID_gw_b")
  for x in "a $a0 $a1" "b $b0 $b1"; do
    read -r which t0 t1 <<<"$x"
    awk -v r="$(awk '/^requests:/{print $8}' "$RUN/load_$which")" -v a="$t0" -v b="$t1" \
      'BEGIN{printf "%d %.1f %.3f ", r, (b - a) / 1e6, (b - a) / 1e3 / r}'
  done
  echo
}

# Warm both (connection pools, page cache, the access-log file).
round gw_a "$PID_gw_a" "$A_PORT" >/dev/null
round gw_b "$PID_gw_b" "$B_PORT" >/dev/null
printf 'round\t%s_reqs\t%s_cpu_ms\t%s_us_per_req\t%s_reqs\t%s_cpu_ms\t%s_us_per_req\tratio\n' "$A" "$A" "$A" "$B" "$B" "$B" | tee "$RUN/rounds.tsv"
for ((r = 1; r <= ROUNDS; r++)); do
  if [ "$TOGETHER" = 1 ]; then
    read -r ar at au br bt bu <<<"$(together "$r")"
  else
    read -r ar at au <<<"$(round gw_a "$PID_gw_a" "$A_PORT")"
    read -r br bt bu <<<"$(round gw_b "$PID_gw_b" "$B_PORT")"
  fi
  printf '%d\t%d\t%s\t%s\t%d\t%s\t%s\t%.4f\n' "$r" "$ar" "$at" "$au" "$br" "$bt" "$bu" "$(awk -v a="$au" -v b="$bu" 'BEGIN{print b/a}')" | tee -a "$RUN/rounds.tsv"
done
awk -F'\t' -v a="$A" -v b="$B" -v together="$TOGETHER" 'NR>1{ra[NR-1]=$8; ua[NR-1]=$4; ub[NR-1]=$7; n=NR-1}
  function med(x, n,   i, j, t, y) { for (i = 1; i <= n; i++) y[i] = x[i]
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (y[j] < y[i]) { t = y[i]; y[i] = y[j]; y[j] = t }
    return n % 2 ? y[(n + 1) / 2] : (y[n / 2] + y[n / 2 + 1]) / 2 }
  function q(x, n, p,   i, j, t, y) { for (i = 1; i <= n; i++) y[i] = x[i]
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (y[j] < y[i]) { t = y[i]; y[i] = y[j]; y[j] = t }
    return y[int((n - 1) * p) + 1] }
  END { printf "%s: %.2f us/req (median)  %s: %.2f us/req (median)\n", a, med(ua, n), b, med(ub, n)
        what = "paired rounds"
        # Together, which load starts first moves the ratio by about 2 %: rounds alternate it, and each pair of
        # rounds counts once (the geometric mean of its two ratios).
        if (together == 1 && n >= 2) {
          for (k = 1; 2 * k <= n; k++) pr[k] = sqrt(ra[2 * k - 1] * ra[2 * k])
          n = k - 1; for (k = 1; k <= n; k++) ra[k] = pr[k]; what = "pairs of rounds, each load first once"
        }
        printf "%s costs %+.1f %% CPU per request over %s (median of %d %s; quartiles %+.1f %% .. %+.1f %%)\n",
          b, (med(ra, n) - 1) * 100, a, n, what, (q(ra, n, 0.25) - 1) * 100, (q(ra, n, 0.75) - 1) * 100 }' "$RUN/rounds.tsv" | tee "$RUN/result.txt"
log "rounds: $RUN/rounds.tsv"
