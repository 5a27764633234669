# SPDX-License-Identifier: Apache-2.0
# tests/lib/luks.sh — LUKS2 image files for integration tests (this host has no device-mapper:
# formatting, keyslots, tokens and key checks work on files; activation only inside QEMU).
#
#   luks_image_make PATH [PASSPHRASE]   16 MiB sparse file, LUKS2, keyslot 0 = PASSPHRASE
#                                       (default $LUKS_TEST_PASSPHRASE), PBKDF2 with 1000 iterations
#   luks_header_hash PATH               sha256 of a luksHeaderBackup (both binary headers, the JSON
#                                       metadata and the whole keyslot area): equal before and after
#                                       = the header was not changed
#   luks_check_passphrase PATH PASS     exit 0 when PASS opens a keyslot (no activation)
#
# The fast PBKDF is fine for tests and is also what trustpc uses for its own high-entropy keys.
# With the default LUKS2 layout a 16 MiB file is all header (data offset 16 MiB): enough for every
# header operation; cryptsetup's "too small for activation" note is filtered out.

if [[ -n "${_TRUSTPC_LUKS_SH:-}" ]]; then
	return 0
fi
_TRUSTPC_LUKS_SH=1
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_cmd cryptsetup sha256sum truncate

LUKS_TEST_PASSPHRASE=${LUKS_TEST_PASSPHRASE:-trustpc-test-passphrase}
LUKS_IMAGE_SIZE=${LUKS_IMAGE_SIZE:-16M}
export LUKS_TEST_PASSPHRASE

luks_image_make() {
	local path=${1:?usage: luks_image_make PATH [PASSPHRASE]} pass=${2:-$LUKS_TEST_PASSPHRASE} err rc=0
	rm -f -- "$path"
	truncate -s "$LUKS_IMAGE_SIZE" -- "$path" || return 1
	err=$(printf '%s' "$pass" | cryptsetup luksFormat --type luks2 --pbkdf pbkdf2 \
		--pbkdf-force-iterations 1000 --batch-mode --key-file - -- "$path" 2>&1) || rc=$?
	err=$(grep -v 'too small for activation' <<<"$err" || true)
	[[ -n "$err" ]] && printf '%s\n' "$err" >&2
	if ((rc != 0)); then
		echo "luks.sh: luksFormat of $path failed ($rc)" >&2
		return 1
	fi
}

luks_header_hash() {
	local path=${1:?usage: luks_header_hash PATH} b
	b=$(mktemp -u "$TRUSTPC_TEST_TMP/luks-header.XXXXXX")
	cryptsetup luksHeaderBackup --batch-mode --header-backup-file "$b" -- "$path" >/dev/null || return 1
	sha256sum <"$b" | cut -d' ' -f1
	rm -f -- "$b"
}

luks_check_passphrase() {
	local path=$1 pass=$2
	printf '%s' "$pass" | cryptsetup open --test-passphrase --key-file - -- "$path" >/dev/null 2>&1
}
