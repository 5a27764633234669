#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The helpdesk's fallback: the recovery key, escrowed to the fleet escrow key. escrow-open gives it
# back only with the right key; recovery with a wrong (6) or malformed (8) key, a policy for the
# wrong epoch (3), device (5) or key (5), or on another TPM (7) changes nothing; the right one
# re-seals, and afterwards the TPM unlocks with the new policy, in later boots without --policy.
set -euo pipefail
source "${TRUSTPC_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/disk.sh"
T=$TRUSTPC_TEST_TMP
IMG=$T/disk.img
ESC=$IMG.escrow
MODHEX='^([cbdefghijklnrtuv]{8}-){7}[cbdefghijklnrtuv]{8}$'

swtpm_start dev1
disk_measured_boot dev1
disk_keys
EXPECT_NAME="enroll with the recovery key escrowed" expect_ok disk_enroll dev1 "$IMG"
assert_eq 600 "$(stat -c %a "$ESC")" "the escrow file is mode 0600"
assert_eq '"ECDH-ES-P256+HKDF-SHA256+A256GCM"' "$(jq -c .alg "$ESC")" "the escrow file is an ECIES blob"
dev_id=$(tpcdisk device-id)
assert_match "^recovery-key:$dev_id:" "$(jq -r .context "$ESC")" "the escrow blob is bound to device and volume"
disk_sign_current dev1 "$T/p0.json"
e0=$DISK_EPOCH
EXPECT_NAME="unlock with the first policy" expect_ok tpcdisk unlock "$IMG" --test --policy "$T/p0.json"
rk_slot=$(disk_status_field "$IMG" .recovery_keyslot)
old_slot=$(disk_status_field "$IMG" .keyslot)
assert_match '^[0-9]+$' "$rk_slot" "status names the recovery keyslot"

# ---- escrow-open -------------------------------------------------------------------------------------
EXPECT_NAME="escrow-open with the escrow key" expect_ok tpcdisk escrow-open --key "$DISK_KEYS/escrow.key" "$ESC"
rk=$(cat "$EXPECT_STDOUT")
assert_match "$MODHEX" "$rk" "the recovery key is 8 groups of 8 modhex letters"
printf '%s\n' "$rk" >"$T/rk"
EXPECT_NAME="the recovery key opens its keyslot (cryptsetup)" expect_ok luks_check_passphrase "$IMG" "$rk"
EXPECT_NAME="escrow-open with another key (exit 5, names file and key)" \
	expect_fail 5 "Escrow file '$ESC' is encrypted to another key than --key '$DISK_KEYS/other.key'" \
	tpcdisk escrow-open --key "$DISK_KEYS/other.key" "$ESC"
assert_eq "" "$(cat "$EXPECT_STDOUT")" "...and prints nothing"
EXPECT_NAME="escrow-open with the public key only (exit 8)" \
	expect_fail 8 "--key '$DISK_KEYS/escrow.pub' is a public key; the private key is needed" \
	tpcdisk escrow-open --key "$DISK_KEYS/escrow.pub" "$ESC"
ct=$(jq -r .ct "$ESC")
[[ ${ct:10:1} == A ]] && c=B || c=A
jq -c --arg ct "${ct:0:10}$c${ct:11}" '.ct = $ct' "$ESC" >"$T/escrow-tampered"
EXPECT_NAME="escrow-open of a tampered escrow file (exit 5)" \
	expect_fail 8 "Escrow file '$T/escrow-tampered' is malformed or was tampered with" \
	tpcdisk escrow-open --key "$DISK_KEYS/escrow.key" "$T/escrow-tampered"

# ---- the device is locked; recovery attempts that must change nothing ------------------------------------
EXPECT_NAME="lock" expect_ok tpcdisk lock
e1=$(cat "$EXPECT_STDOUT")
disk_reboot dev1
EXPECT_NAME="locked: the TPM unlock fails (exit 3)" expect_fail 3 'the device is locked' tpcdisk unlock "$IMG" --test
disk_sign_current dev1 "$T/p1.json"
assert_eq "$e1" "$(jq .epoch "$T/p1.json")" "new policy for epoch $e1"

python3 -c 'import secrets; a="cbdefghijklnrtuv"; print("-".join("".join(secrets.choice(a) for _ in range(8)) for _ in range(8)))' >"$T/rk-wrong"
EXPECT_NAME="recovery with a well-formed wrong recovery key (exit 6)" \
	disk_expect_fail_unchanged "$IMG" 6 "The recovery key does not open '$IMG'" \
	tpcdisk recovery "$IMG" --test --policy "$T/p1.json" --recovery-key-file "$T/rk-wrong"
printf 'hello-world\n' >"$T/rk-bad"
EXPECT_NAME="recovery with a malformed recovery key (exit 8)" \
	disk_expect_fail_unchanged "$IMG" 8 "The recovery key from $T/rk-bad is not well-formed: it is 8 groups of 8 letters" \
	tpcdisk recovery "$IMG" --test --policy "$T/p1.json" --recovery-key-file "$T/rk-bad"
EXPECT_NAME="recovery with the old epoch's policy (exit 3, nothing changed)" \
	disk_expect_fail_unchanged "$IMG" 3 "--policy '$T/p0.json' is for epoch $e0, the lock counter is at $e1: ask for a policy for epoch $e1. Nothing was changed" \
	tpcdisk recovery "$IMG" --test --policy "$T/p0.json" --recovery-key-file "$T/rk"
disk_sign_current dev1 "$T/p-future.json" --epoch $((e1 + 1))
EXPECT_NAME="recovery with a future epoch's policy (exit 3)" \
	disk_expect_fail_unchanged "$IMG" 3 "is for epoch $((e1 + 1)), the lock counter is at $e1.*Nothing was changed" \
	tpcdisk recovery "$IMG" --test --policy "$T/p-future.json" --recovery-key-file "$T/rk"
disk_sign_current dev1 "$T/p-fake.json" --device-id 0123456789abcdef0123456789abcdef
EXPECT_NAME="recovery with a policy for another device (exit 5, names both)" \
	disk_expect_fail_unchanged "$IMG" 5 "was signed for device 0123456789abcdef0123456789abcdef, this disk belongs to $dev_id" \
	tpcdisk recovery "$IMG" --test --policy "$T/p-fake.json" --recovery-key-file "$T/rk"
disk_sign_current dev1 "$T/p-otherkey.json" --key "$DISK_KEYS/other.key"
EXPECT_NAME="recovery with a policy signed by another key (exit 5)" \
	disk_expect_fail_unchanged "$IMG" 5 "rejected: the policy was signed by another key" \
	tpcdisk recovery "$IMG" --test --policy "$T/p-otherkey.json" --recovery-key-file "$T/rk"

# Another TPM (its counter at the same epoch, its PCRs the same): re-sealing there would move the
# disk to a TPM whose lock counter the fleet does not lock for this device.
swtpm_start other
disk_measured_boot other
EXPECT_NAME="enroll a disk on TPM 'other'" expect_ok disk_enroll other "$T/other.img"
while (($(tpcdisk_on other tpm-status --json | jq .epoch) < e1)); do tpcdisk_on other lock >/dev/null 2>&1; done
swtpm_use dev1
EXPECT_NAME="recovery on another TPM (exit 7, nothing changed)" \
	disk_expect_fail_unchanged "$IMG" 7 "This TPM is device [0-9a-f]{32}, but '$IMG' belongs to device $dev_id.*Nothing was changed" \
	tpcdisk_on other recovery "$IMG" --test --policy "$T/p1.json" --recovery-key-file "$T/rk"
assert_eq "$old_slot" "$(disk_status_field "$IMG" .keyslot)" "the TPM keyslot is the enrolled one still"
EXPECT_NAME="still locked after the refused recoveries (exit 3)" \
	expect_fail 3 'the device is locked' tpcdisk unlock "$IMG" --test

# ---- recovery with the escrowed key and the new epoch's policy --------------------------------------------
h0=$(luks_header_hash "$IMG")
EXPECT_NAME="recovery with the escrowed key + policy for epoch $e1 (exit 0)" \
	expect_ok tpcdisk recovery "$IMG" --test --policy "$T/p1.json" --recovery-key-file "$T/rk"
assert_file_contains "$EXPECT_STDERR" "Recovered '$IMG': TPM keyslot re-sealed as keyslot [0-9]+ for device $dev_id, epoch $e1" \
	"recovery says what it did"
assert_ne "$h0" "$(luks_header_hash "$IMG")" "recovery re-sealed: the header changed"
new_slot=$(disk_status_field "$IMG" .keyslot)
assert_ne "$old_slot" "$new_slot" "the TPM keyslot moved ($old_slot -> $new_slot)"
cryptsetup luksDump --dump-json-metadata "$IMG" >"$T/dump.json"
assert_eq null "$(jq -c --arg s "$old_slot" '.keyslots[$s]' "$T/dump.json")" "the old TPM keyslot $old_slot is destroyed"
assert_eq "$rk_slot" "$(disk_status_field "$IMG" .recovery_keyslot)" "the recovery keyslot is kept"
EXPECT_NAME="the recovery key still opens the volume" expect_ok luks_check_passphrase "$IMG" "$rk"
EXPECT_NAME="the original passphrase still opens the volume" expect_ok luks_check_passphrase "$IMG" "$DISK_PASSPHRASE"
assert_eq "$e1" "$(disk_status_field "$IMG" .policy_epoch)" "the new policy is stored in the token"
assert_eq false "$(disk_status_field "$IMG" .locked)" "status: not locked"
assert_pcr15_zero dev1 "recovery does not extend PCR 15 (the TPM released nothing)"

EXPECT_NAME="same boot: the re-sealed TPM slot unlocks with the new policy" \
	expect_ok tpcdisk unlock "$IMG" --test --policy "$T/p1.json"
disk_reboot dev1
EXPECT_NAME="next boot: TPM unlock without --policy" expect_ok tpcdisk unlock "$IMG" --test
disk_reboot dev1
EXPECT_NAME="the old epoch's policy still fails after recovery (exit 3)" \
	disk_expect_fail_unchanged "$IMG" 3 "lock counter is at epoch $e1, the policy is for epoch $e0" \
	tpcdisk unlock "$IMG" --test --policy "$T/p0.json"
EXPECT_NAME="lock again" expect_ok tpcdisk lock
EXPECT_NAME="the re-sealed disk obeys the lock counter too (exit 3)" \
	disk_expect_fail_unchanged "$IMG" 3 "the device is locked" tpcdisk unlock "$IMG" --test

test_done
