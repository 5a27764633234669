#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# org.trustpc.Agent1 through a real dbus-daemon (a private "system" bus with our policy file,
# DBUS_SYSTEM_BUS_ADDRESS pointing at it): every property readable by root and by another user,
# introspection, CheckInNow() refused for an unenrolled device (root) and for non-root callers (the
# policy), bad calls refused. The enrolled side (Connected/Attested true, CheckInNow working) is
# in test-enroll-attest.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/assert.sh"
source "$here/../lib/swtpm.sh"
source "$here/../lib/dbus.sh"
require_cmd dbus-daemon busctl setpriv tpm2_nvdefine tpm2_nvincrement tpm2_nvread xxd

trustpcd="$TRUSTPC_BUILD_ROOT/daemon/trustpcd"
[[ -x "$trustpcd" ]] || { echo "missing $trustpcd: build first" >&2; exit 1; }
swtpm_start dev >/dev/null

# The lock counter with lib/tpm2's template, incremented a few times: Epoch must show its value.
tpm2_nvdefine -C o -s 8 -a "nt=counter|authread|authwrite|no_da" 0x01807c50 >/dev/null
for _ in 1 2 3; do tpm2_nvincrement 0x01807c50 >/dev/null; done
epoch=$((16#$(tpm2_nvread 0x01807c50 -s 8 | xxd -p)))

bus_start

as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
B=(busctl --address="$BUS_ADDRESS" --no-pager)
P=(org.trustpc.Agent1 /org/trustpc/Agent1 org.trustpc.Agent1)
name_owned() { "${B[@]}" list 2>/dev/null | grep -q '^org.trustpc.Agent1 '; }

state="$TRUSTPC_TEST_TMP/state"
mkdir -p "$state" && chmod 700 "$state"
# The address through the environment, as systemd's test setups and dbus-run-session do.
DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS" "$trustpcd" run --state-dir "$state" >"$TRUSTPC_TEST_TMP/out" 2>"$TRUSTPC_TEST_TMP/err" &
pid=$!
cleanup_push "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
if poll_until 20 name_owned; then ok "trustpcd owns org.trustpc.Agent1 (DBUS_SYSTEM_BUS_ADDRESS)"; else
	not_ok "trustpcd owns org.trustpc.Agent1 (DBUS_SYSTEM_BUS_ADDRESS)" "$(cat "$TRUSTPC_TEST_TMP/err")"; exit 1; fi

# Every property, as root and as an unprivileged user (the policy lets everyone read).
for who in root nobody; do
	run=("${B[@]}")
	[[ $who == nobody ]] && run=(as_nobody "${B[@]}")
	assert_eq 's ""' "$("${run[@]}" get-property "${P[@]}" DeviceId)" "$who: DeviceId is empty when not enrolled"
	assert_eq "b false" "$("${run[@]}" get-property "${P[@]}" Connected)" "$who: Connected false"
	assert_eq "b false" "$("${run[@]}" get-property "${P[@]}" Attested)" "$who: Attested false"
	assert_eq "t $epoch" "$("${run[@]}" get-property "${P[@]}" Epoch)" "$who: Epoch is the TPM lock counter ($epoch)"
	assert_eq "b true" "$("${run[@]}" get-property "${P[@]}" Locked)" "$who: Locked true (no signed policy stored)"
	assert_eq "t 0" "$("${run[@]}" get-property "${P[@]}" LastCheckIn)" "$who: LastCheckIn 0 (never)"
done

# Introspection: the interface with its six properties and the method.
expect_ok "${B[@]}" introspect "${P[@]:0:2}"
for m in DeviceId Connected Attested Epoch Locked LastCheckIn CheckInNow; do
	assert_file_contains "$EXPECT_STDOUT" "^\\.$m " "introspect lists $m"
done
assert_file_contains "$EXPECT_STDOUT" "\\.Connected +property +b +false +emits-change" "Connected emits PropertiesChanged"
assert_file_contains "$EXPECT_STDOUT" "\\.DeviceId +property +s .*const" "DeviceId is constant"
expect_ok as_nobody "${B[@]}" introspect "${P[@]:0:2}"

# CheckInNow: root is refused because there is no enrollment; others by the bus policy; a call with
# arguments by the signature check.
expect_fail '*' 'NotEnrolled|not enrolled' "${B[@]}" call "${P[@]}" CheckInNow
expect_fail '*' 'Access denied|AccessDenied|not allowed|rejected' as_nobody "${B[@]}" call "${P[@]}" CheckInNow
expect_fail '*' 'Invalid|signature|arguments' "${B[@]}" call "${P[@]}" CheckInNow s x
# writes and unknown names
expect_fail '*' '' "${B[@]}" set-property "${P[@]}" Locked b false
expect_fail '*' '' "${B[@]}" get-property "${P[@]}" NoSuchProperty
expect_fail '*' '' as_nobody "${B[@]}" call "${P[@]}" NoSuchMethod
# nothing of that changed the agent: still running, same state
assert_eq "b true" "$("${B[@]}" get-property "${P[@]}" Locked)" "Locked unchanged after the refused calls"
kill -0 "$pid" && ok "trustpcd still running after the refused calls" || not_ok "trustpcd still running after the refused calls"
# The policy: a user other than root and the agent's own may not take the name (here 'daemon'; in
# this test 'nobody' stands for the trustpcd user). Positive control: root may queue for it.
expect_fail '*' 'AccessDenied|Access denied|not allowed' setpriv --reuid=daemon --regid=daemon --clear-groups "${B[@]}" call \
	org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus RequestName su org.trustpc.Agent1 4
EXPECT_NAME="root may queue for the name (positive control)" expect_ok "${B[@]}" call \
	org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus RequestName su org.trustpc.Agent1 4

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
assert_eq 0 "$rc" "SIGTERM: exit 0"
test_done
