#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Enrollment and attestation end to end: a real trustpc-server (init, image, token, run), a device
# with its own swtpm, `trustpcd enroll` then `trustpcd run` with a private D-Bus system bus. The device
# ends attested (D-Bus Attested=true, the admin API lists it trusted); refused enrollments
# (reused token, a server certificate not from the pinned CA) write nothing; CheckInNow() makes a
# heartbeat; the server restarted: the agent reconnects and attests again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/assert.sh"
source "$here/../lib/swtpm.sh"
source "$here/../lib/dbus.sh"
require_cmd dbus-daemon busctl python3 curl

trustpcd="$TRUSTPC_BUILD_ROOT/daemon/trustpcd"
server=$(find_binary trustpc-server || true)
[[ -x "$trustpcd" ]] || { echo "missing $trustpcd: build first" >&2; exit 1; }
[[ -n "$server" ]] || skip "trustpc-server is not built (remote/ not ready in this build)"

swtpm_start dev >/dev/null

bus_start
B=(busctl --address="$BUS_ADDRESS" --no-pager)
P=(org.trustpc.Agent1 /org/trustpc/Agent1 org.trustpc.Agent1)
prop() { "${B[@]}" get-property "${P[@]}" "$1" 2>/dev/null; }

# --- the server -------------------------------------------------------------------------------
S="$TRUSTPC_TEST_TMP/server"
expect_ok "$server" init --state-dir "$S" --hostname localhost
pcr7=$(tpm_pcr_read dev 7)
pcr11=$(tpm_pcr_read dev 11)
expect_ok "$server" image set testimg "7=$pcr7" "11=$pcr11" --state-dir "$S"

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
ok "trustpc-server ready (enroll $enroll_port, device $device_port)"

token=$("$server" token create --image testimg --state-dir "$S" 2>/dev/null | tail -n1)
assert_match '^[A-Za-z0-9_.-]{16,}$' "$token" "token created"

# --- enrollment ---------------------------------------------------------------------------------
D="$TRUSTPC_TEST_TMP/agent"
# A server certificate from another CA than the pinned one: the agent refuses, writes nothing.
"$server" init --state-dir "$TRUSTPC_TEST_TMP/other" --hostname localhost >/dev/null 2>&1
expect_fail '*' 'TLS handshake .*failed' "$trustpcd" enroll --server "localhost:$enroll_port" \
	--ca "$TRUSTPC_TEST_TMP/other/ca.pem" --token "$token" --state-dir "$D"
[[ ! -e "$D/device-id" ]] && ok "refused server certificate: no enrollment written" || not_ok "refused server certificate: no enrollment written"

EXPECT_NAME="trustpcd enroll" expect_ok env TRUSTPC_ENROLL_TOKEN="$token" "$trustpcd" enroll \
	--server "localhost:$enroll_port" --ca "$S/ca.pem" --state-dir "$D"
assert_file_contains "$EXPECT_STDERR" "Enrolled as device [0-9a-f]{32}" "enroll names the device id"
device_id=$(cat "$D/device-id")
assert_match '^[0-9a-f]{32}$' "$device_id" "device-id stored"
for f in device-id device.pem ca.pem tls-key.pem ak.blob policy-key.pem escrow-key.pem; do
	assert_eq 600 "$(stat -c %a "$D/$f")" "$f stored with mode 0600"
done
cmp -s "$D/ca.pem" "$S/ca.pem" && ok "stored fleet CA is the server's" || not_ok "stored fleet CA is the server's"
assert_file_contains "$TRUSTPC_TEST_TMP/server.log" "Device $device_id .*enrolled" "the server enrolled the same device id"

# The token again (another state dir): bad-token, exit 3, nothing written.
expect_fail 3 'bad-token.*trustpcctl token create' "$trustpcd" enroll --server "localhost:$enroll_port" \
	--ca "$S/ca.pem" --token "$token" --state-dir "$TRUSTPC_TEST_TMP/agent2"
[[ ! -e "$TRUSTPC_TEST_TMP/agent2/device-id" ]] && ok "reused token: no enrollment written" || not_ok "reused token: no enrollment written"

# --- run: attested ---------------------------------------------------------------------------------
DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS" "$trustpcd" run --state-dir "$D" --server "localhost:$device_port" \
	2>"$TRUSTPC_TEST_TMP/agent.log" &
agent_pid=$!
cleanup_push "kill $agent_pid 2>/dev/null; wait $agent_pid 2>/dev/null"
attested() { [[ "$(prop Attested)" == "b true" ]]; }
if poll_until 30 attested; then ok "D-Bus Attested=true"; else not_ok "D-Bus Attested=true" "$(cat "$TRUSTPC_TEST_TMP/agent.log")"; fi
assert_eq "s \"$device_id\"" "$(prop DeviceId)" "D-Bus DeviceId is the enrolled id"
assert_eq "b true" "$(prop Connected)" "D-Bus Connected=true"
assert_eq "b false" "$(prop Locked)" "D-Bus Locked=false (counter at the policy's epoch)"
# The server lists it: the admin API (what trustpcctl devices reads).
op=$("$server" operator add tester --role viewer --state-dir "$S" 2>/dev/null | tail -n1)
devices=$(curl -sS --cacert "$S/ca.pem" -H "Authorization: Bearer $op" "https://localhost:$admin_port/api/v1/devices" || true)
assert_match "\"device_id\": *\"$device_id\"" "$devices" "GET /api/v1/devices lists the device"
assert_match "\"state\": *\"trusted\"" "$devices" "GET /api/v1/devices: state trusted"
t1=$(prop LastCheckIn | awk '{print $2}')
(( t1 > 0 )) && ok "LastCheckIn set ($t1)" || not_ok "LastCheckIn set"

# CheckInNow: a heartbeat, acknowledged: LastCheckIn moves forward.
expect_ok "${B[@]}" call "${P[@]}" CheckInNow
moved() { (( $(prop LastCheckIn | awk '{print $2}') > t1 )); }
if poll_until 10 moved; then ok "CheckInNow: LastCheckIn moved forward"; else not_ok "CheckInNow: LastCheckIn moved forward"; fi

# --- server restart: the agent reconnects (backoff) and attests again --------------------------------
kill -TERM "$server_pid"
wait "$server_pid" || true
disconnected() { [[ "$(prop Connected)" == "b false" && "$(prop Attested)" == "b false" ]]; }
if poll_until 10 disconnected; then ok "server gone: Connected=false, Attested=false"; else not_ok "server gone: Connected=false, Attested=false"; fi
server_start --enroll-port "$enroll_port" --device-port "$device_port" --admin-port "$admin_port"
if poll_until 30 attested; then ok "server back: attested again"; else not_ok "server back: attested again" "$(tail -20 "$TRUSTPC_TEST_TMP/agent.log")"; fi
assert_file_contains "$TRUSTPC_TEST_TMP/agent.log" "Reconnecting to localhost:$device_port in" "the agent logged its backoff"

kill -TERM "$agent_pid"
rc=0
wait "$agent_pid" || rc=$?
assert_eq 0 "$rc" "trustpcd run exits 0 on SIGTERM"
test_done
