#!/usr/bin/env bash
# bench/meshgate.sh — starts meshgate for the loopback kit (run.sh "ours"): writes a Kuma configuration from the
# kit's BENCH_* variables and execs `meshgate run` in the foreground.
#
#   BENCH_LISTEN, BENCH_TLS_LISTEN, BENCH_UPSTREAM, BENCH_CERT, BENCH_KEY, BENCH_THREADS  (set by run.sh)
#   CONFIG=minimal    a builtin gateway Dataplane, a MeshGateway with an HTTP and an HTTPS listener (ECDSA P-256
#                     certificate from a Secret), one MeshGatewayRoute `/` → a backend Dataplane (the upstream)
#   CONFIG=realistic  the same listeners with 1,000 routes over 200 hostnames (exact, prefix, header and regex
#                     matches); a request for `/` on any host walks 100 more specific routes before it matches `/`,
#                     and 100 regex routes sort after it
#   CONFIG=nopolicy   minimal, with the mesh's initial policies switched off (skipCreatingInitialPolicies: ['*'])
#   CONFIG=policies   nopolicy plus a MeshTimeout, a MeshRetry, a MeshRateLimit (never reached: 100M/s) and a
#                     MeshAccessLog (JSON lines to a file beside the configuration directory) on the gateway — the issue's
#                     "policies in force" run, compared with nopolicy
#   CONFIG=policies-nolog  policies without the MeshAccessLog
#   WORKERS=N         data-plane threads (default BENCH_THREADS, 1)
#   MESHGATE_BIN      the binary (default target/release/meshgate)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${MESHGATE_BIN:-$HERE/../target/release/meshgate}
CONFIG=${CONFIG:-minimal}
WORKERS=${WORKERS:-${BENCH_THREADS:-1}}
: "${BENCH_LISTEN:?run through bench/run.sh (or set BENCH_LISTEN, BENCH_TLS_LISTEN, BENCH_UPSTREAM, BENCH_CERT, BENCH_KEY)}"
port=${BENCH_LISTEN##*:}
tls_port=${BENCH_TLS_LISTEN##*:}
up_host=${BENCH_UPSTREAM%:*}
up_port=${BENCH_UPSTREAM##*:}
dir=$(mktemp -d "${TMPDIR:-/tmp}/meshgate-bench.XXXXXX")
bundle=$(cat "$BENCH_KEY" "$BENCH_CERT" | base64 -w0)

cat >"$dir/gateway.yaml" <<EOF
type: Dataplane
mesh: default
name: gw-1
networking:
  address: 127.0.0.1
  gateway:
    type: BUILTIN
    tags:
      kuma.io/service: edge
---
type: MeshGateway
mesh: default
name: edge
selectors:
- match:
    kuma.io/service: edge
conf:
  listeners:
  - port: $port
    protocol: HTTP
  - port: $tls_port
    protocol: HTTPS
    tls:
      mode: TERMINATE
      certificates:
      - secret: bench-cert
---
type: Secret
mesh: default
name: bench-cert
data: $bundle
---
type: Dataplane
mesh: default
name: upstream-1
networking:
  address: $up_host
  inbound:
  - port: $up_port
    tags:
      kuma.io/service: upstream
EOF

route() { # NAME HOSTNAMES-YAML RULES-YAML
  printf -- '---\ntype: MeshGatewayRoute\nmesh: default\nname: %s\nselectors:\n- match:\n    kuma.io/service: edge\nconf:\n  http:\n%s    rules:\n%s' "$1" "$2" "$3"
}
rule() { # MATCH-YAML (one line, a flow mapping)
  printf '    - matches: [%s]\n      backends: [{destination: {kuma.io/service: upstream}}]\n' "$1"
}

case $CONFIG in
  minimal)
    route all "" "$(rule '{path: {match: PREFIX, value: /}}')" >"$dir/routes.yaml" ;;
  nopolicy | policies | policies-nolog)
    route all "" "$(rule '{path: {match: PREFIX, value: /}}')" >"$dir/routes.yaml"
    printf -- "\n---\ntype: Mesh\nname: default\nskipCreatingInitialPolicies: ['*']\n" >>"$dir/routes.yaml"
    if [ "$CONFIG" != nopolicy ]; then
      cat >"$dir/policies.yaml" <<EOP
type: MeshTimeout
mesh: default
name: bench-timeout
spec:
  targetRef: {kind: MeshGateway, name: edge}
  to:
  - targetRef: {kind: Mesh}
    default: {connectionTimeout: 2s, http: {requestTimeout: 10s, streamIdleTimeout: 30s}}
---
type: MeshRetry
mesh: default
name: bench-retry
spec:
  targetRef: {kind: MeshGateway, name: edge}
  to:
  - targetRef: {kind: Mesh}
    default: {http: {numRetries: 3, retryOn: [5xx], backOff: {baseInterval: 25ms, maxInterval: 250ms}}}
---
type: MeshRateLimit
mesh: default
name: bench-ratelimit
spec:
  targetRef: {kind: MeshGateway, name: edge}
  to:
  - targetRef: {kind: Mesh}
    default: {local: {http: {requestRate: {num: 100000000, interval: 1s}}}}
EOP
    fi
    if [ "$CONFIG" = policies ]; then
      cat >>"$dir/policies.yaml" <<EOP
---
type: MeshAccessLog
mesh: default
name: bench-log
spec:
  targetRef: {kind: MeshGateway, name: edge}
  to:
  - targetRef: {kind: Mesh}
    default:
      backends:
      - type: File
        file:
          path: $dir.access.log
          format:
            type: Json
            json:
            - {key: start, value: '%START_TIME%'}
            - {key: method, value: '%REQ(:METHOD)%'}
            - {key: path, value: '%REQ(:PATH)%'}
            - {key: status, value: '%RESPONSE_CODE%'}
            - {key: duration, value: '%DURATION%'}
            - {key: upstream, value: '%UPSTREAM_HOST%'}
EOP
    fi ;;
  realistic)
    {
      # 200 hostnames x 4 rules = 800 routes that only their own host sees.
      for ((h = 0; h < 200; h++)); do
        rules=$(rule "{path: {match: EXACT, value: /h$h/health}}"
          rule "{path: {match: PREFIX, value: /h$h/api}, headers: [{match: EXACT, name: x-tenant, value: t$h}]}"
          rule "{path: {match: REGEX, value: '^/h$h/items/[0-9]+$'}}"
          rule "{path: {match: PREFIX, value: /h$h/static}, method: GET}")
        route "host-$h" "    hostnames: [h$h.example.com]
" "$rules
"
      done
      # 200 rules every host sees: 100 more specific than `/`, `/` itself, 99 regexes after it.
      rules=$(for ((k = 0; k < 100; k++)); do
          rule "{path: {match: PREFIX, value: /svc$k}, headers: [{match: PRESENT, name: x-svc}]}"
        done
        rule '{path: {match: PREFIX, value: /}}'
        for ((k = 0; k < 99; k++)); do rule "{path: {match: REGEX, value: '^/re$k/[a-z]+\$'}}"; done)
      route shared "" "$rules
"
    } >"$dir/routes.yaml" ;;
  *) echo "CONFIG must be minimal, realistic, nopolicy, policies or policies-nolog" >&2; exit 2 ;;
esac

"$BIN" validate "$dir" >&2
exec "$BIN" run --config "$dir" --workers "$WORKERS" --admin "127.0.0.1:$((port + 1000))"
