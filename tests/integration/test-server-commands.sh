#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Signed commands through a real trustpc-server, trustpcctl and a device (enroll-client.c on a real
# swtpm, verifying each COMMAND with command_verify against the server's command.pub and answering
# with results signed by its TLS key): queued while offline → delivered on connect; queued while
# connected → delivered at once; result → done with its times; a quarantined device gets the lock
# but not the policy; a forged result is refused and the command stays delivered; the server
# SIGKILLed between queueing and delivery → delivered exactly once after the restart; the
# recovery-key route returns the escrowed key (the same as trustpc-disk escrow-open).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/test-server-common.sh"
source "$TRUSTPC_SOURCE_ROOT/tests/lib/swtpm.sh"
require_cmd jq

CTL=$(find_binary trustpcctl)
[[ -n "$CTL" ]] || {
	echo "trustpcctl not built under $TRUSTPC_BUILD_ROOT" >&2
	exit 1
}
T=$TRUSTPC_TEST_TMP
st="$T/state"
server_init "$st"
printf 'heartbeat = 5\nattest_timeout = 5\ncommand_ttl = 3600\n' >"$T/test.conf"
# command_ttl below a minute cannot outlive a delivery: refused at start.
printf 'command_ttl = 10\n' >"$T/bad.conf"
expect_fail 3 "command_ttl = '10' must be 60-31622400 seconds" "$SERVER_BIN" run --state-dir "$st" --config "$T/bad.conf"
for role in viewer helpdesk admin; do
	(umask 077 && "$SERVER_BIN" operator add "op-$role" --role "$role" --state-dir "$st" >"$T/$role.token")
done
swtpm_start dev >/dev/null
"$SERVER_BIN" image set base "7=$(tpm_pcr_read dev 7)" "11=$(tpm_pcr_read dev 11)" --state-dir "$st" >/dev/null
start() {
	server_start "$st" --tpm-ca "$SWTPM_CA_CERT" --config "$T/test.conf" "$@"
	export TRUSTPC_SERVER="localhost:$ADMIN_PORT" TRUSTPC_CA="$st/ca.pem"
}
start
dev="$T/dev"
client enroll --server "127.0.0.1:$ENROLL_PORT" --ca "$st/ca.pem" --state "$dev" \
	--token "$("$SERVER_BIN" token create --image base --state-dir "$st")" >/dev/null
id=$(cat "$dev/device-id")
uuid=12345678-1234-1234-1234-123456789abc
EXPECT_NAME="escrow uploaded" expect_ok client attest --server "127.0.0.1:$DEVICE_PORT" --state "$dev" --escrow "$uuid"

ctl() { # ctl ROLE ARGS…
	local role=$1
	shift
	"$CTL" --token-file "$T/$role.token" "$@"
}
cmd_state() { db "SELECT state FROM commands WHERE id = '$1'"; }

# The device, in the background (the binary itself, so that $! is the client): answers commands.
log="$T/device.log"
device_pid=""
device_start() {
	: >"$log"
	"$CLIENT_BIN" attest --server "127.0.0.1:$DEVICE_PORT" --state "$dev" --run 30 \
		--command-key "$st/command.pub" "$@" >>"$log" 2>>"$T/device.err" &
	device_pid=$!
	cleanup_push "kill $device_pid 2>/dev/null"
	poll_until 20 grep -q '^attest ' "$log" || not_ok "device attested" "$(cat "$log" "$T/device.err")"
}
device_stop() {
	kill "$device_pid" 2>/dev/null || true
	wait "$device_pid" 2>/dev/null || true
}
state_is() { [[ "$(cmd_state "$1")" == "$2" ]]; }

# ---- queued while the device is offline → delivered when it connects ----
EXPECT_NAME="lock queued for an offline device" expect_ok ctl helpdesk --json lock "${id:0:8}" --reason "stolen bag"
lock1=$(jq -r '.[0].id' "$EXPECT_STDOUT")
assert_eq queued "$(jq -r '.[0].state' "$EXPECT_STDOUT")" "answer: queued"
assert_eq 1 "$(jq -r '.[0].seq' "$EXPECT_STDOUT")" "first seq is 1"
assert_eq queued "$(cmd_state "$lock1")" "stored as queued"
assert_eq 1 "$(audit_count command.queue "$id")" "queueing audited"
device_start --result-epoch 4
poll_until 20 state_is "$lock1" done && ok "lock delivered on connect and done" ||
	not_ok "lock delivered on connect and done" "$(cat "$log")"
assert_file_contains "$log" "^command $lock1 lock seq=1 ttl=3600$" \
	"the device verified the lock (command.pub, its id, seq 1, exp = iat + command_ttl)"
assert_eq 4 "$(db "SELECT epoch FROM commands WHERE id = '$lock1'")" "the result's epoch is stored"
assert_eq "locked" "$(db "SELECT reason FROM commands WHERE id = '$lock1'")" "the result's reason is stored"
assert_eq 1 "$(db "SELECT delivered_at > 0 AND finished_at >= delivered_at AND delivered_at >= created_at FROM commands WHERE id = '$lock1'")" \
	"queued, delivered and finished times in order"
assert_eq 1 "$(audit_count command.done "$id")" "result audited"
assert_eq 1 "$(db "SELECT length(result_cose) > 64 FROM commands WHERE id = '$lock1'")" "the signed result is kept"

# ---- queued while connected → delivered at once ----
t0=$(now_ms)
EXPECT_NAME="unlock while connected" expect_ok ctl helpdesk --json unlock "$id"
unlock1=$(jq -r '.[0].id' "$EXPECT_STDOUT")
assert_eq 4 "$(jq -r '.[0].args.epoch' "$EXPECT_STDOUT")" "the unlock's policy is for the epoch the lock reported"
poll_until 10 state_is "$unlock1" done && ok "unlock delivered at once and done" ||
	not_ok "unlock delivered at once and done" "$(cat "$log")"
took=$(($(now_ms) - t0))
echo "# operator command → done: $took ms"
# Well under the heartbeat (5 s): the frame goes out at once, not with the device's next heartbeat.
((took < 2000)) && ok "delivered without waiting for a heartbeat ($took ms)" || not_ok "delivered without waiting for a heartbeat" "$took ms"
assert_file_contains "$log" "^command $unlock1 unlock seq=2 ttl=3600$" "the device got seq 2"

expect_ok ctl viewer --json commands "$id"
assert_eq "done done" "$(jq -r '[.[].state] | join(" ")' "$EXPECT_STDOUT")" "commands --json: both done"
assert_eq "2 1" "$(jq -r '[.[].seq] | map(tostring) | join(" ")' "$EXPECT_STDOUT")" "newest first"
expect_ok ctl viewer commands
assert_match 'COMMAND +DEVICE +SEQ +TYPE +STATE' "$(head -n1 "$EXPECT_STDOUT")" "commands: table"
expect_ok ctl viewer --json show "$id"
assert_eq 2 "$(jq -r '.commands | length' "$EXPECT_STDOUT")" "show lists the device's commands"
expect_ok ctl viewer show "$id"
assert_match 'SEQ +TYPE +STATE +QUEUED +DELIVERED +FINISHED +REASON' "$(cat "$EXPECT_STDOUT")" "show: commands table"
assert_match '2 +unlock +done ' "$(cat "$EXPECT_STDOUT")" "show: the unlock, done"
# Roles: a viewer cannot lock (exit 4), nothing queued.
expect_fail 4 "needs the helpdesk role" ctl viewer lock "$id" --reason x
assert_eq 2 "$(db "SELECT count(*) FROM commands")" "the refused lock was not queued"
expect_fail 2 "" ctl helpdesk wipe "$id"
expect_fail 1 "class must be" ctl helpdesk wipe "$id" --class "../x"

# ---- a forged result (signed by another key) is refused; the command stays delivered ----
device_stop
device_start --result forged
EXPECT_NAME="wipe while connected" expect_ok ctl helpdesk --json wipe "$id" --class corporate
wipe1=$(jq -r '.[0].id' "$EXPECT_STDOUT")
refused() { [[ $(audit_count command.result-refused "$id") -ge 1 ]]; }
poll_until 10 refused && ok "forged result refused and audited" || not_ok "forged result refused and audited" "$(cat "$log")"
assert_file_contains "$log" "^result $wipe1 forged$" "the device sent the forged result"
assert_eq delivered "$(cmd_state "$wipe1")" "the command stays delivered"
assert_eq "" "$(db "SELECT coalesce(finished_at, '') FROM commands WHERE id = '$wipe1'")" "no finish time"
assert_match 'result refused' "$(cat "$(server_log)")" "the server logged the refusal"
# The honest device gets it again on its next connection and finishes it.
device_stop
device_start
poll_until 20 state_is "$wipe1" done && ok "redelivered on reconnect, then done" || not_ok "redelivered on reconnect, then done" "$(cat "$log")"

# ---- quarantined: the lock reaches it, the policy does not ----
device_stop
other=$(printf 'not what was measured' | sha256sum | cut -d' ' -f1)
device_start --event "11:$other" --result-epoch 5
assert_file_contains "$log" '^attest quarantined' "device quarantined"
EXPECT_NAME="lock to a quarantined device" expect_ok ctl helpdesk --json lock "$id" --reason "compromised"
lock2=$(jq -r '.[0].id' "$EXPECT_STDOUT")
poll_until 10 state_is "$lock2" done && ok "quarantined device got the lock" || not_ok "quarantined device got the lock" "$(cat "$log")"
# trustpcctl has no policy verb yet: the admin API directly, over TLS checked against the fleet CA.
api_post() { # api_post ROLE PATH JSON → the answer's body
	python3 - "$st/ca.pem" "$ADMIN_PORT" "$(cat "$T/$1.token")" "$2" "$3" <<-'EOF'
		import http.client, ssl, sys
		ctx = ssl.create_default_context(cafile=sys.argv[1])
		c = http.client.HTTPSConnection("localhost", int(sys.argv[2]), context=ctx)
		c.request("POST", sys.argv[4], body=sys.argv[5],
		          headers={"Authorization": "Bearer " + sys.argv[3], "Content-Type": "application/json"})
		print(c.getresponse().read().decode())
	EOF
}
pol=$(api_post admin "/api/v1/devices/$id/commands" '{"type":"policy","version":2,"heartbeat":60}')
pol1=$(jq -r .id <<<"$pol")
assert_eq queued "$(jq -r .state <<<"$pol")" "policy queued"
# Delivery is decided inside the request: when the answer is back, it was (not) sent.
assert_eq queued "$(cmd_state "$pol1")" "the quarantined device did not get the policy"
assert_eq 0 "$(grep -c " policy seq=" "$log" || true)" "no policy frame reached it"
# A lock sent past the held-back policy makes it unexecutable (its seq is now below the device's
# last): the server finishes it as failed, saying why, instead of leaving it queued forever.
EXPECT_NAME="second lock past the held policy" expect_ok ctl helpdesk --json lock "$id" --reason "still compromised"
lock2b=$(jq -r '.[0].id' "$EXPECT_STDOUT")
poll_until 10 state_is "$lock2b" done && ok "the second lock reached it" || not_ok "the second lock reached it" "$(cat "$log")"
assert_eq failed "$(cmd_state "$pol1")" "the overtaken policy is failed"
assert_match "superseded by seq" "$(db "SELECT reason FROM commands WHERE id = '$pol1'")" "with the reason"
assert_eq 1 "$(db "SELECT count(*) FROM audit WHERE action = 'command.failed' AND actor = 'trustpc-server'")" \
	"audited as the server's decision"
device_stop
device_start
pol=$(api_post admin "/api/v1/devices/$id/commands" '{"type":"policy","version":3,"heartbeat":60}')
pol2=$(jq -r .id <<<"$pol")
poll_until 20 state_is "$pol2" done && ok "trusted again: a policy is delivered" ||
	not_ok "trusted again: a policy is delivered" "$(cat "$log")"
assert_eq 0 "$(grep -c "^command $pol1 " "$log" || true)" "the superseded policy is never sent"

# ---- the server killed after queueing, before delivery → delivered exactly once ----
device_stop
EXPECT_NAME="lock queued, device offline" expect_ok ctl helpdesk --json lock "$id" --reason "crash test"
lock3=$(jq -r '.[0].id' "$EXPECT_STDOUT")
server_stop KILL
assert_eq 137 "$SERVER_RC" "server killed"
assert_eq queued "$(cmd_state "$lock3")" "the queued command survived the crash"
start --enroll-port "$ENROLL_PORT" --device-port "$DEVICE_PORT" --admin-port "$ADMIN_PORT"
device_start --result-epoch 6
poll_until 20 state_is "$lock3" done && ok "delivered after the restart" || not_ok "delivered after the restart" "$(cat "$log")"
assert_eq 1 "$(grep -c "^command $lock3 " "$log" || true)" "delivered exactly once"
assert_eq 0 "$(grep -c "^command-again $lock3 " "$log" || true)" "not delivered again"
assert_eq 1 "$(db "SELECT count(*) FROM audit WHERE action = 'command.done' AND details LIKE '%$lock3%'")" \
	"one result recorded"
# The next unlock is for the epoch of the newest lock.
EXPECT_NAME="unlock after the second lock" expect_ok ctl helpdesk --json unlock "$id"
assert_eq 6 "$(jq -r '.[0].args.epoch' "$EXPECT_STDOUT")" "unlock epoch follows the last lock result"
unlock2=$(jq -r '.[0].id' "$EXPECT_STDOUT")
poll_until 10 state_is "$unlock2" done && ok "second unlock done" || not_ok "second unlock done" "$(cat "$log")"
device_stop

# ---- one command in flight per device: the next is sent when the previous result is in ----
EXPECT_NAME="lock queued (offline)" expect_ok ctl helpdesk --json lock "$id" --reason "in flight"
lock4=$(jq -r '.[0].id' "$EXPECT_STDOUT")
EXPECT_NAME="wipe queued (offline)" expect_ok ctl helpdesk --json wipe "$id" --class corporate
wipe2=$(jq -r '.[0].id' "$EXPECT_STDOUT")
device_start --result none
poll_until 10 state_is "$lock4" delivered && ok "the first is delivered" || not_ok "the first is delivered" "$(cat "$log")"
# Both would have been marked in the same step had the server sent both.
assert_eq queued "$(cmd_state "$wipe2")" "the second waits for the first one's result"
device_stop
device_start --result-epoch 7
poll_until 20 state_is "$wipe2" done && ok "both done once the results come" || not_ok "both done once the results come" "$(cat "$log")"
assert_eq done "$(cmd_state "$lock4")" "the first done"
assert_eq "$lock4 $wipe2" "$(grep -E '^command ' "$log" | cut -d' ' -f2 | tr '\n' ' ' | sed 's/ $//')" "in seq order"
device_stop

# ---- recovery key: admin only, audited, the escrowed secret ----
expect_fail 4 "needs the admin role" ctl helpdesk recovery-key "$id"
assert_eq 0 "$(audit_count recovery-key.read "$id")" "a refused read is not audited"
EXPECT_NAME="recovery-key" expect_ok ctl admin recovery-key "$id"
key=$(cat "$EXPECT_STDOUT")
assert_eq test-recovery-key "$key" "the escrowed recovery key"
assert_eq 1 "$(audit_count recovery-key.read "$id")" "the read is audited"
expect_ok ctl admin --json recovery-key "$id"
assert_eq "$uuid" "$(jq -r .luks_uuid "$EXPECT_STDOUT")" "names the LUKS volume"
disk=$(find_binary trustpc-disk || true)
if [[ -n "$disk" ]]; then
	db "SELECT escrow FROM devices WHERE device_id = '$id'" >"$T/escrow.json"
	EXPECT_NAME="trustpc-disk escrow-open" expect_ok "$disk" escrow-open --key "$st/escrow.key" "$T/escrow.json"
	assert_eq "$(cat "$EXPECT_STDOUT")" "$key" "the same key as trustpc-disk escrow-open"
fi

# The audit chain holds all of it.
expect_ok ctl viewer audit verify
server_stop TERM
assert_eq 0 "$SERVER_RC" "server stopped"
test_done
