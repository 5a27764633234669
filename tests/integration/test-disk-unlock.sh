#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# trustpc-disk unlock on a real swtpm and a real LUKS2 image: the right boot unlocks; a changed
# PCR 7 or 11 does not (exit 4); one unseal per boot (PCR 15, exit 9); the PIN is checked by the
# TPM (wrong PIN exit 6, dictionary-attack lockout). Every refusal leaves the LUKS header unchanged.
set -euo pipefail
source "${TRUSTPC_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/disk.sh"
T=$TRUSTPC_TEST_TMP
IMG=$T/disk.img

# ---- a measured boot, then enroll ------------------------------------------------------------------
swtpm_start dev1
disk_measured_boot dev1
assert_ne "$DISK_ZERO" "$(tpm_pcr_read dev1 7)" "measured boot: PCR 7 is not zero"
assert_ne "$DISK_ZERO" "$(tpm_pcr_read dev1 11)" "measured boot: PCR 11 is not zero"
assert_pcr15_zero dev1 "measured boot: PCR 15 is zero"
disk_keys
EXPECT_NAME="enroll disk.img on dev1" expect_ok disk_enroll dev1 "$IMG"
expect_ok tpcdisk device-id
dev_id=$(cat "$EXPECT_STDOUT")
assert_match '^[0-9a-f]{32}$' "$dev_id" "device-id prints 32 hex digits"
assert_eq "$dev_id" "$(disk_status_field "$IMG" .device_id)" "the token names this TPM's device id"
assert_eq null "$(disk_status_field "$IMG" .policy_epoch)" "no policy stored after enroll"

# tpm-status reports what the TPM holds (checked against tpm2-tools).
disk_tpm_status dev1
assert_eq "$(tpm_pcr_read dev1 7)" "$DISK_PCR7" "tpm-status PCR 7 = tpm2_pcrread"
assert_eq "$(tpm_pcr_read dev1 11)" "$DISK_PCR11" "tpm-status PCR 11 = tpm2_pcrread"
assert_eq "$dev_id" "$DISK_DEVICE_ID" "tpm-status device id = device-id"
epoch=$DISK_EPOCH
assert_match '^[0-9]+$' "$epoch" "tpm-status shows the lock counter's epoch"

# ---- the right boot unlocks ------------------------------------------------------------------------
disk_sign_current dev1 "$T/p1.json"
h0=$(luks_header_hash "$IMG")
EXPECT_NAME="unlock --test --policy on the right PCRs (exit 0)" \
	expect_ok tpcdisk unlock "$IMG" --test --policy "$T/p1.json"
assert_file_contains "$EXPECT_STDERR" "Key verified for '$IMG' \\(device $dev_id, epoch $epoch\\)" \
	"unlock says which device and epoch"
assert_ne "$DISK_ZERO" "$(tpm_pcr_read dev1 15)" "unlock extended PCR 15 (one unseal per boot)"
assert_eq "$epoch" "$(disk_status_field "$IMG" .policy_epoch)" "the policy that worked is stored in the token"
assert_ne "$h0" "$(luks_header_hash "$IMG")" "storing the policy changed the header (positive control)"

# ---- one unseal per boot -------------------------------------------------------------------------
pcr15=$(tpm_pcr_read dev1 15)
EXPECT_NAME="second unlock in the same boot, stored policy (exit 9)" \
	disk_expect_fail_unchanged "$IMG" 9 'PCR 15 is not zero: a volume was already unlocked in this boot' \
	tpcdisk unlock "$IMG" --test
EXPECT_NAME="second unlock in the same boot, explicit --policy (exit 9)" \
	disk_expect_fail_unchanged "$IMG" 9 'already unlocked in this boot.*reboot' \
	tpcdisk unlock "$IMG" --test --policy "$T/p1.json"
assert_eq "$pcr15" "$(tpm_pcr_read dev1 15)" "a refused unlock does not extend PCR 15 again"

disk_reboot dev1
assert_pcr15_zero dev1 "reboot resets PCR 15"
EXPECT_NAME="after a reboot, unlock with the stored policy (no --policy)" \
	expect_ok tpcdisk unlock "$IMG" --test

# ---- the boot state: PCR 7 or PCR 11 changed after sealing -----------------------------------------
disk_reboot dev1
tpm_pcr_extend dev1 7 "$(printf 'another Secure Boot db' | sha256sum | cut -c1-64)"
EXPECT_NAME="PCR 7 changed after sealing (exit 4)" \
	disk_expect_fail_unchanged "$IMG" 4 "PCR 7 differs from the signed policy \\(policy $DISK_PCR7, TPM [0-9a-f]{64}\\)" \
	tpcdisk unlock "$IMG" --test
EXPECT_NAME="PCR 7 changed, explicit --policy (exit 4)" \
	disk_expect_fail_unchanged "$IMG" 4 'PCR 7 differs from the signed policy.*not the one the policy approves' \
	tpcdisk unlock "$IMG" --test --policy "$T/p1.json"
assert_pcr15_zero dev1 "a PCR 7 refusal leaves PCR 15 alone"

disk_reboot dev1
tpm_pcr_extend dev1 11 "$(printf 'another UKI' | sha256sum | cut -c1-64)"
EXPECT_NAME="PCR 11 changed after sealing (exit 4)" \
	disk_expect_fail_unchanged "$IMG" 4 "PCR 11 differs from the signed policy \\(policy $DISK_PCR11, TPM [0-9a-f]{64}\\)" \
	tpcdisk unlock "$IMG" --test
assert_pcr15_zero dev1 "a PCR 11 refusal leaves PCR 15 alone"

swtpm_reboot dev1 # no measurements at all: PCR 7 and 11 are zero
EXPECT_NAME="an unmeasured boot (PCRs zero) is refused (exit 4)" \
	disk_expect_fail_unchanged "$IMG" 4 "PCR 7 differs from the signed policy \\(policy $DISK_PCR7, TPM $DISK_ZERO\\)" \
	tpcdisk unlock "$IMG" --test

disk_reboot dev1
EXPECT_NAME="the refusals broke nothing: the right boot unlocks again" expect_ok tpcdisk unlock "$IMG" --test

# ---- PIN: the TPM checks it (PolicyAuthValue), counts failures, locks out --------------------------
PIMG=$T/pin.img
disk_reboot dev1
EXPECT_NAME="enroll pin.img with --pin (TRUSTPC_NEW_PIN)" \
	TRUSTPC_NEW_PIN=right-pin-4711 expect_ok disk_enroll dev1 "$PIMG" --pin
assert_eq true "$(disk_status_field "$PIMG" .pin)" "status shows the PIN"
# The PIN is bound in the sealed object's own policy: the signed policy is the same as for any disk.
disk_sign_current dev1 "$T/ppin.json"

EXPECT_NAME="PIN disk without a PIN (no TRUSTPC_PIN, no terminal) (exit 6)" \
	disk_expect_fail_unchanged "$PIMG" 6 "'$PIMG' needs a PIN: set TRUSTPC_PIN" \
	tpcdisk unlock "$PIMG" --test --policy "$T/ppin.json"
EXPECT_NAME="sign-policy has no --pin: the PIN needs no signature (exit 2)" \
	expect_fail 2 'sign-policy takes no --pin' tpcdisk sign-policy --pin --key "$DISK_KEYS/policy.key" \
	--device-id 00112233445566778899aabbccddeeff --epoch 1 --pcr 7="$(printf '%064d' 0)"
EXPECT_NAME="wrong PIN (exit 6)" \
	disk_expect_fail_unchanged "$PIMG" 6 'wrong PIN \(the TPM counts failed attempts\)' \
	env TRUSTPC_PIN=wrong-pin "$DISK_BIN" unlock "$PIMG" --test --policy "$T/ppin.json"
assert_pcr15_zero dev1 "a wrong PIN leaves PCR 15 alone"

swtpm_reboot dev1
disk_measured_boot dev1
EXPECT_NAME="after swtpm_reboot the right PIN unlocks" \
	expect_ok env TRUSTPC_PIN=right-pin-4711 "$DISK_BIN" unlock "$PIMG" --test --policy "$T/ppin.json"
disk_reboot dev1
EXPECT_NAME="...the PIN policy was stored: the next boot needs only the PIN" expect_ok env TRUSTPC_PIN=right-pin-4711 "$DISK_BIN" unlock "$PIMG" --test

# Dictionary-attack lockout (swtpm: 3 failures; the counter is kept across reboots). The TPM, not
# trustpc-disk, refuses the right PIN then: software never compares PINs.
disk_reboot dev1
max=$(tpm2_getcap -T "$(swtpm_tcti dev1)" properties-variable | awk '/TPM2_PT_MAX_AUTH_FAIL/ { print $2 }')
max=$((max))
assert_match '^[1-9][0-9]?$' "$max" "swtpm has a dictionary-attack limit ($max)"
locked_out=0
for ((i = 0; i <= max + 1; i++)); do
	rc=0
	env TRUSTPC_PIN="wrong-$i" "$DISK_BIN" unlock "$PIMG" --test >"$T/da.out" 2>&1 || rc=$?
	if grep -q 'dictionary-attack lockout' "$T/da.out"; then
		locked_out=1
		break
	fi
	[[ $rc == 6 ]] || break
done
assert_eq 1 "$locked_out" "wrong PINs end in the TPM's dictionary-attack lockout"
EXPECT_NAME="in lockout even the right PIN is refused (exit 6, TPM-enforced)" \
	disk_expect_fail_unchanged "$PIMG" 6 'dictionary-attack lockout after too many wrong PINs' \
	env TRUSTPC_PIN=right-pin-4711 "$DISK_BIN" unlock "$PIMG" --test
assert_pcr15_zero dev1 "lockout refusals leave PCR 15 alone"
EXPECT_NAME="lockout spares no-DA objects: the no-PIN disk still unlocks" expect_ok tpcdisk unlock "$IMG" --test

test_done
