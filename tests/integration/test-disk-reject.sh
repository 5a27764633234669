#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# trustpc-disk unlock refuses, with a clear message and the LUKS header unchanged:
#   policies for another device (exit 5, both ids named), by another key (5), edited after
#   signing (5) or malformed (8); a missing TPM (7, the TPM named); a TPM that is not the one the
#   disk was sealed with (7) — in every state that other TPM may be in.
set -euo pipefail
source "${TRUSTPC_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/disk.sh"
T=$TRUSTPC_TEST_TMP
IMG=$T/a.img

# Device A and device B: two TPMs with the same measured boot (same PCR 7/11 values).
swtpm_start devA
swtpm_start devB
disk_measured_boot devA
disk_measured_boot devB
swtpm_use devA
disk_keys
EXPECT_NAME="enroll a.img on device A" expect_ok disk_enroll devA "$IMG"
EXPECT_NAME="enroll b.img on device B (defines B's lock counter)" expect_ok disk_enroll devB "$T/b.img"
disk_tpm_status devB
id_b=$DISK_DEVICE_ID
disk_sign_current devB "$T/pB.json"
disk_sign_current devA "$T/pA.json"
id_a=$DISK_DEVICE_ID
assert_ne "$id_a" "$id_b" "A and B have different device ids"
assert_eq "$(jq -c '[.epoch, .pcrs]' "$T/pA.json")" "$(jq -c '[.epoch, .pcrs]' "$T/pB.json")" \
	"A's and B's policies differ only in the device (same epoch, same PCRs)"

# ---- policy for another device, by another key, edited, malformed ----------------------------------
EXPECT_NAME="policy signed for device B used on A's disk (exit 5, names both ids)" \
	disk_expect_fail_unchanged "$IMG" 5 "the policy was signed for device $id_b, but this disk belongs to device $id_a" \
	tpcdisk unlock "$IMG" --test --policy "$T/pB.json"
# B's policy with its device_id rewritten to A: the signature covers the device id (policyRef).
jq -c --arg id "$id_a" '.device_id = $id' "$T/pB.json" >"$T/pB-as-A.json"
EXPECT_NAME="B's policy relabelled as A's (exit 5)" \
	disk_expect_fail_unchanged "$IMG" 5 'policy rejected: the policy signature does not verify' \
	tpcdisk unlock "$IMG" --test --policy "$T/pB-as-A.json"

disk_sign_current devA "$T/p-other-key.json" --key "$DISK_KEYS/other.key"
EXPECT_NAME="policy signed by another key (exit 5)" \
	disk_expect_fail_unchanged "$IMG" 5 'policy rejected: the policy was signed by another key than the policy key this disk trusts' \
	tpcdisk unlock "$IMG" --test --policy "$T/p-other-key.json"

# The signer's key id relabelled to ours: the signature still does not verify with our key.
jq -c --arg k "$(jq -r .key_id "$T/pA.json")" '.key_id = $k' "$T/p-other-key.json" >"$T/p-other-key-relabelled.json"
EXPECT_NAME="another key's policy with our key_id (exit 5)" \
	disk_expect_fail_unchanged "$IMG" 5 'policy rejected: the policy signature does not verify' \
	tpcdisk unlock "$IMG" --test --policy "$T/p-other-key-relabelled.json"

jq -c '.epoch += 1' "$T/pA.json" >"$T/p-edit-epoch.json"
EXPECT_NAME="policy with the epoch edited, not re-signed (exit 5)" \
	disk_expect_fail_unchanged "$IMG" 5 "policy rejected: the policy's 'policy_digest' does not match its fields \\(edited after signing\\?\\)" \
	tpcdisk unlock "$IMG" --test --policy "$T/p-edit-epoch.json"
jq -c --arg v "$(tpm_pcr_read devA 11)" '.pcrs["7"] = $v' "$T/pA.json" >"$T/p-edit-pcr.json"
EXPECT_NAME="policy with a PCR 7 value edited, not re-signed (exit 5)" \
	disk_expect_fail_unchanged "$IMG" 5 "'policy_digest' does not match its fields" \
	tpcdisk unlock "$IMG" --test --policy "$T/p-edit-pcr.json"
# Edited epoch with the policy_digest of a real epoch+1 policy spliced in: only the signature is left.
disk_sign_current devA "$T/p-next.json" --epoch $((DISK_EPOCH + 1))
jq -c --slurpfile n "$T/p-next.json" '.epoch = $n[0].epoch | .policy_digest = $n[0].policy_digest' \
	"$T/pA.json" >"$T/p-splice.json"
EXPECT_NAME="epoch and policy_digest edited together (exit 5)" \
	disk_expect_fail_unchanged "$IMG" 5 'policy rejected: the policy signature does not verify' \
	tpcdisk unlock "$IMG" --test --policy "$T/p-splice.json"
sig=$(jq -r .signature "$T/pA.json")
first=${sig:0:1}
[[ $first == A ]] && other=B || other=A
jq -c --arg s "$other${sig:1}" '.signature = $s' "$T/pA.json" >"$T/p-edit-sig.json"
EXPECT_NAME="policy with one signature character changed (exit 5)" \
	disk_expect_fail_unchanged "$IMG" 5 'policy rejected: the policy signature does not verify' \
	tpcdisk unlock "$IMG" --test --policy "$T/p-edit-sig.json"

jq -c '.epoch = "one"' "$T/pA.json" >"$T/p-bad-epoch.json"
EXPECT_NAME="policy file with a non-integer epoch (exit 8, names file and field)" \
	disk_expect_fail_unchanged "$IMG" 8 "Policy file '$T/p-bad-epoch.json' is malformed: field 'epoch' must be a non-negative integer" \
	tpcdisk unlock "$IMG" --test --policy "$T/p-bad-epoch.json"
jq -c '.pcrs["15"] = "01" + .pcrs["15"][2:]' "$T/pA.json" >"$T/p-pcr15.json"
EXPECT_NAME="policy that does not pin PCR 15 to zero (exit 8)" \
	disk_expect_fail_unchanged "$IMG" 8 "field 'pcrs': PCR 15 must be all zero" \
	tpcdisk unlock "$IMG" --test --policy "$T/p-pcr15.json"
head -c 100 "$T/pA.json" >"$T/p-truncated.json"
EXPECT_NAME="truncated policy file (exit 8)" \
	disk_expect_fail_unchanged "$IMG" 8 "Policy file '$T/p-truncated.json' is malformed" \
	tpcdisk unlock "$IMG" --test --policy "$T/p-truncated.json"
EXPECT_NAME="policy file that does not exist (exit 1, names the file)" \
	disk_expect_fail_unchanged "$IMG" 1 "Cannot read policy file '$T/nope.json': No such file" \
	tpcdisk unlock "$IMG" --test --policy "$T/nope.json"
assert_pcr15_zero devA "no refusal extended PCR 15"
EXPECT_NAME="A's own policy still unlocks after all that" expect_ok tpcdisk unlock "$IMG" --test --policy "$T/pA.json"

# ---- no TPM at all ------------------------------------------------------------------------------------
disk_reboot devA
port=$(_pick_port_pair)
EXPECT_NAME="TRUSTPC_TPM2_DEVICE at a port where nothing listens (exit 7, names the TPM)" \
	disk_expect_fail_unchanged "$IMG" 7 "Cannot reach a TPM at 'swtpm:host=127.0.0.1,port=$port'.*--tpm2-device" \
	env TRUSTPC_TPM2_DEVICE="swtpm:host=127.0.0.1,port=$port" "$DISK_BIN" unlock "$IMG" --test
EXPECT_NAME="--tpm2-device naming a missing device node (exit 7)" \
	disk_expect_fail_unchanged "$IMG" 7 "Cannot reach a TPM at '$T/no-tpm'" \
	tpcdisk --tpm2-device="$T/no-tpm" unlock "$IMG" --test
EXPECT_NAME="--tpm2-device wins over TRUSTPC_TPM2_DEVICE" \
	expect_ok env TRUSTPC_TPM2_DEVICE="swtpm:host=127.0.0.1,port=$port" "$DISK_BIN" \
	--tpm2-device="$(swtpm_tcti devA)" unlock "$IMG" --test

# ---- the TPM is not the one the disk was sealed to (A's disk and policy, B's TPM) ----------------------
# disk-unseal.c: the SRK pinned in the token does not match B's (-EREMCHG, exit 7); with PCRs or the
# counter differing on B, the TPM's device id is compared first so the cause is named (exit 7 too).
EXPECT_NAME="A's disk on TPM B, same PCRs and epoch (exit 7: SRK pin)" \
	disk_expect_fail_unchanged "$IMG" 7 "storage root key is not the one the disk was sealed with.*use the recovery key" \
	tpcdisk_on devB unlock "$IMG" --test --policy "$T/pA.json"
assert_pcr15_zero devB "B's PCR 15 untouched"
swtpm_reboot devB # B boots something else: PCR 7/11 zero
EXPECT_NAME="A's disk on TPM B with other PCRs (exit 7, names both devices)" \
	disk_expect_fail_unchanged "$IMG" 7 "this TPM is device $id_b, but the disk was sealed on device $id_a" \
	tpcdisk_on devB unlock "$IMG" --test --policy "$T/pA.json"
swtpm_start devC
disk_measured_boot devC
EXPECT_NAME="A's disk on a fresh TPM C without a lock counter (exit 7)" \
	disk_expect_fail_unchanged "$IMG" 7 "this TPM is device [0-9a-f]{32}, but the disk was sealed on device $id_a" \
	tpcdisk_on devC unlock "$IMG" --test --policy "$T/pA.json"
disk_reboot devA
EXPECT_NAME="on its own TPM A the disk still unlocks" expect_ok tpcdisk_on devA unlock "$IMG" --test

test_done
