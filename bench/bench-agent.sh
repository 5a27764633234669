#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# trustpcd when idle and connected: RSS (VmRSS) of the executor and of the network process, and their
# wake-ups (voluntary context switches) over a window (BENCH_SECONDS, default 60), with a real
# trustpc-server on loopback, a swtpm and a private D-Bus. Targets (issue 3): RSS ≤ 8 MiB, no
# wake-ups but the heartbeat. The server's heartbeat interval is printed beside: each heartbeat
# costs the network process a few switches (timer, TLS write, ack read) and the executor one STATUS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../tests/lib/common.sh"
source "$here/../tests/lib/swtpm.sh"
source "$here/../tests/lib/dbus.sh"
require_cmd dbus-daemon busctl python3
window=${BENCH_SECONDS:-60}
trustpcd="$TRUSTPC_BUILD_ROOT/daemon/trustpcd"
server=$(find_binary trustpc-server || true)
[[ -x "$trustpcd" && -n "$server" ]] || skip "trustpcd or trustpc-server not built"
swtpm_start dev >/dev/null

bus_start
S="$TRUSTPC_TEST_TMP/server"
"$server" init --state-dir "$S" --hostname localhost >/dev/null 2>&1
"$server" image set img "7=$(tpm_pcr_read dev 7)" "11=$(tpm_pcr_read dev 11)" --state-dir "$S" >/dev/null 2>&1
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

server_ready() { (( $(grep -c '^READY=1$' "$notify_log" || true) > ready_before )); }
server_start() {
	ready_before=$(grep -c '^READY=1$' "$notify_log" || true)
	NOTIFY_SOCKET="$notify_sock" "$server" run --state-dir "$S" --listen 127.0.0.1 --tpm-ca "$SWTPM_CA_CERT" \
		"$@" 2>>"$TRUSTPC_TEST_TMP/server.log" &
	server_pid=$!
	cleanup_push "kill -9 $server_pid 2>/dev/null"
	poll_until 15 server_ready || { cat "$TRUSTPC_TEST_TMP/server.log" >&2; return 1; }
	[[ "$(grep '^STATUS=Listening' "$notify_log" | tail -n1)" =~ enroll\ ([0-9]+),\ device\ ([0-9]+),\ admin\ ([0-9]+) ]]
	enroll_port=${BASH_REMATCH[1]}
	device_port=${BASH_REMATCH[2]}
	admin_port=${BASH_REMATCH[3]}
}
server_start --enroll-port 0 --device-port 0 --admin-port 0
token=$("$server" token create --image img --state-dir "$S" 2>/dev/null | tail -n1)
D="$TRUSTPC_TEST_TMP/agent"
TRUSTPC_ENROLL_TOKEN="$token" "$trustpcd" enroll --server "localhost:$enroll_port" --ca "$S/ca.pem" --state-dir "$D" 2>/dev/null
DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS" "$trustpcd" run --state-dir "$D" --server "localhost:$device_port" \
	2>"$TRUSTPC_TEST_TMP/agent.log" &
exec_pid=$!
cleanup_push "kill $exec_pid 2>/dev/null; wait $exec_pid 2>/dev/null"
attested() { [[ "$(busctl --address="$BUS_ADDRESS" get-property org.trustpc.Agent1 /org/trustpc/Agent1 org.trustpc.Agent1 Attested 2>/dev/null)" == "b true" ]]; }
poll_until 30 attested || { cat "$TRUSTPC_TEST_TMP/agent.log" >&2; exit 1; }
net_pid=$(pgrep -P "$exec_pid" | head -n1)
heartbeat=$(grep -oE 'heartbeat every [0-9]+ s' "$TRUSTPC_TEST_TMP/agent.log" | tail -n1 | grep -oE '[0-9]+')
heartbeat=${heartbeat:-300}

field() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
sw() { echo $(( $(field "$1" voluntary_ctxt_switches) + $(field "$1" nonvoluntary_ctxt_switches) )); }
e0=$(sw "$exec_pid"); n0=$(sw "$net_pid")
# The measurement window itself (not a wait for an event): idle means nobody pokes the agent.
sleep "$window"
e1=$(sw "$exec_pid"); n1=$(sw "$net_pid")
ers=$(field "$exec_pid" VmRSS); nrs=$(field "$net_pid" VmRSS)
eanon=$(field "$exec_pid" RssAnon); nanon=$(field "$net_pid" RssAnon)
pss() { awk '$1 == "Pss:" {print $2}' "/proc/$1/smaps_rollup"; }
epss=$(pss "$exec_pid"); npss=$(pss "$net_pid")
per_min() { echo $(( ($1) * 60 / window )); }
beats=$(( window / heartbeat ))
printf '%-44s %10s   %s\n' "trustpcd, idle and attested (${window} s)" "measured" "target"
printf '%-44s %7s KiB   %s\n' "RSS executor (VmRSS)" "$ers" "≤ 8192 KiB"
printf '%-44s %7s KiB   %s\n' "RSS network process (VmRSS)" "$nrs" "≤ 8192 KiB"
printf '%-44s %7s KiB   %s\n' "RSS both" "$((ers + nrs))" "(two processes; shared libraries counted twice)"
printf '%-44s %7s KiB   %s\n' "  private (RssAnon) executor / network" "$eanon / $nanon" ""
printf '%-44s %7s KiB   %s\n' "  PSS executor / network" "$epss / $npss" "(shared pages split between sharers)"
printf '%-44s %10s   %s\n' "wake-ups/min executor (context switches)" "$(per_min $((e1 - e0)))" "heartbeats only: $(( 60 / heartbeat ))/min × 1 STATUS"
printf '%-44s %10s   %s\n' "wake-ups/min network process" "$(per_min $((n1 - n0)))" "heartbeats only: $(( 60 / heartbeat ))/min (a few switches each)"
printf '%-44s %10s\n' "server heartbeat interval" "${heartbeat} s"
printf '%-44s %10s\n' "heartbeats in the window" "$beats"
