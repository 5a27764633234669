#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Crashes around signed commands with the real trustpc-server, the real trustpcd (executor and
# network process), swtpm and LUKS2 image files (issue 4, docs/PROTOCOL.md "Commands"):
#   (a) a lock executed, the network process SIGKILLed (with the executor) before the signed result
#       left: after the agent's restart the server redelivers, the executor answers from its stored
#       result, the TPM counter moved exactly once, the command ends `done`, audited once;
#   (b) a lock executed, the SERVER SIGKILLed before the result reached it (the agent paused there,
#       then let go into the dead connection): after the server's restart the agent reconnects, the
#       command is redelivered and ends `done`, the counter moved exactly once;
#   (c) a lock queued while the device is offline is delivered and executed on connect (the same
#       with enroll-client in test-server-commands.sh; here with trustpcd);
#   (d) a wipe of the corporate volume interrupted as in (a): the corporate image never opens again
#       (passphrase), the personal image does, the wipe is `done` once.
# The stop point is deterministic: gdb attached to the network process breaks at
# command_result_sign(), which runs after the executor's reply (lock done, state written) and
# before anything is sent. No daemon change, no test hook.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/test-server-common.sh"
source "$TRUSTPC_SOURCE_ROOT/tests/lib/swtpm.sh"
source "$TRUSTPC_SOURCE_ROOT/tests/lib/dbus.sh"
source "$TRUSTPC_SOURCE_ROOT/tests/lib/luks.sh"
require_cmd jq dbus-daemon busctl gdb tpm2_nvread cryptsetup xxd

trustpcd="$TRUSTPC_BUILD_ROOT/daemon/trustpcd"
CTL=$(find_binary trustpcctl)
[[ -x "$trustpcd" && -n "$CTL" ]] || { not_ok "trustpcd and trustpcctl are built under $TRUSTPC_BUILD_ROOT"; exit 1; }
T=$TRUSTPC_TEST_TMP
st="$T/server"
server_init "$st"
printf 'heartbeat = 5\n' >"$T/test.conf"
(umask 077 && "$SERVER_BIN" operator add op-helpdesk --role helpdesk --state-dir "$st" >"$T/helpdesk.token")
swtpm_start dev >/dev/null
"$SERVER_BIN" image set base "7=$(tpm_pcr_read dev 7)" "11=$(tpm_pcr_read dev 11)" --state-dir "$st" >/dev/null
server_start "$st" --tpm-ca "$SWTPM_CA_CERT" --config "$T/test.conf"
PORTS=(--enroll-port "$ENROLL_PORT" --device-port "$DEVICE_PORT" --admin-port "$ADMIN_PORT")

D="$T/agent"
EXPECT_NAME="trustpcd enroll" expect_ok "$trustpcd" enroll --server "localhost:$ENROLL_PORT" --ca "$st/ca.pem" \
	--token "$("$SERVER_BIN" token create --image base --state-dir "$st")" --state-dir "$D"
id=$(cat "$D/device-id")
CORP=$T/corp.img
PERS=$T/personal.img
luks_image_make "$CORP"
luks_image_make "$PERS"
printf 'volume.corporate = %s\nvolume.personal = %s\n' "$CORP" "$PERS" >"$D/trustpcd.conf"

export TRUSTPC_SERVER="localhost:$ADMIN_PORT" TRUSTPC_CA="$st/ca.pem"
ctl() { "$CTL" --token-file "$T/helpdesk.token" "$@"; }
cmd_state() { db "SELECT state FROM commands WHERE id = '$1'"; }
state_is() { [[ "$(cmd_state "$1")" == "$2" ]]; }
# The TPM lock counter itself (not the daemon's idea of it), read while no trustpcd holds the TPM.
counter() { printf '%d' "0x$(tpm2_nvread 0x01807c50 2>/dev/null | xxd -p)"; }
executed_seq() { jq -r .last_seq "$D/commands.json" 2>/dev/null; }

bus_start
B=(busctl --address="$BUS_ADDRESS" --no-pager)
prop() { "${B[@]}" get-property org.trustpc.Agent1 /org/trustpc/Agent1 org.trustpc.Agent1 "$1" 2>/dev/null; }
attested() { [[ "$(prop Attested)" == "b true" ]]; }
agent_pid=""
agent_start() {
	DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS" "$trustpcd" run --state-dir "$D" --server "localhost:$DEVICE_PORT" \
		2>>"$T/agent.log" &
	agent_pid=$!
	cleanup_push "kill -9 $agent_pid 2>/dev/null"
	poll_until 30 attested || { not_ok "agent attested" "$(tail -n 20 "$T/agent.log")"; return 1; }
}
agent_kill() { # agent_kill [MARK]: SIGKILL the executor and its network process (no clean shutdown)
	local net
	net=$(pgrep -P "$agent_pid" || true)
	kill -9 "$agent_pid" ${net:+"$net"} 2>/dev/null || true
	wait "$agent_pid" 2>/dev/null || true
	# a traced process stays a zombie until its tracer lets go
	[[ -n "${1:-}" ]] && gdb_finish "$1"
	agent_gone() { ! kill -0 "$agent_pid" 2>/dev/null && { [[ -z "$net" ]] || ! kill -0 "$net" 2>/dev/null; }; }
	poll_until 10 agent_gone
}
network_pid() { pgrep -P "$agent_pid"; }

# pause_at_result MARK: gdb on the network process, stopped at command_result_sign (the executor has
# answered, nothing is sent yet). MARK.hit appears when it stops there; creating MARK.go makes gdb
# detach (the process goes on) — unless the process was killed meanwhile.
pause_at_result() {
	local mark=$1 net
	net=$(network_pid)
	rm -f "$mark".*
	gdb -q -nx -batch -p "$net" -ex 'set confirm off' -ex 'break command_result_sign' \
		-ex "shell touch $mark.attached" -ex continue -ex "shell touch $mark.hit" \
		-ex "shell i=0; while [ ! -e $mark.go ] && [ \$i -lt 600 ]; do sleep 0.1; i=\$((i+1)); done" \
		-ex 'delete' -ex detach >"$mark.gdb" 2>&1 &
	gdb_pid=$!
	cleanup_push "kill -9 $gdb_pid 2>/dev/null"
	poll_until 30 test -e "$mark.attached" || { not_ok "gdb attached to the network process" "$(cat "$mark.gdb")"; return 1; }
	# a host that forbids ptrace (no CAP_SYS_PTRACE, yama scope 3) cannot stop the process there
	if grep -q "ptrace: Operation not permitted" "$mark.gdb"; then
		skip "gdb cannot attach to the network process here (ptrace not permitted)"
	fi
}
gdb_finish() { touch "$1.go"; wait "$gdb_pid" 2>/dev/null || true; }

agent_start
ok "trustpcd attested"

# ---- (c) queued while offline → delivered on connect ---------------------------------------------
agent_kill
c0=$(counter)
EXPECT_NAME="(c) lock queued while the device is offline" expect_ok ctl --json lock "$id" --reason "offline"
lockc=$(jq -r '.[0].id' "$EXPECT_STDOUT")
assert_eq queued "$(cmd_state "$lockc")" "(c) stored as queued"
agent_start
if poll_until 20 state_is "$lockc" "done"; then ok "(c) delivered on connect and done"; else
	not_ok "(c) delivered on connect and done" "$(cmd_state "$lockc"; tail -n 10 "$T/agent.log")"
fi
agent_kill
assert_eq $((c0 + 1)) "$(counter)" "(c) the TPM counter moved by one"
assert_eq $((c0 + 1)) "$(db "SELECT epoch FROM commands WHERE id = '$lockc'")" "(c) the result's epoch is the counter"

# ---- (a) the network process killed between the executed lock and its result ----------------------
agent_start
c0=$(db "SELECT epoch FROM commands WHERE id = '$lockc'")
done0=$(audit_count command.done "$id")
pause_at_result "$T/a"
EXPECT_NAME="(a) lock queued" expect_ok ctl --json lock "$id" --reason "crash a"
locka=$(jq -r '.[0].id' "$EXPECT_STDOUT")
seqa=$(jq -r '.[0].seq' "$EXPECT_STDOUT")
if poll_until 30 test -e "$T/a.hit"; then ok "(a) the network process stopped before sending the result"; else
	not_ok "(a) the network process stopped before sending the result" "$(cat "$T/a.gdb")"
fi
assert_eq "$seqa" "$(executed_seq)" "(a) the executor recorded the lock (last_seq $seqa) before the result"
assert_eq delivered "$(cmd_state "$locka")" "(a) the server has it delivered, no result"
agent_kill "$T/a"
assert_eq $((c0 + 1)) "$(counter)" "(a) after the crash the counter moved by one"
assert_eq delivered "$(cmd_state "$locka")" "(a) still delivered while the device is down"
agent_start
if poll_until 20 state_is "$locka" "done"; then ok "(a) redelivered after the restart: done"; else
	not_ok "(a) redelivered after the restart: done" "$(cmd_state "$locka"; tail -n 10 "$T/agent.log")"
fi
assert_file_contains "$T/agent.log" "Command $locka \(seq $seqa\) was executed already; answering with its stored result" \
	"(a) the executor answered from its stored result"
assert_eq $((c0 + 1)) "$(db "SELECT epoch FROM commands WHERE id = '$locka'")" "(a) the result carries epoch $((c0 + 1))"
assert_eq $((done0 + 1)) "$(audit_count command.done "$id")" "(a) one command.done audit row"
agent_kill
assert_eq $((c0 + 1)) "$(counter)" "(a) exactly once: the counter moved by one in all"

# ---- (b) the server killed between delivery and result --------------------------------------------
agent_start
c0=$(db "SELECT epoch FROM commands WHERE id = '$locka'")
done0=$(audit_count command.done "$id")
pause_at_result "$T/b"
EXPECT_NAME="(b) lock queued" expect_ok ctl --json lock "$id" --reason "crash b"
lockb=$(jq -r '.[0].id' "$EXPECT_STDOUT")
if poll_until 30 test -e "$T/b.hit"; then ok "(b) the agent stopped before sending the result"; else
	not_ok "(b) the agent stopped before sending the result" "$(cat "$T/b.gdb")"
fi
assert_eq delivered "$(cmd_state "$lockb")" "(b) the server marked it delivered"
server_stop KILL
assert_eq 137 "$SERVER_RC" "(b) the server died of SIGKILL"
gdb_finish "$T/b" # the agent goes on: its result goes into a dead connection, it reconnects
server_start "$st" --tpm-ca "$SWTPM_CA_CERT" --config "$T/test.conf" "${PORTS[@]}"
if poll_until 60 state_is "$lockb" "done"; then ok "(b) after the server's restart the agent reconnected: done"; else
	not_ok "(b) after the server's restart the agent reconnected: done" "$(cmd_state "$lockb"; tail -n 10 "$T/agent.log")"
fi
assert_file_contains "$T/agent.log" "Command $lockb \(seq [0-9]+\) was executed already; answering with its stored result" \
	"(b) the redelivery was answered from the stored result"
assert_eq $((done0 + 1)) "$(audit_count command.done "$id")" "(b) one command.done audit row"
agent_kill
assert_eq $((c0 + 1)) "$(counter)" "(b) exactly once: the counter moved by one"
assert_eq $((c0 + 1)) "$(db "SELECT epoch FROM commands WHERE id = '$lockb'")" "(b) the stored epoch is the counter"

# ---- (d) a wipe interrupted like (a) ---------------------------------------------------------------
EXPECT_NAME="(d) before: the corporate passphrase opens corp.img" expect_ok luks_check_passphrase "$CORP" "$LUKS_TEST_PASSPHRASE"
agent_start
c0=$(db "SELECT epoch FROM commands WHERE id = '$lockb'")
done0=$(audit_count command.done "$id")
pause_at_result "$T/d"
EXPECT_NAME="(d) wipe corporate queued" expect_ok ctl --json wipe "$id" --class corporate
wiped=$(jq -r '.[0].id' "$EXPECT_STDOUT")
if poll_until 30 test -e "$T/d.hit"; then ok "(d) the network process stopped before sending the result"; else
	not_ok "(d) the network process stopped before sending the result" "$(cat "$T/d.gdb")"
fi
agent_kill "$T/d"
assert_eq delivered "$(cmd_state "$wiped")" "(d) the server has no result"
EXPECT_NAME="(d) already erased: the passphrase no longer opens corp.img" expect_fail '*' "" luks_check_passphrase "$CORP" "$LUKS_TEST_PASSPHRASE"
agent_start
if poll_until 20 state_is "$wiped" "done"; then ok "(d) redelivered after the restart: done"; else
	not_ok "(d) redelivered after the restart: done" "$(cmd_state "$wiped"; tail -n 10 "$T/agent.log")"
fi
assert_match "corp.img" "$(db "SELECT reason FROM commands WHERE id = '$wiped'")" "(d) the stored result names what was erased"
assert_eq $((done0 + 1)) "$(audit_count command.done "$id")" "(d) one command.done audit row for the wipe"
agent_kill
EXPECT_NAME="(d) after the restart corp.img still does not open" expect_fail '*' "" luks_check_passphrase "$CORP" "$LUKS_TEST_PASSPHRASE"
EXPECT_NAME="(d) personal.img still opens" expect_ok luks_check_passphrase "$PERS" "$LUKS_TEST_PASSPHRASE"
assert_eq "$c0" "$(counter)" "(d) the wipe did not move the lock counter"
test_done
