#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The LUKS2 token and header are untrusted input: a tampered, truncated or foreign token, or a
# garbage header, is refused with a clear error (exit 8, 5 or 1) and nothing changes; where the
# software checks are bypassed by editing the token consistently, the TPM itself refuses (exit 5).
set -euo pipefail
source "${TRUSTPC_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/disk.sh"
T=$TRUSTPC_TEST_TMP
IMG=$T/disk.img

swtpm_start dev1
disk_measured_boot dev1
disk_keys
EXPECT_NAME="enroll disk.img on dev1" expect_ok disk_enroll dev1 "$IMG"
disk_sign_current dev1 "$T/p.json"
EXPECT_NAME="unlock once: the policy is stored in the token" expect_ok tpcdisk unlock "$IMG" --test --policy "$T/p.json"
disk_reboot dev1
tok=$(disk_token_id "$IMG")
cryptsetup token export --token-id "$tok" "$IMG" >"$T/token.json"
assert_eq trustpc-tpm2 "$(jq -r .type "$T/token.json")" "cryptsetup sees our token $tok"

# copy_of NAME: a fresh copy of the enrolled image (sparse), printed path.
copy_of() {
	cp --sparse=always "$IMG" "$T/$1.img"
	echo "$T/$1.img"
}
# b64_flip STRING POS: STRING with the base64 character at POS replaced by another one.
b64_flip() {
	local s=$1 pos=$2 c
	c=${s:pos:1}
	[[ $c == A ]] && c=B || c=A
	echo "${s:0:pos}$c${s:pos+1}"
}
# tampered NAME JQ [JQ-ARGS…]: a copy whose token went through the jq filter; prints its path.
tampered() {
	local img
	img=$(copy_of "$1")
	shift
	disk_token_edit "$img" "$@" || return 1
	echo "$img"
}
why="the trustpc-tpm2 token $tok of"

# ---- tampered fields -----------------------------------------------------------------------------
blob=$(jq -r .tpm2_blob "$T/token.json")
img=$(tampered blob-priv '.tpm2_blob = $b' --arg b "$(b64_flip "$blob" 40)")
EXPECT_NAME="token: one base64 character of tpm2_blob changed (sensitive part) (exit 8)" \
	disk_expect_fail_unchanged "$img" 8 "the sealed object in the token is corrupt or not for this TPM" \
	tpcdisk unlock "$img" --test
img=$(tampered blob-pub '.tpm2_blob = $b' --arg b "$(b64_flip "$blob" $((${#blob} - 30)))")
EXPECT_NAME="token: one base64 character of tpm2_blob changed (public part) (exit 8)" \
	disk_expect_fail_unchanged "$img" 8 "the sealed object in the token is corrupt or not for this TPM" \
	tpcdisk unlock "$img" --test
assert_pcr15_zero dev1 "a corrupt sealed object unseals nothing (PCR 15 zero)"
img=$(tampered bad-id '.device_id = "zz3456789abcdef0123456789abcdefz"')
EXPECT_NAME="token: device_id not hex (exit 8, names token, image and field)" \
	disk_expect_fail_unchanged "$img" 8 "$why $img is invalid: field 'device_id' must be 32 lower-case hex digits" \
	tpcdisk unlock "$img" --test
img=$(tampered bad-srk '.tpm2_srk = "AAAA"')
EXPECT_NAME="token: tpm2_srk is not a TPM public key (exit 8)" \
	disk_expect_fail_unchanged "$img" 8 "the sealed object in the token is corrupt or not for this TPM" \
	tpcdisk unlock "$img" --test
img=$(tampered bad-b64 '.tpm2_policy_key = "not base64!"')
EXPECT_NAME="token: tpm2_policy_key not base64 (exit 8)" \
	disk_expect_fail_unchanged "$img" 8 "$why $img is invalid: field 'tpm2_policy_key' must be base64" \
	tpcdisk unlock "$img" --test
img=$(tampered unknown '.extra = 1')
EXPECT_NAME="token: an unknown field (exit 8)" \
	disk_expect_fail_unchanged "$img" 8 "$why $img is invalid: the token has an unknown field" \
	tpcdisk unlock "$img" --test
img=$(tampered nv '.tpm2_nv_index = "0x01807c51"')
EXPECT_NAME="token: another lock counter index than the policy's (exit 8)" \
	disk_expect_fail_unchanged "$img" 8 "the policy names lock counter 0x01807c50, the disk 0x01807c51" \
	tpcdisk unlock "$img" --test
img=$(tampered policy-epoch '.policy.epoch += 1')
EXPECT_NAME="token: stored policy's epoch edited (exit 5)" \
	disk_expect_fail_unchanged "$img" 5 "'policy_digest' does not match its fields" \
	tpcdisk unlock "$img" --test
EXPECT_NAME="status still reads a token with an edited policy (no crypto in status)" \
	expect_ok tpcdisk status "$img" --json

# ---- truncated tokens -------------------------------------------------------------------------------
img=$(copy_of cut-text)
head -c 200 "$T/token.json" >"$T/cut.json"
EXPECT_NAME="truncated JSON text: cryptsetup token import refuses it, the header is unchanged" \
	disk_expect_fail_unchanged "$img" '*' '' disk_token_import "$img" "$T/cut.json"
img=$(tampered cut-fields '{type, keyslots, trustpc_token, device_id}')
EXPECT_NAME="token cut after device_id (valid JSON) (exit 8, names the first missing field)" \
	disk_expect_fail_unchanged "$img" 8 "$why $img is invalid: field 'tpm2_srk' must be base64" \
	tpcdisk unlock "$img" --test
half=$((${#blob} / 8 * 4))
img=$(tampered cut-blob '.tpm2_blob = $b' --arg b "${blob:0:half}")
EXPECT_NAME="token: tpm2_blob cut in half (exit 8)" \
	disk_expect_fail_unchanged "$img" 8 "the sealed object in the token is corrupt or not for this TPM" \
	tpcdisk unlock "$img" --test
img=$(copy_of no-token)
cryptsetup token remove --token-id "$tok" "$img"
EXPECT_NAME="no trustpc-tpm2 token at all (exit 1, says to enroll)" \
	disk_expect_fail_unchanged "$img" 1 "$img has no trustpc-tpm2 token: enroll it first" \
	tpcdisk unlock "$img" --test

# ---- consistent edits that pass every software check: the TPM refuses --------------------------------------
# The token claims device X and carries a valid policy for X (right key, right PCRs, right epoch);
# the sealed object's authPolicy is PolicyAuthorize(policy key, policyRef = the real device id).
fake=0123456789abcdef0123456789abcdef
img=$(tampered other-id '.device_id = $d | del(.policy)' --arg d "$fake")
disk_sign_current dev1 "$T/p-fake.json" --device-id "$fake"
EXPECT_NAME="token relabelled to device X + policy for X: the TPM refuses (exit 5)" \
	disk_expect_fail_unchanged "$img" 5 'the TPM refused the policy signature for this device and sealed object' \
	tpcdisk unlock "$img" --test --policy "$T/p-fake.json"
assert_pcr15_zero dev1 "the TPM released nothing (PCR 15 zero)"
# The token trusts another policy key and carries a policy that key signed.
spki=$(openssl pkey -pubin -in "$DISK_KEYS/other.pub" -outform der | base64 -w0)
img=$(tampered other-key '.tpm2_policy_key = $k | del(.policy)' --arg k "$spki")
disk_sign_current dev1 "$T/p-otherkey.json" --key "$DISK_KEYS/other.key"
EXPECT_NAME="token's policy key swapped + policy by that key: the TPM refuses (exit 5)" \
	disk_expect_fail_unchanged "$img" 5 'the TPM refused the policy signature for this device and sealed object' \
	tpcdisk unlock "$img" --test --policy "$T/p-otherkey.json"
assert_pcr15_zero dev1 "the TPM released nothing (PCR 15 zero)"

# ---- garbage headers --------------------------------------------------------------------------------------
# LUKS2 keeps two copies of its header (the second at 16 KiB here): garbage over the first 4 KiB is
# repaired by libcryptsetup from the second copy, which is LUKS2 working as designed.
img=$(copy_of garbage4k)
head -c 4096 /dev/urandom | dd of="$img" bs=4096 count=1 iflag=fullblock conv=notrunc status=none
EXPECT_NAME="garbage over the first 4 KiB: the secondary LUKS2 header still unlocks" \
	expect_ok tpcdisk unlock "$img" --test
assert_eq 4c554b53babe "$(head -c 6 "$img" | od -An -tx1 | tr -d ' \n')" \
	"...and libcryptsetup wrote the primary header back (LUKS2 magic at offset 0)"
disk_reboot dev1
# Both copies gone: not LUKS2 any more.
img=$(copy_of garbage32k)
head -c 32768 /dev/urandom | dd of="$img" bs=32768 count=1 iflag=fullblock conv=notrunc status=none
sum=$(sha256sum <"$img")
EXPECT_NAME="garbage over both header copies (exit 8, names the file)" \
	expect_fail 8 "Cannot open '$img' as a LUKS2 volume" tpcdisk unlock "$img" --test
EXPECT_NAME="status of that file (exit 8, names the file)" \
	expect_fail 8 "Cannot open '$img' as a LUKS2 volume" tpcdisk status "$img"
assert_eq "$sum" "$(sha256sum <"$img")" "...and the file is unchanged"
truncate -s 16M "$T/plain.img"
EXPECT_NAME="a file that never was LUKS (exit 8)" \
	expect_fail 8 "Cannot open '$T/plain.img' as a LUKS2 volume" tpcdisk unlock "$T/plain.img" --test
EXPECT_NAME="a path that does not exist (exit 1, names it)" \
	expect_fail 1 "Cannot open '$T/nope.img' as a LUKS2 volume: No such file" tpcdisk unlock "$T/nope.img" --test

assert_pcr15_zero dev1 "nothing above unsealed"
EXPECT_NAME="the untouched image still unlocks" expect_ok tpcdisk unlock "$IMG" --test

test_done
