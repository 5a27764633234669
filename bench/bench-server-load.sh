#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# trustpc-server under load (issue 3): K simulated devices with software TPMs (bench/load-devices)
# against a real trustpc-server on 127.0.0.1. Prints the server's memory per idle attested device,
# attested connects/s (full and resumed handshakes) and the reconnect storm, with the targets
# (≤ 48 KiB per device; 10,000 devices re-attested in < 30 s on the 2-CPU machine).
#
#   BENCH_K=N          devices (default 1000; up to the open-file limit, see below)
#   BENCH_STATE=DIR    server + device state kept between runs, so a rerun skips enrollment
#                      (default $TRUSTPC_BUILD_ROOT/bench-server-load; delete it to start over)
#   BENCH_EVENTS=N     events in the log every device sends (default 40; 0 = no event log)
#   BENCH_WINDOW=N     connections in progress at once in the rate phases (default 128)
#   BENCH_PERF=1       also record the server with `perf record -g` during the run (perf.data in
#                      the state dir; `perf report -i …`); BENCH_PERF=dwarf: DWARF call graphs
#                      (mbedTLS has no frame pointers, so only these attribute its time to callers)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../tests/lib/common.sh"
require_cmd python3
K=${BENCH_K:-1000}
EVENTS=${BENCH_EVENTS:-40}
WINDOW=${BENCH_WINDOW:-128}
STATE=${BENCH_STATE:-$TRUSTPC_BUILD_ROOT/bench-server-load}
server=$(find_binary trustpc-server || true)
load=$(find_binary load-devices || true)
[[ -n "$server" && -n "$load" ]] || skip "trustpc-server or load-devices not built"

# Both processes hold one socket per device (the server: plus its listeners and database).
ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < K + 256)); then
	echo "# open-file limit $(ulimit -n) is too low for $K devices: raise the hard limit (ulimit -Hn)" >&2
	exit 1
fi

S="$STATE/server"
D="$STATE/devices"
mkdir -p "$STATE"
pcrs=$("$load" prepare --state "$D" --events "$EVENTS")
if [[ ! -f "$S/trustpc-server.db" || "$(cat "$STATE/events" 2>/dev/null)" != "$EVENTS" ]]; then
	# A new fleet (or another event log, hence other PCR values): start over.
	rm -rf "$S" "$D"
	"$load" prepare --state "$D" --events "$EVENTS" >/dev/null
	"$server" init --state-dir "$S" --hostname localhost >"$TRUSTPC_TEST_TMP/init.log" 2>&1
	echo "$EVENTS" >"$STATE/events"
fi
# shellcheck disable=SC2086 # "7=HEX 11=HEX": one argument each
"$server" image set load $pcrs --state-dir "$S" >/dev/null 2>&1
cat >"$S/bench.conf" <<CONF
listen = 127.0.0.1
tpm_ca = $D/tpm-ca.pem
default_image = load
# Idle devices of this benchmark send no heartbeats: keep them connected for the whole run.
heartbeat = 86400
max_connections = $((K + 64))
CONF

notify_sock="$TRUSTPC_TEST_TMP/notify.sock"
notify_log="$TRUSTPC_TEST_TMP/notify.log"
: >"$notify_log"
python3 - "$notify_sock" "$notify_log" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True:
    data = s.recv(65536)
    with open(sys.argv[2], "a") as f:
        f.write(data.decode(errors="replace") + "\n")
PY
cleanup_push "kill $! 2>/dev/null"
poll_until 10 test -S "$notify_sock"
server_ready() { grep -q '^READY=1$' "$notify_log"; }
# The server logs every attestation at info: that is part of its cost (journald in production).
NOTIFY_SOCKET="$notify_sock" "$server" run --state-dir "$S" --config "$S/bench.conf" \
	--enroll-port 0 --device-port 0 --admin-port 0 2>"$TRUSTPC_TEST_TMP/server.log" &
server_pid=$!
cleanup_push "kill $server_pid 2>/dev/null; wait $server_pid 2>/dev/null"
poll_until 15 server_ready || { cat "$TRUSTPC_TEST_TMP/server.log" >&2; exit 1; }
[[ "$(grep '^STATUS=Listening' "$notify_log" | tail -n1)" =~ enroll\ ([0-9]+),\ device\ ([0-9]+) ]]
enroll_port=${BASH_REMATCH[1]}
device_port=${BASH_REMATCH[2]}

missing=$("$load" missing --state "$D" -k "$K")
if ((missing > 0)); then
	echo "# enrolling $missing devices (once; kept in $STATE)"
	t0=$(date +%s.%N)
	for ((i = 0; i < missing; i++)); do
		"$server" token create --image load --state-dir "$S" 2>/dev/null
	done >"$TRUSTPC_TEST_TMP/tokens"
	"$load" enroll --state "$D" -k "$K" --server "127.0.0.1:$enroll_port" --ca "$S/ca.pem" \
		--tokens "$TRUSTPC_TEST_TMP/tokens" --events "$EVENTS"
	echo "# enrolled in $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)") s"
fi

if [[ "${BENCH_PERF:-0}" != 0 ]]; then
	require_cmd perf
	callgraph=(-g)
	[[ "$BENCH_PERF" == dwarf ]] && callgraph=(--call-graph "dwarf,16384" -F 300)
	perf record "${callgraph[@]}" -o "$STATE/perf.data" -p "$server_pid" >"$TRUSTPC_TEST_TMP/perf.log" 2>&1 &
	perf_pid=$!
	cleanup_push "kill -INT $perf_pid 2>/dev/null; wait $perf_pid 2>/dev/null"
fi
"$load" run --state "$D" -k "$K" --server "127.0.0.1:$device_port" --server-pid "$server_pid" \
	--window "$WINDOW" --events "$EVENTS" --timeout 900
if [[ -n "${perf_pid:-}" ]]; then
	kill -INT "$perf_pid"
	wait "$perf_pid" || true
	echo "# perf profile of the server: perf report -i $STATE/perf.data"
fi
kill "$server_pid"
wait "$server_pid" || { echo "# trustpc-server exited with $?" >&2; exit 1; }
