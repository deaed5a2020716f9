#!/usr/bin/env bash
# bench/callgrind.sh — instructions per request (valgrind --tool=callgrind, every thread counted): the gateway with
# CONFIG (see bench/meshgate.sh), one worker, behind wrk -c CONNS for DURATION s after a 2 s warm-up; counting is on
# only while measuring. A count that does not depend on the machine's speed or noise, but user space only (the
# kernel's share of a request is not in it). Run configurations side by side with one binary: the count moves by
# about ±0.5 % from run to run.
#
#   bench/callgrind.sh nopolicy; bench/callgrind.sh policies
#   bench/callgrind.sh policies -H 'accept: */*' -H 'user-agent: x'   # arguments after CONFIG go to wrk
#   MESHGATE_BIN=/tmp/meshgate-old bench/callgrind.sh policies     # another binary
#   callgrind_annotate --inclusive=yes <profile>                   # where the instructions go
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

CONFIG=${1:-nopolicy}
shift $(($# > 0 ? 1 : 0))
CONNS=${CONNS:-8}
DURATION=${DURATION:-6}
BASE_PORT=${BASE_PORT:-18700}
BIN=${MESHGATE_BIN:-$HERE/../target/release/meshgate}
bench_prepare meshgate-callgrind "$BIN" "apt-get install valgrind wrk nginx-light" valgrind callgrind_control wrk nginx ||
  exit 1
UP_PORT=$BASE_PORT
start_plain_upstream "$UP_PORT" "" || exit 1
# `meshgate.sh` validates with the binary, then execs it: only the run goes under valgrind.
cat >"$RUN/wrap" <<EOW
#!/usr/bin/env bash
if [ "\$1" = validate ]; then exec "$BIN" "\$@"; fi
exec valgrind --tool=callgrind --callgrind-out-file="$RUN/callgrind.out" --instr-atstart=no "$BIN" "\$@"
EOW
chmod +x "$RUN/wrap"
port=$((BASE_PORT + 10))
MESHGATE_BIN=$RUN/wrap start_gateway gw "$CONFIG" "$port" "" || exit 1
url=http://127.0.0.1:$port/
wrk -c "$CONNS" -t1 -d2s "$@" "$url" >/dev/null
callgrind_control -i on "$PID_gw" >/dev/null 2>&1
out=$(wrk -c "$CONNS" -t1 -d"${DURATION}s" "$@" "$url")
callgrind_control -i off "$PID_gw" >/dev/null 2>&1
callgrind_control -d "$PID_gw" >/dev/null 2>&1
reqs=$(awk '/requests in/ {print $1}' <<<"$out")
stop_pid "$PID_gw"
total=$(cat "$RUN"/callgrind.out* | awk '/^totals:/ {s += $2} END {printf "%.0f", s}')
echo "$CONFIG requests=$reqs instructions=$total per_request=$((total / reqs))"
echo "profile: $(ls "$RUN"/callgrind.out* | tr '\n' ' ')"
