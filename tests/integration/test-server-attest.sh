#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Attestation on the device port against a real swtpm (tests/integration/enroll-client.c as the
# device): trusted when the quote matches the image (full and resumed sessions); quarantined,
# with the reason recorded and audited, for a stale nonce, another TLS session's binding, values
# the image does not expect, PCRs the event log does not reproduce, a device without an image;
# refused for anything but `attest` first and for silence; heartbeats in one TLS record (the
# mbedTLS pending-bytes trap); escrow; the server SIGKILLed and restarted → the device reconnects
# and re-attests, nothing lost.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/test-server-common.sh"
source "$TRUSTPC_SOURCE_ROOT/tests/lib/swtpm.sh"

st="$TRUSTPC_TEST_TMP/state"
server_init "$st"
printf 'heartbeat = 5\nattest_timeout = 3\n' >"$TRUSTPC_TEST_TMP/test.conf"
swtpm_start dev >/dev/null
p7=$(tpm_pcr_read dev 7)
p11=$(tpm_pcr_read dev 11)
bad=$(printf 'f%.0s' {1..64})
image_set() { "$SERVER_BIN" image set base "$@" --state-dir "$st" >/dev/null; }
image_set "7=$p7" "11=$p11"
server_start "$st" --tpm-ca "$SWTPM_CA_CERT" --config "$TRUSTPC_TEST_TMP/test.conf"
E="127.0.0.1:$ENROLL_PORT"
D="127.0.0.1:$DEVICE_PORT"
dev="$TRUSTPC_TEST_TMP/dev"
client enroll --server "$E" --ca "$st/ca.pem" --state "$dev" \
	--token "$("$SERVER_BIN" token create --image base --state-dir "$st")" >/dev/null
id=$(cat "$dev/device-id")
attest() { client attest --server "$D" --state "$dev" "$@"; }
reason() { db "SELECT reason FROM devices WHERE device_id = '$id'"; }

# Trusted, on a full and on a resumed TLS session.
EXPECT_NAME="attest: trusted" expect_ok attest --count 2
assert_eq "attest trusted resumed=0 "$'\n'"attest trusted resumed=1 " "$(cat "$EXPECT_STDOUT")" \
	"full handshake then resumed session, both attested and trusted"
assert_eq trusted "$(device_state "$id")" "state trusted"
assert_eq 2 "$(audit_count attest.trusted "$id")" "both attestations audited"
assert_match '"resumed":true' "$(db "SELECT details FROM audit WHERE action = 'attest.trusted' ORDER BY seq DESC LIMIT 1")" \
	"the resumed one is marked as such"
assert_match '"agent_version":"enroll-client"' "$(db "SELECT posture FROM devices")" "posture recorded"
assert_ne 0 "$(db "SELECT attested_at FROM devices")" "attested_at recorded"

# Several frames in one TLS record: the server must not wait for epoll to see the rest.
EXPECT_NAME="heartbeats in one record all answered" expect_ok attest --burst 5
assert_match '^acks 5$' "$(tail -n1 "$EXPECT_STDOUT")" "5 acks"

# quarantined REASON-REGEX ARGS…: the client sees it (exit 4), the state and reason are stored,
# the result is audited; then a clean attestation brings the device back (positive control).
quarantined() {
	local pattern=$1 n
	shift
	n=$(audit_count attest.quarantined "$id")
	EXPECT_NAME="quarantined: $pattern" expect_fail 4 "" attest "$@"
	assert_match "^attest quarantined resumed=[01] .*$pattern" "$(cat "$EXPECT_STDOUT")" "client told why"
	assert_eq quarantined "$(device_state "$id")" "state quarantined"
	assert_match "$pattern" "$(reason)" "reason stored"
	assert_eq $((n + 1)) "$(audit_count attest.quarantined "$id")" "quarantine audited"
	assert_match "$pattern" "$(db "SELECT details FROM audit WHERE action = 'attest.quarantined' ORDER BY seq DESC LIMIT 1")" \
		"audit record has the reason"
}
back_to_trusted() {
	EXPECT_NAME="back to trusted ${1:-}" expect_ok attest "${@:2}"
	assert_eq trusted "$(device_state "$id")" "state trusted again"
	assert_eq "" "$(reason)" "reason cleared"
}

# A quote over an earlier connection's nonce.
quarantined "stale nonce or another TLS session" --stale-nonce
back_to_trusted
# A quote bound to another live TLS session (a relay in the middle).
quarantined "stale nonce or another TLS session" --other-session
back_to_trusted

# Values the image does not expect.
image_set "7=$p7" "11=$bad"
quarantined "PCR 11 is ${p11:0:16}…, image base expects ${bad:0:16}…"
image_set "7=$p7" "11=$p11"
back_to_trusted "(image fixed)"

# The event log must reproduce the quoted PCRs it has events for.
ev=$(printf 'trustpc test event' | sha256sum | cut -d' ' -f1)
other=$(printf 'not what was measured' | sha256sum | cut -d' ' -f1)
tpm_pcr_extend dev 11 "$ev"
p11b=$(tpm_pcr_read dev 11)
image_set "7=$p7" "11=$p11b"
quarantined "PCR 11 does not match the event log" --event "11:$other"
back_to_trusted "(matching event log)" --event "11:$ev"

# Anything but `attest` first: refused, audited, the connection closed; the state is untouched.
rej=$(audit_count device.rejected "$id")
expect_fail 3 "error bad-message: expected 'attest', got 'heartbeat'" attest --garbage
assert_eq $((rej + 1)) "$(audit_count device.rejected "$id")" "out-of-order message audited"
assert_eq trusted "$(device_state "$id")" "a refused connection does not change the state"
# Silence: the attestation deadline (attest_timeout = 3) ends the connection.
expect_fail 3 "error bad-message: no attestation within 3 s" attest --no-attest
assert_eq $((rej + 2)) "$(audit_count device.rejected "$id")" "silent device audited"

# Escrow: bound to this device and volume, encrypted to the server's escrow key.
uuid=12345678-1234-1234-1234-123456789abc
expect_fail 3 "error bad-message: escrow blob context" attest --escrow "$uuid" --escrow-context "recovery-key:$(printf '%032d' 0):$uuid"
assert_eq "" "$(db "SELECT coalesce(escrow, '') FROM devices")" "a refused escrow is not stored"
expect_fail 3 "error bad-message: luks_uuid is not a UUID" attest --escrow not-a-uuid
EXPECT_NAME="escrow" expect_ok attest --escrow "$uuid"
assert_match '^ack$' "$(tail -n1 "$EXPECT_STDOUT")" "escrow acknowledged"
assert_match "recovery-key:$id:$uuid" "$(db "SELECT escrow FROM devices")" "escrow blob stored"
assert_eq 1 "$(audit_count escrow.stored "$id")" "escrow audited"
disk=$(find_binary trustpc-disk || true)
if [[ -n "$disk" ]]; then
	db "SELECT escrow FROM devices WHERE device_id = '$id'" >"$TRUSTPC_TEST_TMP/escrow.json"
	EXPECT_NAME="escrow blob opens with the server's escrow key" expect_ok "$disk" escrow-open \
		--key "$st/escrow.key" "$TRUSTPC_TEST_TMP/escrow.json"
	assert_eq test-recovery-key "$(cat "$EXPECT_STDOUT")" "the escrowed secret is the device's"
fi

# A device enrolled without an image has nothing to be compared with.
swtpm_start dev2 >/dev/null
dev2="$TRUSTPC_TEST_TMP/dev2"
client enroll --server "$E" --ca "$st/ca.pem" --state "$dev2" --token "$("$SERVER_BIN" token create --state-dir "$st")" >/dev/null
id2=$(cat "$dev2/device-id")
EXPECT_NAME="no image: quarantined" expect_fail 4 "" client attest --server "$D" --state "$dev2"
assert_match 'no expected values registered' "$(cat "$EXPECT_STDOUT")" "client told why"
assert_match 'no expected values registered' "$(db "SELECT reason FROM devices WHERE device_id = '$id2'")" "reason stored"
swtpm_use dev

# Crash: SIGKILL the server while the device is connected; restart on the same ports. The
# device reconnects and attests again; everything committed before the crash is still there.
log="$TRUSTPC_TEST_TMP/run.out"
# The binary itself in the background (not the shell function): $! must be the client, or the
# cleanup would kill a subshell and leave the client running.
"$CLIENT_BIN" attest --server "$D" --state "$dev" --run 30 >"$log" 2>"$TRUSTPC_TEST_TMP/run.err" &
client_pid=$!
cleanup_push "kill $client_pid 2>/dev/null"
trusted_lines() { [[ $(grep -c '^attest trusted' "$log" || true) -ge $1 ]]; }
poll_until 20 trusted_lines 1 && ok "device connected and trusted" || not_ok "device connected and trusted"
before=$(audit_count attest.trusted "$id")
server_stop KILL
assert_eq 137 "$SERVER_RC" "server killed"
server_start "$st" --tpm-ca "$SWTPM_CA_CERT" --config "$TRUSTPC_TEST_TMP/test.conf" \
	--enroll-port "$ENROLL_PORT" --device-port "$DEVICE_PORT" --admin-port "$ADMIN_PORT"
poll_until 20 trusted_lines 2 && ok "device reconnected and re-attested after the crash" ||
	not_ok "device reconnected and re-attested after the crash" "$(cat "$log" "$TRUSTPC_TEST_TMP/run.err")"
assert_file_contains "$log" '^disconnected$' "the device saw the connection drop"
assert_eq $((before + 1)) "$(audit_count attest.trusted "$id")" "re-attestation audited"
assert_eq 2 "$(db "SELECT count(*) FROM devices")" "devices survived the crash"
assert_match "recovery-key:$id:$uuid" "$(db "SELECT escrow FROM devices WHERE device_id = '$id'")" "escrow survived the crash"

# SIGTERM with the device connected: exit 0.
server_stop TERM
assert_eq 0 "$SERVER_RC" "SIGTERM with a device connected → exit 0"
kill "$client_pid" 2>/dev/null || true
wait "$client_pid" 2>/dev/null || true
test_done
