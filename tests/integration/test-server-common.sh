# SPDX-License-Identifier: Apache-2.0
# tests/integration/test-server-common.sh — sourced by the test-server-*.sh scripts (not a test).
#
#   server_init DIR [ARGS…]     trustpc-server init --state-dir DIR (output in $TRUSTPC_TEST_TMP)
#   server_start DIR [ARGS…]    trustpc-server run on 127.0.0.1 with a NOTIFY_SOCKET listener; waits
#                               (bounded) for READY=1 and reads the ports from STATUS=; exports
#                               SERVER_PID ENROLL_PORT DEVICE_PORT ADMIN_PORT. Ports default to 0
#                               (any free port); pass --enroll-port … to reuse earlier ones.
#   server_stop [SIGNAL]        signal the server, wait for it; SERVER_RC = its exit status
#   server_log                  path of the server's stderr (all runs of the test, appended)
#   db SQL                      sqlite3 on the state dir's database (another process, like an admin)
#   audit_count ACTION [SUBJECT]  number of audit rows with that action (and subject)
#   device_state ID             the device's state column
#   client ARGS…                the test client (tests/integration/enroll-client.c)

source "$TRUSTPC_SOURCE_ROOT/tests/lib/assert.sh"
require_cmd python3 openssl sqlite3

SERVER_BIN=$(find_binary trustpc-server)
CLIENT_BIN=$(find_binary enroll-client)
[[ -n "$SERVER_BIN" && -n "$CLIENT_BIN" ]] || {
	echo "trustpc-server or enroll-client not built under $TRUSTPC_BUILD_ROOT" >&2
	exit 1
}
SERVER_STATE=""
SERVER_PID=""
_server_notify_sock="$TRUSTPC_TEST_TMP/notify.sock"
_server_notify_log="$TRUSTPC_TEST_TMP/notify.log"

server_log() { echo "$TRUSTPC_TEST_TMP/server.log"; }

server_init() {
	local dir=$1
	shift
	"$SERVER_BIN" init --state-dir "$dir" "$@" >"$TRUSTPC_TEST_TMP/init.out" 2>&1
}

# The sd_notify side of a service manager: every datagram appended to a file, one line per field.
_server_notify_listen() {
	[[ -S "$_server_notify_sock" ]] && return 0
	: >"$_server_notify_log"
	python3 - "$_server_notify_sock" "$_server_notify_log" <<-'EOF' &
		import socket, sys
		s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
		s.bind(sys.argv[1])
		while True:
		    data = s.recv(65536)
		    with open(sys.argv[2], "a") as f:
		        f.write(data.decode(errors="replace") + "\n--\n")
	EOF
	cleanup_push "kill $! 2>/dev/null"
	poll_until 10 test -S "$_server_notify_sock"
}

_server_ready() {
	local n
	n=$(grep -c '^READY=1$' "$_server_notify_log" || true)
	((n > _server_ready_before)) && return 0
	kill -0 "$SERVER_PID" 2>/dev/null || return 2
	return 1
}

server_start() {
	local status
	SERVER_STATE=$1
	shift
	_server_notify_listen
	_server_ready_before=$(grep -c '^READY=1$' "$_server_notify_log" || true)
	NOTIFY_SOCKET="$_server_notify_sock" "$SERVER_BIN" run --state-dir "$SERVER_STATE" --listen 127.0.0.1 \
		--enroll-port 0 --device-port 0 --admin-port 0 "$@" 2>>"$(server_log)" &
	SERVER_PID=$!
	cleanup_push "kill -9 $SERVER_PID 2>/dev/null"
	if ! poll_until 10 _server_ready; then
		echo "# trustpc-server did not become ready; its log:" >&2
		sed 's/^/#   /' "$(server_log)" >&2
		return 1
	fi
	status=$(grep '^STATUS=Listening' "$_server_notify_log" | tail -n1)
	[[ "$status" =~ enroll\ ([0-9]+),\ device\ ([0-9]+),\ admin\ ([0-9]+) ]] || return 1
	ENROLL_PORT=${BASH_REMATCH[1]}
	DEVICE_PORT=${BASH_REMATCH[2]}
	ADMIN_PORT=${BASH_REMATCH[3]}
	export ENROLL_PORT DEVICE_PORT ADMIN_PORT SERVER_PID
}

server_stop() {
	local sig=${1:-TERM}
	SERVER_RC=0
	kill -"$sig" "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" || SERVER_RC=$?
}

db() {
	sqlite3 -bail "$SERVER_STATE/trustpc-server.db" "$1"
}

audit_count() {
	if [[ -n "${2:-}" ]]; then
		db "SELECT count(*) FROM audit WHERE action = '$1' AND subject = '$2'"
	else
		db "SELECT count(*) FROM audit WHERE action = '$1'"
	fi
}

device_state() {
	db "SELECT state FROM devices WHERE device_id = '$1'"
}

client() {
	"$CLIENT_BIN" "$@"
}
