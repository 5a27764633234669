# SPDX-License-Identifier: Apache-2.0
# tests/lib/assert.sh — checks with TAP-like output for the shell integration tests.
#
#   expect_ok CMD…                    CMD must exit 0
#   expect_fail CODE PATTERN CMD…     CMD must exit with CODE ('*' = any non-zero) and its stderr
#                                     must match the extended regex PATTERN ('' = do not check)
#   assert_eq EXPECTED ACTUAL [NAME]  string equality
#   assert_ne A B [NAME], assert_match REGEX STRING [NAME], assert_file_contains FILE REGEX [NAME]
#   ok NAME / not_ok NAME [DETAIL]    record a result computed by the test itself
#   test_done                         end of the test (optional: the exit trap does the same)
#
# After expect_ok/expect_fail the command's output is in the files $EXPECT_STDOUT and $EXPECT_STDERR.
# Each check prints "ok N - name" or "not ok N - name" (with both outputs on a mismatch); the last
# line is always "N passed, M failed". Exit status: 0 when all passed, 1 on any failure, 77 when the
# test skipped itself (skip/require_cmd). A failed check returns 1, so under `set -e` the test stops
# there (later steps usually depend on it); append `|| true` to carry on. A test that exits non-zero
# without a failed check, or that ran no check at all, is reported as failed: it cannot have proven
# anything.

if [[ -n "${_TRUSTPC_ASSERT_SH:-}" ]]; then
	return 0
fi
_TRUSTPC_ASSERT_SH=1
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

_t_n=0
_t_pass=0
_t_fail=0
_t_done=0
EXPECT_STDOUT="$TRUSTPC_TEST_TMP/.expect-stdout"
EXPECT_STDERR="$TRUSTPC_TEST_TMP/.expect-stderr"

ok() {
	_t_n=$((_t_n + 1))
	_t_pass=$((_t_pass + 1))
	echo "ok $_t_n - $1"
	return 0
}

not_ok() {
	_t_n=$((_t_n + 1))
	_t_fail=$((_t_fail + 1))
	echo "not ok $_t_n - $1"
	if [[ -n "${2:-}" ]]; then
		printf '%s\n' "$2" | sed 's/^/#   /'
	fi
	return 1
}

_show_output() {
	echo "#   --- stdout:"
	sed -n '1,40s/^/#   /p' "$EXPECT_STDOUT"
	echo "#   --- stderr:"
	sed -n '1,40s/^/#   /p' "$EXPECT_STDERR"
}

_cmd_name() {
	local s
	s=$(printf '%q ' "$@")
	s=${s% }
	((${#s} > 100)) && s="${s:0:97}..."
	echo "$s"
}

expect_ok() {
	local rc=0 name
	name=${EXPECT_NAME:-$(_cmd_name "$@")}
	"$@" >"$EXPECT_STDOUT" 2>"$EXPECT_STDERR" </dev/null || rc=$?
	if ((rc == 0)); then
		ok "$name"
	else
		not_ok "$name" "expected exit 0, got $rc"
		_show_output
		return 1
	fi
}

expect_fail() {
	local code=$1 pattern=$2 rc=0 name why=""
	shift 2
	name=${EXPECT_NAME:-"fails: $(_cmd_name "$@")"}
	"$@" >"$EXPECT_STDOUT" 2>"$EXPECT_STDERR" </dev/null || rc=$?
	if [[ "$code" == '*' ]]; then
		((rc != 0)) || why="expected a non-zero exit, got 0"
	elif [[ "$rc" != "$code" ]]; then
		why="expected exit $code, got $rc"
	fi
	if [[ -z "$why" && -n "$pattern" ]] && ! grep -Eq -- "$pattern" "$EXPECT_STDERR"; then
		why="stderr does not match /$pattern/"
	fi
	if [[ -z "$why" ]]; then
		ok "$name"
	else
		not_ok "$name" "$why"
		_show_output
		return 1
	fi
}

assert_eq() {
	if [[ "$1" == "$2" ]]; then
		ok "${3:-"'$2' == '$1'"}"
	else
		not_ok "${3:-assert_eq}" "expected: '$1'"$'\n'"actual:   '$2'"
	fi
}

assert_ne() {
	if [[ "$1" != "$2" ]]; then
		ok "${3:-"'$1' != '$2'"}"
	else
		not_ok "${3:-assert_ne}" "both are: '$1'"
	fi
}

assert_match() {
	if [[ "$2" =~ $1 ]]; then
		ok "${3:-"matches /$1/"}"
	else
		not_ok "${3:-assert_match}" "'$2' does not match /$1/"
	fi
}

assert_file_contains() {
	if grep -Eq -- "$2" "$1"; then
		ok "${3:-"$1 contains /$2/"}"
	else
		not_ok "${3:-assert_file_contains}" "$1 does not match /$2/"
	fi
}

test_done() {
	_t_done=1
	exit $((_t_fail > 0 ? 1 : 0))
}

_assert_summary() {
	if [[ "${_skipping:-0}" == 1 ]]; then
		echo "$_t_pass passed, $_t_fail failed (skipped)"
		_exit_rc=77
		return 0
	fi
	if ((_exit_rc != 0 && _t_fail == 0)); then
		not_ok "test script exited with status $_exit_rc${_t_last_err:+ after a failed command at $_t_last_err}" || true
	elif ((_t_n == 0)); then
		not_ok "the test ran no check" || true
	fi
	echo "$_t_pass passed, $_t_fail failed"
	_exit_rc=$((_t_fail > 0 ? 1 : 0))
}
exit_hook_push _assert_summary
# Remembers the last failing command so that an unexpected `set -e` exit names it.
trap '_t_last_err="${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND"' ERR
