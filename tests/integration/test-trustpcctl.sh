#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# trustpcctl against a real trustpc-server (init + run on loopback, real TLS): every verb with
# --json checked by jq, the human tables, and the documented exit codes — bad token (4), role too
# low (4), unknown device or image (3), server unreachable (5), another CA (5), another server name
# (5), broken audit chain (6), usage (2). Devices are seeded into the server's database the way
# enrollment writes them (enrollment itself is the server tests' subject).
set -euo pipefail
source "${TRUSTPC_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/assert.sh"
require_cmd jq sqlite3 openssl sha256sum python3

SERVER=$(find_binary trustpc-server)
CTL=$(find_binary trustpcctl)
[[ -n "$SERVER" && -n "$CTL" ]] || {
	echo "trustpc-server or trustpcctl not built under $TRUSTPC_BUILD_ROOT" >&2
	exit 1
}
T=$TRUSTPC_TEST_TMP
st=$T/state
db() { sqlite3 -bail "$st/trustpc-server.db" "$1"; }

# ---- server ----
expect_ok "$SERVER" init --state-dir "$st"
for role in admin helpdesk viewer; do
	(umask 077 && "$SERVER" operator add "op-$role" --role "$role" --state-dir "$st" >"$T/$role.token")
done
assert_match '^tpo_' "$(cat "$T/admin.token")" "operator add prints a tpo_ token"

ID_A=ab12cd34ef56ab12cd34ef56ab12cd34
ID_B=ab99000000000000000000000000000b
db "INSERT INTO devices(device_id, hostname, image, state, reason, enrolled_at, last_seen, attested_at, posture, escrow)
    VALUES ('$ID_A', 'laptop-a', NULL, 'trusted', NULL, 1700000000, 1700000300, 1700000200, '{\"epoch\":2,\"locked\":false}', '{\"v\":1}'),
           ('$ID_B', 'thin-b', NULL, 'quarantined', 'PCR 7 differs from the image', 1700000000, 1700000100, 1700000100, NULL, NULL)"

NOTIFY_SOCKET='' "$SERVER" run --state-dir "$st" --listen 127.0.0.1 --enroll-port 0 --device-port 0 --admin-port 0 \
	--tpm-ca "$st/ca.pem" 2>"$T/server.log" &
SERVER_PID=$!
cleanup_push "kill -9 $SERVER_PID 2>/dev/null"
admin_port() { grep -oE 'admin port [0-9]+' "$T/server.log" | grep -oE '[0-9]+$'; }
if poll_until 10 admin_port >/dev/null; then
	ok "server listening"
else
	not_ok "server listening" "$(cat "$T/server.log")"
	exit 1
fi
PORT=$(admin_port)

export TRUSTPC_SERVER="localhost:$PORT" TRUSTPC_CA="$st/ca.pem"
# shellcheck disable=SC2317 # called through expect_ok/expect_fail
ctl() { # ctl ROLE ARGS…: trustpcctl with that operator's token file
	local role=$1
	shift
	"$CTL" --token-file "$T/$role.token" "$@"
}

# ---- devices, show ----
expect_ok ctl viewer --json devices
out=$(cat "$EXPECT_STDOUT")
assert_eq 2 "$(jq length <<<"$out")" "devices --json lists both devices"
assert_eq "$ID_A" "$(jq -r '.[0].device_id' <<<"$out")" "devices in id order"
assert_eq "trusted quarantined" "$(jq -r '[.[].state] | join(" ")' <<<"$out")" "states"
assert_eq "false" "$(jq -r '.[0].connected' <<<"$out")" "not connected"
assert_eq 2 "$(jq -r '.[0].posture.epoch' <<<"$out")" "posture as JSON"
assert_eq "PCR 7 differs from the image" "$(jq -r '.[1].reason' <<<"$out")" "quarantine reason"
assert_eq 1700000300 "$(jq -r '.[0].last_seen' <<<"$out")" "times are Unix seconds"

expect_ok ctl viewer devices
assert_match '^DEVICE +HOSTNAME +STATE +CONNECTED' "$(head -n1 "$EXPECT_STDOUT")" "devices: table header"
assert_match 'ab9900000000 +thin-b +quarantined +no ' "$(cat "$EXPECT_STDOUT")" "devices: a row per device"

expect_ok ctl viewer --json show ab12
assert_eq "$ID_A" "$(jq -r .device_id "$EXPECT_STDOUT")" "show: unique prefix"
assert_eq "true" "$(jq -r .escrowed "$EXPECT_STDOUT")" "show: escrowed"
assert_eq "array" "$(jq -r '.history | type' "$EXPECT_STDOUT")" "show: history"
expect_ok ctl viewer --json show thin-b
assert_eq "$ID_B" "$(jq -r .device_id "$EXPECT_STDOUT")" "show: by hostname"
expect_ok ctl helpdesk show "$ID_A"
assert_match 'Hostname: +laptop-a' "$(cat "$EXPECT_STDOUT")" "show: human output"
assert_match 'epoch +2' "$(cat "$EXPECT_STDOUT")" "show: posture listed"
expect_fail 1 "matches 2 devices" ctl viewer show ab
expect_fail 3 "No device matches 'ffff'" ctl viewer show ffff
expect_fail 3 "HTTP 404" ctl viewer show ffffffffffffffffffffffffffffffff

# ---- images ----
H7=$(printf '7%.0s' {1..64})
H11=$(printf 'b%.0s' {1..64})
expect_ok ctl admin --json images add fleet-2026.11 --pcr 7="$H7" --pcr 11="$H11"
assert_eq "$H11" "$(jq -r '.pcrs["11"]' "$EXPECT_STDOUT")" "images add: answer"
expect_ok ctl viewer --json images
assert_eq "fleet-2026.11" "$(jq -r '.[0].name' "$EXPECT_STDOUT")" "images: listed"
assert_eq "$H7" "$(jq -r '.[0].pcrs["7"]' "$EXPECT_STDOUT")" "images: values"
expect_ok ctl viewer images
assert_match "fleet-2026.11 +7 +$H7" "$(cat "$EXPECT_STDOUT")" "images: table"
expect_fail 4 "needs the admin role; you \(op-helpdesk\) are helpdesk" ctl helpdesk images add x --pcr 7="$H7"
expect_fail 2 "64 hex digits" ctl admin images add x --pcr 7=abcd
expect_fail 2 "given twice" ctl admin images add x --pcr 7="$H7" --pcr 7="$H7"
assert_eq 1 "$(db "SELECT count(*) FROM images")" "refused image adds stored nothing"

# ---- tokens ----
now=$(date +%s)
expect_ok ctl admin --json token create --image fleet-2026.11 --ttl 2h
tok=$(jq -r .token "$EXPECT_STDOUT")
exp=$(jq -r .expires_at "$EXPECT_STDOUT")
assert_match '^tpe_[A-Za-z0-9_-]{43}$' "$tok" "token create: a tpe_ token"
assert_eq "fleet-2026.11" "$(jq -r .image "$EXPECT_STDOUT")" "token create: image"
if ((exp >= now + 7200 && exp <= now + 7260)); then
	ok "token create: --ttl 2h"
else
	not_ok "token create: --ttl 2h" "$exp vs $now"
fi
hash=$(printf '%s' "$tok" | sha256sum | cut -c1-64)
assert_eq 1 "$(db "SELECT count(*) FROM enroll_tokens WHERE hash = '$hash' AND used_at IS NULL")" \
	"the server stores SHA-256(token)"
assert_eq 0 "$(db "SELECT count(*) FROM enroll_tokens WHERE hash LIKE 'tpe_%' OR image LIKE 'tpe_%'")" \
	"and not the token"
if grep -aq -- "${tok#tpe_}" "$st"/trustpc-server.db*; then
	not_ok "token text nowhere in the database files"
else
	ok "token text nowhere in the database files"
fi
expect_ok ctl admin token create
assert_match '^tpe_[A-Za-z0-9_-]{43}$' "$(cat "$EXPECT_STDOUT")" "token create: stdout is the token alone"
assert_match 'valid until' "$(cat "$EXPECT_STDERR")" "token create: expiry on stderr"
before=$(db "SELECT count(*) FROM enroll_tokens")
expect_fail 4 "needs the admin role; you \(op-viewer\) are viewer" ctl viewer token create
expect_fail 4 "needs the admin role" ctl helpdesk token create
expect_fail 3 "No image 'nope'" ctl admin token create --image nope
expect_fail 2 "--ttl" ctl admin token create --ttl 31d
expect_fail 2 "--ttl" ctl admin token create --ttl 5x
assert_eq "$before" "$(db "SELECT count(*) FROM enroll_tokens")" "refused token creates stored nothing"

# ---- audit ----
expect_ok ctl viewer --json audit
audit=$(cat "$EXPECT_STDOUT")
assert_eq 2 "$(jq '[.[] | select(.action == "token.create" and .actor == "op-admin")] | length' <<<"$audit")" \
	"audit: token creations by the admin"
assert_eq 1 "$(jq '[.[] | select(.action == "image.set" and .actor == "op-admin" and .subject == "fleet-2026.11")] | length' <<<"$audit")" \
	"audit: image add by the admin"
assert_eq 0 "$(jq '[.[] | select(.actor == "op-viewer" or .actor == "op-helpdesk")] | length' <<<"$audit")" \
	"audit: refused actions left no row"
n=$(jq length <<<"$audit")
assert_eq "$(seq -s ' ' 1 "$n")" "$(jq -r '[.[].seq] | map(tostring) | join(" ")' <<<"$audit")" "audit: seq 1..N"
expect_ok ctl viewer --json audit --after $((n - 2))
assert_eq 2 "$(jq length "$EXPECT_STDOUT")" "audit --after"
expect_ok ctl viewer audit
assert_match '^SEQ +TIME +ACTOR +ACTION' "$(head -n1 "$EXPECT_STDOUT")" "audit: table"
expect_ok ctl viewer --json audit verify
assert_eq "true $n null" "$(jq -r '"\(.ok) \(.entries) \(.first_bad_seq)"' "$EXPECT_STDOUT")" "audit verify: ok"
expect_ok ctl viewer audit verify
assert_match "intact: $n entries" "$(cat "$EXPECT_STDOUT")" "audit verify: human"

# ---- authentication and usage ----
printf 'tpo_%s\n' "$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')" >"$T/bad.token"
expect_fail 4 "not known" ctl bad devices
expect_fail 4 "not known" env TRUSTPC_OPERATOR_TOKEN="$(cat "$T/bad.token")" "$CTL" devices
EXPECT_NAME="token from the environment works" expect_ok env TRUSTPC_OPERATOR_TOKEN="$(cat "$T/viewer.token")" "$CTL" devices
expect_fail 4 "No operator token" env -u TRUSTPC_OPERATOR_TOKEN "$CTL" devices
expect_fail 2 "not accepted on the command line" "$CTL" --token "$(cat "$T/admin.token")" devices
expect_fail 2 "Unknown verb" ctl viewer frobnicate
expect_fail 2 "does not take --pcr" ctl viewer devices --pcr 7="$H7"
expect_fail 2 "No fleet CA" env -u TRUSTPC_CA "$CTL" --token-file "$T/viewer.token" devices

# ---- reachability and TLS ----
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
expect_fail 5 "Cannot connect to localhost:$closed" ctl viewer --server "localhost:$closed" devices
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=other-ca \
	-keyout "$T/other.key" -out "$T/other.pem" 2>/dev/null
expect_fail 5 "TLS refused.*not correctly signed" ctl viewer --ca "$T/other.pem" devices
expect_fail 5 "TLS refused.*'127.0.0.1'" ctl viewer --server "127.0.0.1:$PORT" devices
# A listener that is not TLS at all.
python3 -c '
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept(); c.sendall(b"HTTP/1.1 200 OK\r\n\r\n"); c.close()
' >"$T/plain.port" &
cleanup_push "kill $! 2>/dev/null"
poll_until 5 test -s "$T/plain.port"
expect_fail 5 "TLS handshake" ctl viewer --server "localhost:$(cat "$T/plain.port")" devices

# ---- a tampered audit log ----
db "UPDATE audit SET details = '{\"image\":\"evil\"}' WHERE seq = 3"
expect_fail 6 "BROKEN at seq 3" ctl viewer audit verify
expect_fail 6 "" ctl viewer --json audit verify
assert_eq "false 3" "$(jq -r '"\(.ok) \(.first_bad_seq)"' "$EXPECT_STDOUT")" "audit verify --json: broken at 3"

kill -TERM "$SERVER_PID"
rc=0
wait "$SERVER_PID" || rc=$?
assert_eq 0 "$rc" "server stops cleanly"
test_done
