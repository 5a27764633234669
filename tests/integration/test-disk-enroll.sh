#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# trustpc-disk enroll: what it writes, and its refusals (enrolled twice, wrong passphrase, missing or
# non-P-256 keys, no recovery destination, a policy for another device) — each clear, the LUKS
# header unchanged and no escrow file written.
set -euo pipefail
source "${TRUSTPC_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/disk.sh"
T=$TRUSTPC_TEST_TMP
MODHEX='([cbdefghijklnrtuv]{8}-){7}[cbdefghijklnrtuv]{8}'

swtpm_start dev1
disk_measured_boot dev1
disk_keys
K=$DISK_KEYS
openssl ecparam -name secp384r1 -genkey -noout -out "$K/p384.key" 2>/dev/null
openssl ec -in "$K/p384.key" -pubout -out "$K/p384.pub" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$K/rsa.key" 2>/dev/null
openssl pkey -in "$K/rsa.key" -pubout -out "$K/rsa.pub"
printf '%s' "$DISK_PASSPHRASE" >"$T/pass"
printf 'not-the-passphrase' >"$T/wrong-pass"

# ---- a normal enrollment ------------------------------------------------------------------------------
IMG=$T/disk.img
EXPECT_NAME="enroll with escrow" expect_ok disk_enroll dev1 "$IMG"
assert_file_contains "$IMG.enroll.log" "Enrolled '$IMG': device [0-9a-f]{32}, epoch [0-9]+, TPM keyslot 1, recovery keyslot 2" \
	"enroll says what it made"
expect_ok tpcdisk status "$IMG" --json
assert_eq '1 2 false [7,11,15]' "$(jq -c -r '"\(.keyslot) \(.recovery_keyslot) \(.pin) \(.pcrs)"' "$EXPECT_STDOUT")" \
	"status: TPM keyslot 1, recovery keyslot 2, no PIN, PCRs 7,11,15"
assert_eq 0600 "$(stat -c %04a "$IMG.escrow")" "escrow file written, mode 0600"
EXPECT_NAME="the passphrase keyslot still opens" expect_ok luks_check_passphrase "$IMG" "$DISK_PASSPHRASE"

# ---- refusals ----------------------------------------------------------------------------------------------
EXPECT_NAME="enroll an enrolled image again (exit 1)" \
	disk_expect_fail_unchanged "$IMG" 1 "'$IMG' is already enrolled \\(token 0\\). Use 'trustpc-disk recovery' to re-seal" \
	tpcdisk enroll "$IMG" --policy-key "$K/policy.pub" --escrow-key "$K/escrow.pub" --escrow-out "$T/again.escrow" \
	--unlock-key-file "$T/pass"
EXPECT_NAME="...no escrow file written" expect_fail 1 '' test -e "$T/again.escrow"

NEW=$T/new.img
luks_image_make "$NEW" "$DISK_PASSPHRASE"
# refuse CODE PATTERN NAME ENROLL-ARGS…: enroll NEW must fail that way, change nothing, write no escrow.
refuse() {
	local code=$1 pattern=$2 name=$3
	shift 3
	rm -f "$T/new.escrow"
	EXPECT_NAME="$name" disk_expect_fail_unchanged "$NEW" "$code" "$pattern" tpcdisk enroll "$NEW" "$@" || return 1
	EXPECT_NAME="...no escrow file written" expect_fail 1 '' test -e "$T/new.escrow"
}
refuse 6 "The passphrase does not open '$NEW'" "wrong current passphrase (exit 6)" \
	--policy-key "$K/policy.pub" --escrow-key "$K/escrow.pub" --escrow-out "$T/new.escrow" --unlock-key-file "$T/wrong-pass"
refuse 8 '--policy-key KEY.pem is required' "missing --policy-key (exit 8)" \
	--escrow-key "$K/escrow.pub" --escrow-out "$T/new.escrow" --unlock-key-file "$T/pass"
refuse 8 "--policy-key '$K/p384.pub' is not a P-256 key" "P-384 --policy-key (exit 8, names the file)" \
	--policy-key "$K/p384.pub" --escrow-key "$K/escrow.pub" --escrow-out "$T/new.escrow" --unlock-key-file "$T/pass"
refuse 8 "--policy-key '$K/rsa.pub' is not a P-256 key" "RSA --policy-key (exit 8, names the file)" \
	--policy-key "$K/rsa.pub" --escrow-key "$K/escrow.pub" --escrow-out "$T/new.escrow" --unlock-key-file "$T/pass"
refuse 1 "Cannot read --policy-key '$T/nope.pub'" "--policy-key that does not exist (exit 1)" \
	--policy-key "$T/nope.pub" --escrow-key "$K/escrow.pub" --escrow-out "$T/new.escrow" --unlock-key-file "$T/pass"
refuse 8 "--escrow-key '$K/p384.pub' is not a P-256 key" "P-384 --escrow-key (exit 8)" \
	--policy-key "$K/policy.pub" --escrow-key "$K/p384.pub" --escrow-out "$T/new.escrow" --unlock-key-file "$T/pass"
refuse 2 'Say where the recovery key goes' "no recovery key destination (exit 2)" \
	--policy-key "$K/policy.pub" --unlock-key-file "$T/pass"
disk_sign_current dev1 "$T/p-fake.json" --device-id 0123456789abcdef0123456789abcdef
refuse 5 "--policy '$T/p-fake.json' was signed for device 0123456789abcdef0123456789abcdef, this TPM is device $DISK_DEVICE_ID" \
	"enroll --policy signed for another device (exit 5)" \
	--policy "$T/p-fake.json" --policy-key "$K/policy.pub" --escrow-key "$K/escrow.pub" --escrow-out "$T/new.escrow" \
	--unlock-key-file "$T/pass"
disk_sign_current dev1 "$T/p-other.json" --key "$K/other.key"
refuse 5 "--policy '$T/p-other.json' rejected: the policy was signed by another key" "enroll --policy by another key (exit 5)" \
	--policy "$T/p-other.json" --policy-key "$K/policy.pub" --escrow-key "$K/escrow.pub" --escrow-out "$T/new.escrow" \
	--unlock-key-file "$T/pass"
disk_sign_current dev1 "$T/p.json"
assert_eq "" "$(cryptsetup luksDump --dump-json-metadata "$NEW" | jq -c '.tokens | keys | .[]')" "the refused image has no token"

# ---- after all refusals the same image enrolls, here with the policy given at enroll time ---------------------
EXPECT_NAME="enroll new.img with --policy and --show-recovery-key" \
	expect_ok tpcdisk enroll "$NEW" --policy "$T/p.json" --policy-key "$K/policy.pub" --show-recovery-key --unlock-key-file "$T/pass"
rk=$(grep -Eo "$MODHEX" "$EXPECT_STDOUT" || true)
assert_match "^$MODHEX\$" "$rk" "--show-recovery-key prints the recovery key once"
EXPECT_NAME="the shown recovery key opens new.img" expect_ok luks_check_passphrase "$NEW" "$rk"
EXPECT_NAME="the policy given at enroll is stored: unlock needs no --policy" expect_ok tpcdisk unlock "$NEW" --test

NOREC=$T/norec.img
EXPECT_NAME="enroll with --no-recovery-key" expect_ok disk_enroll dev1 "$NOREC" --no-recovery-key
assert_eq null "$(disk_status_field "$NOREC" .recovery_keyslot)" "--no-recovery-key: no recovery keyslot"

test_done
