#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# pam_trustpc.so (daemon/pam_trustpc.c) under a real Linux-PAM stack: pamtester runs the account
# phase of a service whose only account module is the built pam_trustpc.so, pointed at a temp state
# dir holding the commands.json each case writes (locked, unlocked, malformed, unusable, missing).
#
# pamtester reads /etc/pam.d only: every call runs in a private mount namespace where a temp dir
# holding our service file is bind-mounted over /etc/pam.d, and a temp /dev (the real null, zero,
# random, urandom, plus a /dev/log socket of ours) over /dev, so that the module's pam_syslog
# records can be read back. Nothing is installed. Skips (77) when unshare/mount are not permitted.
# Each case logs in as its own user name, which tells its syslog records apart from the others'.
# shellcheck disable=SC2317 # helpers called through expect_ok/expect_fail/poll_until look unreachable to it
set -euo pipefail
LIB="${TRUSTPC_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib"
# shellcheck source=tests/lib/assert.sh
source "$LIB/assert.sh"
require_cmd unshare mount pamtester python3
T=$TRUSTPC_TEST_TMP
MODULE=$TRUSTPC_BUILD_ROOT/daemon/pam_trustpc.so
[[ -f "$MODULE" ]] || skip "pam_trustpc.so is not built under $TRUSTPC_BUILD_ROOT/daemon"
S=$T/state
STATE=$S/commands.json
mkdir -p "$T/pam.d" "$T/dev"
mkdir -m 0700 "$S"
for n in null zero random urandom; do : >"$T/dev/$n"; done
ln -s /proc/self/fd "$T/dev/fd"
# shellcheck disable=SC2016 # expanded by the inner bash
unshare -m --propagation private bash -c 'mount --bind "$0" /etc/pam.d && mount --bind /dev/null "$1/null"' \
	"$T/pam.d" "$T/dev" 2>/dev/null ||
	skip "cannot bind-mount over /etc/pam.d in a private mount namespace (needs CAP_SYS_ADMIN)"

# The syslog receiver: one line per datagram (what pam_syslog sends to /dev/log).
python3 -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1] + ".tmp")
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
with open(sys.argv[2], "ab", buffering=0) as f:
    while True:
        f.write(s.recv(65536).replace(b"\n", b" ") + b"\n")
' "$T/dev/log" "$T/syslog" &
cleanup_push "kill $! 2>/dev/null"
poll_until 10 test -S "$T/dev/log" || { not_ok "syslog receiver started"; exit 1; }
touch "$T/syslog"

# pt ARGS…: pamtester ARGS… with our /etc/pam.d and /dev (private mount namespace).
# shellcheck disable=SC2016 # expanded by the inner bash: $0 = pam.d dir, $1 = dev dir
IN_NS='dev=$1 && shift &&
for n in null zero random urandom; do mount --bind "/dev/$n" "$dev/$n"; done &&
mount --bind "$0" /etc/pam.d && mount --rbind "$dev" /dev && exec pamtester "$@"'
pt() {
	unshare -m --propagation private bash -c "$IN_NS" "$T/pam.d" "$T/dev" "$@"
}
# service LINE: the whole account stack of the service "trustpc-test".
service() {
	printf '%s\n' "$1" >"$T/pam.d/trustpc-test"
}
# libpam's fallback for any other service: refuse.
printf '%s required pam_deny.so\n' auth account password session >"$T/pam.d/other"
MOD="account required $MODULE state_dir=$S"
# log_has USER REGEX: a record of the module about USER matches REGEX (bounded wait for the receiver).
log_match() {
	grep -F 'pam_trustpc(trustpc-test:account)' "$T/syslog" | grep -F -- "$1" | grep -Eq -- "$2"
}
log_has() {
	if poll_until 5 log_match "$1" "$2"; then
		ok "syslog: ${1:-(any user)}: /$2/"
	else
		not_ok "syslog: ${1:-(any user)}: /$2/" "$(tail -n 5 "$T/syslog")"
	fi
}
log_lacks() {
	if grep -q "$1" "$T/syslog"; then not_ok "syslog: nothing about $1" "$(grep "$1" "$T/syslog")"; else ok "syslog: nothing about $1"; fi
}
ALLOWED='pamtester: account management done'
LOCKED_MSG='This device is locked by your IT department \(reason: (.*)\)\. Contact the helpdesk\.'
UNREADABLE_MSG='The lock state of this device cannot be read: logins are refused\. Contact the helpdesk\.'
DENIED='pamtester: Permission denied'
# deny_case NAME USER: the account phase refuses USER with the fail-closed message and logs WHY.
deny_unusable() {
	local name=$1 user=$2 why=$3
	EXPECT_NAME="$name: login refused (fail closed)" expect_fail 1 "$UNREADABLE_MSG" pt trustpc-test "$user" acct_mgmt
	assert_file_contains "$EXPECT_STDERR" "$DENIED" "$name: PAM_PERM_DENIED"
	log_has "$user" "Lock state [^ ]*/commands.json unusable: $why"
}

# ---- never enrolled, enrolled without a command, unlocked: allowed ----------------------------
service "$MOD"
rmdir "$S"
EXPECT_NAME="no state dir (never enrolled): allowed" expect_ok pt trustpc-test u-fresh acct_mgmt
assert_file_contains "$EXPECT_STDOUT" "$ALLOWED" "no state dir: pamtester says allowed"
mkdir -m 0700 "$S"
EXPECT_NAME="state dir without commands.json: allowed" expect_ok pt trustpc-test u-nocmd acct_mgmt
printf '{"last_id":"00112233445566778899aabbccddeeff","last_reason":"unlocked at epoch 2","last_seq":2,"last_status":0,"last_type":2,"locked":false,"epoch":2}' >"$STATE"
EXPECT_NAME="unlocked: allowed" expect_ok pt trustpc-test u-unlocked acct_mgmt
# debug: the decision is logged (and proves the receiver sees the module's records).
service "$MOD debug"
EXPECT_NAME="unlocked, debug: allowed" expect_ok pt trustpc-test u-debug acct_mgmt
log_has u-debug "Device not locked: login of u-debug allowed"
log_lacks u-unlocked

# ---- locked: refused with the operator's reason -------------------------------------------------
service "$MOD"
printf '{"epoch":3,"last_id":"00112233445566778899aabbccddeeff","last_reason":"locked at epoch 3","last_seq":3,"last_status":0,"last_type":1,"locked":true,"lock_reason":"laptop reported stolen, ticket 4711"}' >"$STATE"
state_hash=$(sha256sum <"$STATE")
EXPECT_NAME="locked: login refused" expect_fail 1 "$LOCKED_MSG" pt trustpc-test alice acct_mgmt
assert_file_contains "$EXPECT_STDERR" 'reason: laptop reported stolen, ticket 4711\)' "locked: the operator's reason shown"
assert_file_contains "$EXPECT_STDERR" "$DENIED" "locked: PAM_PERM_DENIED"
log_has alice "Device locked \\(lock epoch 3, command 3\\): login of alice refused"
EXPECT_NAME="locked, PAM_SILENT: refused" expect_fail 1 "$DENIED" pt trustpc-test u-silent 'acct_mgmt(PAM_SILENT)'
if grep -q 'This device' "$EXPECT_STDERR" "$EXPECT_STDOUT"; then not_ok "PAM_SILENT: no message"; else ok "PAM_SILENT: no message"; fi
log_has u-silent "login of u-silent refused"
# Without the operator's reason, and a reason with terminal escapes (made harmless).
printf '{"last_seq":4,"locked":true}' >"$STATE"
EXPECT_NAME="locked, no reason recorded" expect_fail 1 'reason: not given\)' pt trustpc-test u-noreason acct_mgmt
log_has u-noreason "Device locked \\(command 4\\): login of u-noreason refused"
printf '{"last_seq":5,"locked":true,"lock_reason":"\\u001b[2Jgone\\u009b"}' >"$STATE"
EXPECT_NAME="locked, escapes in the reason" expect_fail 1 'reason: \?\[2Jgone\?\)' pt trustpc-test u-escape acct_mgmt
if grep -q $'\e' "$EXPECT_STDERR"; then not_ok "no ESC reaches the terminal"; else ok "no ESC reaches the terminal"; fi

# Negative control: the same stack without our module lets alice in under the same state.
service "account required pam_permit.so"
EXPECT_NAME="control: without pam_trustpc the locked state does not refuse" expect_ok pt trustpc-test alice acct_mgmt

# ---- the break-glass account (allow_users) ------------------------------------------------------
printf '{"last_seq":3,"locked":true,"lock_reason":"stolen"}' >"$STATE"
service "$MOD allow_users=root,helpdesk"
EXPECT_NAME="locked, helpdesk in allow_users: allowed" expect_ok pt trustpc-test helpdesk acct_mgmt
assert_file_contains "$EXPECT_STDOUT" 'This device is locked by your IT department: signed in with the break-glass account helpdesk\.' \
	"break-glass: the user is told"
log_has helpdesk "Break-glass login of helpdesk \\(allow_users\\) while the device is locked"
EXPECT_NAME="locked, allow_users names others: refused" expect_fail 1 "$LOCKED_MSG" pt trustpc-test bob acct_mgmt
EXPECT_NAME="locked, a prefix of an allowed name: refused" expect_fail 1 "$LOCKED_MSG" pt trustpc-test help acct_mgmt

# ---- unusable state: refused, fail closed -------------------------------------------------------
service "$MOD"
printf '{"last_seq":3,"locked":false' >"$STATE"
deny_unusable "truncated JSON" u-trunc "not valid JSON"
printf '{"last_seq":3,"locked":"false"}' >"$STATE"
deny_unusable '"locked" a string' u-type '"locked" is missing or not a boolean'
printf '{"last_seq":3,"locked":false,"locked":true}' >"$STATE"
deny_unusable "duplicate key" u-dup "not valid JSON"
printf '{"last_seq":3}' >"$STATE"
deny_unusable '"locked" missing' u-nolocked '"locked" is missing'
: >"$STATE"
deny_unusable "empty file" u-empty "not valid JSON"
# Too large: a valid unlocked object padded past the 64 KiB limit.
{ printf '{"last_seq":3,"locked":false}'; head -c 70000 /dev/zero | tr '\0' ' '; } >"$STATE"
deny_unusable "a 70 KB state file" u-big "larger than the state file limit"
# Unreadable even for root: a directory where the file should be.
rm -f "$STATE" && mkdir "$STATE"
deny_unusable "a directory in place of commands.json" u-dir "the state file is not a regular file"
rmdir "$STATE"
# A symlink to a good unlocked file (the executor never writes one).
printf '{"last_seq":3,"locked":false}' >"$T/elsewhere.json"
ln -s "$T/elsewhere.json" "$STATE"
deny_unusable "a symlink as commands.json" u-link "cannot open the state file"
rm -f "$STATE"
# Writable by others: anyone could have written "locked": false.
printf '{"last_seq":3,"locked":false}' >"$STATE" && chmod 0666 "$STATE"
deny_unusable "a world-writable commands.json" u-ww "the state file is not owned by root or is writable by others"
chmod 0600 "$STATE" && chmod 0777 "$S"
deny_unusable "a world-writable state dir" u-wwdir "the state dir is not owned by root or is writable by others"
chmod 0700 "$S"
# The state dir path naming a file.
service "account required $MODULE state_dir=$T/elsewhere.json"
deny_unusable "state_dir= a regular file" u-notdir "cannot open the state dir"

# The break-glass account also gets in when the state is unusable (that is when it is needed).
printf 'garbage' >"$STATE"
service "$MOD allow_users=helpdesk"
EXPECT_NAME="unusable state, helpdesk in allow_users: allowed" expect_ok pt trustpc-test helpdesk acct_mgmt
assert_file_contains "$EXPECT_STDOUT" 'in an unknown lock state: signed in with the break-glass account helpdesk' \
	"break-glass, unusable state: the user is told"
log_has helpdesk "Break-glass login of helpdesk \\(allow_users\\) while the lock state is unusable: not valid JSON"
EXPECT_NAME="unusable state, allow_users names others: refused" expect_fail 1 "$UNREADABLE_MSG" pt trustpc-test u-other acct_mgmt

# ---- a bad module argument: refused, the configuration error logged ------------------------------
service "$MOD statedir=/nonexistent"
EXPECT_NAME="misspelt argument: refused" expect_fail 1 'pamtester: Error in service module' pt trustpc-test u-badarg acct_mgmt
log_has "" 'Invalid module argument "statedir=/nonexistent"'
service "account required $MODULE state_dir=relative/dir"
EXPECT_NAME="relative state_dir: refused" expect_fail 1 'pamtester: Error in service module' pt trustpc-test u-relarg acct_mgmt
log_has "" 'Invalid module argument "state_dir=relative/dir"'

# The module only reads: the locked state written above is byte for byte what it was.
printf '{"epoch":3,"last_id":"00112233445566778899aabbccddeeff","last_reason":"locked at epoch 3","last_seq":3,"last_status":0,"last_type":1,"locked":true,"lock_reason":"laptop reported stolen, ticket 4711"}' >"$STATE"
service "$MOD"
EXPECT_NAME="locked again: refused" expect_fail 1 "$LOCKED_MSG" pt trustpc-test alice acct_mgmt
assert_eq "$state_hash" "$(sha256sum <"$STATE")" "the module changed nothing in commands.json"
test_done
