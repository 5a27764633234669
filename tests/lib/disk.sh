# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# tests/lib/disk.sh — shared steps of the trustpc-disk integration tests (tests/integration/test-disk-*.sh).
# Sources common.sh, swtpm.sh, luks.sh and assert.sh.
#
#   DISK_BIN                     the built trustpc-disk ($TRUSTPC_BUILD_ROOT/boot/trustpc-disk)
#   tpcdisk ARGS…                run it against the current TPM (TRUSTPC_TPM2_DEVICE, set by swtpm_use)
#   tpcdisk_on NAME ARGS…        run it against swtpm NAME
#   disk_keys                    P-256 key pairs in $DISK_KEYS: policy.{key,pub} (the fleet policy key),
#                                escrow.{key,pub} (the fleet escrow key), other.{key,pub} (a stranger)
#   disk_measured_boot NAME      simulate firmware + UKI measurements: extend PCR 7 and PCR 11 with
#                                fixed digests, so every boot of NAME ends with the same non-zero values
#   disk_reboot NAME             swtpm_reboot + disk_measured_boot (PCR 15 back to zero)
#   disk_enroll NAME IMG [ARGS…] new LUKS2 image IMG (passphrase $DISK_PASSPHRASE), enrolled on NAME with
#                                the policy key and the escrow key (escrow file IMG.escrow); ARGS are
#                                added to (or override) the enroll arguments. Output in IMG.enroll.log
#   disk_tpm_status NAME         sets DISK_DEVICE_ID, DISK_EPOCH, DISK_PCR7, DISK_PCR11 from `tpm-status --json`
#   disk_sign_current NAME OUT [ARGS…]   sign a policy for NAME's device id, epoch and current PCR 7/11
#                                with the policy key; ARGS override (--epoch N, --key K, --device-id ID,
#                                --pcr 7=HEX): the last occurrence of an option wins
#   disk_expect_fail_unchanged IMG CODE PATTERN CMD…   expect_fail, then assert that the LUKS header of
#                                IMG (luks_header_hash) is byte-for-byte what it was before
#   assert_pcr15_zero NAME [WHY] PCR 15 of NAME is still zero (no unseal happened in this boot)
#   disk_status_field IMG JQ     `status IMG --json | jq -r JQ`
#   disk_token_id IMG            id of IMG's trustpc-tpm2 token (read with cryptsetup, not trustpc-disk)
#   disk_token_edit IMG JQ [JQ-ARGS…]   rewrite that token through cryptsetup token export / import
#                                (--token-replace): the way an attacker with the disk would
#   disk_token_import IMG FILE   replace that token with the JSON in FILE

if [[ -n "${_TRUSTPC_DISK_SH:-}" ]]; then
	return 0
fi
_TRUSTPC_DISK_SH=1
_disk_lib_dir=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=common.sh
source "$_disk_lib_dir/common.sh"
# shellcheck source=assert.sh
source "$_disk_lib_dir/assert.sh"
# shellcheck source=swtpm.sh
source "$_disk_lib_dir/swtpm.sh"
# shellcheck source=luks.sh
source "$_disk_lib_dir/luks.sh"

require_cmd jq openssl cryptsetup base64 python3

DISK_BIN="$TRUSTPC_BUILD_ROOT/boot/trustpc-disk"
if [[ ! -x "$DISK_BIN" ]]; then
	# Not a skip: the program under test is part of the build.
	not_ok "trustpc-disk is built at $DISK_BIN" "build it: ninja -C $TRUSTPC_BUILD_ROOT"
	exit 1
fi

DISK_KEYS="$TRUSTPC_TEST_TMP/keys"
DISK_PASSPHRASE="disk-test-passphrase"
DISK_ZERO=$(printf '0%.0s' {1..64})
# What the simulated firmware and UKI measure (any fixed, distinct digests do).
DISK_PCR7_EVENT=$(printf 'trustpc-test: Secure Boot state, db, dbx' | sha256sum | cut -c1-64)
DISK_PCR11_EVENT=$(printf 'trustpc-test: UKI .linux .initrd .cmdline' | sha256sum | cut -c1-64)
export DISK_BIN DISK_KEYS

tpcdisk() {
	"$DISK_BIN" "$@"
}

tpcdisk_on() {
	local name=$1 tcti
	shift
	tcti=$(swtpm_tcti "$name") || return 1
	TRUSTPC_TPM2_DEVICE=$tcti "$DISK_BIN" "$@"
}

_disk_p256() {
	openssl ecparam -name prime256v1 -genkey -noout -out "$DISK_KEYS/$1.key" 2>/dev/null &&
		openssl ec -in "$DISK_KEYS/$1.key" -pubout -out "$DISK_KEYS/$1.pub" 2>/dev/null
}

disk_keys() {
	mkdir -p "$DISK_KEYS"
	_disk_p256 policy && _disk_p256 escrow && _disk_p256 other
}

disk_measured_boot() {
	local name=$1
	tpm_pcr_extend "$name" 7 "$DISK_PCR7_EVENT" && tpm_pcr_extend "$name" 11 "$DISK_PCR11_EVENT"
}

disk_reboot() {
	swtpm_reboot "$1" && disk_measured_boot "$1"
}

disk_enroll() {
	local name=$1 img=$2
	shift 2
	luks_image_make "$img" "$DISK_PASSPHRASE" || return 1
	printf '%s' "$DISK_PASSPHRASE" >"$TRUSTPC_TEST_TMP/passphrase"
	tpcdisk_on "$name" enroll "$img" --policy-key "$DISK_KEYS/policy.pub" --escrow-key "$DISK_KEYS/escrow.pub" \
		--escrow-out "$img.escrow" --unlock-key-file "$TRUSTPC_TEST_TMP/passphrase" "$@" >"$img.enroll.log" 2>&1 ||
		{
			cat "$img.enroll.log" >&2
			return 1
		}
}

disk_tpm_status() {
	local name=$1 j
	j=$(tpcdisk_on "$name" tpm-status --json) || return 1
	DISK_DEVICE_ID=$(jq -er .device_id <<<"$j") &&
		DISK_EPOCH=$(jq -er .epoch <<<"$j") &&
		DISK_PCR7=$(jq -er '.pcrs["7"]' <<<"$j") &&
		DISK_PCR11=$(jq -er '.pcrs["11"]' <<<"$j")
}

disk_sign_current() {
	local name=$1 out=$2
	shift 2
	disk_tpm_status "$name" || return 1
	tpcdisk sign-policy --key "$DISK_KEYS/policy.key" --device-id "$DISK_DEVICE_ID" --epoch "$DISK_EPOCH" \
		--pcr "7=$DISK_PCR7" --pcr "11=$DISK_PCR11" "$@" -o "$out"
}

disk_expect_fail_unchanged() {
	local img=$1 code=$2 pattern=$3 before after name
	shift 3
	name=${EXPECT_NAME:-"fails: $(_cmd_name "$@")"}
	before=$(luks_header_hash "$img") || {
		not_ok "$name" "cannot hash the LUKS header of $img before the command"
		return 1
	}
	EXPECT_NAME=$name expect_fail "$code" "$pattern" "$@" || return 1
	after=$(luks_header_hash "$img") || {
		not_ok "...LUKS header unchanged" "cannot hash the LUKS header of $img after the command"
		return 1
	}
	assert_eq "$before" "$after" "...LUKS header of ${img##*/} unchanged"
}

assert_pcr15_zero() {
	assert_eq "$DISK_ZERO" "$(tpm_pcr_read "$1" 15)" "${2:-PCR 15 of $1 is still zero}"
}

disk_status_field() {
	tpcdisk status "$1" --json | jq -r "$2"
}

disk_token_id() {
	cryptsetup luksDump --dump-json-metadata -- "$1" |
		jq -er '.tokens | to_entries[] | select(.value.type == "trustpc-tpm2") | .key'
}

disk_token_import() {
	local img=$1 file=$2 id
	id=$(disk_token_id "$img") || return 1
	cryptsetup token import --token-id "$id" --token-replace --json-file "$file" -- "$img"
}

disk_token_edit() {
	local img=$1 filter=$2 id f
	shift 2
	id=$(disk_token_id "$img") || return 1
	f=$(mktemp "$TRUSTPC_TEST_TMP/token.XXXXXX")
	cryptsetup token export --token-id "$id" -- "$img" | jq -c "$@" "$filter" >"$f" &&
		disk_token_import "$img" "$f"
}
