# SPDX-License-Identifier: Apache-2.0
# tests/lib/common.sh — sourced by the other test libraries (and by tests directly).
#
# Gives every test:
#   TRUSTPC_TEST_TMP    a private temp dir, removed on any exit (success, failure, Ctrl-C)
#   cleanup_push CMD…   run CMD at exit, last pushed runs first (the EXIT/INT/TERM trap is ours)
#   require_cmd TOOL…   exit 77 (meson: SKIP) when a tool is missing
#   poll_until SECS CMD…  re-run CMD until it succeeds, at most SECS seconds; never a fixed sleep
#
# Set TRUSTPC_KEEP_TMP=1 to keep the temp dir for a post-mortem (its path is printed).

if [[ -n "${_TRUSTPC_COMMON_SH:-}" ]]; then
	return 0
fi
_TRUSTPC_COMMON_SH=1

: "${TRUSTPC_SOURCE_ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${TRUSTPC_BUILD_ROOT:=$TRUSTPC_SOURCE_ROOT/build}"
export TRUSTPC_SOURCE_ROOT TRUSTPC_BUILD_ROOT
TRUSTPC_TEST_LIB="$TRUSTPC_SOURCE_ROOT/tests/lib"

TRUSTPC_TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/trustpc-test.XXXXXX")
export TRUSTPC_TEST_TMP

_cleanup_cmds=()
_cleanup_done=0

# cleanup_push CMD [ARGS…]: CMD is eval'ed at exit (pass one string; quote with printf %q).
cleanup_push() {
	_cleanup_cmds+=("$*")
}

# Runs the cleanup stack once, newest first; errors in one step do not stop the others.
_cleanup_run() {
	local i
	[[ $_cleanup_done == 1 ]] && return 0
	_cleanup_done=1
	for ((i = ${#_cleanup_cmds[@]} - 1; i >= 0; i--)); do
		eval "${_cleanup_cmds[i]}" || true
	done
	if [[ "${TRUSTPC_KEEP_TMP:-0}" == 1 ]]; then
		echo "# kept $TRUSTPC_TEST_TMP" >&2
	else
		rm -rf -- "$TRUSTPC_TEST_TMP"
	fi
}

_on_exit() {
	local rc=$?
	trap - EXIT
	# Hooks that want the exit code (assert.sh's summary) read and may change _exit_rc.
	_exit_rc=$rc
	for h in "${_exit_hooks[@]}"; do
		"$h" || true
	done
	_cleanup_run
	exit "$_exit_rc"
}
_exit_hooks=()
# exit_hook_push FUNC: FUNC runs at exit before the cleanup stack; it may set _exit_rc.
exit_hook_push() {
	_exit_hooks+=("$1")
}

trap _on_exit EXIT
# A signal ends the test like a failure: the EXIT trap then cleans up.
trap 'echo "# interrupted" >&2; exit 130' INT
trap 'echo "# terminated" >&2; exit 143' TERM
trap 'exit 129' HUP

skip() {
	echo "SKIP: $*" >&2
	_skipping=1
	exit 77
}

require_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || skip "missing tool '$c' (install it, or run tools/run-tests which installs the test packages)"
	done
}

# now_ms: monotonic-enough wall clock in milliseconds.
now_ms() {
	local t
	t=$(date +%s%N)
	echo $((t / 1000000))
}

# poll_until SECONDS CMD [ARGS…]: runs CMD until it exits 0. Returns 1 after SECONDS.
# The pause between attempts (POLL_INTERVAL, default 0.02 s) is a poll interval, not a wait for
# something to happen.
poll_until() {
	local limit=$1 deadline
	shift
	deadline=$(($(now_ms) + limit * 1000))
	while :; do
		"$@" && return 0
		(($(now_ms) >= deadline)) && return 1
		sleep "${POLL_INTERVAL:-0.02}"
	done
}

# find_binary NAME: path of a built program (searched under TRUSTPC_BUILD_ROOT), else empty.
find_binary() {
	local p
	p=$(find "$TRUSTPC_BUILD_ROOT" -type f -name "$1" -perm -u+x 2>/dev/null | head -n1)
	[[ -n "$p" ]] && echo "$p"
}
