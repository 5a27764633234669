#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A fleet command on a real trustpc-server with 3,000 devices (seeded into the database the way
# enrollment writes them; none connected, so every command stays queued): it is queued in slices
# of 64, one transaction each, one slice per turn of the server's event loop.
#   - While `trustpcctl lock --all` is being queued, another operator's request is answered (before
#     the slices, the server served nothing else until the last command was queued).
#   - The answer lists every device's command, every command is in the database once, with its
#     audit row, and each device's seq is 1.
#   - A client that goes away in the middle (killed) does not stop the fleet command half-way:
#     every device gets its second lock, and the server logs that the client is gone.
# shellcheck disable=SC2317 # the check functions are called through poll_until
set -euo pipefail
export TRUSTPC_SOURCE_ROOT=${TRUSTPC_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
source "$TRUSTPC_SOURCE_ROOT/tests/integration/test-server-common.sh"
require_cmd jq
CTL=$(find_binary trustpcctl)
[[ -n "$CTL" ]] || { echo "trustpcctl not built under $TRUSTPC_BUILD_ROOT" >&2; exit 1; }
T=$TRUSTPC_TEST_TMP
st=$T/state
N=3000
server_init "$st" || { cat "$T/init.out" >&2; exit 1; }
(umask 077 && "$SERVER_BIN" operator add op-help --role helpdesk --state-dir "$st" >"$T/help.token")
sqlite3 -bail "$st/trustpc-server.db" "
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $N)
INSERT INTO devices(device_id, hostname, image, state, reason, enrolled_at, last_seen, attested_at, posture)
SELECT printf('%032x', i), printf('fleet-%d', i), NULL, 'trusted', NULL,
       1700000000, 1700000300, 1700000200, '{\"epoch\":2,\"locked\":false}' FROM n"
server_start "$st" --tpm-ca "$st/ca.pem"
ok "server listening"
export TRUSTPC_SERVER="localhost:$ADMIN_PORT" TRUSTPC_CA="$st/ca.pem"
ctl() { "$CTL" --token-file "$T/help.token" "$@"; }

# ---- another operator is served while the fleet command is being queued ----
"$CTL" --token-file "$T/help.token" --json lock --all --reason "fleet test" >"$T/fleet.json" 2>"$T/fleet.err" &
fleet_pid=$!
cleanup_push "kill $fleet_pid 2>/dev/null"
some_queued() { (($(db "SELECT count(*) FROM commands") > 0)); }
poll_until 60 some_queued || { not_ok "the first slice is queued" "$(tail -n 5 "$(server_log)")"; exit 1; }
expect_ok ctl --json show "$(printf '%032x' 7)"
during=$(db "SELECT count(*) FROM commands")
if kill -0 "$fleet_pid" 2>/dev/null && ((during < N)); then
	ok "another request was answered while the fleet command was queued ($during of $N queued then)"
else
	not_ok "another request was answered while the fleet command was queued" "$during of $N queued when it was answered"
fi
if wait "$fleet_pid"; then ok "lock --all answered"; else not_ok "lock --all answered" "$(cat "$T/fleet.err")"; fi
assert_eq "$N" "$(jq '[.[] | select(.state == "queued")] | length' "$T/fleet.json")" "the answer lists $N queued commands"
assert_eq "$N" "$(db "SELECT count(DISTINCT device_id) FROM commands WHERE type = 'lock' AND seq = 1")" "one lock with seq 1 for each device"
assert_eq "$N" "$(db "SELECT count(*) FROM audit WHERE action = 'command.queue' AND actor = 'op-help'")" "one audit row each"

# ---- a client that goes away in the middle ----
# trustpcctl itself in the background (not through a shell function): the kill must reach it.
"$CTL" --token-file "$T/help.token" --json lock --all --reason "client killed" >/dev/null 2>&1 &
gone_pid=$!
second() { (($(db "SELECT count(*) FROM commands") > N)); }
poll_until 60 second || { not_ok "the second fleet command started" "$(tail -n 5 "$(server_log)")"; exit 1; }
kill -9 "$gone_pid" 2>/dev/null || true
wait "$gone_pid" 2>/dev/null || true
all_twice() { [[ "$(db "SELECT count(*) FROM commands WHERE seq = 2")" == "$N" ]]; }
if poll_until 120 all_twice; then
	ok "queued to the end after its client was killed: every device has its second lock"
else
	not_ok "queued to the end after its client was killed" "$(db "SELECT count(*) FROM commands WHERE seq = 2") of $N"
fi
gone_logged() { grep -q "its client is gone" "$(server_log)"; }
if poll_until 10 gone_logged; then ok "the server logged that the client was gone"; else not_ok "the server logged that the client was gone" "$(tail -n 5 "$(server_log)")"; fi
server_stop TERM
if ((SERVER_RC == 0)); then ok "trustpc-server stopped cleanly"; else not_ok "trustpc-server stopped cleanly" "exit $SERVER_RC"; fi
test_done
