#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The versioned, signed device policy end to end (issue 4 item 5): a real trustpc-server, a real
# trustpcd on swtpm. `trustpcctl policy set` queues the policy; the executor stores it and the
# agent reports its version in the posture (trustpcctl show --json) and takes its heartbeat. An
# older version re-sent through the admin API is refused by the device (a signed `rejected` with
# the reason, the stored policy unchanged). An offline lease of a few seconds with the server
# stopped: the agent locks itself (D-Bus Locked=true, the TPM lock counter moved by one).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# The executor enforces usb_storage and screen_lock with drop-ins under /run (modprobe.d, udev
# rules.d, systemd/logind.conf.d): the test runs in a private mount namespace with its own /run,
# so the host's stays untouched.
if [[ -z "${TRUSTPC_PRIVATE_RUN:-}" ]]; then
	if ! unshare -m --propagation private true 2>/dev/null; then
		echo "1..0 # SKIP no private mount namespace (unshare -m) for a private /run"
		exit 77
	fi
	exec unshare -m --propagation private env TRUSTPC_PRIVATE_RUN=1 \
		bash -c 'mount -t tmpfs -o mode=0755 tmpfs /run && exec "$0" "$@"' "$0" "$@"
fi
source "$here/test-server-common.sh"
source "$TRUSTPC_SOURCE_ROOT/tests/lib/swtpm.sh"
source "$TRUSTPC_SOURCE_ROOT/tests/lib/dbus.sh"
require_cmd jq curl dbus-daemon busctl tpm2_nvread xxd

trustpcd="$TRUSTPC_BUILD_ROOT/daemon/trustpcd"
[[ -x "$trustpcd" ]] || { not_ok "trustpcd is built at $trustpcd"; exit 1; }
CTL=$(find_binary trustpcctl)
T=$TRUSTPC_TEST_TMP
st="$T/server"
server_init "$st"
printf 'heartbeat = 5\n' >"$T/test.conf"
(umask 077 && "$SERVER_BIN" operator add op-admin --role admin --state-dir "$st" >"$T/admin.token")
(umask 077 && "$SERVER_BIN" operator add op-helpdesk --role helpdesk --state-dir "$st" >"$T/helpdesk.token")
swtpm_start dev >/dev/null
"$SERVER_BIN" image set base "7=$(tpm_pcr_read dev 7)" "11=$(tpm_pcr_read dev 11)" --state-dir "$st" >/dev/null
server_start "$st" --tpm-ca "$SWTPM_CA_CERT" --config "$T/test.conf"

D="$T/agent"
EXPECT_NAME="trustpcd enroll" expect_ok "$trustpcd" enroll --server "localhost:$ENROLL_PORT" --ca "$st/ca.pem" \
	--token "$("$SERVER_BIN" token create --image base --state-dir "$st")" --state-dir "$D"
id=$(cat "$D/device-id")
# The TPM lock counter itself, read while no trustpcd holds the TPM.
counter() { printf '%d' "0x$(tpm2_nvread 0x01807c50 2>/dev/null | xxd -p)"; }
c0=$(counter)

bus_start
B=(busctl --address="$BUS_ADDRESS" --no-pager)
P=(org.trustpc.Agent1 /org/trustpc/Agent1 org.trustpc.Agent1)
prop() { "${B[@]}" get-property "${P[@]}" "$1" 2>/dev/null; }
attested() { [[ "$(prop Attested)" == "b true" ]]; }
DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS" "$trustpcd" run --state-dir "$D" --server "localhost:$DEVICE_PORT" \
	2>>"$T/agent.log" &
agent_pid=$!
cleanup_push "kill $agent_pid 2>/dev/null; wait $agent_pid 2>/dev/null"
poll_until 30 attested || { not_ok "agent attested" "$(cat "$T/agent.log")"; exit 1; }
ok "trustpcd attested"

export TRUSTPC_SERVER="localhost:$ADMIN_PORT" TRUSTPC_CA="$st/ca.pem"
ctl() { "$CTL" --token-file "$T/admin.token" "$@"; }
cmd_state() { db "SELECT state FROM commands WHERE id = '$1'"; }
state_is() { [[ "$(cmd_state "$1")" == "$2" ]]; }
posture_version() { ctl --json show "$id" | jq -r '.posture.policy_version // 0'; }
policy_version_is() { "${B[@]}" call "${P[@]}" CheckInNow >/dev/null 2>&1; [[ "$(posture_version)" == "$1" ]]; }
queued() { db "SELECT count(*) FROM commands"; }

# ---- usage errors: nothing queued ----
n0=$(queued)
expect_fail 2 "Unknown policy key 'colour'" ctl policy set "$id" colour=blue
expect_fail 2 "Bad value in 'heartbeat=0'" ctl policy set "$id" heartbeat=0
expect_fail 2 "Bad value in 'usb_storage=maybe'" ctl policy set "$id" usb_storage=maybe
expect_fail 2 "Bad value in 'offline_lease=3y'" ctl policy set "$id" offline_lease=3y
expect_fail 2 "Usage" ctl policy set heartbeat=60s
expect_fail 2 "Usage" ctl policy show "$id"
# a helpdesk operator may lock, not set the fleet's policy
expect_fail 4 "admin role" "$CTL" --token-file "$T/helpdesk.token" policy set "$id" heartbeat=60s
assert_eq "$n0" "$(queued)" "refused policy sets queued nothing"

# ---- policy set: applied, reported, its heartbeat in force ----
EXPECT_NAME="trustpcctl policy set" expect_ok ctl --json policy set "$id" heartbeat=7s offline_lease=0 \
	usb_storage=no screen_lock=5m
c1=$(jq -r '.[0].id' "$EXPECT_STDOUT")
v1=$(db "SELECT json_extract(args, '\$.version') FROM commands WHERE id = '$c1'")
assert_match '^[0-9]+$' "$v1" "the server queued policy version $v1"
(( v1 >= $(date +%s) - 60 )) && ok "version is at least the Unix time of issue" || not_ok "version is at least the Unix time of issue" "$v1"
if poll_until 30 state_is "$c1" done; then ok "policy command: done"; else not_ok "policy command: done" "$(db "SELECT state, reason FROM commands WHERE id = '$c1'"; tail -n 10 "$T/agent.log")"; fi
assert_eq "$v1" "$(jq -r .version "$D/device-policy.json")" "the executor stored the policy"
assert_eq "false 300 0 7" "$(jq -r '"\(.usb_storage) \(.screen_lock) \(.offline_lease) \(.heartbeat)"' "$D/device-policy.json")" \
	"the stored policy has the values set"
if poll_until 20 policy_version_is "$v1"; then ok "trustpcctl show --json: posture.policy_version $v1"; else not_ok "trustpcctl show --json: posture.policy_version $v1" "$(posture_version)"; fi
assert_file_contains "$T/agent.log" "Heartbeat every 7 s from now on \(device policy version $v1\)" \
	"the policy's heartbeat wins over the server's 5 s"
# usb_storage=no, screen_lock=5m enforced on the machine (in this test's private /run).
assert_match "device policy version $v1 applied: USB storage blocked, screen lock after idle time" \
	"$(db "SELECT reason FROM commands WHERE id = '$c1'")" "the signed result says what is enforced"
assert_file_contains /run/modprobe.d/50-trustpc-usb-storage.conf '^install usb_storage /bin/false$' \
	"usb_storage=no: modprobe refuses the usb_storage driver"
assert_file_contains /run/modprobe.d/50-trustpc-usb-storage.conf '^install uas /bin/false$' \
	"usb_storage=no: modprobe refuses the uas driver"
assert_file_contains /run/udev/rules.d/50-trustpc-usb-storage.rules 'ATTR\{bInterfaceClass\}=="08", ATTR\{authorized\}="0"' \
	"usb_storage=no: udev de-authorizes mass-storage interfaces as they appear"
assert_eq "$(printf '[Login]\nIdleAction=lock\nIdleActionSec=300s')" "$(grep -v '^#' /run/systemd/logind.conf.d/50-trustpc-screen-lock.conf)" \
	"screen_lock=5m: logind locks idle sessions after 300 s"
if command -v systemd-analyze >/dev/null; then
	assert_match "IdleActionSec=300s" "$(systemd-analyze cat-config systemd/logind.conf 2>/dev/null)" \
		"systemd-analyze cat-config sees the logind drop-in"
fi

# A second set picks a newer version on its own.
EXPECT_NAME="trustpcctl policy set (again)" expect_ok ctl --json policy set "$id" heartbeat=5s
c2=$(jq -r '.[0].id' "$EXPECT_STDOUT")
v2=$(db "SELECT json_extract(args, '\$.version') FROM commands WHERE id = '$c2'")
(( v2 > v1 )) && ok "the next set picks version $v2 > $v1" || not_ok "the next set picks a newer version" "$v2 <= $v1"
poll_until 30 state_is "$c2" done && ok "second policy: done" || not_ok "second policy: done" "$(cmd_state "$c2")"
# That policy leaves usb_storage and screen_lock at their defaults (allowed, none): drop-ins gone.
for f in /run/modprobe.d/50-trustpc-usb-storage.conf /run/udev/rules.d/50-trustpc-usb-storage.rules \
	/run/systemd/logind.conf.d/50-trustpc-screen-lock.conf; do
	[[ ! -e "$f" ]] && ok "policy $v2 (defaults): $f removed" || not_ok "policy $v2 (defaults): $f removed" "$(cat "$f")"
done

# ---- an older version re-sent through the API: refused by the device, nothing changed ----
stored=$(sha256sum <"$D/device-policy.json")
api() { # api METHOD PATH [BODY]
	curl -sS --cacert "$st/ca.pem" -H "Authorization: Bearer $(cat "$T/admin.token")" -X "$1" \
		${3:+-H 'Content-Type: application/json' -d "$3"} "https://localhost:$ADMIN_PORT/api/v1/$2"
}
for old in "$v1" "$v2"; do
	resp=$(api POST "devices/$id/commands" "{\"type\":\"policy\",\"version\":$old,\"heartbeat\":60,\"offline_lease\":1}")
	c=$(jq -r '.id // empty' <<<"$resp")
	assert_match '^[0-9a-f]{32}$' "$c" "the server queued policy version $old again ($resp)"
	if poll_until 30 state_is "$c" rejected; then ok "version $old: the device rejects it"; else not_ok "version $old: the device rejects it" "$(db "SELECT state, reason FROM commands WHERE id = '$c'")"; fi
	assert_match "policy version $old is not newer than the applied version $v2" \
		"$(db "SELECT reason FROM commands WHERE id = '$c'")" "version $old: the signed result says why"
done
assert_eq "$stored" "$(sha256sum <"$D/device-policy.json")" "refused versions: the stored policy unchanged"
policy_version_is "$v2" && ok "refused versions: posture still reports $v2" || not_ok "refused versions: posture still reports $v2" "$(posture_version)"
assert_eq "b false" "$(prop Locked)" "refused versions: not locked (the 1 s lease was not applied)"

# ---- --all: a fleet version above every policy queued before, applied like the others ----
EXPECT_NAME="trustpcctl policy set --all" expect_ok ctl --json policy set --all heartbeat=5s screen_lock=1h
c4=$(jq -r '.[0].id' "$EXPECT_STDOUT")
v4=$(db "SELECT json_extract(args, '\$.version') FROM commands WHERE id = '$c4'")
(( v4 > v2 )) && ok "--all picks fleet version $v4 > $v2" || not_ok "--all picks a newer fleet version" "$v4 <= $v2"
poll_until 30 state_is "$c4" done && ok "--all policy: done" || not_ok "--all policy: done" "$(cmd_state "$c4")"
assert_eq "$v4 3600" "$(jq -r '"\(.version) \(.screen_lock)"' "$D/device-policy.json")" "--all policy stored"
expect_fail 2 "Usage" ctl policy set --all "$id" heartbeat=5s

# ---- the offline lease: no check-in for 4 s with the server stopped → the agent locks itself ----
e0=$(prop Epoch | awk '{print $2}')
EXPECT_NAME="trustpcctl policy set offline_lease=4s" expect_ok ctl --json policy set "$id" heartbeat=5s offline_lease=4s
c3=$(jq -r '.[0].id' "$EXPECT_STDOUT")
poll_until 30 state_is "$c3" done && ok "lease policy: done" || not_ok "lease policy: done" "$(cmd_state "$c3")"
assert_eq "b false" "$(prop Locked)" "lease policy applied: not locked while the server answers"
ck=$(jq -r .last_checkin "$D/checkin.json" 2>/dev/null || echo 0)
(( ck >= $(date +%s) - 30 )) && ok "lease policy: the executor recorded the check-in ($ck)" || not_ok "lease policy: the executor recorded the check-in" "$ck"
server_stop
ok "server stopped"
locked() { [[ "$(prop Locked)" == "b true" ]]; }
if poll_until 20 locked; then ok "lease expired: D-Bus Locked=true"; else not_ok "lease expired: D-Bus Locked=true" "$(tail -n 20 "$T/agent.log")"; fi
assert_eq "t $((e0 + 1))" "$(prop Epoch)" "lease expired: D-Bus Epoch moved by one"
assert_file_contains "$T/agent.log" "Offline lease of 4 s expired without a successful check-in: locked at epoch $((e0 + 1))" \
	"the executor logs the lease lock"
assert_eq "true $((e0 + 1))" "$(jq -r '"\(.locked) \(.epoch)"' "$D/commands.json")" \
	"lease expired: recorded in the executor's state like a lock"
kill "$agent_pid"
wait "$agent_pid" 2>/dev/null || true
assert_eq "$((c0 + 1))" "$(counter)" "lease expired: the TPM lock counter moved by one (tpm2_nvread)"

# A restart does not start the lease afresh: it runs from the recorded check-in, which is more
# than 4 s ago, so the restarted agent acts at once (a fresh lease would wait 4 s) — already
# locked: nothing incremented again.
: >"$T/agent2.log"
DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS" "$trustpcd" run --state-dir "$D" --server "localhost:$DEVICE_PORT" \
	2>>"$T/agent2.log" &
agent_pid=$!
cleanup_push "kill $agent_pid 2>/dev/null; wait $agent_pid 2>/dev/null"
t0=$(now_ms)
acted() { grep -q "Offline lease: already locked" "$T/agent2.log"; }
if poll_until 10 acted; then ok "restart: the lease expired at once"; else not_ok "restart: the lease expired at once" "$(cat "$T/agent2.log")"; fi
assert_file_contains "$T/agent2.log" "Device policy version [0-9]+ enforced: USB storage allowed, screen lock not enforced" \
	"restart: the applied policy's settings are enforced again (/run is empty after a boot)"
took=$(( $(now_ms) - t0 ))
(( took < 3000 )) && ok "restart: acted after $took ms (< the 4 s of a fresh lease)" || not_ok "restart: acted before a fresh lease would have" "$took ms"
kill "$agent_pid"
wait "$agent_pid" 2>/dev/null || true
assert_eq "$((c0 + 1))" "$(counter)" "restart while locked: the counter did not move again"
test_done
