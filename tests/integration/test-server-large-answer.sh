#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Admin answers larger than a device connection's output bound (1 MiB): a fleet of 6,000 devices
# (seeded into the database the way enrollment writes them) listed in one answer of ~2 MB. Before
# the fix the server dropped the connection as "does not read its messages" and trustpcctl got a
# truncated answer ("malformed HTTP answer"); a fleet command for 10,000 devices (~3.5 MB) failed
# the same way in bench/bench-fleet-lock.sh. The bound of an admin answer is now what trustpcctl
# accepts (HTTP_HEAD_MAX + HTTP_CLIENT_BODY_MAX).
set -euo pipefail
source "${TRUSTPC_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/assert.sh"
require_cmd jq sqlite3

SERVER=$(find_binary trustpc-server)
CTL=$(find_binary trustpcctl)
[[ -n "$SERVER" && -n "$CTL" ]] || {
	echo "trustpc-server or trustpcctl not built under $TRUSTPC_BUILD_ROOT" >&2
	exit 1
}
T=$TRUSTPC_TEST_TMP
st=$T/state
N=6000
expect_ok "$SERVER" init --state-dir "$st"
(umask 077 && "$SERVER" operator add op-viewer --role viewer --state-dir "$st" >"$T/viewer.token")
# Long host names (64 characters) so that the answer is well above 1 MiB.
sqlite3 -bail "$st/trustpc-server.db" "
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $N)
INSERT INTO devices(device_id, hostname, image, state, reason, enrolled_at, last_seen, attested_at, posture)
SELECT printf('%032x', i), printf('large-answer-fleet-host-%040d', i), NULL, 'trusted', NULL,
       1700000000, 1700000300, 1700000200, '{\"epoch\":2,\"locked\":false}' FROM n"

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

expect_ok "$CTL" --token-file "$T/viewer.token" --json devices
size=$(wc -c <"$EXPECT_STDOUT")
if ((size > 1024 * 1024)); then
	ok "the answer is larger than 1 MiB ($size bytes)"
else
	not_ok "the answer is larger than 1 MiB" "$size bytes: the test no longer covers the bound"
fi
assert_eq "$N" "$(jq length "$EXPECT_STDOUT")" "devices --json lists all $N devices"
assert_eq "$(printf '%032x' "$N")" "$(jq -r '.[-1].device_id' "$EXPECT_STDOUT")" "down to the last one"
if grep -q 'does not read its messages' "$T/server.log"; then
	not_ok "the server kept the admin connection" "$(grep 'does not read' "$T/server.log")"
else
	ok "the server kept the admin connection"
fi
test_done
