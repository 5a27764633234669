#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Signed commands end to end through the real trustpcd: a real trustpc-server queues a lock from
# the admin API, the agent's network process checks it and hands it to the executor, which
# increments the TPM lock counter; the signed result reaches the server (command done) and D-Bus
# shows Locked=true with the new Epoch. A redelivery after an agent restart runs nothing again.
# Without the command key the agent rejects on its own; with it back, the pending lock runs once;
# an unlock carries the server's disk policy for the new epoch: Locked=false, policy.json stored.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/test-server-common.sh"
source "$TRUSTPC_SOURCE_ROOT/tests/lib/swtpm.sh"
source "$TRUSTPC_SOURCE_ROOT/tests/lib/dbus.sh"
require_cmd jq curl dbus-daemon busctl

trustpcd="$TRUSTPC_BUILD_ROOT/daemon/trustpcd"
[[ -x "$trustpcd" ]] || { not_ok "trustpcd is built at $trustpcd"; exit 1; }
T=$TRUSTPC_TEST_TMP
st="$T/server"
server_init "$st"
printf 'heartbeat = 5\n' >"$T/test.conf"
(umask 077 && "$SERVER_BIN" operator add op-helpdesk --role helpdesk --state-dir "$st" >"$T/helpdesk.token")
swtpm_start dev >/dev/null
"$SERVER_BIN" image set base "7=$(tpm_pcr_read dev 7)" "11=$(tpm_pcr_read dev 11)" --state-dir "$st" >/dev/null
server_start "$st" --tpm-ca "$SWTPM_CA_CERT" --config "$T/test.conf"

D="$T/agent"
EXPECT_NAME="trustpcd enroll" expect_ok "$trustpcd" enroll --server "localhost:$ENROLL_PORT" --ca "$st/ca.pem" \
	--token "$("$SERVER_BIN" token create --image base --state-dir "$st")" --state-dir "$D"
id=$(cat "$D/device-id")
# The server sends its command public key in `enrolled`; the agent stores it.
pubkey_der() { openssl pkey -pubin -in "$1" -outform DER 2>/dev/null | sha256sum; }
assert_eq "$(pubkey_der "$st/command.pub")" "$(pubkey_der "$D/command-key.pem")" \
	"enrollment stored the server's command key"

bus_start
B=(busctl --address="$BUS_ADDRESS" --no-pager)
P=(org.trustpc.Agent1 /org/trustpc/Agent1 org.trustpc.Agent1)
prop() { "${B[@]}" get-property "${P[@]}" "$1" 2>/dev/null; }
agent_start() {
	DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS" "$trustpcd" run --state-dir "$D" --server "localhost:$DEVICE_PORT" \
		2>>"$T/agent.log" &
	agent_pid=$!
	cleanup_push "kill $agent_pid 2>/dev/null; wait $agent_pid 2>/dev/null"
	attested() { [[ "$(prop Attested)" == "b true" ]]; }
	poll_until 30 attested || { not_ok "agent attested" "$(cat "$T/agent.log")"; return 1; }
}
agent_start
ok "trustpcd attested"
assert_eq "b false" "$(prop Locked)" "before the lock: Locked=false"
e0=$(prop Epoch | awk '{print $2}')

api() { # api METHOD PATH [BODY]
	curl -sS --cacert "$st/ca.pem" -H "Authorization: Bearer $(cat "$T/helpdesk.token")" -X "$1" \
		${3:+-H 'Content-Type: application/json' -d "$3"} "https://localhost:$ADMIN_PORT/api/v1/$2"
}
resp=$(api POST "devices/$id/commands" '{"type":"lock","reason":"reported stolen"}')
cid=$(jq -r '.id // .command.id // empty' <<<"$resp")
assert_match '^[0-9a-f]{32}$' "$cid" "the server queued the lock ($resp)"

locked() { [[ "$(prop Locked)" == "b true" ]]; }
if poll_until 30 locked; then ok "D-Bus Locked=true after the lock"; else not_ok "D-Bus Locked=true after the lock" "$(tail -n 20 "$T/agent.log")"; fi
assert_eq "t $((e0 + 1))" "$(prop Epoch)" "D-Bus Epoch moved by one"
done_state() { [[ "$(db "SELECT state FROM commands WHERE id = '$cid'")" == done ]]; }
if poll_until 20 done_state; then ok "the server recorded the signed result: done"; else not_ok "the server recorded the signed result: done" "$(db "SELECT state, reason FROM commands WHERE id = '$cid'")"; fi
assert_file_contains "$T/agent.log" "Command $cid \(lock, seq [0-9]+\): done" "the agent logs the outcome"
assert_eq true "$(jq .locked "$D/commands.json")" "the executor's state: locked"
if grep -q "could not quote" "$T/agent.log"; then not_ok "the lock result went with its TPM quote" "$(grep "could not quote" "$T/agent.log")"; else ok "the lock result went with its TPM quote"; fi

# The agent restarted: whatever the server sends again is answered from the stored result.
kill "$agent_pid"
wait "$agent_pid" 2>/dev/null || true
agent_start
assert_eq "b true" "$(prop Locked)" "after a restart: still Locked=true"
assert_eq "t $((e0 + 1))" "$(prop Epoch)" "after a restart: no second increment"

# Without the command key the network process refuses on its own (nothing reaches the executor)
# and answers with a signed "rejected" that cannot name the command (it could not be parsed): the
# server matches it to the one command in flight on that connection and finishes it as rejected
# with the device's reason — not delivered again on every connection. The device stays as it was.
kill "$agent_pid"
wait "$agent_pid" 2>/dev/null || true
mv "$D/command-key.pem" "$T/command-key.pem.aside"
state_before=$(sha256sum <"$D/commands.json")
agent_start
resp=$(api POST "devices/$id/commands" '{"type":"lock","reason":"again"}')
cid2=$(jq -r '.id // empty' <<<"$resp")
refused() { grep -q "rejected: no fleet command key on the device" "$T/agent.log"; }
if poll_until 20 refused; then ok "no command key: the agent rejects the command and says why"; else not_ok "no command key: the agent rejects the command and says why" "$(tail -n 20 "$T/agent.log")"; fi
cmd_state() { [[ "$(db "SELECT state FROM commands WHERE id = '$1'")" == "$2" ]]; }
poll_until 10 cmd_state "$cid2" rejected && ok "no command key: the server has it rejected" || not_ok "no command key: the server has it rejected" "$(db "SELECT state FROM commands WHERE id = '$cid2'")"
assert_eq "no fleet command key on the device" "$(db "SELECT reason FROM commands WHERE id = '$cid2'")" 	"no command key: the helpdesk sees the device's reason"
assert_eq 1 "$(db "SELECT count(*) FROM audit WHERE action = 'command.rejected' AND details LIKE '%$cid2%'")" 	"no command key: one audit row command.rejected"
assert_eq "t $((e0 + 1))" "$(prop Epoch)" "no command key: the counter did not move"
assert_eq "$state_before" "$(sha256sum <"$D/commands.json")" "no command key: the executor's state unchanged"
assert_eq "b true" "$(prop Attested)" "no command key: the connection stays up"

# The key back: the rejected command is not sent again (the agent logs no second rejection); a
# lock issued again runs once.
kill "$agent_pid"
wait "$agent_pid" 2>/dev/null || true
mv "$T/command-key.pem.aside" "$D/command-key.pem"
agent_start
resp=$(api POST "devices/$id/commands" '{"type":"lock","reason":"again"}')
cid2b=$(jq -r '.id // empty' <<<"$resp")
cmd_done() { [[ "$(db "SELECT state FROM commands WHERE id = '$1'")" == done ]]; }
if poll_until 20 cmd_done "$cid2b"; then ok "key restored: a new lock is executed"; else not_ok "key restored: a new lock is executed" "$(db "SELECT state, reason FROM commands WHERE id = '$cid2b'")"; fi
epoch_is() { [[ "$(prop Epoch)" == "t $1" ]]; }
poll_until 10 epoch_is $((e0 + 2)) && ok "key restored: Epoch $((e0 + 2))" || not_ok "key restored: Epoch $((e0 + 2))" "$(prop Epoch)"
# (commands go out in seq order: had the rejected one still been pending, it would have come first)
assert_eq 1 "$(grep -c "Command .*rejected: no fleet command key" "$T/agent.log")" \
	"key restored: the rejected command was not delivered again"
assert_eq rejected "$(db "SELECT state FROM commands WHERE id = '$cid2'")" "key restored: the rejected one stays rejected"

# Unlock: the server's signed disk policy for the current epoch; the executor checks it and stores it.
resp=$(api POST "devices/$id/commands" '{"type":"unlock"}')
cid3=$(jq -r '.id // empty' <<<"$resp")
assert_match '^[0-9a-f]{32}$' "$cid3" "the server queued the unlock ($resp)"
if poll_until 20 cmd_done "$cid3"; then ok "unlock: done"; else not_ok "unlock: done" "$(db "SELECT state, reason FROM commands WHERE id = '$cid3'"; tail -n 5 "$T/agent.log")"; fi
unlocked() { [[ "$(prop Locked)" == "b false" ]]; }
poll_until 10 unlocked && ok "unlock: D-Bus Locked=false" || not_ok "unlock: D-Bus Locked=false" "$(prop Locked)"
assert_eq $((e0 + 2)) "$(jq -r .epoch "$D/policy.json")" "unlock: policy.json is the new epoch's"
assert_eq "t $((e0 + 2))" "$(prop Epoch)" "unlock: the counter did not move"

# lock --poweroff: the result first (the heartbeat after it is acknowledged only once the server
# has committed it), then the executor asks systemd for poweroff.target. This test's bus has no
# systemd, so the executor says it could not — the order and the refusal are what is checked here;
# the real power-off is shown in the VM (tests/vm).
resp=$(api POST "devices/$id/commands" '{"type":"lock","reason":"stolen","poweroff":true}')
cid4=$(jq -r '.id // empty' <<<"$resp")
asked() { grep -q "Lock with power-off: the server has the result; asking the executor to power off" "$T/agent.log"; }
if poll_until 20 asked; then ok "lock --poweroff: power-off asked after the server acknowledged the result"; else not_ok "lock --poweroff: power-off asked after the server acknowledged the result" "$(tail -n 20 "$T/agent.log")"; fi
# Read once, not polled: the ack is sent only after the result's commit (its signatures are
# checked on the server's worker threads, the ack waits for them).
assert_eq "done" "$(db "SELECT state FROM commands WHERE id = '$cid4'")" "lock --poweroff: done in the database when the agent got the ack"
tried() { grep -q "Cannot power off after the lock (.*): the lock stands" "$T/agent.log"; }
poll_until 10 tried && ok "lock --poweroff: the executor tried systemd and says the lock stands" || not_ok "lock --poweroff: the executor tried systemd and says the lock stands" "$(tail -n 20 "$T/agent.log")"
assert_eq "b true" "$(prop Locked)" "lock --poweroff: Locked=true"
assert_eq "t $((e0 + 3))" "$(prop Epoch)" "lock --poweroff: the counter moved once"

# Re-enrollment with another server (a rebuilt one: a new command key, sequence numbers from 1):
# the device starts its sequence again — with the old last_seq every command would be refused as
# old. The lock state and epoch stay.
kill "$agent_pid"
wait "$agent_pid" 2>/dev/null || true
server_stop
seq_before=$(jq .last_seq "$D/commands.json")
st2="$T/server2"
server_init "$st2"
(umask 077 && "$SERVER_BIN" operator add op-helpdesk --role helpdesk --state-dir "$st2" >"$T/helpdesk.token")
"$SERVER_BIN" image set base "7=$(tpm_pcr_read dev 7)" "11=$(tpm_pcr_read dev 11)" --state-dir "$st2" >/dev/null
server_start "$st2" --tpm-ca "$SWTPM_CA_CERT" --config "$T/test.conf"
st=$st2
EXPECT_NAME="trustpcd enroll with a rebuilt server" expect_ok "$trustpcd" enroll --server "localhost:$ENROLL_PORT" \
	--ca "$st2/ca.pem" --token "$("$SERVER_BIN" token create --image base --state-dir "$st2")" --state-dir "$D"
assert_eq 0 "$(jq .last_seq "$D/commands.json")" "re-enrolled with a new command key: sequence restarted (was $seq_before)"
assert_eq true "$(jq .locked "$D/commands.json")" "re-enrolled: still locked"
agent_start
resp=$(api POST "devices/$id/commands" '{"type":"unlock"}')
cid5=$(jq -r '.id // empty' <<<"$resp")
assert_eq 1 "$(jq .seq <<<"$resp")" "the rebuilt server's first command has seq 1"
if poll_until 20 cmd_done "$cid5"; then ok "re-enrolled: the new server's unlock (seq 1) is executed"; else not_ok "re-enrolled: the new server's unlock (seq 1) is executed" "$(db "SELECT state, reason FROM commands WHERE id = '$cid5'"; tail -n 5 "$T/agent.log")"; fi
poll_until 10 unlocked && ok "re-enrolled: D-Bus Locked=false" || not_ok "re-enrolled: D-Bus Locked=false" "$(prop Locked)"
test_done
