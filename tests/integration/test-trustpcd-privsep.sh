#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# trustpcd privilege separation against a real swtpm (docs/PRIVSEP.md):
#  1. the executor's QUOTE verifies with tpm2_quote_verify, ACTIVATE/STATUS/STORE use the real TPM
#     (tests/unit/daemon/test-privsep-swtpm.c, the executor loop on a socketpair);
#  2. the real trustpcd: a network process that sends a malformed request (TRUSTPCD_TEST_BAD_REQUEST)
#     makes the executor kill it and exit 4 with a clear log; the bus name disappears with it;
#  3. when started as root, the network process runs as --user (not root) with NoNewPrivs set.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/assert.sh"
source "$here/../lib/swtpm.sh"
source "$here/../lib/dbus.sh"
require_cmd dbus-daemon busctl setpriv

trustpcd="$TRUSTPC_BUILD_ROOT/daemon/trustpcd"
exe="$TRUSTPC_BUILD_ROOT/tests/unit/daemon/test-privsep-swtpm"
[[ -x "$trustpcd" && -x "$exe" ]] || { echo "missing $trustpcd or $exe: build first" >&2; exit 1; }

swtpm_start dev >/dev/null

# 1. executor + real TPM
EXPECT_NAME="executor answers QUOTE/STATUS/ACTIVATE/STORE with swtpm (test-privsep-swtpm)" expect_ok "$exe"

bus_start

name_owned() { busctl --address="$BUS_ADDRESS" list --no-pager 2>/dev/null | grep -q '^org.trustpc.Agent1 '; }

# 2. a malformed request from the network process ends trustpcd with 4 and a clear log
for bad in short unknown-type quote-size activate; do
	state="$TRUSTPC_TEST_TMP/state-$bad"
	mkdir -p "$state"
	chmod 700 "$state"
	rc=0
	TRUSTPCD_TEST_BAD_REQUEST=$bad timeout 30 "$trustpcd" run --state-dir "$state" --bus-address "$BUS_ADDRESS" \
		>"$TRUSTPC_TEST_TMP/out-$bad" 2>"$TRUSTPC_TEST_TMP/err-$bad" || rc=$?
	assert_eq 4 "$rc" "bad request '$bad': trustpcd exits 4" || cat "$TRUSTPC_TEST_TMP/err-$bad"
	assert_file_contains "$TRUSTPC_TEST_TMP/err-$bad" "Protocol violation by the network process: .*Treating it as compromised" \
		"bad request '$bad': the executor says why"
	if name_owned; then not_ok "bad request '$bad': the network process is gone with the executor"; else ok "bad request '$bad': the network process is gone with the executor"; fi
done
# positive control for the loop above: without the hook trustpcd runs and owns the name
state="$TRUSTPC_TEST_TMP/state-good"
mkdir -p "$state" && chmod 700 "$state"
"$trustpcd" run --state-dir "$state" --bus-address "$BUS_ADDRESS" >"$TRUSTPC_TEST_TMP/out-good" 2>"$TRUSTPC_TEST_TMP/err-good" &
pid=$!
cleanup_push "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
if poll_until 20 name_owned; then ok "without the hook trustpcd owns org.trustpc.Agent1"; else not_ok "without the hook trustpcd owns org.trustpc.Agent1" "$(cat "$TRUSTPC_TEST_TMP/err-good")"; fi

# 3. the processes: executor = main pid (root), network process = its child as nobody with NoNewPrivs
child=$(pgrep -P "$pid" | head -n1 || true)
if [[ -n "$child" ]]; then
	assert_eq "0" "$(awk '/^Uid:/ {print $3}' /proc/$pid/status)" "executor keeps euid 0"
	assert_eq "$(id -u nobody)" "$(awk '/^Uid:/ {print $2 "/" $3 "/" $4}' /proc/$child/status | cut -d/ -f1)" "network process real uid is nobody"
	assert_eq "$(id -u nobody) $(id -u nobody) $(id -u nobody) $(id -u nobody)" "$(awk '/^Uid:/ {print $2, $3, $4, $5}' /proc/$child/status)" "network process: all four uids are nobody"
	assert_eq "0" "$(awk '/^Groups:/ {print NF - 1}' /proc/$child/status)" "network process has no supplementary groups"
	assert_eq "1" "$(awk '/^NoNewPrivs:/ {print $2}' /proc/$child/status)" "network process has NoNewPrivs"
	assert_eq "0000000000000000" "$(awk '/^CapEff:/ {print $2}' /proc/$child/status)" "network process has no capabilities"
else
	not_ok "trustpcd has a network process child"
fi
# SIGTERM to the main pid: both stop, exit 0
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
assert_eq 0 "$rc" "SIGTERM: trustpcd exits 0"
if name_owned; then not_ok "SIGTERM: the bus name is released"; else ok "SIGTERM: the bus name is released"; fi
test_done
